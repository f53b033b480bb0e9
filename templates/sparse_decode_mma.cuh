// swajit kernel family: sparse top-k decode on tensor cores (mma.sync m16n8k16), 16-bit caches, sm_80+.
//
// The math is sparse_decode.cuh's (see its top); this kernel shares its candidates, gather pipeline (Gather), metadata
// checks (query_row) and split merge, and replaces its main kernel when the config asks for mma.
//
// The work split. One block per (sequence, kv head x block of up to 64 q heads, query token x split): the block's q
// heads are the M dimension of both products, so each gathered row is read once for all of them. The warps form
// kRowTiles tiles of 16 q heads x kColSlices slices of the V columns. Per tile of kBlockN candidates:
//   A. S = Q K^T over (16-row tile, 8-candidate) units spread across the warps, in log2 units with the candidate's
//      bias added (-inf where it has nothing to read), into shared fp32 scores;
//   B. the online softmax, one warp per row at a time: new row max, the rescale of what came before, the
//      probabilities (16-bit, shared) and the row sum (fp32);
//   C. O += P V: each warp rescales its 16 rows x kSliceColumns accumulators and adds its slice of P V.
// The row statistics live in shared memory (every column slice needs them); the output is written as the CUDA-core
// kernel writes it (normalized with the sink, or the split's partial and log2-sum-exp for the merge).

constexpr int kRowTiles = kQRows / kMmaRows;
constexpr int kMmaWarps = kThreads / kWarpSize;
constexpr int kSliceColumns = kHeadDimV / kColSlices;  // V columns one warp accumulates
constexpr int kSliceTiles = kSliceColumns / 8;         // its 16 x 8 accumulator tiles
constexpr int kProbStride = kBlockN + 8;               // 16-bit elements a probability row takes, padded the same way
constexpr int kFloat = 4;
// Shared memory after Q and the pipeline stages (sizes as sparse_decode_geometry counts them in kSoftmaxBytes).
constexpr int kMetaOffset = kQBytes + kStages * kStageBytes;              // the gather's lookup ring
constexpr int kScoresOffset = kMetaOffset + kMetaBytes;                    // [kQRows][kBlockN] fp32
constexpr int kProbsOffset = kScoresOffset + kQRows * kBlockN * kFloat;    // [kQRows][kProbStride] 16-bit
constexpr int kStatsOffset = kProbsOffset + kQRows * kProbStride * kHalf;  // row max, row sum, rescale: [kQRows] each
static_assert(kKvQuant == 0, "the tensor-core kernel reads 16-bit caches (8-bit: the CUDA-core kernel)");
static_assert(kRowTiles * kColSlices == kMmaWarps && kQRows % kMmaRows == 0, "prelude geometry disagrees with the template");
static_assert(kSliceColumns % 16 == 0 && kHeadDim % 32 == 0 && kBlockN % 16 == 0, "whole ldmatrix_x4 blocks");
static_assert(kQBytes == kQRows * kQRowBytes && kStatsOffset + 3 * kQRows * kFloat == kSharedBytes &&
                  kSoftmaxBytes == kSharedBytes - kScoresOffset,
              "prelude shared-memory layout disagrees with the template");

// A. scores[row][token] = scale * <q_row, k_token> + bias (log2 units).
SWAJIT_DEVICE void tile_scores(const SparseDecodeParams& P, u32 q_base, u32 k_base, const TileRow* tile_rows, float* scores,
                               int warp, int lane) {
  constexpr int kUnits = kRowTiles * (kBlockN / 8);
  for (int unit = warp; unit < kUnits; unit += kMmaWarps) {
    const int row_tile = unit % kRowTiles, n0 = unit / kRowTiles * 8;
    float c[4] = {0.f, 0.f, 0.f, 0.f}, c_high[4] = {0.f, 0.f, 0.f, 0.f};  // two chains of dependent mmas, not one
#pragma unroll 4
    for (int k0 = 0; k0 < kHeadDim; k0 += 32) {  // two k-steps: one ldmatrix_x4 of K covers 8 tokens x 32 columns
      u32 a_low[4], a_high[4], b[4];
      ldmatrix_x4(a_fragment_address(q_base, kQRowBytes, row_tile * kMmaRows, k0, lane), a_low[0], a_low[1], a_low[2], a_low[3]);
      ldmatrix_x4(a_fragment_address(q_base, kQRowBytes, row_tile * kMmaRows, k0 + 16, lane), a_high[0], a_high[1],
                  a_high[2], a_high[3]);
      ldmatrix_x4(k_base + u32((n0 + lane % 8) * kKRowBytes + (k0 + lane / 8 * 8) * kHalf), b[0], b[1], b[2], b[3]);
      mma_16816(c, a_low, b[0], b[1], Elem());
      mma_16816(c_high, a_high, b[2], b[3], Elem());
    }
#pragma unroll
    for (int e = 0; e < 4; ++e) c[e] += c_high[e];
    // c[0], c[1]: row lane / 4, tokens n0 + 2 (lane % 4) + {0, 1}; c[2], c[3]: the row 8 below.
    const int row = row_tile * kMmaRows + lane / 4, token = n0 + 2 * (lane % 4);
    const float bias0 = tile_rows[token].bias, bias1 = tile_rows[token + 1].bias;  // -inf: nothing to read
    scores[row * kBlockN + token] = c[0] * P.scale_log2 + bias0;
    scores[row * kBlockN + token + 1] = c[1] * P.scale_log2 + bias1;
    scores[(row + 8) * kBlockN + token] = c[2] * P.scale_log2 + bias0;
    scores[(row + 8) * kBlockN + token + 1] = c[3] * P.scale_log2 + bias1;
  }
}

// B. The online softmax of the tile, one warp per row: probabilities into `probs`, the row statistics updated and
// the factor that rescales what the row accumulated before into `rescale`.
SWAJIT_DEVICE void tile_softmax(const float* scores, u16* probs, float* row_max, float* row_sum, float* rescale, int warp,
                                int lane) {
  constexpr int kPerLane = kBlockN / kWarpSize;
  for (int row = warp; row < kQRows; row += kMmaWarps) {
    float x[kPerLane];
    float tile_max = SWAJIT_NEG_INF;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      x[i] = scores[row * kBlockN + lane + i * kWarpSize];
      tile_max = fmaxf(tile_max, x[i]);
    }
    for (int o = 16; o > 0; o /= 2) tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, o));
    const float old_max = row_max[row], new_max = fmaxf(old_max, tile_max);
    const float reference = new_max == SWAJIT_NEG_INF ? 0.f : new_max;  // nothing seen yet: no (-inf) - (-inf)
    float sum = 0.f;
#pragma unroll
    for (int i = 0; i < kPerLane; ++i) {
      const float w = fast_exp2(x[i] - reference);
      sum += w;
      probs[row * kProbStride + lane + i * kWarpSize] = u16(pack2(w, 0.f, Elem()) & 0xffffu);
    }
    for (int o = 16; o > 0; o /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    __syncwarp();  // every lane has read the old statistics before lane 0 replaces them
    if (lane == 0) {
      const float factor = fast_exp2(old_max - reference);
      rescale[row] = factor;
      row_sum[row] = row_sum[row] * factor + sum;
      row_max[row] = new_max;
    }
  }
}

extern "C" __global__ void __launch_bounds__(kThreads) SWAJIT_SPARSE_KERNEL(const SparseDecodeParams P) {
  extern __shared__ __align__(128) unsigned char smem[];
  unsigned char* stages = smem + kQBytes;
  float* scores = reinterpret_cast<float*>(smem + kScoresOffset);
  u16* probs = reinterpret_cast<u16*>(smem + kProbsOffset);
  float* row_max = reinterpret_cast<float*>(smem + kStatsOffset);
  float* row_sum = row_max + kQRows;
  float* rescale = row_sum + kQRows;
  const auto [b, kv_head, first_g, s, split, warp, lane] = block_work(P);
  const int row_tile = warp % kRowTiles, slice = warp / kRowTiles;  // this warp's rows and V columns in phase C
  wait_for_prerequisite_grid();

  const QueryRow query = query_row(P, b, s);
  load_q_rows(P, smem, b, s, kv_head, first_g);
  for (int row = threadIdx.x; row < kQRows; row += kThreads) {
    row_max[row] = SWAJIT_NEG_INF;
    row_sum[row] = 0.f;
  }

  const Share share = split_share(P, query, split);
  Gather gather{P, query, stages, reinterpret_cast<TileRow*>(smem + kMetaOffset), kv_head, share.first, share.last, share.tiles};
  gather.start();  // its __syncthreads publishes Q and the row statistics (also when there is no tile)

  float acc[kSliceTiles][4];
#pragma unroll
  for (int n = 0; n < kSliceTiles; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) acc[n][e] = 0.f;
  const u32 q_base = smem_u32(smem), probs_base = smem_u32(probs);
  constexpr int kVStride = kSharedKv ? kKRowBytes : kVRowBytes;
  for (int t = 0; t < gather.tiles; ++t) {
    gather.advance(t);
    __syncthreads();
    const u32 k_base = smem_u32(gather.stage(t)), v_base = k_base + (kSharedKv ? 0 : kBlockN * kKRowBytes);
    tile_scores(P, q_base, k_base, gather.rows(t), scores, warp, lane);
    __syncthreads();
    tile_softmax(scores, probs, row_max, row_sum, rescale, warp, lane);
    __syncthreads();
    // C. O = rescale * O + P V for this warp's 16 rows and V columns [slice * kSliceColumns, + kSliceColumns).
    const float rescale_top = rescale[row_tile * kMmaRows + lane / 4], rescale_bottom = rescale[row_tile * kMmaRows + lane / 4 + 8];
#pragma unroll
    for (int n = 0; n < kSliceTiles; ++n) {
      acc[n][0] *= rescale_top;
      acc[n][1] *= rescale_top;
      acc[n][2] *= rescale_bottom;
      acc[n][3] *= rescale_bottom;
    }
    for (int k0 = 0; k0 < kBlockN; k0 += 16) {
      u32 a[4];
      ldmatrix_x4(a_fragment_address(probs_base, kProbStride * kHalf, row_tile * kMmaRows, k0, lane), a[0], a[1], a[2], a[3]);
#pragma unroll
      for (int n = 0; n < kSliceTiles; n += 2) {  // V^T fragments of 16 tokens x 16 columns: two accumulator tiles
        const int column = slice * kSliceColumns + n * 8;
        u32 b[4];
        ldmatrix_x4_trans(v_base + u32((k0 + lane % 8 + (lane / 8) % 2 * 8) * kVStride + (column + lane / 16 * 8) * kHalf),
                          b[0], b[1], b[2], b[3]);
        mma_16816(acc[n], a, b[0], b[1], Elem());
        mma_16816(acc[n + 1], a, b[2], b[3], Elem());
      }
    }
    __syncthreads();  // the stage, lookup slot, scores and probabilities are rewritten next
  }
  cp_async_wait<0>();
  allow_dependent_grid_launch();

#pragma unroll
  for (int half = 0; half < 2; ++half) {  // accumulator elements 2 half + {0, 1}: row lane / 4 + 8 half
    const int row = row_tile * kMmaRows + lane / 4 + half * 8, g = first_g + row;
    if (row >= kRowsPerBlock || g >= kGroup) continue;
    write_fragment_row(P, acc, 2 * half, slice * kSliceColumns + 2 * (lane % 4), row_max[row], row_sum[row], b, s, kv_head, g,
                       split, slice == 0 && lane % 4 == 0);
  }
}
