// swajit attention tile operations shared by the CUDA kernel families (paged_decode.cuh, prefill.cuh): one warp's
// 16 query rows against one K/V tile in shared memory, and the 8-bit KV steps around it. Needs Elem, kHeadDim,
// KvElem, kKvQuant, kKvBytes, kBlockN and kThreads from the generator prelude (and TileRanges from window_mask.h).
//
// For the warp's rows and the tile's tokens (a column t of the warp is KV token token0 + t of the tile):
//     s = Q K^T * scale * log2(e)                          (tile_scores, then scaled in online_softmax)
//     m' = max(m, rowmax(s)),  l' = l 2^(m - m') + rowsum(2^(s - m')),  O' = O 2^(m - m') + 2^(s - m') V
// Masked scores are -inf, so they add 0; a row that has seen nothing keeps m = -inf and is exponentiated against 0
// (never (-inf) - (-inf)). At the end out = O / l, or O / (l + 2^(sink - m)) with a learned sink, and 0 when l = 0.

constexpr int kChunks = kHeadDim / 8;    // 16-byte chunks per 16-bit Q / K / V row
constexpr int kOutFrags = kHeadDim / 8;  // 16x8 output fragments per row tile
constexpr int kDimSteps = kHeadDim / 16; // k16 steps over head_dim
constexpr int kKvChunks = kHeadDim * kKvBytes / 16;  // 16-byte chunks per stored K/V row
static_assert(kHeadDim % 64 == 0, "head_dim must be a multiple of 64");

// Q stays in registers when it is small enough not to crowd out the output accumulators.
template <int kMTiles>
constexpr bool kQInRegisters = kHeadDim * kMTiles <= 128;

typedef SwizzledTile<kHeadDim> RowTile;

// A warp's kMTiles row tiles of 16 query rows each. Lane l holds rows (l / 4) and (l / 4 + 8) of every tile; index h
// below is that half (0 or 1).
template <int kMTiles>
struct WarpState {
  float out[kMTiles][kOutFrags][4];  // unnormalized output
  float row_max[kMTiles][2];         // running max of scaled scores (log2 units), -inf until a token is seen
  float row_sum[kMTiles][2];         // this lane's part of the running sum of exp2(score - row_max)

  SWAJIT_MEMBER void clear() {
    clear_output();
    clear_statistics();
  }
  SWAJIT_MEMBER void clear_output() {
#pragma unroll
    for (int m = 0; m < kMTiles; ++m)
#pragma unroll
      for (int f = 0; f < kOutFrags; ++f) out[m][f][0] = out[m][f][1] = out[m][f][2] = out[m][f][3] = 0.f;
  }
  SWAJIT_MEMBER void clear_statistics() {
#pragma unroll
    for (int m = 0; m < kMTiles; ++m) {
      row_max[m][0] = row_max[m][1] = SWAJIT_NEG_INF;
      row_sum[m][0] = row_sum[m][1] = 0.f;
    }
  }
};

// The factor that turns a row's accumulator (relative to `reference`, log2 units) into its output. With
// kSinkLogits the sink logit `sink` (natural units) joins the denominator; without, 1 / sum (0 if nothing was seen).
SWAJIT_DEVICE float row_normalizer(float sink, float reference, float sum) {
  if (kSinkLogits) {
    constexpr float kLog2e = 1.4426950408889634f;
    const float sink_log2 = sink * kLog2e;
    const float new_reference = fmaxf(reference, sink_log2);
    const float rescale = fast_exp2(reference - new_reference);
    return rescale / (sum * rescale + fast_exp2(sink_log2 - new_reference));
  }
  return sum > 0.f ? 1.f / sum : 0.f;  // nothing visible: zeros, not 0/0
}

// The A fragment of Q row tile `row_tile` (rows [16 row_tile, 16 row_tile + 16)) for k-step `step`.
SWAJIT_DEVICE void load_q_fragment(u32 q_smem, int row_tile, int lane, int step, u32 (&a)[4]) {
  const int matrix = lane / 8;
  const int row = row_tile * 16 + (matrix % 2) * 8 + lane % 8;
  ldmatrix_x4(q_smem + RowTile::offset_bytes(row, step * 2 + matrix / 2), a[0], a[1], a[2], a[3]);
}

// Q fragments of the warp's row tiles, in registers when kQInRegisters<kMTiles>.
template <int kMTiles>
struct QFragments {
  u32 a[kMTiles][kQInRegisters<kMTiles> ? kDimSteps : 1][4];
  SWAJIT_MEMBER void load(u32 q_smem, int first_row_tile, int lane) {
    if constexpr (kQInRegisters<kMTiles>) {
#pragma unroll
      for (int m = 0; m < kMTiles; ++m)
#pragma unroll
        for (int step = 0; step < kDimSteps; ++step) load_q_fragment(q_smem, first_row_tile + m, lane, step, a[m][step]);
    }
  }
};

// scores[m][16 x 8 * kFrags] = Q row tile (first_row_tile + m) . K tokens [token0, token0 + 8 * kFrags)^T; each K
// fragment read from shared memory serves all kMTiles row tiles.
template <int kMTiles, int kFrags, class KLayout = RowTile>
SWAJIT_DEVICE void tile_scores(float (&scores)[kMTiles][kFrags][4], const QFragments<kMTiles>& q, u32 q_smem,
                               u32 k_smem, int first_row_tile, int token0, int lane) {
  static_assert(kFrags % 2 == 0, "scores come in pairs of 8-token fragments");
#pragma unroll
  for (int m = 0; m < kMTiles; ++m)
#pragma unroll
    for (int f = 0; f < kFrags; ++f) scores[m][f][0] = scores[m][f][1] = scores[m][f][2] = scores[m][f][3] = 0.f;
  const int matrix = lane / 8;
#pragma unroll
  for (int step = 0; step < kDimSteps; ++step) {
    u32 a[kMTiles][4];
#pragma unroll
    for (int m = 0; m < kMTiles; ++m) {
      if constexpr (kQInRegisters<kMTiles>) {
        a[m][0] = q.a[m][step][0]; a[m][1] = q.a[m][step][1]; a[m][2] = q.a[m][step][2]; a[m][3] = q.a[m][step][3];
      } else {
        load_q_fragment(q_smem, first_row_tile + m, lane, step, a[m]);
      }
    }
#pragma unroll
    for (int pair = 0; pair < kFrags / 2; ++pair) {
      const int token = token0 + pair * 16 + (matrix / 2) * 8 + lane % 8;
      u32 b0, b1, b2, b3;
      ldmatrix_x4(k_smem + KLayout::offset_bytes(token, step * 2 + matrix % 2), b0, b1, b2, b3);
#pragma unroll
      for (int m = 0; m < kMTiles; ++m) {
        mma_16816(scores[m][2 * pair], a[m], b0, b1, Elem());
        mma_16816(scores[m][2 * pair + 1], a[m], b2, b3, Elem());
      }
    }
  }
}

// The columns of a tile every row sees whole (pass with kMasked = false; never asked).
struct AllVisible {
  SWAJIT_MEMBER VisibleColumns operator()(int) const { return VisibleColumns{{0, 0}, {1 << 30, 0}}; }
};

// Online softmax update of the warp's rows with this tile's scores, which become the probabilities P (relative to
// each row's new max); `rescale` receives the factor the output accumulated so far must be multiplied by (see
// rescale_output; the caller applies it once no MMA into the output is in flight). `row_columns(r)` gives the
// VisibleColumns of row r (0 .. 16 * kMTiles - 1) of the warp over its columns (0 .. 8 * kFrags - 1); only asked
// when kMasked, once per row the lane holds.
// The scale (> 0, so it commutes with max) is applied once per row to the max and fused into each exponent's FMA.
// kLiveHalves 1: rows 8..15 of each row tile are padding (a decode block of at most 8 rows): their scores are left as
// they are (rescale 1), which spares a quarter of the tile's softmax instructions; their outputs are never read.
// kChains > 1: each row's max and sum over the tile run as kChains independent chains (fragment f in chain
// f % kChains), combined at the end, instead of one dependent chain of 8 * kFrags / 4 operations: latency, not
// issue, bounds a warp's softmax when few warps share a scheduler (prefill: 2 consumer warps, ncu stall_wait).
// The scale of row half h of row tile m: one for every row (a float), or one per row (a [kMTiles][2] array).
SWAJIT_DEVICE float row_scale(float scale, int, int) { return scale; }
template <int kMTiles>
SWAJIT_DEVICE float row_scale(const float (&scale)[kMTiles][2], int m, int h) { return scale[m][h]; }

// kPExponent: P comes out as 2^kPExponent times the probabilities (and the row sums with it), at no cost: it is folded
// into each row's exponent offset. The caller's normalization takes row_max - kPExponent as the reference.
template <bool kMasked, int kLiveHalves = 2, int kChains = 1, int kPExponent = 0, int kMTiles, int kFrags, class RowColumns,
          class Scale>
SWAJIT_DEVICE void online_softmax(WarpState<kMTiles>& st, float (&scores)[kMTiles][kFrags][4], const Scale& scale_log2,
                                  int lane, RowColumns row_columns, float (&rescale)[kMTiles][2]) {
  static_assert(kLiveHalves == 1 || kLiveHalves == 2, "rows 0..7, or all 16 rows of a row tile");
#pragma unroll
  for (int m = 0; m < kMTiles; ++m) {
    float tile_max[2][kChains];
#pragma unroll
    for (int k = 0; k < kChains; ++k) tile_max[0][k] = tile_max[1][k] = SWAJIT_NEG_INF;
    if constexpr (kMasked) {
#pragma unroll
      for (int h = 0; h < kLiveHalves; ++h) {  // one row's bounds live at a time: few registers
        const VisibleColumns columns = row_columns(m * 16 + lane / 4 + h * 8);
#pragma unroll
        for (int f = 0; f < kFrags; ++f)
#pragma unroll
          for (int e = 0; e < 2; ++e)
            if (!columns(f * 8 + 2 * (lane % 4) + e)) scores[m][f][2 * h + e] = SWAJIT_NEG_INF;
      }
    }
#pragma unroll
    for (int f = 0; f < kFrags; ++f) {
#pragma unroll
      for (int c = 0; c < 2 * kLiveHalves; ++c) tile_max[c / 2][f % kChains] = fmaxf(tile_max[c / 2][f % kChains], scores[m][f][c]);
    }
    float reference[2] = {0.f, 0.f}, sums[2][kChains];
    rescale[m][1] = 1.f;  // (kLiveHalves 1: the padding rows')
#pragma unroll
    for (int h = 0; h < kLiveHalves; ++h) {
#pragma unroll
      for (int k = 1; k < kChains; ++k) tile_max[h][0] = fmaxf(tile_max[h][0], tile_max[h][k]);
      const float new_max = fmaxf(st.row_max[m][h], quad_max(tile_max[h][0]) * row_scale(scale_log2, m, h));
      reference[h] = new_max == SWAJIT_NEG_INF ? 0.f : new_max;
      rescale[m][h] = fast_exp2(st.row_max[m][h] - reference[h]);
      st.row_max[m][h] = new_max;
      sums[h][0] = st.row_sum[m][h] * rescale[m][h];  // chain 0 carries the running sum (kChains 1: as it always did)
#pragma unroll
      for (int k = 1; k < kChains; ++k) sums[h][k] = 0.f;
    }
#pragma unroll
    for (int f = 0; f < kFrags; ++f) {
#pragma unroll
      for (int c = 0; c < 2 * kLiveHalves; ++c) {
        const float offset = kPExponent != 0 ? float(kPExponent) - reference[c / 2] : -reference[c / 2];
        scores[m][f][c] = fast_exp2(fmaf(scores[m][f][c], row_scale(scale_log2, m, c / 2), offset));
        sums[c / 2][f % kChains] += scores[m][f][c];
      }
    }
#pragma unroll
    for (int h = 0; h < kLiveHalves; ++h) {  // (the padding rows' sums are never read)
#pragma unroll
      for (int k = 1; k < kChains; ++k) sums[h][0] += sums[h][k];
      st.row_sum[m][h] = sums[h][0];
    }
  }
}

// O *= rescale per row. A warp none of whose rows found a new max (the usual case once the rows have seen their
// largest scores) skips the multiplies: every factor is exactly 1 then.
template <int kMTiles>
SWAJIT_DEVICE void rescale_output(WarpState<kMTiles>& st, const float (&rescale)[kMTiles][2]) {
#pragma unroll
  for (int m = 0; m < kMTiles; ++m) {
    if (__all_sync(0xffffffffu, rescale[m][0] == 1.f && rescale[m][1] == 1.f)) continue;
#pragma unroll
    for (int f = 0; f < kOutFrags; ++f) {
      st.out[m][f][0] *= rescale[m][0]; st.out[m][f][1] *= rescale[m][0];
      st.out[m][f][2] *= rescale[m][1]; st.out[m][f][3] *= rescale[m][1];
    }
  }
}

// The A operand of P for tokens [16 step, 16 step + 16) of one row tile: P's accumulator layout is the A layout.
// Format: the 16-bit format of the mma (Elem unless the V operand is widened to another, kv8_fragments.cuh).
template <int kFrags, class Format = Elem>
SWAJIT_DEVICE void probabilities_fragment(const float (&p)[kFrags][4], int step, u32 (&a)[4]) {
  a[0] = pack2(p[2 * step][0], p[2 * step][1], Format());
  a[1] = pack2(p[2 * step][2], p[2 * step][3], Format());
  a[2] = pack2(p[2 * step + 1][0], p[2 * step + 1][1], Format());
  a[3] = pack2(p[2 * step + 1][2], p[2 * step + 1][3], Format());
}

// out[16 x head_dim] += P[16 x tokens] . V[tokens x head_dim] per row tile; each V fragment read from shared memory
// serves all kMTiles row tiles.
template <int kMTiles, int kFrags, class VLayout = RowTile>
SWAJIT_DEVICE void accumulate_pv(WarpState<kMTiles>& st, const float (&p)[kMTiles][kFrags][4], u32 v_smem, int token0,
                                 int lane) {
  const int matrix = lane / 8;
#pragma unroll
  for (int step = 0; step < kFrags / 2; ++step) {
    u32 a[kMTiles][4];
#pragma unroll
    for (int m = 0; m < kMTiles; ++m) probabilities_fragment(p[m], step, a[m]);
    const int token = token0 + step * 16 + (matrix % 2) * 8 + lane % 8;
#pragma unroll
    for (int pair = 0; pair < kOutFrags / 2; ++pair) {
      u32 b0, b1, b2, b3;
      ldmatrix_x4_trans(v_smem + VLayout::offset_bytes(token, pair * 2 + matrix / 2), b0, b1, b2, b3);
#pragma unroll
      for (int m = 0; m < kMTiles; ++m) {
        mma_16816(st.out[m][2 * pair], a[m], b0, b1, Elem());
        mma_16816(st.out[m][2 * pair + 1], a[m], b2, b3, Elem());
      }
    }
  }
}

// Both steps for one tile (V stored in VLayout).
template <bool kMasked, class VLayout = RowTile, int kLiveHalves = 2, int kMTiles, int kFrags, class RowColumns>
SWAJIT_DEVICE void softmax_and_accumulate(WarpState<kMTiles>& st, float (&scores)[kMTiles][kFrags][4], float scale_log2,
                                          u32 v_smem, int token0, int lane, RowColumns row_columns) {
  float rescale[kMTiles][2];
  online_softmax<kMasked, kLiveHalves>(st, scores, scale_log2, lane, row_columns, rescale);
  rescale_output(st, rescale);
  accumulate_pv<kMTiles, kFrags, VLayout>(st, scores, v_smem, token0, lane);
}

// ---- 8-bit KV caches (kKvQuant): k_j = k_scale * k8_j, v_j = v_scale * v8_j per (kv head, channel) --------------
// The K scale is folded into q once (<q, k_scale * k8> = <q * k_scale, k8>), the V scale into the output
// (sum_j p_j v_scale v8_j = v_scale sum_j p_j v8_j); stored 8-bit tiles are widened exactly to 16 bits in shared
// memory before the MMAs. Params: any kernel argument struct with the k_scale / v_scale fields and strides.
template <class Params>
SWAJIT_DEVICE float k_scale_at(const Params& P, int kv_head, int channel) {
  return P.k_scale[kv_head * P.k_scale_stride_head + channel * P.k_scale_stride_channel];
}
template <class Params>
SWAJIT_DEVICE float v_scale_at(const Params& P, int kv_head, int channel) {
  return P.v_scale[kv_head * P.v_scale_stride_head + channel * P.v_scale_stride_channel];
}

// q <- q * k_scale, in place in a Q tile of kRows rows stored in `Layout`. Thread t of `threads` rescales chunks t,
// t + threads, ... (row major), the chunks a load with that same order gave it.
template <class Layout, int kRows, class Params>
SWAJIT_DEVICE void fold_k_scale_into_q_tile(const Params& P, u32 q_smem, int kv_head, int thread = threadIdx.x,
                                            int threads = kThreads) {
  for (int i = thread; i < kRows * kChunks; i += threads) {
    const int row = i / kChunks, chunk = i % kChunks;
    const u32 addr = q_smem + Layout::offset_bytes(row, chunk);
    float v[8];
    unpack8(ld_shared_16(addr), v, Elem());
#pragma unroll
    for (int e = 0; e < 8; ++e) v[e] *= k_scale_at(P, kv_head, chunk * 8 + e);
    st_shared_16(addr, pack8(v, Elem()));
  }
}

// Stored chunk i (16 bytes of row i / kKvChunks, plain rows) -> 16-bit chunks 2c and 2c + 1 of that row in `Layout`,
// c = i % kKvChunks; 8 bytes at a time, which keeps the registers it needs few.
template <class Layout>
SWAJIT_DEVICE void widen_kv_chunk(u32 stored, u32 widened, int i) {
  const int row = i / kKvChunks, chunk = i % kKvChunks;
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const uint2 raw = ld_shared_8(stored + u32(i) * 16u + u32(half) * 8u);
    st_shared_16(widened + Layout::offset_bytes(row, 2 * chunk + half),
                 make_uint4(widen_pair<0>(raw.x, KvElem(), Elem()), widen_pair<2>(raw.x, KvElem(), Elem()),
                            widen_pair<0>(raw.y, KvElem(), Elem()), widen_pair<2>(raw.y, KvElem(), Elem())));
  }
}
// A stored 8-bit tile of kTokens plain rows -> the 16-bit tile in `Layout` that the MMA path reads. Every thread of
// the block takes part; the caller synchronizes before anyone reads the result. kOneChunkAtATime keeps the loop
// rolled, for kernels whose output accumulators leave few registers free (prefill).
// (`thread` of `threads` taking part: the whole block by default.)
template <class Layout, int kTokens, bool kOneChunkAtATime = false>
SWAJIT_DEVICE void widen_kv_tile(u32 stored, u32 widened, int thread = threadIdx.x, int threads = kThreads) {
  if constexpr (kOneChunkAtATime) {
#pragma unroll 1
    for (int i = thread; i < kTokens * kKvChunks; i += threads) widen_kv_chunk<Layout>(stored, widened, i);
  } else {
    for (int i = thread; i < kTokens * kKvChunks; i += threads) widen_kv_chunk<Layout>(stored, widened, i);
  }
}

// True, in every thread of the block, if a block_table entry that the tiles of `ranges` use is outside
// [0, P.num_pages). Prefill checks a sequence's whole visible range this way in every block of it, so all its blocks
// (query tiles) agree to write the sequence as zeros, as the status message says. The scan reads each visible page's
// entry once (2048 at seq 32K with pages of 16, from L2) before the block's first K/V load, several loads in flight per
// thread (the scan by tiles read up to 9 entries a tile there, estimated at a few percent of a block's time).
// __syncthreads_or over the `threads` threads that use named barrier `barrier` (barrier 0 with every thread of the
// block: the same as __syncthreads_or).
SWAJIT_DEVICE bool barrier_or(bool value, int barrier, int threads) {
  __syncwarp();  // bar.red is .aligned: a warp's lanes arrive together (a lane may come from a divergent branch)
  int result;
  asm volatile("{\n .reg .pred p, q;\n setp.ne.u32 p, %1, 0;\n bar.red.or.pred q, %2, %3, p;\n selp.u32 %0, 1, 0, q;\n}"
               : "=r"(result) : "r"(int(value)), "r"(barrier), "r"(threads) : "memory");
  return result != 0;
}

// `thread` of `threads` take part; they reduce over named barrier `barrier` (0: the whole block).
template <int kTokensPerPage, class Params>
SWAJIT_DEVICE bool visible_pages_out_of_range(const Params& P, const int* block_table_row, const TileRanges& ranges,
                                              int thread, int threads, int barrier) {
  int first[2], pages[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    first[r] = ranges.begin[r] / kTokensPerPage;
    pages[r] = ranges.tiles[r] > 0 ? ceil_div(ranges.end[r], kTokensPerPage) - first[r] : 0;
  }
  bool bad = false;
#pragma unroll 4
  for (int i = thread; i < pages[0] + pages[1]; i += threads) {
    const int logical_page = i < pages[0] ? first[0] + i : first[1] + i - pages[0];
    const int page = block_table_row[logical_page * P.block_table_stride_page];
    bad |= page < 0 || page >= P.num_pages;
  }
  return barrier_or(bad, barrier, threads);
}
