#include "kernel_cache.hpp"

#include <chrono>
#include <cstdio>
#include <future>
#include <map>
#include <memory>
#include <mutex>

#include "cuda_driver.hpp"
#include "nvrtc_compiler.hpp"
#include "swajit/error.hpp"
#include "tuning_store.hpp"

namespace swajit {
namespace {

using KernelFuture = std::shared_future<std::shared_ptr<const LoadedKernel>>;

struct Cache {
  std::mutex mutex;
  std::map<std::pair<std::string, CUcontext>, KernelFuture> entries;  // by the hash of source, options and arch
  // The same kernels by name (spec key, config key, arch): a call's lookup, without generating and hashing the source
  // (which took ~150 us a call). The generator is deterministic, so a name always maps to the same source.
  std::map<std::pair<std::string, CUcontext>, KernelFuture> by_name;
  KernelCacheStats stats;
};
Cache& cache() {
  static Cache c;
  return c;
}

// Builds the kernel of `generated` through the stages into `kernel`, whose shared_bytes is set: a config over the
// device's shared memory is refused before anything is compiled.
void build(const GeneratedKernel& generated, const std::string& config_key, const DeviceInfo& device,
           const std::string& binary_hash, LoadedKernel* kernel) {
  kernel->binary_hash = binary_hash;
  if (kernel->shared_bytes > device.max_shared_per_block_optin)
    throw Error(ErrorCode::kInvalidArgument, "config " + config_key + " needs " +
                                                 std::to_string(kernel->shared_bytes) +
                                                 " bytes of shared memory per block; " + device.name + " allows " +
                                                 std::to_string(device.max_shared_per_block_optin));
  const auto start = std::chrono::steady_clock::now();
  kernel_stages::Cubin cubin = kernel_stages::compile(generated, binary_hash, device.arch(), device.driver_version);
  const CUresult loaded = kernel_stages::load(cubin.bytes, generated, kernel);
  if (loaded != CUDA_SUCCESS) {
    if (!cubin.from_database) cuda::check(loaded, "cuModuleLoadData");
    std::fprintf(stderr,
                 "swajit: driver %d refused the stored cubin %s of %s (built by NVRTC %d under driver %d); "
                 "compiling it again\n",
                 device.driver_version, binary_hash.c_str(), generated.cache_key.c_str(), cubin.compiler_version,
                 cubin.driver_version);
    cubin = kernel_stages::compile(generated, binary_hash, device.arch(), device.driver_version, /*use_database=*/false);
    cuda::check(kernel_stages::load(cubin.bytes, generated, kernel), "cuModuleLoadData");
  }
  if (!cubin.from_database) {
    std::lock_guard<std::mutex> lock(cache().mutex);
    ++cache().stats.nvrtc_compiles;
  }
  kernel->from_database = cubin.from_database;
  kernel->compile_ms = cubin.compile_ms;
  kernel_stages::configure(device, kernel);
  kernel->load_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() - kernel->compile_ms;
}

}  // namespace

namespace kernel_stages {

std::string kernel_name(const KernelSpec& spec, const std::string& config_key, const std::string& arch) {
  return spec.key() + "|" + config_key + "|" + arch;
}

std::string binary_hash(const GeneratedKernel& generated, const std::string& arch) {
  std::string options_text;
  for (const auto& o : nvrtc::compile_options(arch)) options_text += o + " ";
  return stable_hash({generated.source, options_text, arch});
}

Cubin compile(const GeneratedKernel& generated, const std::string& binary_hash, const std::string& arch,
              int driver_version, bool use_database) {
  Cubin cubin;
  if (use_database)
    if (auto stored = TuningStore::instance().binary(binary_hash)) {
      cubin.bytes = std::move(stored->bytes);
      cubin.from_database = true;
      cubin.compiler_version = stored->compiler_version;
      cubin.driver_version = stored->driver_version;
      return cubin;
    }
  nvrtc::CompiledCubin compiled = nvrtc::compile(generated.source, generated.cache_key + ".cu", arch);
  cubin.compiler_version = nvrtc::version();
  cubin.driver_version = driver_version;
  TuningStore::instance().put_binary(binary_hash, arch, cubin.compiler_version, driver_version, compiled.cubin);
  cubin.bytes = std::move(compiled.cubin);
  cubin.compile_ms = compiled.compile_ms;
  return cubin;
}

CUresult load(const std::vector<char>& cubin, const GeneratedKernel& generated, LoadedKernel* kernel) {
  const cuda::Driver& d = cuda::driver();
  if (const CUresult result = d.cuModuleLoadData(&kernel->module, cubin.data()); result != CUDA_SUCCESS) {
    kernel->module = nullptr;
    return result;
  }
  cuda::check(d.cuModuleGetFunction(&kernel->main, kernel->module, generated.kernel_symbol.c_str()),
              "cuModuleGetFunction(main kernel)");
  if (!generated.merge_symbol.empty())
    cuda::check(d.cuModuleGetFunction(&kernel->merge, kernel->module, generated.merge_symbol.c_str()),
                "cuModuleGetFunction(merge kernel)");
  return CUDA_SUCCESS;
}

void configure(const DeviceInfo& device, LoadedKernel* kernel) {
  const cuda::Driver& d = cuda::driver();
  cuda::check(d.cuFuncSetAttribute(kernel->main, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, kernel->shared_bytes),
              "cuFuncSetAttribute(max dynamic shared memory)");
  if (kernel->merge) {  // the merge grid asks for shared memory only to spread its blocks (paged_decode.cpp) ...
    cuda::check(d.cuFuncSetAttribute(kernel->merge, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                     device.max_shared_per_block_optin),
                "cuFuncSetAttribute(merge: max dynamic shared memory)");
    constexpr int kAllSharedCarveout = 100;  // ... so every SM must offer all of it, whatever the driver would pick
    cuda::check(d.cuFuncSetAttribute(kernel->merge, CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT, kAllSharedCarveout),
                "cuFuncSetAttribute(merge: shared memory carveout)");
  }
  cuda::check(d.cuFuncGetAttribute(&kernel->registers, CU_FUNC_ATTRIBUTE_NUM_REGS, kernel->main), "cuFuncGetAttribute(regs)");
  cuda::check(d.cuFuncGetAttribute(&kernel->local_bytes, CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES, kernel->main),
              "cuFuncGetAttribute(local bytes)");
}

}  // namespace kernel_stages

std::string stable_hash(std::initializer_list<std::string_view> pieces) {
  constexpr uint64_t kOffsetBasis = 0xcbf29ce484222325ull, kPrime = 0x100000001b3ull;
  uint64_t h = kOffsetBasis;
  for (std::string_view piece : pieces) {
    for (unsigned char c : piece) h = (h ^ c) * kPrime;
    h = (h ^ 0xffu) * kPrime;  // separator: a byte no text piece ends with by accident
  }
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(h));
  return hex;
}

namespace {

// The cached kernel for `generated` (keyed by the hash of its source, options and arch), built by `make` exactly
// once per context; the future is ready (or holds the build's error) when this returns.
template <class Make>
KernelFuture kernel_for_source(const GeneratedKernel& generated, const std::string& config_key,
                               const DeviceInfo& device, CUcontext context, Make make) {
  const std::string hash = kernel_stages::binary_hash(generated, device.arch());

  Cache& c = cache();
  std::promise<std::shared_ptr<const LoadedKernel>> promise;
  KernelFuture future;
  bool builder = false;
  {
    std::lock_guard<std::mutex> lock(c.mutex);
    auto it = c.entries.find({hash, context});
    if (it != c.entries.end()) {
      ++c.stats.hits;
      future = it->second;
    } else {
      ++c.stats.builds;
      future = promise.get_future().share();
      c.entries.emplace(std::make_pair(hash, context), future);
      builder = true;
    }
  }
  if (builder) {
    try {
      auto kernel = make();
      build(generated, config_key, device, hash, kernel.get());
      {
        std::lock_guard<std::mutex> lock(c.mutex);
        c.stats.first_use_ms.push_back(kernel->compile_ms + kernel->load_ms);
      }
      promise.set_value(std::move(kernel));
    } catch (...) {
      promise.set_exception(std::current_exception());  // threads already waiting see the same error
      std::lock_guard<std::mutex> lock(c.mutex);
      c.entries.erase({hash, context});                 // a later call may try again
    }
  }
  future.wait();
  return future;
}

// The cached kernel named `name` (spec key, config key, arch), whose source `generate()` returns, built by `make`
// (which fills in the family's part) exactly once per context.
template <class Generate, class Make>
const LoadedKernel& cached_kernel(const std::string& name, Generate generate, const std::string& config_key,
                                  const DeviceInfo& device, CUcontext context, Make make) {
  Cache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mutex);
    auto it = c.by_name.find({name, context});
    if (it != c.by_name.end()) {
      ++c.stats.hits;
      KernelFuture known = it->second;
      return *known.get();  // the future is ready: entries go into by_name only once built
    }
  }
  const KernelFuture built = kernel_for_source(generate(), config_key, device, context, make);
  const LoadedKernel& kernel = *built.get();  // throws the build's error
  std::lock_guard<std::mutex> lock(c.mutex);
  c.by_name.emplace(std::make_pair(name, context), built);
  return kernel;
}

}  // namespace

template <class Config>
const LoadedKernelOf<Config>& cuda_kernel(const KernelSpec& spec, const Config& config, const DeviceInfo& device,
                                          CUcontext context) {
  const auto make = [&] {
    auto kernel = std::make_shared<LoadedKernelOf<Config>>();
    kernel->geometry = kernel_geometry(spec, config);
    kernel->shared_bytes = kernel->geometry.shared_bytes;
    return kernel;
  };
  const std::string config_key = config.compile_key();
  return static_cast<const LoadedKernelOf<Config>&>(cached_kernel(
      kernel_stages::kernel_name(spec, config_key, device.arch()), [&] { return generate_kernel(spec, config); },
      config_key, device, context, make));
}
template const LoadedDecodeKernel& cuda_kernel(const KernelSpec&, const DecodeConfig&, const DeviceInfo&, CUcontext);
template const LoadedPrefillKernel& cuda_kernel(const KernelSpec&, const PrefillConfig&, const DeviceInfo&, CUcontext);
template const LoadedSparseDecodeKernel& cuda_kernel(const KernelSpec&, const SparseDecodeConfig&, const DeviceInfo&, CUcontext);

KernelCacheStats kernel_cache_stats() {
  std::lock_guard<std::mutex> lock(cache().mutex);
  return cache().stats;
}

}  // namespace swajit
