// The CUDA Driver API, opened with dlopen at run time: the library starts on machines with no driver and says so.
#pragma once
#include <cuda.h>

#include <memory>
#include <string>

namespace swajit::cuda {

#define SWAJIT_DRIVER_FUNCTIONS(X)                                                                            \
  X(cuInit) X(cuDriverGetVersion) X(cuGetErrorName) X(cuGetErrorString) X(cuDeviceGetCount) X(cuDeviceGet)    \
  X(cuDeviceGetName) X(cuDeviceGetAttribute) X(cuDeviceTotalMem) X(cuDevicePrimaryCtxRetain)                   \
  X(cuDevicePrimaryCtxRelease) X(cuCtxGetCurrent) X(cuCtxPushCurrent) X(cuCtxPopCurrent) X(cuCtxGetDevice)     \
  X(cuCtxSynchronize) X(cuModuleLoadData) X(cuModuleUnload) X(cuModuleGetFunction) X(cuFuncSetAttribute)       \
  X(cuFuncGetAttribute) X(cuOccupancyMaxActiveBlocksPerMultiprocessor) X(cuLaunchKernel) X(cuLaunchKernelEx) X(cuMemAlloc)         \
  X(cuMemFree) X(cuMemcpyHtoD) X(cuMemcpyDtoH) X(cuMemcpyDtoDAsync) X(cuMemsetD8) X(cuMemsetD32)               \
  X(cuMemsetD8Async) X(cuMemGetInfo) X(cuStreamCreate) X(cuStreamDestroy) X(cuStreamSynchronize)               \
  X(cuStreamIsCapturing) X(cuStreamBeginCapture) X(cuStreamEndCapture) X(cuGraphInstantiateWithFlags)          \
  X(cuGraphLaunch) X(cuGraphDestroy) X(cuGraphExecDestroy) X(cuEventCreate) X(cuEventDestroy) X(cuEventRecord) \
  X(cuEventSynchronize) X(cuEventElapsedTime) X(cuStreamWaitEvent) X(cuLaunchHostFunc) X(cuMemsetD32Async)         \
  X(cuMemcpyHtoDAsync) X(cuMemcpyDtoHAsync) X(cuThreadExchangeStreamCaptureMode) X(cuMemPoolCreate)            \
  X(cuMemPoolSetAttribute) X(cuMemAllocFromPoolAsync) X(cuMemFreeAsync) X(cuStreamGetCaptureInfo)        \
  X(cuUserObjectCreate) X(cuGraphRetainUserObject) X(cuTensorMapEncodeTiled)

struct Driver {
#define SWAJIT_DECLARE(name) decltype(&::name) name = nullptr;
  SWAJIT_DRIVER_FUNCTIONS(SWAJIT_DECLARE)
#undef SWAJIT_DECLARE
};

// The loaded and initialized driver, or nullptr with the reason in *why_not (no libcuda, no device, ...).
const Driver* try_driver(std::string* why_not = nullptr);
// The loaded driver; throws Error(kNoDevice) with the reason when there is none.
const Driver& driver();

// Throws Error(kCudaError) naming `what` and the driver's error name and string when `result` is not success.
void check(CUresult result, const char* what);

// Makes the primary context of `device_ordinal` current for the scope unless it already is.
class ScopedDeviceContext {
 public:
  explicit ScopedDeviceContext(int device_ordinal);
  ~ScopedDeviceContext();
  ScopedDeviceContext(const ScopedDeviceContext&) = delete;
  ScopedDeviceContext& operator=(const ScopedDeviceContext&) = delete;
  CUcontext context() const { return context_; }

 private:
  CUcontext context_ = nullptr;
  bool pushed_ = false;
};

// A non-blocking stream of the current context, destroyed with its owner (also when an exception leaves the scope).
struct StreamDestroyer {
  void operator()(CUstream stream) const;
};
using OwnedStream = std::unique_ptr<CUstream_st, StreamDestroyer>;
OwnedStream create_stream();

}  // namespace swajit::cuda
