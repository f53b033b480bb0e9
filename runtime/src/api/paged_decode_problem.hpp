// A validated paged-decode call: every DLTensor checked, the spec derived, the kernel arguments filled in.
#pragma once
#include <dlpack/dlpack.h>

#include "swajit/swajit.hpp"

#include "paged_call_params.h"  // templates/: the paged families' common fields, before their structs
#include "paged_decode_params.h"  // templates/: the kernel's own argument struct

namespace swajit {

struct DecodeProblem {
  AttentionCall call;            // the call's description, as the options and tensors give it
  KernelSpec spec;               // paged_decode_kernel_spec(call)
  int batch = 0;
  int num_q_heads = 0;
  int num_kv_heads = 0;
  int device_ordinal = 0;
  int max_kv_len = 0;            // max_pages_per_seq * page_size: what the block table can address
  bool host_metadata = false;    // seq_lens and block_table are readable from the host (validated there)
  bool on_cpu = false;           // the tensors are on the CPU: the CPU backend runs the call
  PagedDecodeParams params{};    // everything but workspace, status and num_splits
};

// Validates every argument (shapes, dtypes, devices, strides, alignment, windows) without touching the GPU.
DecodeProblem describe_paged_decode(const DLTensor& q, const DLTensor& k_cache, const DLTensor& v_cache,
                                    const DLTensor& block_table, const DLTensor& seq_lens, const DLTensor& out,
                                    const DecodeOptions& options);

// KV positions a query block may touch: window (plus q_seqlen - 1) and sinks, bounded by what the table addresses.
int visible_kv_upper_bound(const DecodeProblem& problem);

}  // namespace swajit
