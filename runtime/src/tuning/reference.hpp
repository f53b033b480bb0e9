// The simple references every kernel is checked against: the math and the mask of templates/paged_decode.cuh and
// templates/prefill.cuh, written as plainly as possible, in double precision, on the host; and the tolerance a
// kernel's output must meet.
#pragma once
#include <cstdint>
#include <vector>

#include "swajit/spec.hpp"

namespace swajit {

// How far a kernel's output may be from the reference (relative L2 error): bf16 1e-2, fp16 2e-3.
double tolerance_for(DType dtype);

// A paged decode problem held on the host as float values (already rounded to the kernel's input dtype).
struct HostPagedDecode {
  int batch = 0, q_seqlen = 1, num_q_heads = 0, num_kv_heads = 0, head_dim = 0, page_size = 0, num_pages = 0;
  int max_pages_per_seq = 0;
  KvLayout layout = KvLayout::kNHD;
  int local_window = 0, global_window = 0;
  double scale = 0;
  std::vector<float> q;           // [batch, q_seqlen, num_q_heads, head_dim], compact
  std::vector<float> k, v;        // compact in `layout`
  std::vector<int> block_table;   // [batch, max_pages_per_seq], compact
  std::vector<int> seq_lens;      // [batch]
  std::vector<float> sink_logits; // [num_q_heads] learned sinks, or empty
  GqaMapping gqa = GqaMapping::kGrouped;
};

// A varlen prefill held on the host as float values, K/V contiguous (a paged run scatters the same values).
struct HostPrefill {
  int num_q_heads = 0, num_kv_heads = 0, head_dim = 0;
  int local_window = 0, global_window = 0;
  bool causal = true;
  double scale = 0;
  std::vector<int> cu_seqlens_q, cu_seqlens_k;  // [batch + 1]
  std::vector<float> q;            // [total_q, num_q_heads, head_dim], compact
  std::vector<float> k, v;         // [total_kv, num_kv_heads, head_dim], compact; 8-bit K/V: code * scale, so the
                                   //   reference is exact attention over the dequantized K/V
  std::vector<float> sink_logits;  // [num_q_heads] learned sinks, or empty
  GqaMapping gqa = GqaMapping::kGrouped;
};

// A sparse top-k decode problem on the host: a paged cache as for decode, plus each query token's selection.
struct HostSparseDecode {
  HostPagedDecode paged;          // q, caches (v unused with shared_kv), block_table, seq_lens, local_window, sinks
  int head_dim_v = 0;             // V and out columns (shared_kv: the first head_dim_v columns of the K row)
  bool shared_kv = false;
  int topk = 0;
  std::vector<int> indices;       // [batch, q_seqlen, topk], -1 unused
  std::vector<float> score_bias;  // [batch, q_seqlen, topk] or empty
};

// The visibility rule, one place for the host side.
bool reference_visible(int p, int j, int local_window, int global_window, bool causal = true);

// out [batch, q_seqlen, num_q_heads, head_dim], compact, double precision.
std::vector<double> reference_paged_decode(const HostPagedDecode& problem);

// out [batch, q_seqlen, num_q_heads, head_dim_v], compact, double precision. A query token whose indices hold a
// value outside [-1, seq_len) gets zeros (the kernels report it and zero the row).
std::vector<double> reference_sparse_decode(const HostSparseDecode& problem);

// out [total_q, num_q_heads, head_dim], compact, double precision.
std::vector<double> reference_prefill(const HostPrefill& problem);

}  // namespace swajit
