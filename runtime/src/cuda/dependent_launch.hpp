// One launch path for every family's grids: on sm_90+ a grid is a programmatic dependent of what precedes it on the
// stream, scheduled while that work drains; the kernel waits (griddepcontrol.wait, before its first memory access)
// for it to end. This hides one launch latency per grid.
#pragma once
#include <cuda.h>

#include "cuda_driver.hpp"
#include "swajit/device.hpp"

namespace swajit::cuda {

struct GridShape {
  unsigned x = 1, y = 1, z = 1;
};

inline constexpr int kMinProgrammaticLaunchMajor = 9;  // griddepcontrol (programmatic dependent launch) needs sm_90

inline void launch_dependent(const DeviceInfo& device, CUstream stream, CUfunction function, GridShape grid,
                             int threads, int shared_bytes, void** args, const char* what) {
  CUlaunchAttribute overlap{};
  overlap.id = CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
  overlap.value.programmaticStreamSerializationAllowed = 1;
  CUlaunchConfig c{};
  c.gridDimX = grid.x;
  c.gridDimY = grid.y;
  c.gridDimZ = grid.z;
  c.blockDimX = threads;
  c.blockDimY = c.blockDimZ = 1;
  c.sharedMemBytes = shared_bytes;
  c.hStream = stream;
  c.attrs = &overlap;
  c.numAttrs = device.cc_major >= kMinProgrammaticLaunchMajor ? 1 : 0;
  check(driver().cuLaunchKernelEx(&c, function, args, nullptr), what);
}

}  // namespace swajit::cuda
