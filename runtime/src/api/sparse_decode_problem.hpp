// A validated sparse top-k decode call: every DLTensor checked, the spec derived, the kernel arguments filled in.
#pragma once
#include <string>
#include <vector>

#include "call_problem.hpp"
#include "paged_call_params.h"  // templates/: the paged families' common fields, before their structs
#include "sparse_decode_params.h"  // templates/: the kernels' own argument struct

namespace swajit {

// spec: sparse_decode_kernel_spec(call); host metadata: seq_lens, block_table and indices.
struct SparseDecodeProblem : CallProblem {
  bool on_cpu = false;
  SparseDecodeParams params{};   // everything but workspace, status and num_splits
};

// Validates every argument (shapes, dtypes, devices, strides, alignment, options) without touching the GPU.
SparseDecodeProblem describe_sparse_decode(const DLTensor& q, const DLTensor& k_cache, const DLTensor* v_cache,
                                           const DLTensor& block_table, const DLTensor& seq_lens,
                                           const DLTensor& indices, const DLTensor& out, const SparseDecodeOptions& options);

// The compile-time part of the heuristic config: tensor cores for 16-bit caches (unless `tensor_cores` is false) and
// the widest gather tile whose pipeline fits `max_shared_bytes` (num_splits 1; a call's splits come from its sizes).
SparseDecodeConfig sparse_decode_heuristic(const KernelSpec& spec, int max_shared_bytes, bool tensor_cores = true);
// The same for `device`, and on sm_90a the MLA kernel (SparseDecodeConfig::mla) for the shared 576 / 512 shape.
SparseDecodeConfig sparse_decode_heuristic(const KernelSpec& spec, const DeviceInfo& device, bool tensor_cores = true);
// The heuristic's splits of `config` for the call `p` on `device`.
int sparse_decode_splits(const SparseDecodeProblem& p, const SparseDecodeConfig& config, const DeviceInfo& device);
// The config a call runs without a forced or tuned one: the heuristic's kernel and tile, its splits, for MLA the
// warp-specialized kernel where the splits are few, and a deeper pipeline where a grid of one block per item gains.
SparseDecodeConfig sparse_decode_default_config(const SparseDecodeProblem& p, const DeviceInfo& device);
// The pipelines sparse_decode_default_config may give the token-split config `c` on `device`: its tile in three stages, then
// 32-row tiles in three stages (those that fit; none for other kernels).
std::vector<SparseDecodeConfig> sparse_decode_pipelines(const KernelSpec& spec, const SparseDecodeConfig& c, const DeviceInfo& device);
// The tuning database's shape bucket of a call: bh<batch x kv heads>_n<candidates per row (topk + window)>, each
// rounded up to a power of two (what sets the grid and each block's work).
std::string sparse_bucket_key(const SparseDecodeProblem& p);

// The config a CUDA call runs with, and where it came from (bench sparse times the tuned one beside the heuristic).
struct SparseDecodePlan {
  enum class Origin { kForced, kTuned, kHeuristic };
  SparseDecodeConfig config;
  Origin origin = Origin::kHeuristic;
};
// Forced (options.config), else the tuning database's winner for (device, spec, bucket) as options.tuning allows
// (tuned now on a miss with kTuneOnMiss, unless `stream` is capturing), else the heuristic.
SparseDecodePlan plan_sparse_decode(const SparseDecodeProblem& p, const SparseDecodeOptions& options, const DeviceInfo& device,
                                    CUstream stream);

}  // namespace swajit
