// A validated sparse top-k decode call: every DLTensor checked, the spec derived, the kernel arguments filled in.
#pragma once
#include <dlpack/dlpack.h>

#include <string>

#include "swajit/swajit.hpp"

#include "paged_call_params.h"  // templates/: the paged families' common fields, before their structs
#include "sparse_decode_params.h"  // templates/: the kernels' own argument struct

namespace swajit {

struct SparseDecodeProblem {
  AttentionCall call;            // the call's description, as the options and tensors give it
  KernelSpec spec;               // sparse_decode_kernel_spec(call)
  int batch = 0;
  int num_q_heads = 0;
  int num_kv_heads = 0;
  int device_ordinal = 0;
  bool host_metadata = false;    // seq_lens, block_table and indices are host-readable
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
// The tuning database's shape bucket of a call: bh<batch x kv heads>_n<candidates per row (topk + window)>, each
// rounded up to a power of two (what sets the grid and each block's work).
std::string sparse_bucket_key(const SparseDecodeProblem& p);

}  // namespace swajit
