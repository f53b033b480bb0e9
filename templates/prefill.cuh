// swajit kernel family: sliding-window prefill, varlen, over contiguous or paged K/V (tensor cores, sm_80+).
//
// The math. Sequence b has q_len = cu_seqlens_q[b + 1] - cu_seqlens_q[b] queries and kv_len KV tokens
// (cu_seqlens_k[b + 1] - cu_seqlens_k[b], or seq_lens[b] for a paged cache). Its query i sits at position
// p = kv_len - q_len + i, so chunked prefill over a cached prefix works. Query head h reads kv head h / kGroup
// (kGqaInterleaved: h % num_kv_heads). For each visible KV position j:
//     score_j = scale * <q, k_j>,   out = sum_j exp(score_j - m) v_j / (sum_j exp(score_j - m) + sink),
//     m = max_j score_j,            sink = kSinkLogits ? exp(sink_logits[h] - m) : 0
// and a row with no visible j is all zeros (never 0/0). Scores are kept in log2 units (scale * log2 e) for exp2.
//
// The mask (templates/window_mask.h). j is visible from p iff
//     (!kCausal or j <= p)  and  ( !kLocalWindow or p - j < local_window  or  (kGlobalWindow and j < global_window) )
// A block of kBlockM queries at [p_min, p_max] visits only the sinks and [p_min - local_window + 1, p_max]: a long
// prompt costs O(S x W), not O(S^2). KV tiles that every query of the block sees whole run without mask arithmetic.
//
// The work split. One thread block per (query tile of kBlockM rows, q head, sequence); warp w owns rows
// [16 w, 16 w + 16) of the tile and keeps their online-softmax state in registers (templates/attention_tile.cuh).
// K/V tiles of kBlockN tokens stream through a kStages-deep cp.async pipeline, gathered row by row (page by page
// for a paged cache), shared by all warps. Query tiles are launched last-first so the longest ones start early.
//
// Needs from the generator prelude: the spec (Elem, kHeadDim, kPageSize, kContiguousKv, kGroup, kCausal,
// kLocalWindow, kGlobalWindow, kSinkLogits, kGqaInterleaved), the config (kBlockM, kBlockN, kStages), the launch
// geometry the host also uses (kThreads, kQBytes, kTileBytes, kSharedBytes) and the symbol SWAJIT_PREFILL_KERNEL.

constexpr int kWarps = kBlockM / 16;
constexpr int kScoreFrags = kBlockN / 8;  // 16x8 score fragments per warp and tile

static_assert(kThreads == kWarps * 32, "prelude geometry disagrees with the template");
static_assert(kSharedBytes >= kQBytes + 2 * kStages * kTileBytes, "prelude shared-memory size too small");
static_assert(kStages >= 2, "the pipeline keeps at least one tile in flight");

SWAJIT_DEVICE int kv_head_of(const PrefillParams& P, int q_head) {
  return kGqaInterleaved ? q_head % P.num_kv_heads : q_head / kGroup;
}

// One sequence's rows, read from the metadata and checked; `zero_output` when its KV metadata is invalid (the
// rows are written as zeros and the status records why).
struct Sequence {
  int q_begin, q_len, kv_begin, kv_len;
  bool zero_output;
};

// False when the sequence's query rows themselves are invalid: nothing can be written for it.
SWAJIT_DEVICE bool read_sequence(const PrefillParams& P, int b, bool reporter, Sequence& s) {
  const auto report = [&](int bit) { if (reporter) record_status(P.status, bit, b); };
  s.q_begin = P.cu_seqlens_q[b * P.cu_seqlens_q_stride];
  const int q_end = P.cu_seqlens_q[(b + 1) * P.cu_seqlens_q_stride];
  if (s.q_begin < 0 || q_end < s.q_begin || q_end > P.total_q) {
    report(kPrefillQueryRowsInvalid);
    return false;
  }
  s.q_len = q_end - s.q_begin;
  s.zero_output = false;
  if (kContiguousKv) {
    s.kv_begin = P.cu_seqlens_k[b * P.cu_seqlens_k_stride];
    const int kv_end = P.cu_seqlens_k[(b + 1) * P.cu_seqlens_k_stride];
    s.kv_len = kv_end - s.kv_begin;
    if (s.kv_begin < 0 || kv_end < s.kv_begin || kv_end > P.total_kv) {
      report(kPrefillKvRowsInvalid);
      s.zero_output = true;
    }
  } else {
    s.kv_begin = 0;
    s.kv_len = P.seq_lens[b * P.seq_lens_stride];
    if (s.kv_len > P.max_pages_per_seq * kPageSize) {
      report(kPrefillKvOverCapacity);
      s.zero_output = true;
    }
  }
  if (!s.zero_output && s.kv_len < s.q_len) {
    report(kPrefillKvShorterThanQ);
    s.zero_output = true;
  }
  return true;
}

// ---- loads -----------------------------------------------------------------------------------------------------------
// Rows [first_row, first_row + rows) of q for one head into the swizzled Q tile; padding rows are zero-filled.
SWAJIT_DEVICE void load_q_tile(const PrefillParams& P, u32 q_smem, int first_row, int rows, int q_head) {
  const u16* q = static_cast<const u16*>(P.q);
  for (int i = threadIdx.x; i < kBlockM * kChunks; i += kThreads) {
    const int row = i / kChunks, chunk = i % kChunks;
    const bool real = row < rows;
    const u16* src = q + (real ? first_row + row : 0) * P.q_stride_token + q_head * P.q_stride_head + chunk * 8;
    cp_async_16(q_smem + RowTile::offset_bytes(row, chunk), src, real);
  }
}

// Element offset of KV token j of the sequence (before the head and channel), and whether it is addressable.
SWAJIT_DEVICE long long kv_token_offset(const PrefillParams& P, const Sequence& s, const int* block_table_row, int j,
                                        long long stride_page, long long stride_token, int b, bool& valid) {
  if constexpr (kContiguousKv) {
    return (long long)(s.kv_begin + j) * stride_token;
  } else {
    const int page = block_table_row[(j / kPageSize) * P.block_table_stride_page];
    if (page < 0 || page >= P.num_pages) {
      record_status(P.status, kPrefillPageOutOfRange, b);
      valid = false;
      return 0;
    }
    return page * stride_page + (j % kPageSize) * stride_token;
  }
}

// One K tile and one V tile (tokens [tile_begin, tile_end) of the sequence) into one pipeline stage.
SWAJIT_DEVICE void load_kv_tile(const PrefillParams& P, const Sequence& s, const int* block_table_row, u32 k_smem,
                                u32 v_smem, int b, int kv_head, int tile_begin, int tile_end) {
  const u16* k = static_cast<const u16*>(P.k);
  const u16* v = static_cast<const u16*>(P.v);
  for (int i = threadIdx.x; i < kBlockN * kChunks; i += kThreads) {
    const int row = i / kChunks, chunk = i % kChunks;
    const int j = tile_begin + row;
    bool valid = j < tile_end;
    long long k_offset = 0, v_offset = 0;
    if (valid) {
      k_offset = kv_token_offset(P, s, block_table_row, j, P.k_stride_page, P.k_stride_token, b, valid);
      v_offset = kv_token_offset(P, s, block_table_row, j, P.v_stride_page, P.v_stride_token, b, valid);
    }
    const u32 offset = RowTile::offset_bytes(row, chunk);
    cp_async_16(k_smem + offset, k + k_offset + kv_head * P.k_stride_head + chunk * 8, valid);
    cp_async_16(v_smem + offset, v + v_offset + kv_head * P.v_stride_head + chunk * 8, valid);
  }
}

// ---- epilogue --------------------------------------------------------------------------------------------------------
// The warp's rows, normalized, straight from the accumulators: each lane writes pairs of columns of two rows.
SWAJIT_DEVICE void write_warp_output(const PrefillParams& P, const WarpState& st, int first_row, int rows,
                                     int warp, int lane, int q_head) {
  const float sink = kSinkLogits ? P.sink_logits[q_head * P.sink_logits_stride] : 0.f;
  u16* out = static_cast<u16*>(P.out);
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int row = warp * 16 + lane / 4 + h * 8;
    const float sum = quad_sum(st.row_sum[h]);  // every lane takes part in the shuffle
    if (row >= rows) continue;
    const float reference = st.row_max[h] == SWAJIT_NEG_INF ? 0.f : st.row_max[h];
    const float factor = row_normalizer(sink, reference, sum);
    u16* dst = out + (first_row + row) * P.out_stride_token + q_head * P.out_stride_head + 2 * (lane % 4);
#pragma unroll
    for (int f = 0; f < kOutFrags; ++f)
      *reinterpret_cast<u32*>(dst + f * 8) = pack2(st.out[f][2 * h] * factor, st.out[f][2 * h + 1] * factor, Elem());
  }
}

// ---- the kernel --------------------------------------------------------------------------------------------------------
extern "C" __global__ void __launch_bounds__(kThreads, 1) SWAJIT_PREFILL_KERNEL(const PrefillParams P) {
  extern __shared__ __align__(128) char smem[];
  const int m_block = gridDim.x - 1 - blockIdx.x, q_head = blockIdx.y, b = blockIdx.z;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const bool reporter = threadIdx.x == 0 && blockIdx.x == 0 && blockIdx.y == 0;  // one report per sequence

  Sequence seq;
  if (!read_sequence(P, b, reporter, seq)) return;
  const int row0 = m_block * kBlockM;
  if (row0 >= seq.q_len) return;
  const int rows = min(kBlockM, seq.q_len - row0);
  const int kv_head = kv_head_of(P, q_head);
  const int p_min = seq.kv_len - seq.q_len + row0, p_max = p_min + rows - 1;
  TileRanges ranges = visible_tile_ranges(p_min, p_max, seq.kv_len, P.local_window, P.global_window);
  if (seq.zero_output) ranges.tiles[0] = ranges.tiles[1] = 0;
  const int tile_count = ranges.count();
  const int* block_table_row = kContiguousKv ? nullptr : P.block_table + b * P.block_table_stride_batch;

  const u32 q_smem = smem_u32(smem);
  const u32 k_smem = q_smem + kQBytes;
  const u32 v_smem = k_smem + kStages * kTileBytes;

  load_q_tile(P, q_smem, seq.q_begin + row0, rows, q_head);
  cp_async_commit();
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < tile_count)
      load_kv_tile(P, seq, block_table_row, k_smem + s * kTileBytes, v_smem + s * kTileBytes, b, kv_head,
                   ranges.tile_begin(s), ranges.tile_end(s));
    cp_async_commit();
  }

  WarpState st;
  st.clear();
  u32 q_frag[kQInRegisters ? kDimSteps : 1][4];
  cp_async_wait<kStages - 1>();  // the Q group is complete
  __syncthreads();
  if constexpr (kQInRegisters) {
#pragma unroll
    for (int step = 0; step < kDimSteps; ++step) load_q_fragment(q_smem, warp, lane, step, q_frag[step]);
  }

  for (int t = 0; t < tile_count; ++t) {
    cp_async_wait<kStages - 2>();  // tile t has landed
    __syncthreads();               // ... for every thread, and every warp is done with tile t - 1's stage
    const int next = t + kStages - 1;
    if (next < tile_count)
      load_kv_tile(P, seq, block_table_row, k_smem + (next % kStages) * kTileBytes, v_smem + (next % kStages) * kTileBytes,
                   b, kv_head, ranges.tile_begin(next), ranges.tile_end(next));
    cp_async_commit();

    const u32 k_tile = k_smem + (t % kStages) * kTileBytes, v_tile = v_smem + (t % kStages) * kTileBytes;
    const int tile_begin = ranges.tile_begin(t), tile_end = ranges.tile_end(t);
    float scores[kScoreFrags][4];
    tile_scores(scores, q_frag, q_smem, k_tile, warp, 0, lane);
    if (tile_fully_visible(tile_begin, tile_end, p_min, p_max, P.local_window, P.global_window)) {
      softmax_and_accumulate<false>(st, scores, P.scale_log2, v_tile, 0, lane, AllVisible());
    } else {
      const int warp_p = p_min + warp * 16;  // position of the warp's row 0
      const auto visible = [&](int r, int c) {
        const int j = tile_begin + c;
        return j < tile_end && is_visible(warp_p + r, j, P.local_window, P.global_window);
      };
      softmax_and_accumulate<true>(st, scores, P.scale_log2, v_tile, 0, lane, visible);
    }
  }
  cp_async_wait<0>();
  write_warp_output(P, st, seq.q_begin + row0, rows, warp, lane, q_head);
}
