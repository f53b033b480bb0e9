#pragma once
#include <algorithm>
#include <vector>

#include "cuda_driver.hpp"

namespace swajit {

template <class Launch>
double median_ms(Launch&& launch, int warmup, int reps, CUstream stream) {
  const cuda::Driver& d = cuda::driver();
  for (int i = 0; i < warmup; ++i) launch();
  CUevent start, stop;
  cuda::check(d.cuEventCreate(&start, CU_EVENT_DEFAULT), "cuEventCreate");
  cuda::check(d.cuEventCreate(&stop, CU_EVENT_DEFAULT), "cuEventCreate");
  std::vector<float> times(reps);
  for (int i = 0; i < reps; ++i) {
    cuda::check(d.cuEventRecord(start, stream), "cuEventRecord");
    launch();
    cuda::check(d.cuEventRecord(stop, stream), "cuEventRecord");
    cuda::check(d.cuEventSynchronize(stop), "cuEventSynchronize");
    cuda::check(d.cuEventElapsedTime(&times[i], start, stop), "cuEventElapsedTime");
  }
  d.cuEventDestroy(start);
  d.cuEventDestroy(stop);
  std::nth_element(times.begin(), times.begin() + reps / 2, times.end());
  return times[reps / 2];
}

}  // namespace swajit
