// The device inputs of the heuristics (runtime/src/tuning/memory_system.hpp) on the two GPUs measured so far: the
// bandwidth derived from the driver's memory attributes must land on the read bandwidth `swajit bench decode`
// measured there (RESULTS.md), and what must be in flight follows the bandwidth.
#include <doctest/doctest.h>

#include "memory_system.hpp"

using namespace swajit;

namespace {
// The attributes the driver reports (deviceQuery / cuDeviceGetAttribute) for the H100 SXM 80GB and the H200.
DeviceInfo hopper(int memory_clock_khz, int bus_width_bits, int l2_mib = 50) {
  DeviceInfo d;
  d.cc_major = 9;
  d.cc_minor = 0;
  d.sm_count = 132;
  d.l2_bytes = l2_mib << 20;
  d.memory_clock_khz = memory_clock_khz;
  d.memory_bus_width_bits = bus_width_bits;
  return d;
}
const DeviceInfo kH100 = hopper(2619000, 5120);
const DeviceInfo kH200 = hopper(3201000, 6144, 60);
}  // namespace

TEST_CASE("memory system: the peak from the memory clock and bus width, the read within 5% of the measured one") {
  const MemorySystem h100 = memory_system(kH100), h200 = memory_system(kH200);
  CHECK(h100.from_attributes);
  CHECK(h100.peak_bytes_per_s == doctest::Approx(3.352e12).epsilon(0.001));  // 2 x 2619 MHz x 640 bytes
  CHECK(h200.peak_bytes_per_s == doctest::Approx(4.917e12).epsilon(0.001));  // 2 x 3201 MHz x 768 bytes
  // Measured with the bench's read probe: H100 3057-3090 GB/s (2026-11-22/23), H200 4220-4430 GB/s (2026-11-29).
  CHECK(h100.read_bytes_per_s / 3.07e12 == doctest::Approx(1).epsilon(0.05));
  CHECK(h200.read_bytes_per_s / 4.33e12 == doctest::Approx(1).epsilon(0.05));
  // Same SMs, same latency: the H200 must keep as many more bytes in flight per SM as it reads faster.
  CHECK(double(h200.bytes_in_flight_per_sm) / h100.bytes_in_flight_per_sm ==
        doctest::Approx(h200.read_bytes_per_s / h100.read_bytes_per_s).epsilon(0.01));
  CHECK(h100.bytes_in_flight_per_sm > 8 * 1024);
  CHECK(h200.bytes_in_flight_per_sm < 64 * 1024);
  CHECK(h200.l2_bytes == 60 << 20);
}

TEST_CASE("memory system: a driver that reports no memory clock gets the architecture's peak, never zero") {
  const MemorySystem unreported = memory_system(hopper(0, 0));
  CHECK_FALSE(unreported.from_attributes);
  CHECK(unreported.peak_bytes_per_s > 1e12);
  DeviceInfo unknown = hopper(0, 0);
  unknown.cc_major = 42;
  unknown.sm_count = 0;  // no division by zero either
  const MemorySystem fallback = memory_system(unknown);
  CHECK(fallback.read_bytes_per_s > 0);
  CHECK(fallback.bytes_in_flight_per_sm > 0);
}

TEST_CASE("memory system: pipeline stages keep the SM's share in flight, at least two, more for a faster device") {
  const MemorySystem h100 = memory_system(kH100), h200 = memory_system(kH200);
  for (const int64_t stage_bytes : {2048, 8192, 32768})
    for (const int blocks : {1, 2, 4}) {
      CAPTURE(stage_bytes);
      CAPTURE(blocks);
      const int s100 = stages_for_bandwidth(h100, stage_bytes, blocks), s200 = stages_for_bandwidth(h200, stage_bytes, blocks);
      CHECK(s100 >= 2);
      CHECK(s200 >= s100);
      CHECK((s200 - 1) * stage_bytes * blocks >= h200.bytes_in_flight_per_sm);  // enough
      CHECK((s200 - 2) * stage_bytes * blocks < h200.bytes_in_flight_per_sm + stage_bytes * blocks);  // not more
    }
  // A 16-bit K+V tile of 32 tokens at head_dim 64 (8 KiB), one block per SM: 2 tiles on the H100, 3 on the H200.
  CHECK(stages_for_bandwidth(h100, 8192, 1) == 3);
  CHECK(stages_for_bandwidth(h200, 8192, 1) == 4);
  CHECK(stages_for_bandwidth(h100, 0, 0) >= 2);  // degenerate inputs: no division by zero
}
