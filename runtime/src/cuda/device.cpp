#include <map>
#include <mutex>

#include "cuda_driver.hpp"
#include "swajit/device.hpp"
#include "swajit/error.hpp"

namespace swajit {
namespace {

DeviceInfo query_device(int ordinal) {
  const cuda::Driver& d = cuda::driver();
  CUdevice device;
  cuda::check(d.cuDeviceGet(&device, ordinal), "cuDeviceGet");
  DeviceInfo info;
  info.ordinal = ordinal;
  char name[256] = {};
  cuda::check(d.cuDeviceGetName(name, sizeof(name), device), "cuDeviceGetName");
  info.name = name;
  const auto attribute = [&](CUdevice_attribute a) {
    int value = 0;
    cuda::check(d.cuDeviceGetAttribute(&value, a, device), "cuDeviceGetAttribute");
    return value;
  };
  info.cc_major = attribute(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR);
  info.cc_minor = attribute(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
  info.sm_count = attribute(CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT);
  info.max_shared_per_block_optin = attribute(CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN);
  info.max_shared_per_sm = attribute(CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR);
  info.reserved_shared_per_block = attribute(CU_DEVICE_ATTRIBUTE_RESERVED_SHARED_MEMORY_PER_BLOCK);
  info.l2_bytes = attribute(CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE);
  // Informational (the memory system's peak bandwidth): 0 when a driver no longer reports them.
  const auto optional_attribute = [&](CUdevice_attribute a) {
    int value = 0;
    return d.cuDeviceGetAttribute(&value, a, device) == CUDA_SUCCESS ? value : 0;
  };
  info.memory_clock_khz = optional_attribute(CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE);
  info.memory_bus_width_bits = optional_attribute(CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH);
  info.max_threads_per_sm = attribute(CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR);
  info.max_registers_per_block = attribute(CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_BLOCK);
  cuda::check(d.cuDeviceTotalMem(&info.total_memory, device), "cuDeviceTotalMem");
  cuda::check(d.cuDriverGetVersion(&info.driver_version), "cuDriverGetVersion");
  return info;
}

}  // namespace

std::string DeviceInfo::arch() const {
  // sm_90a unlocks Hopper's arch-specific instructions; the "a" target runs only on exactly this major.minor.
  const bool arch_specific = cc_major == 9 && cc_minor == 0;
  return "sm_" + std::to_string(cc_major) + std::to_string(cc_minor) + (arch_specific ? "a" : "");
}

std::string DeviceInfo::sku() const {
  return name + " sm_" + std::to_string(cc_major) + std::to_string(cc_minor) + " x" + std::to_string(sm_count);
}

std::vector<DeviceInfo> cuda_devices(std::string* why_not) {
  std::vector<DeviceInfo> devices;
  const cuda::Driver* d = cuda::try_driver(why_not);
  if (!d) return devices;
  int count = 0;
  cuda::check(d->cuDeviceGetCount(&count), "cuDeviceGetCount");
  for (int i = 0; i < count; ++i) devices.push_back(cuda_device(i));
  return devices;
}

const DeviceInfo& cuda_device(int ordinal) {
  static std::mutex mutex;
  static std::map<int, DeviceInfo> cache;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = cache.find(ordinal);
  if (it != cache.end()) return it->second;
  const cuda::Driver& d = cuda::driver();
  int count = 0;
  cuda::check(d.cuDeviceGetCount(&count), "cuDeviceGetCount");
  if (ordinal < 0 || ordinal >= count)
    throw Error(ErrorCode::kInvalidArgument, "device id " + std::to_string(ordinal) + " is outside [0, " +
                                                 std::to_string(count - 1) + "]");
  return cache.emplace(ordinal, query_device(ordinal)).first->second;
}

}  // namespace swajit
