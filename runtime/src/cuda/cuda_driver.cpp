#include "cuda_driver.hpp"

#include <map>
#include <mutex>

#include "shared_library.hpp"
#include "swajit/error.hpp"

namespace swajit::cuda {
namespace {

struct LoadedDriver {
  Driver driver;
  bool ok = false;
  std::string why_not;
};

LoadedDriver load_driver() {
  LoadedDriver loaded;
  std::string errors;
  void* library = dl::open_first({"libcuda.so.1"}, &errors);
  if (!library) {
    loaded.why_not = "no CUDA driver (libcuda.so.1 could not be opened: " + errors + ")";
    return loaded;
  }
  // Each function by the exact symbol cuda.h maps its name to (cuMemAlloc -> cuMemAlloc_v2, ...), so the pointer
  // always has the prototype we call it with. (Asking cuGetProcAddress for the base name can return a newer ABI.)
#define SWAJIT_SYMBOL_TEXT(symbol) #symbol
#define SWAJIT_EXPANDED_NAME(name) SWAJIT_SYMBOL_TEXT(name)
#define SWAJIT_RESOLVE(name)                                                                                  \
  {                                                                                                           \
    if (!dl::resolve(library, SWAJIT_EXPANDED_NAME(name), loaded.driver.name)) {                              \
      loaded.why_not = std::string("the CUDA driver lacks ") + SWAJIT_EXPANDED_NAME(name) +                   \
                       " (a driver for CUDA " + std::to_string(CUDA_VERSION / 1000) + " or newer is needed)"; \
      return loaded;                                                                                          \
    }                                                                                                         \
  }
  SWAJIT_DRIVER_FUNCTIONS(SWAJIT_RESOLVE)
#undef SWAJIT_RESOLVE
#undef SWAJIT_EXPANDED_NAME
#undef SWAJIT_SYMBOL_TEXT
  const CUresult init = loaded.driver.cuInit(0);
  if (init != CUDA_SUCCESS) {
    const char* name = nullptr;
    loaded.driver.cuGetErrorName(init, &name);
    loaded.why_not = std::string("no usable GPU: cuInit failed with ") + (name ? name : "an unknown error");
    return loaded;
  }
  int count = 0;
  if (loaded.driver.cuDeviceGetCount(&count) != CUDA_SUCCESS || count == 0) {
    loaded.why_not = "no GPU: the CUDA driver found no device";
    return loaded;
  }
  loaded.ok = true;
  return loaded;
}

const LoadedDriver& loaded_driver() {
  static const LoadedDriver loaded = load_driver();
  return loaded;
}

}  // namespace

const Driver* try_driver(std::string* why_not) {
  const LoadedDriver& loaded = loaded_driver();
  if (!loaded.ok && why_not) *why_not = loaded.why_not;
  return loaded.ok ? &loaded.driver : nullptr;
}

const Driver& driver() {
  std::string why;
  const Driver* d = try_driver(&why);
  if (!d) throw Error(ErrorCode::kNoDevice, why);
  return *d;
}

void check(CUresult result, const char* what) {
  if (result == CUDA_SUCCESS) return;
  const char* name = nullptr;
  const char* text = nullptr;
  const Driver& d = driver();
  d.cuGetErrorName(result, &name);
  d.cuGetErrorString(result, &text);
  throw Error(ErrorCode::kCudaError, std::string(what) + " failed: " + (name ? name : "?") + " (" + (text ? text : "?") + ")");
}

namespace {
// Primary contexts are retained once per device for the life of the process.
CUcontext primary_context(int device_ordinal) {
  static std::mutex mutex;
  static std::map<int, CUcontext> contexts;
  std::lock_guard<std::mutex> lock(mutex);
  auto it = contexts.find(device_ordinal);
  if (it != contexts.end()) return it->second;
  const Driver& d = driver();
  CUdevice device;
  check(d.cuDeviceGet(&device, device_ordinal), "cuDeviceGet");
  CUcontext context;
  check(d.cuDevicePrimaryCtxRetain(&context, device), "cuDevicePrimaryCtxRetain");
  contexts[device_ordinal] = context;
  return context;
}
}  // namespace

ScopedDeviceContext::ScopedDeviceContext(int device_ordinal) {
  const Driver& d = driver();
  int count = 0;
  check(d.cuDeviceGetCount(&count), "cuDeviceGetCount");
  if (device_ordinal < 0 || device_ordinal >= count)
    throw Error(ErrorCode::kInvalidArgument, "device id " + std::to_string(device_ordinal) + " is outside [0, " +
                                                 std::to_string(count - 1) + "]");
  CUcontext current = nullptr;
  check(d.cuCtxGetCurrent(&current), "cuCtxGetCurrent");
  if (current) {
    CUdevice current_device;
    check(d.cuCtxGetDevice(&current_device), "cuCtxGetDevice");
    CUdevice wanted;
    check(d.cuDeviceGet(&wanted, device_ordinal), "cuDeviceGet");
    if (current_device == wanted) {  // the caller's own context (primary or not) is used as is
      context_ = current;
      return;
    }
  }
  context_ = primary_context(device_ordinal);
  check(d.cuCtxPushCurrent(context_), "cuCtxPushCurrent");
  pushed_ = true;
}

ScopedDeviceContext::~ScopedDeviceContext() {
  if (pushed_) {
    CUcontext popped;
    driver().cuCtxPopCurrent(&popped);
  }
}

void StreamDestroyer::operator()(CUstream stream) const { driver().cuStreamDestroy(stream); }

OwnedStream create_stream() {
  CUstream stream = nullptr;
  check(driver().cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING), "cuStreamCreate");
  return OwnedStream(stream);
}

}  // namespace swajit::cuda
