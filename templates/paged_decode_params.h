// Arguments of the paged decode kernel, shared verbatim by the host runtime (g++) and the generated CUDA source
// (NVRTC), so both sides agree on the layout. Only fixed-width standard types. Strides are in elements.
#ifndef SWAJIT_PAGED_DECODE_PARAMS_H
#define SWAJIT_PAGED_DECODE_PARAMS_H

struct PagedDecodeParams {
  const void* q;                 // [batch, q_seqlen, num_q_heads, head_dim]
  const void* k_cache;           // paged, NHD [pages, page_size, kv_heads, head_dim] or HND [pages, kv_heads, page_size, head_dim]
  const void* v_cache;
  void* out;                     // same shape as q
  const int* block_table;        // [batch, max_pages_per_seq]
  const int* seq_lens;           // [batch], KV length including the q_seqlen new tokens
  void* partial_out;             // split-KV only: [work-list entry (templates/decode_schedule.h), rows, head_dim], out / l:
                                 //   float on the CPU, the 16-bit dtype of q on CUDA (half the merge's traffic)
  float* partial_lse;            // split-KV only: per work item x [rows], log2 units
  int* sequence_items;           // CUDA split-KV only: [2 * batch + 1 + batch], each sequence's first item and item count,
                                 //   then how many sequences were cut and which (the merge's)
  int* status;                   // [2]: bit mask of device-side argument errors, first offending batch index
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
  int local_window;              // > 0: a query at p sees j only if p - j < local_window
  int global_window;             // >= 0: tokens j < global_window are always visible (sinks)
  float scale_log2;              // softmax scale * log2(e): scores are exponentiated with exp2
  int num_splits;                // 1: one item per (sequence, kv head), no merge; otherwise the work schedule
                                 //   (templates/decode_schedule.h) over a list of work_items entries per kv head
  int work_items;                // entries of the work list per kv head (>= batch + 1) when num_splits != 1
  int schedule_slots;            // work slots per kv head the schedule's chunk is sized for (num_splits != 1)
};

// Bits of PagedDecodeParams::status[0]; a sequence that raises one produces zeros.
enum PagedDecodeStatusBits {
  kStatusSeqLenBelowQSeqlen = 1,   // 0 < seq_lens[b] < q_seqlen (or seq_lens[b] < 0)
  kStatusSeqLenOverCapacity = 2,   // seq_lens[b] > max_pages_per_seq * page_size
  kStatusPageOutOfRange = 4,       // a block_table entry used by the window is outside [0, num_pages)
};
#endif  // SWAJIT_PAGED_DECODE_PARAMS_H
