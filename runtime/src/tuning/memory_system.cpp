#include "memory_system.hpp"

#include <algorithm>

namespace swajit {
namespace {

// What no device attribute reports, per architecture (compute capability major.minor).
struct ArchitectureMemory {
  int cc_major, cc_minor;
  double read_efficiency;       // streaming read / DRAM peak
  double latency_ns;            // DRAM latency under a streaming load
  double peak_bytes_per_s;      // used only when the driver reports no memory clock or bus width
  double bulk_rows_per_s_per_sm;  // row-sized bulk copies an SM completes a second, whatever the row's bytes
};
// Hopper (sm_90): reads measured with `swajit bench decode`'s probe (RESULTS.md): 3.06-3.09 TB/s on the H100 SXM
// (peak 3.35 TB/s: 2619 MHz x 5120 bit), 4.22-4.43 TB/s on the H200 (peak 4.8-4.9 TB/s, 6144 bit): 0.86-0.92 of the
// peak. Latency: about twice the ~300 ns of an idle pointer chase on Hopper, as queues fill under a streaming load
// (an estimate, not measured here). Bulk row copies: the decode producer warp moving one K or V token row per
// cp.async.bulk completed 54 M rows a second per SM at 256-byte rows and 52 M at 512-byte rows on the H200 (session 4
// run B, RESULTS.md): the copy engine's request rate, not bytes, bounds it. The fallback row serves architectures
// without a measured one (no bulk copies before sm_90).
constexpr ArchitectureMemory kHopper{9, 0, 0.90, 600, 3.35e12, 53e6};
constexpr ArchitectureMemory kFallback{0, 0, 0.85, 600, 2.0e12, 0};

const ArchitectureMemory& architecture_of(const DeviceInfo& device) {
  return device.cc_major == kHopper.cc_major && device.cc_minor == kHopper.cc_minor ? kHopper : kFallback;
}

}  // namespace

MemorySystem memory_system(const DeviceInfo& device) {
  constexpr double kTransfersPerClock = 2;  // HBM and GDDR move data on both clock edges
  constexpr double kBitsPerByte = 8;
  const ArchitectureMemory& arch = architecture_of(device);
  MemorySystem m;
  m.from_attributes = device.memory_clock_khz > 0 && device.memory_bus_width_bits > 0;
  m.peak_bytes_per_s = m.from_attributes ? kTransfersPerClock * device.memory_clock_khz * 1e3 *
                                               device.memory_bus_width_bits / kBitsPerByte
                                         : arch.peak_bytes_per_s;
  m.read_bytes_per_s = m.peak_bytes_per_s * arch.read_efficiency;
  m.latency_s = arch.latency_ns * 1e-9;
  m.bytes_in_flight = m.read_bytes_per_s * m.latency_s;
  m.bytes_in_flight_per_sm = int64_t(m.bytes_in_flight / std::max(1, device.sm_count));
  m.l2_bytes = device.l2_bytes;
  m.bulk_rows_per_s_per_sm = arch.bulk_rows_per_s_per_sm;
  return m;
}

int stages_for_bandwidth(const MemorySystem& memory, int64_t bytes_per_stage, int blocks_per_sm) {
  const int64_t per_block = (memory.bytes_in_flight_per_sm + std::max(1, blocks_per_sm) - 1) / std::max(1, blocks_per_sm);
  const int64_t tiles = (per_block + std::max<int64_t>(1, bytes_per_stage) - 1) / std::max<int64_t>(1, bytes_per_stage);
  constexpr int kComputedAndLanded = 2;  // the tile being computed and the next one, landed before its slot is free
  return int(kComputedAndLanded + std::max<int64_t>(1, tiles));
}

}  // namespace swajit
