// Utility kernels (random fill, read-bandwidth probe), compiled once per context through NVRTC. Every function
// expects `device`'s context to be current.
#pragma once
#include <cuda.h>

#include <cstdint>

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

// Median of `reps` timings (ms) of `launch` on `stream`, each bracketed by events, after `warmup` untimed runs.
template <class Launch>
double median_ms(Launch&& launch, int warmup, int reps, CUstream stream);

}  // namespace swajit

#include "utility_kernels_impl.hpp"
