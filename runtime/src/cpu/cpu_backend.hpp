// The CPU backend: the same paged-decode semantics as the GPU, compiled in process by Clang (cpu_jit.hpp) and run
// on a persistent thread pool over (sequence, kv head, split) work items.
#pragma once
#include <functional>
#include <memory>
#include <optional>

#include "cpu_jit.hpp"
#include "kernel_cache.hpp"
#include "paged_decode_problem.hpp"

namespace swajit {

// params: the family's argument struct (PagedDecodeParams, SparseDecodeParams).
using CpuKernelFn = void (*)(const void* params, int item_begin, int item_end, float* scratch);

struct LoadedCpuKernel {
  std::unique_ptr<cpu::JitModule> module;
  CpuKernelFn main = nullptr, merge = nullptr;
  int scratch_floats = 0;
  double compile_ms = 0;       // Clang + LLVM time (0 when the object came from the database)
  bool from_database = false;
};

// Compiles (or loads from the tuning database) exactly once per (spec, compile config), whatever the threads; any
// family with a CPU kernel (generate_cpu_kernel).
const LoadedCpuKernel& cpu_decode_kernel(const KernelSpec& spec, const CpuDecodeConfig& config);

// The config for a call: forced, tuned (database, keyed by the host CPU's identity), else the heuristic.
CpuDecodeConfig plan_cpu_decode(const DecodeProblem& problem, const DecodeOptions& options);
CpuDecodeConfig cpu_heuristic_config(const DecodeProblem& problem);

// Runs `kernel` over the pairs x items_per_pair work items of `params` (pairs = batch x kv heads), then, when
// `merge`, its merge over the pairs, on `threads` workers each with its own scratch. Any family's CPU kernel.
void run_cpu_items(const LoadedCpuKernel& kernel, const void* params, int pairs, int items_per_pair, bool merge,
                   int threads);

// Runs a validated CPU problem with `config` (synchronously; the CPU has no stream).
void run_cpu_decode(DecodeProblem& problem, const CpuDecodeConfig& config);

int hardware_threads();

// Builds, compiles and per-kernel first-use times of this process's CPU kernels (nvrtc_compiles counts Clang
// compiles here).
KernelCacheStats cpu_kernel_cache_stats();

// Runs fn(first, last, worker) over [0, items) in chunks on `threads` workers of a persistent pool.
void parallel_for(int items, int threads, const std::function<void(int, int, int)>& fn);

}  // namespace swajit
