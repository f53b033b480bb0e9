// A validated prefill call: every DLTensor checked, the spec derived, the kernel arguments filled in.
#pragma once
#include "call_problem.hpp"
#include "prefill_params.h"  // templates/: the kernel's own argument struct

namespace swajit {

// spec: prefill_kernel_spec(call); host metadata: every metadata tensor.
struct PrefillProblem : CallProblem {
  int max_q_len = 0;          // sizes the grid: the caller's, the exact one from host metadata, or total_q
  PrefillParams params{};     // everything but status
};

// Validates every argument without touching the GPU. `paged` selects the form: k/v with cu_seqlens_k, or a paged
// cache with block_table and seq_lens (the unused tensors are null).
PrefillProblem describe_prefill(const DLTensor& q, const DLTensor& k, const DLTensor& v, const DLTensor* cu_seqlens_k,
                                const DLTensor* block_table, const DLTensor* seq_lens, const DLTensor& cu_seqlens_q,
                                const DLTensor& out, const PrefillOptions& options);

// The config used when none is forced: fits the device's shared memory for the spec; `tma_layout_ok` false (the
// call's K/V strides do not suit TMA: tma_layout_problem) picks one without TMA.
PrefillConfig heuristic_prefill_config(const KernelSpec& spec, const DeviceInfo& device, bool tma_layout_ok = true);
// Empty when the TMA producer can read this call's K/V (16-byte aligned addresses and strides, the same head/token
// order in k and v), else what it needs, for the error of a forced tma config.
std::string tma_layout_problem(const PrefillProblem& problem);
// The heuristic's config with the persistent grid's item order for this call: where the causal ramp is much of the
// work (the longest query run at most twice the keys a query sees), dynamic items (PrefillConfig::dynamic_items) and the
// TMA store (PrefillConfig::tma_store) at head_dim 128 with 16-bit K/V, else snake order (PrefillConfig::snake_order).
PrefillConfig with_item_order(const PrefillProblem& problem, PrefillConfig config);
// The persistent grid's q heads a section (PrefillParams::heads_per_section): fewer than all where the kv heads' K/V
// windows overflow half of the device's L2 (SWAJIT_PREFILL_HEAD_SECTION=N overrides).
int heads_per_section(const PrefillProblem& problem, const PrefillConfig& config, const DeviceInfo& device);
// Throws kInvalidArgument unless `config` can run this call: valid for its spec, and for tma configs K/V the TMA
// engine can read (tma_layout_problem).
void validate_prefill_config_for_call(const PrefillConfig& config, const PrefillProblem& problem);
// Forced (checked by validate_prefill_config_for_call: a config that cannot run the call fails here, naming why),
// else the tuning database's winner for (SKU, spec, bucket) (tuned on a miss when the policy says so and `stream` is
// not capturing) if it can run the call, else the heuristic.
PrefillConfig choose_prefill_config(const PrefillProblem& problem, const PrefillOptions& options, const DeviceInfo& device,
                                  CUstream stream);

// Useful FLOPs of a prefill (4 * head_dim per visible (query, key) pair and q head), from host-side lengths.
double prefill_flops(const std::vector<int>& q_lens, const std::vector<int>& kv_lens, int num_q_heads, int head_dim,
                     int local_window, int global_window, bool causal);

}  // namespace swajit
