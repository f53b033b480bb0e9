// Arguments of the prefill kernel, shared verbatim by the host runtime (g++) and the generated CUDA source (NVRTC),
// so both sides agree on the layout. Only fixed-width standard types. Strides are in elements.
#ifndef SWAJIT_PREFILL_PARAMS_H
#define SWAJIT_PREFILL_PARAMS_H

// A CUDA tensor map (CUtensorMap: 128 opaque bytes, 128-byte aligned in CUDA 13 headers), encoded by the host for the TMA engine.
struct alignas(128) PrefillTensorMap {
  unsigned long long opaque[16];
};

struct PrefillParams {
  const void* q;                 // [total_q, num_q_heads, head_dim], sequence b's queries at rows cu_seqlens_q[b]..
  const void* k;                 // contiguous: [total_kv, kv_heads, head_dim] (rows cu_seqlens_k[b]..); paged: the
  const void* v;                 //   cache, NHD [pages, page_size, kv_heads, head_dim] or HND [pages, kv_heads, page_size, head_dim]
  void* out;                     // same shape as q
  const int* cu_seqlens_q;       // [batch + 1]
  const int* cu_seqlens_k;       // contiguous only: [batch + 1]
  const int* block_table;        // paged only: [batch, max_pages_per_seq]
  const int* seq_lens;           // paged only: [batch], KV length including the sequence's queries
  int* status;                   // [2]: bit mask of device-side argument errors, first offending batch index
  int* item_counter;             // dynamic_items only: items claimed so far (0 at launch; the grid leaves it 0)
  const float* sink_logits;      // learned sinks only: [num_q_heads] logits, in the units of scale * q.k
  const float* k_scale;          // 8-bit K/V only: dequant scales, [num_kv_heads, head_dim] or one per tensor
  const float* v_scale;          //   (a per-tensor scale is read through zero strides)
  long long q_stride_token, q_stride_head;
  long long out_stride_token, out_stride_head;
  long long k_stride_page, k_stride_token, k_stride_head;  // contiguous: page stride = token stride (page_size 1)
  long long v_stride_page, v_stride_token, v_stride_head;
  long long block_table_stride_batch, block_table_stride_page;
  long long seq_lens_stride, cu_seqlens_q_stride, cu_seqlens_k_stride;
  long long sink_logits_stride;
  long long k_scale_stride_head, k_scale_stride_channel;
  long long v_scale_stride_head, v_scale_stride_channel;
  int batch;
  int num_q_heads;
  int num_kv_heads;
  int total_q;                   // rows of q and out
  int total_kv;                  // contiguous: rows of k and v
  int num_pages;                 // paged: pages in the cache
  int max_pages_per_seq;
  int q_tiles;                   // query tiles of block_m rows per sequence (of the longest q_len): work items per head
  int heads_per_section;         // a divisor of num_q_heads: a sequence's items come a section of this many q heads
                                 //   after another, query tiles (longest first) then heads within one
  int local_window;              // > 0: a query at p sees j only if p - j < local_window
  int global_window;             // >= 0: tokens j < global_window are always visible (sinks)
  float scale_log2;              // softmax scale * log2(e): scores are exponentiated with exp2
  // tma configs only: K and V as 4-d tensors {channel, kv head, token (in page), page} (contiguous: one "page"), the
  // head and token dimensions swapped when tma_tokens_inside_heads (HND: strides ascend through the dimensions);
  // read in place by the TMA engine (the kernel takes these params as __grid_constant__)
  int tma_tokens_inside_heads;
  PrefillTensorMap k_map, v_map;
  // tma configs over an NHD cache of pages smaller than a tile whose pages are packed (page stride = page_size x token
  // stride) only: K and V as one run of num_pages x page_size tokens, boxes of a whole tile; a tile whose pages
  // follow each other in the cache is moved by one box per 64 channels instead of one per page.
  int tma_page_runs;
  PrefillTensorMap k_run_map, v_run_map;
  // tma_store configs only: the output as a 4-d tensor {channel, q head, token, 1} (boxes of 64 channels x 64 rows), when
  // its layout allows (tma_store_out; else the rows are stored from the registers)
  int tma_store_out;
  PrefillTensorMap out_map;
};

// Bits of PrefillParams::status[0] (above paged decode's, as both families share one status word per device); a
// sequence that raises one produces zeros, or nothing when its query rows themselves are invalid.
enum PrefillStatusBits {
  kPrefillQueryRowsInvalid = 8,    // cu_seqlens_q not non-decreasing within [0, total_q]
  kPrefillKvRowsInvalid = 16,      // contiguous: cu_seqlens_k not non-decreasing within [0, total_kv]
  kPrefillKvShorterThanQ = 32,     // a sequence's KV length is below its query length
  kPrefillKvOverCapacity = 64,     // paged: seq_lens[b] > max_pages_per_seq * page_size
  kPrefillPageOutOfRange = 128,    // paged: a block_table entry used is outside [0, num_pages)
};
#endif  // SWAJIT_PREFILL_PARAMS_H
