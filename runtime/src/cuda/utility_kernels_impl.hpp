// The timing templates of utility_kernels.hpp (median_ms, host_us_per_call), included at its end.
#pragma once
#include <algorithm>
#include <chrono>
#include <vector>

#include "cuda_driver.hpp"

namespace swajit {

template <class Launch>
double median_ms(Launch&& launch, int warmup, int reps, CUstream stream, const DeviceInfo& device) {
  const cuda::Driver& d = cuda::driver();
  for (int i = 0; i < warmup; ++i) launch();
  const L2Evictor evictor(device);
  std::vector<CUevent> start(reps), stop(reps);
  for (int i = 0; i < reps; ++i) {
    cuda::check(d.cuEventCreate(&start[i], CU_EVENT_DEFAULT), "cuEventCreate");
    cuda::check(d.cuEventCreate(&stop[i], CU_EVENT_DEFAULT), "cuEventCreate");
  }
  for (int i = 0; i < reps; ++i) {
    evictor.run(stream);
    cuda::check(d.cuEventRecord(start[i], stream), "cuEventRecord");
    launch();
    cuda::check(d.cuEventRecord(stop[i], stream), "cuEventRecord");
  }
  cuda::check(d.cuEventSynchronize(stop[reps - 1]), "cuEventSynchronize");
  std::vector<float> times(reps);
  for (int i = 0; i < reps; ++i) {
    cuda::check(d.cuEventElapsedTime(&times[i], start[i], stop[i]), "cuEventElapsedTime");
    d.cuEventDestroy(start[i]);
    d.cuEventDestroy(stop[i]);
  }
  std::nth_element(times.begin(), times.begin() + reps / 2, times.end());
  return times[reps / 2];
}

template <class Launch>
double host_us_per_call(Launch&& launch, int calls, CUstream stream) {
  launch();  // compiled and cached before the clock starts
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < calls; ++i) launch();
  const double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() / calls;
  cuda::check(cuda::driver().cuStreamSynchronize(stream), "cuStreamSynchronize");
  return us;
}

}  // namespace swajit
