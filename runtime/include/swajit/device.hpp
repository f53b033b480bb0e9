// swajit: what the library found on this machine.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

namespace swajit {

// Properties of one CUDA device, read from the driver (never assumed).
struct DeviceInfo {
  int ordinal = 0;
  std::string name;
  int cc_major = 0, cc_minor = 0;
  int sm_count = 0;
  int max_shared_per_block_optin = 0;  // bytes a block may opt in to
  int max_shared_per_sm = 0;
  int reserved_shared_per_block = 0;   // bytes the driver keeps from every resident block's share of an SM
  int l2_bytes = 0;
  int memory_clock_khz = 0;            // peak DRAM clock (0: not reported); tuning/memory_system.hpp
  int memory_bus_width_bits = 0;       //   derives the bandwidth from these two
  size_t total_memory = 0;
  int max_threads_per_sm = 0;
  int max_registers_per_block = 0;
  int driver_version = 0;

  std::string arch() const;  // NVRTC target: "sm_90a" on Hopper (arch-specific features), else "sm_XY"
  std::string sku() const;   // stable identity for tuning results: name + compute capability + SM count
};

// Every CUDA device, empty when there is no usable driver or GPU; *why_not says why in that case.
std::vector<DeviceInfo> cuda_devices(std::string* why_not = nullptr);
// One device's properties (cached); throws kNoDevice / kInvalidArgument.
const DeviceInfo& cuda_device(int ordinal);

}  // namespace swajit
