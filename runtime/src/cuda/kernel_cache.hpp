// The CUDA kernel cache, as visible stages (each tested on its own): look up by name (spec key, config key, arch) ->
// generate the source (generator/) -> compile to a cubin (from the tuning database, else NVRTC) -> load the module
// and its functions -> configure them (shared memory attributes, registers and spills read back). Loaded kernels are
// cached per CUDA context, keyed by a stable hash of (source, NVRTC options, arch); when several threads ask for the
// same kernel at once it is built exactly once.
//
// Warm start: the hash leaves out NVRTC's version so that finding a stored cubin opens no compiler; NVRTC is opened
// only when a kernel must be compiled. The database row keeps the NVRTC and driver versions the cubin was built
// under. The rule: a stored cubin is loaded whatever those versions (it is machine code for exactly this arch, and
// the driver decides what it can load); if the driver refuses it (e.g. it came from an NVRTC newer than this
// driver), one line on stderr says so, the kernel is compiled with this process's NVRTC and the new cubin replaces
// the stored one.
#pragma once
#include <cuda.h>

#include <cstdint>
#include <string>
#include <vector>

#include "swajit/device.hpp"
#include "swajit/generator.hpp"

namespace swajit {

// What every loaded kernel has, whatever its family.
struct LoadedKernel {
  virtual ~LoadedKernel() = default;
  CUmodule module = nullptr;
  CUfunction main = nullptr;
  CUfunction merge = nullptr;  // families with a second pass only
  int shared_bytes = 0;        // dynamic shared memory of `main`
  std::string binary_hash;     // hex FNV-1a of source + options + arch
  double compile_ms = 0;       // NVRTC time of the compile that produced it (0 when loaded from the database)
  bool from_database = false;  // the cubin came from the tuning database: no NVRTC compile in this process
  double load_ms = 0;          // everything but NVRTC: database read, cuModuleLoadData, function lookup
  int registers = 0;           // per thread, read from the compiled function
  int local_bytes = 0;         // spills and stack, read from the compiled function
};

// A loaded kernel of the CUDA family whose config type is `Config`, with that family's launch geometry.
template <class Config>
struct LoadedKernelOf : LoadedKernel {
  decltype(kernel_geometry(KernelSpec{}, Config{})) geometry{};
};
using LoadedDecodeKernel = LoadedKernelOf<DecodeConfig>;
using LoadedPrefillKernel = LoadedKernelOf<PrefillConfig>;
using LoadedSparseDecodeKernel = LoadedKernelOf<SparseDecodeConfig>;

// The kernel for (spec, config) on `device`, loaded in `context` (which must be current); one template for every
// CUDA family (instantiated in kernel_cache.cpp for DecodeConfig, PrefillConfig and SparseDecodeConfig).
template <class Config>
const LoadedKernelOf<Config>& cuda_kernel(const KernelSpec& spec, const Config& config, const DeviceInfo& device,
                                          CUcontext context);
inline const LoadedDecodeKernel& decode_kernel(const KernelSpec& spec, const DecodeConfig& config,
                                               const DeviceInfo& device, CUcontext context) {
  return cuda_kernel(spec, config, device, context);
}
inline const LoadedPrefillKernel& prefill_kernel(const KernelSpec& spec, const PrefillConfig& config,
                                                 const DeviceInfo& device, CUcontext context) {
  return cuda_kernel(spec, config, device, context);
}

// The stages, for the cache below and for tests.
namespace kernel_stages {
// Stage 1, look up: the name a kernel is found by without generating its source.
std::string kernel_name(const KernelSpec& spec, const std::string& config_key, const std::string& arch);
// The binary's identity: source, NVRTC options and arch; computed without opening NVRTC.
std::string binary_hash(const GeneratedKernel& generated, const std::string& arch);
// Stage 3, compile: the cubin of `generated` for `device`, from the tuning database when it holds one under
// `binary_hash`, whatever compiler and driver built it (unless `use_database` is false), else compiled with NVRTC
// (and stored there with NVRTC's version and `driver_version`).
struct Cubin {
  std::vector<char> bytes;
  bool from_database = false;
  double compile_ms = 0;     // NVRTC time (0 from the database)
  int compiler_version = 0;  // the NVRTC that built it (major * 1000 + minor * 10)
  int driver_version = 0;    // the driver it was built under
};
Cubin compile(const GeneratedKernel& generated, const std::string& binary_hash, const std::string& arch,
              int driver_version, bool use_database = true);
// Stage 4, load: the module and its main (and merge) functions into `kernel`, in the current context. The driver's
// error when it refuses the bytes (e.g. a stored cubin it cannot run), with nothing loaded; CUDA_SUCCESS otherwise.
CUresult load(const std::vector<char>& cubin, const GeneratedKernel& generated, LoadedKernel* kernel);
// Stage 5, configure: dynamic shared memory attributes of the loaded functions; registers and spills read back.
void configure(const DeviceInfo& device, LoadedKernel* kernel);
}  // namespace kernel_stages

struct KernelCacheStats {
  uint64_t builds = 0;         // kernels this process had to build (compile, or load from the database)
  uint64_t nvrtc_compiles = 0; // of those, compiled with NVRTC
  uint64_t hits = 0;           // lookups answered from memory
  std::vector<double> first_use_ms;  // per kernel built: NVRTC compile (or database read) + module load
};
KernelCacheStats kernel_cache_stats();

// FNV-1a 64-bit over the pieces, separated so that ("ab","c") and ("a","bc") differ; as 16 hex digits.
std::string stable_hash(std::initializer_list<std::string_view> pieces);

}  // namespace swajit
