// Arguments of the sparse top-k decode kernels (CUDA and CPU), shared verbatim by the host runtime and the generated
// source, so both sides agree on the layout. Only fixed-width standard types. Strides are in elements.
#ifndef SWAJIT_SPARSE_DECODE_PARAMS_H
#define SWAJIT_SPARSE_DECODE_PARAMS_H

struct SparseDecodeParams {
  const void* q;                 // [batch, q_seqlen, num_q_heads, head_dim]
  const void* k_cache;           // paged as for paged_decode (NHD or HND)
  const void* v_cache;           // separate V cache, or k_cache itself with a shared cache (V = first head_dim_v columns)
  void* out;                     // [batch, q_seqlen, num_q_heads, head_dim_v]
  const int* block_table;        // [batch, max_pages_per_seq]
  const int* seq_lens;           // [batch], KV length including the q_seqlen new tokens
  const int* indices;            // [batch, q_seqlen, topk] logical positions, -1 = unused slot
  const float* score_bias;       // [batch, q_seqlen, topk] added to the scaled score of each slot, or null
  void* partial_out;             // split only: [batch, kv_heads, num_splits, rows, head_dim_v] (float on the CPU)
  float* partial_lse;            // split only: [batch, kv_heads, num_splits, rows], log2 units
  int* status;                   // [2]: bit mask of device-side argument errors, first offending batch index
  const float* sink_logits;      // learned sinks only: [num_q_heads], in the units of scale * q.k
  const float* k_scale;          // 8-bit KV only: [num_kv_heads, head_dim] or one per tensor (zero strides)
  const float* v_scale;
  long long q_stride_batch, q_stride_token, q_stride_head;
  long long out_stride_batch, out_stride_token, out_stride_head;
  long long k_stride_page, k_stride_token, k_stride_head;
  long long v_stride_page, v_stride_token, v_stride_head;
  long long block_table_stride_batch, block_table_stride_page;
  long long seq_lens_stride;
  long long indices_stride_batch, indices_stride_token, indices_stride_slot;
  long long bias_stride_batch, bias_stride_token, bias_stride_slot;
  long long sink_logits_stride;
  long long k_scale_stride_head, k_scale_stride_channel;
  long long v_scale_stride_head, v_scale_stride_channel;
  int batch;
  int num_kv_heads;
  int num_pages;
  int max_pages_per_seq;
  int topk;                      // slots per query token (<= the spec's bucket)
  int local_window;              // > 0: the query at p also sees j with p - j < local_window (j <= p)
  float scale_log2;              // softmax scale * log2(e)
  int num_splits;                // blocks per (sequence, kv head) sharing the candidates; 1 = no split
};

// Bits of SparseDecodeParams::status[0]: the values of paged_decode's PagedDecodeStatusBits for the same faults
// (one per-stream record and one description serve both), and a bit of its own past prefill's.
enum SparseDecodeStatusBits {
  kSparseSeqLenBelowQSeqlen = 1,   // 0 < seq_lens[b] < q_seqlen (or negative): the sequence is zeros
  kSparseSeqLenOverCapacity = 2,   // seq_lens[b] > max_pages_per_seq * page_size: the sequence is zeros
  kSparsePageOutOfRange = 4,       // a block_table entry a query row reads is outside [0, num_pages): that row is zeros
  kSparseIndexOutOfRange = 256,    // an index of the row >= seq_lens[b] or < -1: that query row is zeros
};
#endif  // SWAJIT_SPARSE_DECODE_PARAMS_H
