// The correctness matrices of the decode (CUDA and CPU) and prefill (CUDA) families: every case against the reference
// on fresh random data, outputs poisoned first. Shared by `swajit check` and the tests, so both run the same cases.
// The harness is its own library (swajit_harness): the CLI and the tests link it, libswajit does not.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <dlpack/dlpack.h>

#include "reference.hpp"  // tolerance_for
#include "swajit/spec.hpp"

namespace swajit::cuda {
class ScopedDeviceContext;
}

namespace swajit {

// What the paged families' cases share beside their AttentionCall: a name, the kv heads, the sequence lengths, and
// whether every tensor gets padded / permuted strides (q, out, caches, block_table, seq_lens and the family's own).
struct PagedCaseSizes {
  std::string name;
  int num_kv_heads = 2;
  std::vector<int> seq_lens = {0, 1, 37, 300};
  bool strided = false;
};

// One decode case: the call's kernel description (AttentionCall) and its run-time sizes.
struct DecodeCase : AttentionCall, PagedCaseSizes {
  DecodeCase() {
    group = 4;
    local_window = 64;
    global_window = 4;
  }
  bool q_3d = false;      // q and out as [batch, heads, head_dim] (q_seqlen must be 1)
  // sink_logits: learned per-head sinks, random in [-1, 3); kv_quant: 8-bit cache with random codes and random
  // positive scales
  bool per_tensor_scale = false;      // one scale for K and one for V, instead of [num_kv_heads, head_dim]
  int q_exponent = 0;  // q times 2^q_exponent and the softmax scale times 2^-q_exponent: the same scores, q far from 1
  std::optional<DecodeConfig> config;

  KernelSpec spec() const { return paged_decode_kernel_spec(*this); }
};

struct CaseResult {
  bool passed = false;
  double rel_err = 0;
  double tolerance = 0;
  std::string detail;  // why it failed, or a short note
};

std::vector<DecodeCase> decode_check_matrix();
// Adds a case named `name` set up by `edit` (decode_check_matrix's adder); the 8-bit knobs' cases
// (check_decode_knobs.cpp) go through it.
using DecodeCaseAdder = std::function<void(std::string name, const std::function<void(DecodeCase&)>& edit)>;
void add_decode_knob_cases(const DecodeCaseAdder& add);
// Runs the case on `where`: {kDLCUDA, n} for GPU n, {kDLCPU, 0} for the CPU backend.
CaseResult run_decode_case(const DecodeCase& c, DLDevice where, uint64_t seed);
// Compiles the kernels of all cases on `threads` threads (exercises the compile-once cache under concurrency).
void precompile_cases(const std::vector<DecodeCase>& cases, DLDevice where, int threads);
// Calls build(i, context) for i < count on `threads` threads, each holding a context of `where` (null on the CPU);
// errors are left for the case to meet when it runs.
void build_in_parallel(size_t count, DLDevice where, int threads,
                       const std::function<void(size_t, const cuda::ScopedDeviceContext*)>& build);
// One prefill case: ragged sequences (q_lens[b] <= kv_lens[b]), contiguous or paged K/V, on the GPU.
struct PrefillCase : AttentionCall {
  PrefillCase() {
    group = 4;
    local_window = 64;
    global_window = 4;
    page_size = 0;  // contiguous K/V with cu_seqlens_k; else a paged cache with shuffled pages
  }
  std::string name;
  int num_kv_heads = 2;
  std::vector<int> q_lens = {37, 1, 200};
  std::vector<int> kv_lens = {37, 90, 200};
  bool strided = false;       // padded strides for q, out, K/V and the metadata
  bool pages_in_runs = false;  // paged: pages mostly in cache order (runs a TMA tile reads as one box), some swapped
  // kv_quant: 8-bit K/V with random codes and random positive scales
  bool per_tensor_scale = false;      // one scale for K and one for V, instead of [num_kv_heads, head_dim]
  std::optional<PrefillConfig> config;

  KernelSpec spec() const { return prefill_kernel_spec(*this); }
};
std::vector<PrefillCase> prefill_check_matrix();
CaseResult run_prefill_case(const PrefillCase& c, int device_ordinal, uint64_t seed);

// One sparse top-k decode case: a paged cache as for decode, and each query token's selection.
struct SparseCase : AttentionCall, PagedCaseSizes {
  enum class Selection {
    kRandom,        // random positions of the sequence (some past the query: masked), 1 in 8 slots unused (-1)
    kEdges,         // as kRandom, with the last token and token 0 in every row
    kAllUnused,     // every slot -1
    kInvalid,       // as kRandom, with one row's slot at seq_len: reported, that row zeros
  };
  SparseCase() {
    group = 4;
    q_seqlen = 2;
    topk = 64;
  }
  Selection selection = Selection::kRandom;
  bool per_tensor_scale = false;   // 8-bit K/V: one scale for K and one for V
  std::optional<CpuDecodeConfig> cpu_config;   // forced configs of the CPU backend and CUDA (their splits agree)
  std::optional<SparseDecodeConfig> config;

  KernelSpec spec() const { return sparse_decode_kernel_spec(*this); }
};
// On CUDA each 16-bit case runs again on the CUDA-core kernel ("[CUDA cores]"); the CPU backend has one kernel.
std::vector<SparseCase> sparse_check_matrix(DLDevice where);
CaseResult run_sparse_case(const SparseCase& c, DLDevice where, uint64_t seed);
// Compiles the kernels of all sparse cases on `threads` threads.
void precompile_sparse_cases(const std::vector<SparseCase>& cases, DLDevice where, int threads);

// The CPU config a case forces (its tile and splits), if any.
std::optional<CpuDecodeConfig> cpu_config_of(const DecodeCase& c);

}  // namespace swajit
