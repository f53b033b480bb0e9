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
//
// kNarrowWarps: 8 candidates a warp (one score tile; P V on m16n8k8), up to 8 warps a block, registers capped at 128 a
// thread: on the same shared memory (the same rows in flight) an SM runs twice the warps, each with half the
// instructions per tile, so more of the gather's and the math's latencies overlap.
//
// kPersistent (no window): one block per resident slot takes its items in turn (Gather's tile stream); an item's
// warps combine in the stage its last tile used (free until the copies of the next iteration) while the next item's
// first tiles are already in flight.

constexpr int kTokenWarps = kThreads / kWarpSize;
constexpr int kWarpTokens = kBlockN / kTokenWarps;  // candidates of a tile per warp
constexpr int kScoreTiles = kWarpTokens / 8;        // its 16 x 8 score tiles
constexpr int kQSteps = kHeadDim / 16;              // k-steps of Q K^T
constexpr int kOutTiles = kHeadDimV / 8;            // 16 x 8 output tiles per warp
constexpr int kCombineFloats = kTokenWarps * kMmaRows * (kHeadDimV + 2);  // each warp's rows: max, sum, output
static_assert(kKvQuant == 0, "the tensor-core kernel reads 16-bit caches (8-bit: the CUDA-core kernel)");
// kNarrowWarps: a warp's 8 candidates are one score tile, and P V runs on m16n8k8 (4 output tiles per V load).
constexpr bool kNarrowPv = kScoreTiles == 1;
static_assert(kQRows == kMmaRows && kRowsPerBlock <= kMmaRows && kWarpTokens % (kNarrowWarps ? 8 : 16) == 0 &&
                  (!kNarrowPv || kOutTiles % 4 == 0) && kHeadDim % 32 == 0 &&
                  kHeadDimV % 16 == 0 && kQBytes == 0,
              "prelude geometry disagrees with the template");
static_assert(kSharedBytes == kQBytes + kStages * kStageBytes + kMetaBytes + kSoftmaxBytes &&
                  kCombineFloats * 4 <= kStages * kStageBytes + kSoftmaxBytes,
              "prelude shared-memory layout disagrees with the template");
static_assert(!kPersistent || kCombineFloats * 4 <= kStageBytes, "persistent: the combine fits one stage");

// kNarrowWarps: at most 128 registers a thread (the register file's 64K over 128), so that twice the warps of the wide
// kernel fit an SM where shared memory allows it.
constexpr int kMinBlocksPerSm = kNarrowWarps ? 65536 / (kThreads * 128) : 1;

// acc += a b for a 16 x 8 A fragment (a[0]: row lane / 4, a[1]: row lane / 4 + 8; columns 2 (lane % 4) + {0, 1}) and
// an 8 x 8 B fragment (rows 2 (lane % 4) + {0, 1}, column lane / 4).
SWAJIT_DEVICE void mma_1688(float (&acc)[4], const u32 (&a)[2], u32 b, bf16_tag) {
  asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%0,%1,%2,%3};\n"
               : "+f"(acc[0]), "+f"(acc[1]), "+f"(acc[2]), "+f"(acc[3])
               : "r"(a[0]), "r"(a[1]), "r"(b));
}
SWAJIT_DEVICE void mma_1688(float (&acc)[4], const u32 (&a)[2], u32 b, fp16_tag) {
  asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%0,%1,%2,%3};\n"
               : "+f"(acc[0]), "+f"(acc[1]), "+f"(acc[2]), "+f"(acc[3])
               : "r"(a[0]), "r"(a[1]), "r"(b));
}

// The accumulators of this lane's rows lane / 4 (accumulator elements 0, 1) and lane / 4 + 8 (elements 2, 3).
struct RowState {
  float acc[kOutTiles][4];
  float row_max[2], row_sum[2];  // row_sum: this lane's share (its columns); the 4 lanes of a row add up at the end
  __device__ __forceinline__ void reset() {
#pragma unroll
    for (int n = 0; n < kOutTiles; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[n][e] = 0.f;
    row_max[0] = row_max[1] = SWAJIT_NEG_INF;
    row_sum[0] = row_sum[1] = 0.f;
  }
};

// This lane's A fragments of Q straight from global memory (16-bit, as stored; no shared copy: one block fewer of
// shared memory per SM's worth): k-step k holds columns 16 k .. 16 k + 15 in the mma layout, rows lane / 4 (a0, a2)
// and lane / 4 + 8 (a1, a3), columns 2 (lane % 4) + {0, 1} (a0, a1) and those + 8 (a2, a3); rows past the block's q
// heads are zeros.
SWAJIT_DEVICE void load_q_fragments(const SparseDecodeParams& P, int b, int s, int kv_head, int first_g, int lane,
                                    u32 (&q_frag)[kQSteps][4]) {
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
}

// This warp's candidates of one tile (its stage and lookups) into the rows: S = Q K^T, the online softmax, O += P V.
SWAJIT_DEVICE void accumulate_tile(const SparseDecodeParams& P, const u32 (&q_frag)[kQSteps][4], const unsigned char* stage,
                                   const TileRow* tile_rows, int warp, int lane, RowState& st) {
  constexpr int kVStride = kSharedKv ? kKRowBytes : kVRowBytes;
  const int token0 = warp * kWarpTokens;
  const u32 k_base = smem_u32(stage), v_base = k_base + (kSharedKv ? 0 : kBlockN * kKRowBytes);
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
    const float new_max = fmaxf(st.row_max[half], tile_max);
    const float reference = new_max == SWAJIT_NEG_INF ? 0.f : new_max;  // nothing seen yet: no (-inf) - (-inf)
    rescale[half] = fast_exp2(st.row_max[half] - reference);
    st.row_max[half] = new_max;
    float sum = 0.f;
#pragma unroll
    for (int n = 0; n < kScoreTiles; ++n) {
      score[n][2 * half] = fast_exp2(score[n][2 * half] - reference);
      score[n][2 * half + 1] = fast_exp2(score[n][2 * half + 1] - reference);
      sum += score[n][2 * half] + score[n][2 * half + 1];
    }
    st.row_sum[half] = st.row_sum[half] * rescale[half] + sum;
  }
  // Once a few tiles are in, a tile seldom raises a row's max (then its rescale is exactly 1): the warp skips the
  // accumulators' rescale (a quarter of its instructions per tile) unless one of its rows changed.
  if (__any_sync(0xffffffffu, rescale[0] != 1.f || rescale[1] != 1.f)) {
#pragma unroll
    for (int n = 0; n < kOutTiles; ++n) {
      st.acc[n][0] *= rescale[0];
      st.acc[n][1] *= rescale[0];
      st.acc[n][2] *= rescale[1];
      st.acc[n][3] *= rescale[1];
    }
  }
  if constexpr (kNarrowPv) {  // O += P V over the warp's 8 candidates: the score tile is the A fragment
    const u32 a[2] = {pack2(score[0][0], score[0][1], Elem()), pack2(score[0][2], score[0][3], Elem())};
#pragma unroll
    for (int n = 0; n < kOutTiles; n += 4) {  // V^T fragments of 8 candidates x 32 columns: four output tiles
      u32 vf[4];
      ldmatrix_x4_trans(v_base + u32((token0 + lane % 8) * kVStride + (n * 8 + lane / 8 * 8) * kHalf), vf[0], vf[1], vf[2], vf[3]);
#pragma unroll
      for (int i = 0; i < 4; ++i) mma_1688(st.acc[n + i], a, vf[i], Elem());
    }
    return;
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
      mma_16816(st.acc[n], a, vf[0], vf[1], Elem());
      mma_16816(st.acc[n + 1], a, vf[2], vf[3], Elem());
    }
  }
}

// The item's rows, every thread calling: the warps' (max, sum, output) combined through `combine` (kCombineFloats of
// shared memory no copy is landing in) and written normalized with the sink, or as the split's partial and
// log2-sum-exp for the merge; a row that failed its checks (row_valid false) as zeros (a split's share as rejected).
SWAJIT_DEVICE void write_rows(const SparseDecodeParams& P, RowState& st, float* combine, const WorkItem& item, int first_g,
                              int warp, int lane, bool row_valid) {
  const int b = item.b, kv_head = item.kv_head, s = item.s, split = item.split;
  if (!row_valid) st.reset();
  // Combine the warps: each writes its rows' max, sum and output (rescaled to the rows' common max) to shared memory.
  float* warp_max = combine;                            // [kTokenWarps][kMmaRows]
  float* warp_sum = warp_max + kTokenWarps * kMmaRows;  // [kTokenWarps][kMmaRows]
  float* warp_out = warp_sum + kTokenWarps * kMmaRows;  // [kTokenWarps][kMmaRows][kHeadDimV]
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    st.row_sum[half] += __shfl_xor_sync(0xffffffffu, st.row_sum[half], 1);
    st.row_sum[half] += __shfl_xor_sync(0xffffffffu, st.row_sum[half], 2);
    if (lane % 4 == 0) {
      warp_max[warp * kMmaRows + lane / 4 + 8 * half] = st.row_max[half];
      warp_sum[warp * kMmaRows + lane / 4 + 8 * half] = st.row_sum[half];
    }
  }
  __syncthreads();
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int row = lane / 4 + 8 * half;
    float common_max = SWAJIT_NEG_INF;
    for (int w = 0; w < kTokenWarps; ++w) common_max = fmaxf(common_max, warp_max[w * kMmaRows + row]);
    const float factor = fast_exp2(st.row_max[half] - (common_max == SWAJIT_NEG_INF ? 0.f : common_max));
    float* out_row = warp_out + (warp * kMmaRows + row) * kHeadDimV + 2 * (lane % 4);
#pragma unroll
    for (int n = 0; n < kOutTiles; ++n) {
      out_row[n * 8] = st.acc[n][2 * half] * factor;
      out_row[n * 8 + 1] = st.acc[n][2 * half + 1] * factor;
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

extern "C" __global__ void __launch_bounds__(kThreads, kMinBlocksPerSm) SWAJIT_SPARSE_KERNEL(const SparseDecodeParams P) {
  extern __shared__ __align__(128) unsigned char smem[];
  unsigned char* stages = smem + kQBytes;
  TileRow* ring = reinterpret_cast<TileRow*>(stages + kStages * kStageBytes);
  const int warp = int(threadIdx.x) / kWarpSize, lane = int(threadIdx.x) % kWarpSize;
  wait_for_prerequisite_grid();
  RowState st;
  u32 q_frag[kQSteps][4];
  if constexpr (kPersistent) {
    // The block's items in turn, one stream of tiles through the gather; each item's rows start at its first tile and
    // are written at its last, its status bits (thread i: candidate i of each tile) tallied on the way.
    const int tiles_per_item = item_tiles(P);
    const int items = max(0, (work_items(P) - int(blockIdx.x) + int(gridDim.x) - 1) / int(gridDim.x));
    Gather gather{P, QueryRow{}, stages, ring, 0, 0, 0, items * tiles_per_item};
    gather.start();
    int status = 0;
    WorkItem w{};
    for (int t = 0; t < gather.tiles; ++t) {
      const int item_of_block = t / tiles_per_item, tile = t - item_of_block * tiles_per_item;
      gather.advance(t);
      __syncthreads();
      if (tile == 0) {
        w = work_item(P, block_item(item_of_block));
        load_q_fragments(P, w.b, w.s, w.kv_head, 0, lane, q_frag);
        st.reset();
        if (item_of_block + 1 < items && threadIdx.x < kRowsPerBlock) {  // the next item's Q rows, for L2 by then
          const WorkItem next = work_item(P, block_item(item_of_block + 1));
          prefetch_l2_lines(static_cast<const char*>(P.q) + (next.b * P.q_stride_batch + next.s * P.q_stride_token +
                                                             q_head_of(P, next.kv_head, threadIdx.x) * P.q_stride_head) * kHalf,
                            kHeadDim * kHalf);
        }
      }
      if (threadIdx.x < kBlockN) status |= gather.rows(t)[threadIdx.x].status;
      accumulate_tile(P, q_frag, gather.stage(t), gather.rows(t), warp, lane, st);
      if (tile == tiles_per_item - 1) {
        __syncthreads();  // every warp is done with the stage: it holds the combine until the next iteration's copies
        // What the item's lookups found, reported as the single-item kernel reports it (the sequence's length alone,
        // else a bad index, else a bad page): the rows are zeros.
        const int sequence_bits = __syncthreads_or(status & kSparseSeqLenBelowQSeqlen) * kSparseSeqLenBelowQSeqlen |
                                  __syncthreads_or(status & kSparseSeqLenOverCapacity) * kSparseSeqLenOverCapacity;
        const bool bad_index = __syncthreads_or(status & kSparseIndexOutOfRange);
        const bool bad_page = __syncthreads_or(status & kSparsePageOutOfRange);
        if (threadIdx.x == 0 && (sequence_bits || bad_index || bad_page))
          record_status(P.status, sequence_bits ? sequence_bits : bad_index ? kSparseIndexOutOfRange : kSparsePageOutOfRange, w.b);
        if (t == gather.tiles - 1) allow_dependent_grid_launch();
        write_rows(P, st, reinterpret_cast<float*>(const_cast<unsigned char*>(gather.stage(t))), w, 0, warp, lane,
                   !sequence_bits && !bad_index && !bad_page);
        status = 0;
      }
      __syncthreads();  // the stage and the lookup slot are refilled next
    }
    cp_async_wait<0>();
    return;
  }
  const auto [b, kv_head, first_g, s, split, warp_, lane_] = block_work(P);
  // The sequence's checks now; those of this split's share of the selection as its gather looks the indices and
  // pages up (reading only positions <= p and pages inside the cache), tallied after the last tile (share_valid).
  // A share they reject zeroes the row: here, or through the merge (rejected_share_lse).
  const QueryRow query = query_row_of_sequence(P, b, s);
  const Share share = split_share(P, query, split);
  Gather gather{P, query, stages, ring, kv_head, share.first, share.last, share.tiles};
  gather.start();
  load_q_fragments(P, b, s, kv_head, first_g, lane, q_frag);  // the first tile's wait covers these loads
  report_sequence(P, query, b);
  st.reset();
  for (int t = 0; t < gather.tiles; ++t) {
    gather.advance(t);
    __syncthreads();
    accumulate_tile(P, q_frag, gather.stage(t), gather.rows(t), warp, lane, st);
    __syncthreads();  // the stage and the lookup slot are refilled next
  }
  cp_async_wait<0>();
  __syncthreads();  // every copy landed and every warp is done with the stages: they hold the combine now
  allow_dependent_grid_launch();
  const bool row_valid = query.valid && gather.share_valid(b);  // (query.valid is the same for the whole block)
  write_rows(P, st, reinterpret_cast<float*>(stages), WorkItem{b, kv_head, s, split}, first_g, warp, lane, row_valid);
}
