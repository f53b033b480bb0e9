// A validated paged-decode call: every DLTensor checked, the spec derived, the kernel arguments filled in.
#pragma once
#include <vector>

#include "call_problem.hpp"
#include "paged_call_params.h"  // templates/: the paged families' common fields, before their structs
#include "paged_decode_params.h"  // templates/: the kernel's own argument struct

namespace swajit {

// spec: paged_decode_kernel_spec(call); host metadata: seq_lens and block_table.
struct DecodeProblem : CallProblem {
  int max_kv_len = 0;            // max_pages_per_seq * page_size: what the block table can address
  bool on_cpu = false;           // the tensors are on the CPU: the CPU backend runs the call
  PagedDecodeParams params{};    // everything but workspace, status and num_splits
  std::vector<int> host_seq_lens;  // the lengths as the host knows them (DecodeOptions::host_seq_lens), else empty
};

// Validates every argument (shapes, dtypes, devices, strides, alignment, windows) without touching the GPU.
DecodeProblem describe_paged_decode(const DLTensor& q, const DLTensor& k_cache, const DLTensor& v_cache,
                                    const DLTensor& block_table, const DLTensor& seq_lens, const DLTensor& out,
                                    const DecodeOptions& options);

// KV positions a query block may touch: window (plus q_seqlen - 1) and sinks, bounded by what the table addresses.
int visible_kv_upper_bound(const DecodeProblem& problem);
// The same bound from its parts: `addressable_tokens` is what the block table can address (max_kv_len).
int visible_kv_bound(int64_t addressable_tokens, int local_window, int q_seqlen, int global_window);

}  // namespace swajit
