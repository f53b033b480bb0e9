// The device inputs of the heuristics (runtime/src/tuning/memory_system.hpp) on the two GPUs measured so far: the
// bandwidth derived from the driver's memory attributes must land on the read bandwidth `swajit bench decode`
// measured there (RESULTS.md), and what must be in flight follows the bandwidth.
#include <doctest/doctest.h>

#include "hopper_devices.hpp"
#include "memory_system.hpp"

using namespace swajit;

using test::hopper;
using test::kH100;
using test::kH200;

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
  const MemorySystem unreported = memory_system(hopper(0, 0, 50));
  CHECK_FALSE(unreported.from_attributes);
  CHECK(unreported.peak_bytes_per_s > 1e12);
  DeviceInfo unknown = hopper(0, 0, 50);
  unknown.cc_major = 42;
  unknown.sm_count = 0;  // no division by zero either
  const MemorySystem fallback = memory_system(unknown);
  CHECK(fallback.read_bytes_per_s > 0);
  CHECK(fallback.bytes_in_flight_per_sm > 0);
}

TEST_CASE("memory system: the stages that stay surely in flight keep the SM's share, at least 3, more for a faster device") {
  const MemorySystem h100 = memory_system(kH100), h200 = memory_system(kH200);
  for (const int64_t stage_bytes : {2048, 8192, 32768})
    for (const int blocks : {1, 2, 4}) {
      CAPTURE(stage_bytes);
      CAPTURE(blocks);
      const int s100 = stages_for_bandwidth(h100, stage_bytes, blocks), s200 = stages_for_bandwidth(h200, stage_bytes, blocks);
      CHECK(s100 >= 3);
      CHECK(s200 >= s100);
      CHECK((s200 - 2) * stage_bytes * blocks >= h200.bytes_in_flight_per_sm);  // enough while a block waits
      if (s200 > 3) CHECK((s200 - 3) * stage_bytes * blocks < h200.bytes_in_flight_per_sm);  // not more
    }
  // A 16-bit K+V tile of 32 tokens at head_dim 64 (8 KiB), one block per SM: 2 tiles surely in flight on the H100,
  // 3 on the H200. The decode defaults (32-64 KiB stages, 2-4 blocks per SM) get 3 stages on both, as measured best.
  CHECK(stages_for_bandwidth(h100, 8192, 1) == 4);
  CHECK(stages_for_bandwidth(h200, 8192, 1) == 5);
  CHECK(stages_for_bandwidth(h200, 32768, 2) == 3);
  CHECK(stages_for_bandwidth(h200, 16384, 4) == 3);
  CHECK(stages_for_bandwidth(h100, 0, 0) >= 3);  // degenerate inputs: no division by zero
}
