// The correctness matrices of the decode (CUDA and CPU) and prefill (CUDA) families: every case against the reference
// on fresh random data, outputs poisoned first. Shared by `swajit check` and the tests, so both run the same cases.
// The harness is its own library (swajit_harness): the CLI and the tests link it, libswajit does not.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <dlpack/dlpack.h>

#include "reference.hpp"  // tolerance_for
#include "swajit/spec.hpp"

namespace swajit {

struct DecodeCase {
  std::string name;
  DType dtype = DType::kBF16;
  int head_dim = 128;
  int page_size = 16;
  KvLayout layout = KvLayout::kNHD;
  int q_seqlen = 1;
  int group = 4;
  int num_kv_heads = 2;
  std::vector<int> seq_lens = {0, 1, 37, 300};
  int local_window = 64;
  int global_window = 4;
  bool strided = false;   // padded / permuted strides for q, out, caches, block_table and seq_lens
  bool q_3d = false;      // q and out as [batch, heads, head_dim] (q_seqlen must be 1)
  bool sink_logits = false;  // learned per-head sinks, random in [-1, 3)
  GqaMapping gqa = GqaMapping::kGrouped;
  KvQuant kv_quant = KvQuant::kNone;  // 8-bit cache with random codes and random positive scales
  bool per_tensor_scale = false;      // one scale for K and one for V, instead of [num_kv_heads, head_dim]
  std::optional<DecodeConfig> config;

  KernelSpec spec() const;
};

struct CaseResult {
  bool passed = false;
  double rel_err = 0;
  double tolerance = 0;
  std::string detail;  // why it failed, or a short note
};

std::vector<DecodeCase> decode_check_matrix();
// Runs the case on `where`: {kDLCUDA, n} for GPU n, {kDLCPU, 0} for the CPU backend.
CaseResult run_decode_case(const DecodeCase& c, DLDevice where, uint64_t seed);
// Compiles the kernels of all cases on `threads` threads (exercises the compile-once cache under concurrency).
void precompile_cases(const std::vector<DecodeCase>& cases, DLDevice where, int threads);
// One prefill case: ragged sequences (q_lens[b] <= kv_lens[b]), contiguous or paged K/V, on the GPU.
struct PrefillCase {
  std::string name;
  DType dtype = DType::kBF16;
  int head_dim = 128;
  int group = 4;
  int num_kv_heads = 2;
  std::vector<int> q_lens = {37, 1, 200};
  std::vector<int> kv_lens = {37, 90, 200};
  int local_window = 64;
  int global_window = 4;
  bool causal = true;
  int page_size = 0;          // 0: contiguous K/V with cu_seqlens_k; else a paged cache with shuffled pages
  KvLayout layout = KvLayout::kNHD;
  bool strided = false;       // padded strides for q, out, K/V and the metadata
  bool sink_logits = false;
  GqaMapping gqa = GqaMapping::kGrouped;
  KvQuant kv_quant = KvQuant::kNone;  // 8-bit K/V with random codes and random positive scales
  bool per_tensor_scale = false;      // one scale for K and one for V, instead of [num_kv_heads, head_dim]
  std::optional<PrefillConfig> config;

  KernelSpec spec() const;
};
std::vector<PrefillCase> prefill_check_matrix();
CaseResult run_prefill_case(const PrefillCase& c, int device_ordinal, uint64_t seed);

// The CPU config a case forces (its tile and splits), if any.
std::optional<CpuDecodeConfig> cpu_config_of(const DecodeCase& c);

}  // namespace swajit
