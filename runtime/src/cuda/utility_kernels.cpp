#include "utility_kernels.hpp"

#include <map>
#include <mutex>

#include "cuda_driver.hpp"
#include "device_buffer.hpp"
#include "nvrtc_compiler.hpp"
#include "swajit/generator.hpp"

namespace swajit {
namespace {

constexpr int kThreads = 256;
constexpr int kBlocksPerSm = 8;  // enough resident warps to saturate memory with streaming loops

struct UtilityModule {
  CUmodule module = nullptr;
  CUfunction fill = nullptr, fill_bytes = nullptr, read = nullptr, evict = nullptr;
};

// Compiled once per context; the caller has made `device`'s context current.
const UtilityModule& utility_module(const DeviceInfo& device) {
  static std::mutex mutex;
  static std::map<CUcontext, UtilityModule> modules;
  const cuda::Driver& d = cuda::driver();
  CUcontext context;
  cuda::check(d.cuCtxGetCurrent(&context), "cuCtxGetCurrent");
  std::lock_guard<std::mutex> lock(mutex);
  auto it = modules.find(context);
  if (it != modules.end()) return it->second;
  const std::string source = std::string(template_text("tile_ops.cuh")) + std::string(template_text("utility.cuh"));
  const auto cubin = nvrtc::compile(source, "swajit_utility.cu", device.arch());
  UtilityModule m;
  cuda::check(d.cuModuleLoadData(&m.module, cubin.cubin.data()), "cuModuleLoadData(utility)");
  cuda::check(d.cuModuleGetFunction(&m.fill, m.module, "swajit_fill_uniform_16bit"), "cuModuleGetFunction(fill)");
  cuda::check(d.cuModuleGetFunction(&m.read, m.module, "swajit_read_bandwidth"), "cuModuleGetFunction(read)");
  cuda::check(d.cuModuleGetFunction(&m.fill_bytes, m.module, "swajit_fill_random_bytes"), "cuModuleGetFunction(fill bytes)");
  cuda::check(d.cuModuleGetFunction(&m.evict, m.module, "swajit_evict_l2"), "cuModuleGetFunction(evict)");
  return modules.emplace(context, m).first->second;
}

}  // namespace

void fill_uniform(const DeviceInfo& device, CUdeviceptr data, uint64_t count, uint64_t seed, DType dtype, CUstream stream) {
  const UtilityModule& m = utility_module(device);
  int is_bf16 = dtype == DType::kBF16;
  void* args[] = {&data, &count, &seed, &is_bf16};
  cuda::check(cuda::driver().cuLaunchKernel(m.fill, device.sm_count * kBlocksPerSm, 1, 1, kThreads, 1, 1, 0, stream,
                                            args, nullptr),
              "cuLaunchKernel(fill)");
}

void fill_random_bytes(const DeviceInfo& device, CUdeviceptr data, uint64_t count, uint64_t seed, bool avoid_fp8_nan,
                       CUstream stream) {
  const UtilityModule& m = utility_module(device);
  int avoid = avoid_fp8_nan;
  void* args[] = {&data, &count, &seed, &avoid};
  cuda::check(cuda::driver().cuLaunchKernel(m.fill_bytes, device.sm_count * kBlocksPerSm, 1, 1, kThreads, 1, 1, 0,
                                            stream, args, nullptr),
              "cuLaunchKernel(fill bytes)");
}

L2Evictor::L2Evictor(const DeviceInfo& device)
    : device_(device),
      data_(kL2Multiple * size_t(device.l2_bytes)),
      sink_(size_t(device.sm_count) * kBlocksPerSm * sizeof(uint32_t)) {
  data_.fill(0);
}

void L2Evictor::run(CUstream stream) const {
  const UtilityModule& m = utility_module(device_);
  CUdeviceptr data = data_.ptr(), sink = sink_.ptr();
  uint64_t vectors = data_.bytes() / 16;
  void* args[] = {&data, &vectors, &sink};
  cuda::check(cuda::driver().cuLaunchKernel(m.evict, device_.sm_count * kBlocksPerSm, 1, 1, kThreads, 1, 1, 0, stream,
                                            args, nullptr),
              "cuLaunchKernel(evict L2)");
}

double measure_read_bandwidth(const DeviceInfo& device, size_t bytes, int reps, CUstream stream) {
  const UtilityModule& m = utility_module(device);
  const int blocks = device.sm_count * kBlocksPerSm;
  DeviceBuffer data(bytes), sink(size_t(blocks) * sizeof(uint32_t));
  fill_uniform(device, data.ptr(), bytes / 2, 1, DType::kBF16, stream);
  CUdeviceptr ptr = data.ptr(), sink_ptr = sink.ptr();
  uint64_t vectors = bytes / 16;
  void* args[] = {&ptr, &vectors, &sink_ptr};
  const double ms = median_ms([&] {
    cuda::check(cuda::driver().cuLaunchKernel(m.read, blocks, 1, 1, kThreads, 1, 1, 0, stream, args, nullptr), "cuLaunchKernel(read)");
  }, 3, reps, stream, device);
  return double(vectors) * 16 / (ms * 1e-3);
}

double measure_copy_bandwidth(const DeviceInfo& device, size_t bytes, int reps, CUstream stream) {
  DeviceBuffer a(bytes), b(bytes);
  fill_uniform(device, a.ptr(), bytes / 2, 2, DType::kBF16, stream);
  const double ms = median_ms([&] {
    cuda::check(cuda::driver().cuMemcpyDtoDAsync(b.ptr(), a.ptr(), bytes, stream), "cuMemcpyDtoDAsync");
  }, 3, reps, stream, device);
  return 2.0 * double(bytes) / (ms * 1e-3);
}

}  // namespace swajit
