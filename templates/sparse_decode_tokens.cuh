// swajit kernel family: sparse top-k decode on tensor cores with the warps splitting each tile's candidates
// (config `token_split`, key ..._mma_ts; group <= 16 and head_dim_v <= 128), 16-bit caches, sm_80+.
//
// The math is sparse_decode.cuh's (see its top); this kernel shares its candidates, gather pipeline (Gather), metadata
// checks (query_row_of_sequence, Gather::share_valid) and split merge.
//
// The work split. One block per (sequence, kv head, query token x split): the block's q heads (at most 16, padded) are
// one 16-row mma tile, whose Q fragments every warp loads into registers (no shared copy of Q). Warp w takes candidates
// [w kWarpTokens, (w + 1) kWarpTokens) of every tile and runs its own online softmax over them: S = Q K^T stays in
// the accumulators, each row's max and sum reduce over the 4 lanes that share it, and the probabilities become the A
// fragments of P V in registers (two 8-candidate accumulator tiles are one 16-candidate A fragment). No shared
// memory besides the gathered rows, one __syncthreads per tile. At the end the warps' (max, sum, output) are
// combined through shared memory (the stage buffers, free by then).

constexpr int kTokenWarps = kThreads / kWarpSize;
constexpr int kWarpTokens = kBlockN / kTokenWarps;  // candidates of a tile per warp
constexpr int kScoreTiles = kWarpTokens / 8;        // its 16 x 8 score tiles
constexpr int kQSteps = kHeadDim / 16;              // k-steps of Q K^T
constexpr int kOutTiles = kHeadDimV / 8;            // 16 x 8 output tiles per warp
constexpr int kCombineFloats = kTokenWarps * kMmaRows * (kHeadDimV + 2);  // each warp's rows: max, sum, output
static_assert(kKvQuant == 0, "the tensor-core kernel reads 16-bit caches (8-bit: the CUDA-core kernel)");
static_assert(kQRows == kMmaRows && kRowsPerBlock <= kMmaRows && kWarpTokens % 16 == 0 && kHeadDim % 32 == 0 &&
                  kHeadDimV % 16 == 0 && kQBytes == 0,
              "prelude geometry disagrees with the template");
static_assert(kSharedBytes == kQBytes + kStages * kStageBytes + kMetaBytes + kSoftmaxBytes &&
                  kCombineFloats * 4 <= kStages * kStageBytes + kSoftmaxBytes,
              "prelude shared-memory layout disagrees with the template");

extern "C" __global__ void __launch_bounds__(kThreads) SWAJIT_SPARSE_KERNEL(const SparseDecodeParams P) {
  extern __shared__ __align__(128) unsigned char smem[];
  unsigned char* stages = smem + kQBytes;
  const auto [b, kv_head, first_g, s, split, warp, lane] = block_work(P);
  wait_for_prerequisite_grid();

  // The sequence's checks now; those of this split's share of the selection as its gather looks the indices and
  // pages up (reading only positions <= p and pages inside the cache), tallied after the last tile (share_valid).
  // A share they reject zeroes the row: here, or through the merge (rejected_share_lse).
  const QueryRow query = query_row_of_sequence(P, b, s);
  // This lane's A fragments of Q straight from global memory (16-bit, as stored; no shared copy: one block fewer of
  // shared memory per SM's worth): k-step k holds columns 16 k .. 16 k + 15 in the mma layout, rows lane / 4 (a0,
  // a2) and lane / 4 + 8 (a1, a3), columns 2 (lane % 4) + {0, 1} (a0, a1) and those + 8 (a2, a3); rows past the
  // block's q heads are zeros.
  u32 q_frag[kQSteps][4];
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int row = lane / 4 + 8 * half, g = first_g + row;
    const bool valid = row < kRowsPerBlock && g < kGroup;
    const u16* q_row = static_cast<const u16*>(P.q) + b * P.q_stride_batch + s * P.q_stride_token +
                       (valid ? q_head_of(P, kv_head, g) : 0) * P.q_stride_head;
#pragma unroll
    for (int k = 0; k < kQSteps; ++k)
#pragma unroll
      for (int high = 0; high < 2; ++high) {
        const int column = k * 16 + high * 8 + 2 * (lane % 4);
        q_frag[k][half + 2 * high] = valid ? u32(q_row[column]) | u32(q_row[column + 1]) << 16 : 0u;
      }
  }
  const Share share = split_share(P, query, split);
  Gather gather{P, query, stages, reinterpret_cast<TileRow*>(stages + kStages * kStageBytes), kv_head, share.first,
                share.last, share.tiles};
  gather.start();
  report_sequence(P, query, b);
  // This lane's rows: lane / 4 (accumulator elements 0, 1) and lane / 4 + 8 (elements 2, 3).
  float acc[kOutTiles][4];
#pragma unroll
  for (int n = 0; n < kOutTiles; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) acc[n][e] = 0.f;
  float row_max[2] = {SWAJIT_NEG_INF, SWAJIT_NEG_INF};
  float row_sum[2] = {0.f, 0.f};  // this lane's share (its columns); the 4 lanes of a row add up at the end
  constexpr int kVStride = kSharedKv ? kKRowBytes : kVRowBytes;
  const int token0 = warp * kWarpTokens;
  for (int t = 0; t < gather.tiles; ++t) {
    gather.advance(t);
    __syncthreads();
    const u32 k_base = smem_u32(gather.stage(t)), v_base = k_base + (kSharedKv ? 0 : kBlockN * kKRowBytes);
    const TileRow* tile_rows = gather.rows(t);
    // S = Q K^T over this warp's candidates, in log2 units with the bias (-inf where there is nothing to read).
    float score[kScoreTiles][4];
#pragma unroll
    for (int n = 0; n < kScoreTiles; ++n) {
#pragma unroll
      for (int e = 0; e < 4; ++e) score[n][e] = 0.f;
      const int n0 = token0 + n * 8;
#pragma unroll
      for (int k0 = 0; k0 < kHeadDim; k0 += 32) {  // one ldmatrix_x4 of K covers 8 candidates x 32 columns
        u32 kf[4];
        ldmatrix_x4(k_base + u32((n0 + lane % 8) * kKRowBytes + (k0 + lane / 8 * 8) * kHalf), kf[0], kf[1], kf[2], kf[3]);
        mma_16816(score[n], q_frag[k0 / 16], kf[0], kf[1], Elem());
        mma_16816(score[n], q_frag[k0 / 16 + 1], kf[2], kf[3], Elem());
      }
      const int token = n0 + 2 * (lane % 4);
      const float bias0 = tile_rows[token].bias, bias1 = tile_rows[token + 1].bias;
      score[n][0] = score[n][0] * P.scale_log2 + bias0;
      score[n][1] = score[n][1] * P.scale_log2 + bias1;
      score[n][2] = score[n][2] * P.scale_log2 + bias0;
      score[n][3] = score[n][3] * P.scale_log2 + bias1;
    }
    // The online softmax of rows lane / 4 (half 0) and lane / 4 + 8 (half 1).
    float rescale[2];
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      float tile_max = SWAJIT_NEG_INF;
#pragma unroll
      for (int n = 0; n < kScoreTiles; ++n) tile_max = fmaxf(tile_max, fmaxf(score[n][2 * half], score[n][2 * half + 1]));
      tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
      tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 2));
      const float new_max = fmaxf(row_max[half], tile_max);
      const float reference = new_max == SWAJIT_NEG_INF ? 0.f : new_max;  // nothing seen yet: no (-inf) - (-inf)
      rescale[half] = fast_exp2(row_max[half] - reference);
      row_max[half] = new_max;
      float sum = 0.f;
#pragma unroll
      for (int n = 0; n < kScoreTiles; ++n) {
        score[n][2 * half] = fast_exp2(score[n][2 * half] - reference);
        score[n][2 * half + 1] = fast_exp2(score[n][2 * half + 1] - reference);
        sum += score[n][2 * half] + score[n][2 * half + 1];
      }
      row_sum[half] = row_sum[half] * rescale[half] + sum;
    }
    // Once a few tiles are in, a tile seldom raises a row's max (then its rescale is exactly 1): the warp skips the
    // accumulators' rescale (a quarter of its instructions per tile) unless one of its rows changed.
    if (__any_sync(0xffffffffu, rescale[0] != 1.f || rescale[1] != 1.f)) {
#pragma unroll
      for (int n = 0; n < kOutTiles; ++n) {
        acc[n][0] *= rescale[0];
        acc[n][1] *= rescale[0];
        acc[n][2] *= rescale[1];
        acc[n][3] *= rescale[1];
      }
    }
    // O += P V, 16 candidates at a time: score tiles 2 k and 2 k + 1 are the A fragment.
#pragma unroll
    for (int k = 0; k < kScoreTiles / 2; ++k) {
      const u32 a[4] = {pack2(score[2 * k][0], score[2 * k][1], Elem()), pack2(score[2 * k][2], score[2 * k][3], Elem()),
                        pack2(score[2 * k + 1][0], score[2 * k + 1][1], Elem()),
                        pack2(score[2 * k + 1][2], score[2 * k + 1][3], Elem())};
      const int v_token = token0 + k * 16;
#pragma unroll
      for (int n = 0; n < kOutTiles; n += 2) {  // V^T fragments of 16 candidates x 16 columns: two output tiles
        u32 vf[4];
        ldmatrix_x4_trans(v_base + u32((v_token + lane % 8 + (lane / 8) % 2 * 8) * kVStride + (n * 8 + lane / 16 * 8) * kHalf),
                          vf[0], vf[1], vf[2], vf[3]);
        mma_16816(acc[n], a, vf[0], vf[1], Elem());
        mma_16816(acc[n + 1], a, vf[2], vf[3], Elem());
      }
    }
    __syncthreads();  // the stage and the lookup slot are refilled next
  }
  cp_async_wait<0>();
  __syncthreads();  // every copy landed and every warp is done with the stages: they hold the combine now
  allow_dependent_grid_launch();
  const bool row_valid = query.valid && gather.share_valid(b);  // (query.valid is the same for the whole block)
  if (!row_valid) {  // reported: written as zeros (a split's share as rejected: the merge zeroes the row)
#pragma unroll
    for (int half = 0; half < 2; ++half) row_max[half] = SWAJIT_NEG_INF, row_sum[half] = 0.f;
#pragma unroll
    for (int n = 0; n < kOutTiles; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[n][e] = 0.f;
  }

  // Combine the warps: each writes its rows' max, sum and output (rescaled to the rows' common max) to shared memory.
  float* warp_max = reinterpret_cast<float*>(stages);    // [kTokenWarps][kMmaRows]
  float* warp_sum = warp_max + kTokenWarps * kMmaRows;    // [kTokenWarps][kMmaRows]
  float* warp_out = warp_sum + kTokenWarps * kMmaRows;    // [kTokenWarps][kMmaRows][kHeadDimV]
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    row_sum[half] += __shfl_xor_sync(0xffffffffu, row_sum[half], 1);
    row_sum[half] += __shfl_xor_sync(0xffffffffu, row_sum[half], 2);
    if (lane % 4 == 0) {
      warp_max[warp * kMmaRows + lane / 4 + 8 * half] = row_max[half];
      warp_sum[warp * kMmaRows + lane / 4 + 8 * half] = row_sum[half];
    }
  }
  __syncthreads();
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int row = lane / 4 + 8 * half;
    float common_max = SWAJIT_NEG_INF;
    for (int w = 0; w < kTokenWarps; ++w) common_max = fmaxf(common_max, warp_max[w * kMmaRows + row]);
    const float factor = fast_exp2(row_max[half] - (common_max == SWAJIT_NEG_INF ? 0.f : common_max));
    float* out_row = warp_out + (warp * kMmaRows + row) * kHeadDimV + 2 * (lane % 4);
#pragma unroll
    for (int n = 0; n < kOutTiles; ++n) {
      out_row[n * 8] = acc[n][2 * half] * factor;
      out_row[n * 8 + 1] = acc[n][2 * half + 1] * factor;
    }
  }
  __syncthreads();
  // Each thread sums pairs of output columns over the warps and writes them as the CUDA-core kernel does: normalized
  // with the sink, or the split's partial and log2-sum-exp for the merge.
  for (int i = threadIdx.x; i < kRowsPerBlock * kHeadDimV / 2; i += kThreads) {
    const int row = i / (kHeadDimV / 2), column = 2 * (i % (kHeadDimV / 2)), g = first_g + row;
    if (g >= kGroup) continue;
    float common_max = SWAJIT_NEG_INF;
    for (int w = 0; w < kTokenWarps; ++w) common_max = fmaxf(common_max, warp_max[w * kMmaRows + row]);
    const float reference = common_max == SWAJIT_NEG_INF ? 0.f : common_max;
    float sum = 0.f, o0 = 0.f, o1 = 0.f;
    for (int w = 0; w < kTokenWarps; ++w) {
      sum += warp_sum[w * kMmaRows + row] * fast_exp2(warp_max[w * kMmaRows + row] - reference);
      o0 += warp_out[(w * kMmaRows + row) * kHeadDimV + column];
      o1 += warp_out[(w * kMmaRows + row) * kHeadDimV + column + 1];
    }
    const int head = q_head_of(P, kv_head, g);
    if (P.num_splits == 1) {
      const float factor = row_normalizer(kSinkLogits ? P.sink_logits[head * P.sink_logits_stride] : 0.f, reference, sum);
      u16* out = static_cast<u16*>(P.out) + b * P.out_stride_batch + s * P.out_stride_token + head * P.out_stride_head;
      *reinterpret_cast<u32*>(out + column) = pack2(o0 * factor, o1 * factor, Elem());
    } else {  // sinks join in the merge, once per row
      const i64 slot = (i64(b * P.num_kv_heads + kv_head) * P.num_splits + split) * kRows + s * kGroup + g;
      const float inv_sum = sum > 0.f ? 1.f / sum : 0.f;
      float* partial = static_cast<float*>(P.partial_out) + slot * kHeadDimV + column;
      partial[0] = o0 * inv_sum;
      partial[1] = o1 * inv_sum;
      if (column == 0)
        P.partial_lse[slot] = !row_valid ? rejected_share_lse() : sum > 0.f ? reference + __log2f(sum) : SWAJIT_NEG_INF;
    }
  }
}
