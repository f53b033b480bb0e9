// The two GPUs the project measured, as the driver reports them (cuDeviceGetAttribute; the shipped tuning files'
// device records): the heuristics' unit tests check their choices against what was measured best on each.
#pragma once
#include "swajit/device.hpp"

namespace swajit::test {

inline DeviceInfo hopper(int memory_clock_khz, int bus_width_bits, int l2_mib) {
  DeviceInfo d;
  d.cc_major = 9;
  d.cc_minor = 0;
  d.sm_count = 132;
  d.max_shared_per_block_optin = 227 * 1024;
  d.max_shared_per_sm = 228 * 1024;
  d.reserved_shared_per_block = 1024;
  d.max_threads_per_sm = 2048;
  d.max_registers_per_block = 64 * 1024;
  d.l2_bytes = l2_mib << 20;
  d.memory_clock_khz = memory_clock_khz;
  d.memory_bus_width_bits = bus_width_bits;
  return d;
}
inline const DeviceInfo kH100 = hopper(2619000, 5120, 50);  // H100 SXM 80GB HBM3: 3.35 TB/s peak
inline const DeviceInfo kH200 = hopper(3201000, 6144, 60);  // H200: 4.92 TB/s peak

}  // namespace swajit::test
