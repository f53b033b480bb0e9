// swajit kernel family: sparse top-k decode (DeepSeek-V3.2/V4-style indexed attention) on the CPU, compiled in
// process by Clang and run by LLVM ORC. The CUDA kernel (templates/sparse_decode.cuh) computes the same thing.
//
// Math. Sequence b has KV length L; its query token s sits at p = L - kQSeqlen + s and its q head h reads kv head
// h / kGroup (kGqaInterleaved: h % num_kv_heads). The row's candidates are
//   - its selection: the slots i < topk of indices[b, s, :], each a logical position j (through block_table, as in
//     paged_decode); -1 is an unused slot, j > p is masked, j inside the local window is skipped (the window
//     counts it), and j outside [-1, L) is invalid metadata (status bit, the row is zeros);
//   - the local window (kLocalWindow): the last local_window positions j <= p.
//   score_j = scale * <q, k_j> (+ score_bias[b, s, i] for a selected slot, kScoreBias)
//   out = sum_j exp(score_j - m) v_j / (sum_j exp(score_j - m) + exp(sink_h - m)),  the sink only with kSinkLogits
// where v_j is the V row, or with kSharedKv the first kHeadDimV columns of the K row (MLA's latent row). A row that
// sees nothing is zeros (the sink adds no value). Each listed index counts once as written.
//
// The work split. A work item is (sequence, kv head, split); per query token the kGroup rows of the kv head share
// each gathered row, widened to float once. A split takes a contiguous share of the row's candidates (selection
// first, then the window) and writes (out / l, log2-sum-exp); SWAJIT_CPU_MERGE combines them.
//
// Needs from the generator prelude: kIsBf16, kHeadDim, kHeadDimV, kPageSize, kQSeqlen, kGroup, kLocalWindow,
// kSharedKv, kScoreBias, kSinkLogits, kGqaInterleaved, kKvQuant, kBlockN, kRows and the symbols SWAJIT_CPU_KERNEL
// and SWAJIT_CPU_MERGE; cpu_base.h, sparse_decode_params.h and cpu_math.h before it.

// Records a device-side argument fault: its bit, and the lowest batch index that raised one (workers race here).
static inline void report_status(const SparseDecodeParams& P, int bit, int b) {
  __atomic_fetch_or(&P.status[0], bit, __ATOMIC_RELAXED);
  int first = __atomic_load_n(&P.status[1], __ATOMIC_RELAXED);
  while (b < first && !__atomic_compare_exchange_n(&P.status[1], &first, b, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
}

// Candidate c of query position p: a slot of the selection (c < topk) or the window's (c - topk)-th newest token.
struct Candidate {
  int j;          // logical position; < 0: nothing to read
  float bias;     // log2 units
};
static inline Candidate candidate(const SparseDecodeParams& P, const int* indices, const float* bias, int p, int c) {
  if (c >= P.topk) return {p - (c - P.topk), 0.f};
  const int j = indices[c * P.indices_stride_slot];
  const bool in_window = kLocalWindow && p - j < P.local_window;  // the window counts it
  if (j < 0 || j > p || in_window) return {-1, 0.f};
  return {j, kScoreBias && bias ? bias[c * P.bias_stride_slot] * kLog2e : 0.f};  // null bias: only j is wanted
}
static inline int window_count(const SparseDecodeParams& P, int p) {
  if (!kLocalWindow || p < 0) return 0;
  return P.local_window < p + 1 ? P.local_window : p + 1;
}

static inline void store_row(const SparseDecodeParams& P, int b, int kv_head, int row, const float* acc, float scale) {
  const int s = row / kGroup, head = q_head_of(P, kv_head, row);
  u16* out = static_cast<u16*>(P.out) + b * P.out_stride_batch + s * P.out_stride_token + head * P.out_stride_head;
  for (int d = 0; d < kHeadDimV; ++d) out[d] = float_to_elem(acc[d] * scale * v_scale_at(P, kv_head, d));
}

// Whether query token s of sequence b may run: its indices valid and every page it reads in range (else reported).
static bool row_metadata_valid(const SparseDecodeParams& P, int b, int kv_len, int s, const int* indices, const int* pages) {
  const int p = kv_len - kQSeqlen + s;
  for (int i = 0; i < P.topk; ++i) {
    const int j = indices[i * P.indices_stride_slot];
    if (j < -1 || j >= kv_len) {
      report_status(P, kSparseIndexOutOfRange, b);
      return false;
    }
  }
  const int candidates = P.topk + window_count(P, p);
  for (int c = 0; c < candidates; ++c) {
    const int j = candidate(P, indices, nullptr, p, c).j;
    if (j < 0) continue;
    const int page = pages[(j / kPageSize) * P.block_table_stride_page];
    if (page < 0 || page >= P.num_pages) {
      report_status(P, kSparsePageOutOfRange, b);
      return false;
    }
  }
  return true;
}

static inline const char* cache_row(const void* cache, long long stride_page, long long stride_token,
                                    long long stride_head, int page, int slot, int kv_head) {
  return static_cast<const char*>(cache) + (page * stride_page + slot * stride_token + kv_head * stride_head) * kKvBytes;
}

// ---- one work item --------------------------------------------------------------------------------------------------
static void sparse_item(const SparseDecodeParams& P, int b, int kv_head, int split, float* scratch) {
  // Scratch layout; its size is cpu_scratch_floats() in generator/generator.cpp.
  float* q = scratch;                          // [kGroup][kHeadDim], log2 units, K scale folded in
  float* acc = q + kGroup * kHeadDim;          // [kGroup][kHeadDimV]
  float* k_tile = acc + kGroup * kHeadDimV;    // [kBlockN][kHeadDim]
  float* v_tile = k_tile + kBlockN * kHeadDim; // [kBlockN][kHeadDimV]
  float* scores = v_tile + kBlockN * kHeadDimV;  // [kGroup][kBlockN]
  float* tile_bias = scores + kGroup * kBlockN;  // [kBlockN]
  float* row_max = tile_bias + kBlockN;          // [kGroup]
  float* row_sum = row_max + kGroup;             // [kGroup]

  int kv_len = P.seq_lens[b * P.seq_lens_stride];
  bool sequence_valid = true;
  if (kv_len < 0 || (kv_len > 0 && kv_len < kQSeqlen)) {
    report_status(P, kSparseSeqLenBelowQSeqlen, b);
    sequence_valid = false;
  } else if (kv_len > P.max_pages_per_seq * kPageSize) {
    report_status(P, kSparseSeqLenOverCapacity, b);
    sequence_valid = false;
  }
  if (!sequence_valid) kv_len = 0;
  const int* pages = P.block_table + b * P.block_table_stride_batch;
  const void* v_cache = kSharedKv ? P.k_cache : P.v_cache;

  for (int s = 0; s < kQSeqlen; ++s) {
    const int p = kv_len - kQSeqlen + s;
    const int* indices = P.indices + b * P.indices_stride_batch + s * P.indices_stride_token;
    const float* bias = kScoreBias ? P.score_bias + b * P.bias_stride_batch + s * P.bias_stride_token : nullptr;
    // Every item of the row checks it (reports are idempotent) and zeroes its share when it is invalid.
    const bool row_valid = sequence_valid && row_metadata_valid(P, b, kv_len, s, indices, pages);
    for (int g = 0; g < kGroup; ++g) {
      const int r = s * kGroup + g;
      const u16* src = static_cast<const u16*>(P.q) + b * P.q_stride_batch + s * P.q_stride_token +
                       q_head_of(P, kv_head, r) * P.q_stride_head;
      for (int d = 0; d < kHeadDim; ++d) q[g * kHeadDim + d] = elem_to_float(src[d]) * k_scale_at(P, kv_head, d) * P.scale_log2;
      for (int d = 0; d < kHeadDimV; ++d) acc[g * kHeadDimV + d] = 0.f;
      row_max[g] = kNegInf;
      row_sum[g] = 0.f;
    }
    const int candidates = row_valid ? P.topk + window_count(P, p) : 0;
    const int first = int(i64(candidates) * split / P.num_splits), last = int(i64(candidates) * (split + 1) / P.num_splits);
    for (int tile = first; tile < last; tile += kBlockN) {
      const int tokens = last - tile < kBlockN ? last - tile : kBlockN;
      for (int i = 0; i < tokens; ++i) {  // gather and widen the tile's rows once for every q head of the kv head
        const Candidate cand = candidate(P, indices, bias, p, tile + i);
        tile_bias[i] = cand.j < 0 ? kNegInf : cand.bias;
        if (cand.j < 0) {
          for (int d = 0; d < kHeadDim; ++d) k_tile[i * kHeadDim + d] = 0.f;
          for (int d = 0; d < kHeadDimV; ++d) v_tile[i * kHeadDimV + d] = 0.f;
          continue;
        }
        const int page = pages[(cand.j / kPageSize) * P.block_table_stride_page], slot = cand.j % kPageSize;
        const char* k_row = cache_row(P.k_cache, P.k_stride_page, P.k_stride_token, P.k_stride_head, page, slot, kv_head);
        const char* v_row = cache_row(v_cache, P.v_stride_page, P.v_stride_token, P.v_stride_head, page, slot, kv_head);
        for (int d = 0; d < kHeadDim; ++d) k_tile[i * kHeadDim + d] = kv_to_float(k_row, d);
        for (int d = 0; d < kHeadDimV; ++d) v_tile[i * kHeadDimV + d] = kv_to_float(v_row, d);
      }
      for (int g = 0; g < kGroup; ++g) {  // scores, then online softmax with the accumulator rescaled
        float* sc = scores + g * kBlockN;
        float tile_max = kNegInf;
        for (int i = 0; i < tokens; ++i) {
          float dot = 0.f;
          for (int d = 0; d < kHeadDim; ++d) dot += q[g * kHeadDim + d] * k_tile[i * kHeadDim + d];
          sc[i] = dot + tile_bias[i];  // -inf for a candidate with nothing to read
          tile_max = sc[i] > tile_max ? sc[i] : tile_max;
        }
        const float new_max = tile_max > row_max[g] ? tile_max : row_max[g];
        const float reference = new_max == kNegInf ? 0.f : new_max;  // nothing seen yet: no (-inf) - (-inf)
        const float rescale = fast_exp2(row_max[g] - reference);
        float sum = row_sum[g] * rescale;
        float* a = acc + g * kHeadDimV;
        for (int d = 0; d < kHeadDimV; ++d) a[d] *= rescale;
        for (int i = 0; i < tokens; ++i) {
          const float w = fast_exp2(sc[i] - reference);
          sum += w;
          for (int d = 0; d < kHeadDimV; ++d) a[d] += w * v_tile[i * kHeadDimV + d];
        }
        row_sum[g] = sum;
        row_max[g] = new_max;
      }
    }
    for (int g = 0; g < kGroup; ++g)  // an invalid row is zeros even with a sink: its accumulator is zero
      finish_row<kHeadDimV>(P, b, kv_head, split, s * kGroup + g, acc + g * kHeadDimV, row_max[g], row_sum[g]);
  }
}

// Items [item_begin, item_end) of the (sequence, kv head, split) grid, split fastest.
extern "C" void SWAJIT_CPU_KERNEL(const SparseDecodeParams* params, int item_begin, int item_end, float* scratch) {
  const SparseDecodeParams& P = *params;
  for (int item = item_begin; item < item_end; ++item) {
    const int split = item % P.num_splits, pair = item / P.num_splits;
    sparse_item(P, pair / P.num_kv_heads, pair % P.num_kv_heads, split, scratch);
  }
}

// Split merge over items [item_begin, item_end) of the (sequence, kv head) grid (cpu_math.h).
extern "C" void SWAJIT_CPU_MERGE(const SparseDecodeParams* params, int item_begin, int item_end, float* scratch) {
  merge_splits<kHeadDimV>(*params, item_begin, item_end, scratch);
}
