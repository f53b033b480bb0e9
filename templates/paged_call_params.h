// The argument fields every paged-cache kernel family takes alike (paged decode, sparse top-k decode): the query,
// output and cache tensors with their strides, the paged metadata, the learned sinks and the 8-bit K/V scales. Each
// family's argument struct derives from it (templates/*_params.h). Shared verbatim by the host runtime (g++) and the
// generated source (NVRTC, the CPU backend's Clang), which pastes this header in before the family's own. Only
// fixed-width standard types. Strides are in elements.
#ifndef SWAJIT_PAGED_CALL_PARAMS_H
#define SWAJIT_PAGED_CALL_PARAMS_H

struct PagedCallParams {
  const void* q;                 // [batch, q_seqlen, num_q_heads, head_dim]
  const void* k_cache;           // paged, NHD [pages, page_size, kv_heads, head_dim] or HND [pages, kv_heads, page_size, head_dim]
  const void* v_cache;
  void* out;                     // [batch, q_seqlen, num_q_heads, head_dim of V]
  const int* block_table;        // [batch, max_pages_per_seq]
  const int* seq_lens;           // [batch], KV length including the q_seqlen new tokens
  const float* sink_logits;      // learned sinks only: [num_q_heads] logits, in the units of scale * q.k
  const float* k_scale;          // 8-bit KV only: dequant scales, [num_kv_heads, head_dim] or one per tensor
  const float* v_scale;          //   (a per-tensor scale is read through zero strides)
  long long q_stride_batch, q_stride_token, q_stride_head;
  long long out_stride_batch, out_stride_token, out_stride_head;
  long long k_stride_page, k_stride_token, k_stride_head;
  long long v_stride_page, v_stride_token, v_stride_head;
  long long block_table_stride_batch, block_table_stride_page;
  long long seq_lens_stride;
  long long sink_logits_stride;
  long long k_scale_stride_head, k_scale_stride_channel;
  long long v_scale_stride_head, v_scale_stride_channel;
  int batch;
  int num_kv_heads;
  int num_pages;
  int max_pages_per_seq;
};
#endif  // SWAJIT_PAGED_CALL_PARAMS_H
