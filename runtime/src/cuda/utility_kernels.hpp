// Utility kernels (random fill, read-bandwidth probe), compiled once per context through NVRTC. Every function
// expects `device`'s context to be current.
#pragma once
#include <cuda.h>

#include <cstdint>

#include "device_buffer.hpp"
#include "swajit/device.hpp"
#include "swajit/spec.hpp"

namespace swajit {

// Fills `count` 16-bit elements at `data` with uniform(-1, 1) values of `dtype` on `stream`.
void fill_uniform(const DeviceInfo& device, CUdeviceptr data, uint64_t count, uint64_t seed, DType dtype, CUstream stream);

// Fills `count` bytes at `data` with random values (valid fp8 e4m3 codes when avoid_fp8_nan) on `stream`.
void fill_random_bytes(const DeviceInfo& device, CUdeviceptr data, uint64_t count, uint64_t seed, bool avoid_fp8_nan,
                       CUstream stream);

// Device read bandwidth in bytes/s, measured with a streaming read of `bytes` (median of `reps` runs).
double measure_read_bandwidth(const DeviceInfo& device, size_t bytes, int reps, CUstream stream);

// Device copy bandwidth in bytes/s (bytes read + bytes written), cuMemcpyDtoD of `bytes`.
double measure_copy_bandwidth(const DeviceInfo& device, size_t bytes, int reps, CUstream stream);

// Pushes everything out of the device's L2 by reading a buffer of twice its size (clean lines, nothing to write back).
class L2Evictor {
 public:
  explicit L2Evictor(const DeviceInfo& device);
  void run(CUstream stream) const;

 private:
  static constexpr size_t kL2Multiple = 2;
  const DeviceInfo& device_;
  DeviceBuffer data_, sink_;
};

// Median of `reps` timings (ms) of `launch` on `stream`, each bracketed by events, after `warmup` untimed runs; the
// way Triton's do_bench times the peers: before each rep the stream evicts the L2 (L2Evictor), so no rep finds its
// inputs cached, and the host enqueues the launch while that runs, so the host's own time per call is not counted.
template <class Launch>
double median_ms(Launch&& launch, int warmup, int reps, CUstream stream, const DeviceInfo& device);

// Host time (us) of one call of `launch` that only enqueues work on `stream` (mean of `calls` back to back, far
// fewer than would fill the launch queue: kHostTimedCalls), after one untimed call.
constexpr int kHostTimedCalls = 10;
template <class Launch>
double host_us_per_call(Launch&& launch, int calls, CUstream stream);

}  // namespace swajit

#include "utility_kernels_impl.hpp"
