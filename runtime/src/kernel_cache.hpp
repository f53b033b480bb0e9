// In-memory cache of loaded kernels, keyed by a stable hash of (source, NVRTC options, arch, NVRTC version) and
// the CUDA context. When several threads ask for the same kernel at once it is compiled exactly once.
#pragma once
#include <cuda.h>

#include <cstdint>
#include <string>

#include "swajit/device.hpp"
#include "swajit/generator.hpp"

namespace swajit {

struct LoadedDecodeKernel {
  CUmodule module = nullptr;
  CUfunction main = nullptr;
  CUfunction merge = nullptr;
  DecodeGeometry geometry{};
  std::string binary_hash;     // hex FNV-1a of source + options + arch + NVRTC version
  double compile_ms = 0;       // NVRTC time of the compile that produced it
  double load_ms = 0;          // cuModuleLoadData + function lookup
  int registers = 0;           // per thread, read from the compiled function
  int local_bytes = 0;         // spills and stack, read from the compiled function
};

// The kernel for (spec, config) on `device`, loaded in `context` (which must be current).
const LoadedDecodeKernel& decode_kernel(const KernelSpec& spec, const DecodeConfig& config, const DeviceInfo& device,
                                        CUcontext context);

struct KernelCacheStats {
  uint64_t compiles = 0;  // NVRTC compilations performed by this process
  uint64_t hits = 0;      // lookups answered from memory
};
KernelCacheStats kernel_cache_stats();

// FNV-1a 64-bit over the pieces, separated so that ("ab","c") and ("a","bc") differ; as 16 hex digits.
std::string stable_hash(std::initializer_list<std::string_view> pieces);

}  // namespace swajit
