// swajit kernel family: sparse top-k decode, the MLA kernel (Hopper warpgroup MMA, sm_90a).
//
// The math is sparse_decode.cuh's (see its top); this kernel shares its candidates (candidate(), window_count), metadata
// checks (query_row), block order (block_work) and split merge, and replaces its main kernel when the config asks
// for mla. The shape: DeepSeek's MLA, one shared latent cache row of kHeadDim = 576 columns per token that is K, whose
// first kHeadDimV = 512 columns are V, read by 64..128 q heads (FlashMLA's decode kernel is the model).
//
// The work split. A block owns 64 q heads (kQRows) of one (sequence, query token, split): 128 heads are two blocks,
// launched next to each other so the second reads the latent rows from L2. Two warpgroups; per tile of kBlockN = 64
// gathered latent rows (a 64 x 576 bf16 tile, 72 KB, double buffered):
//   1. S = Q K^T: warpgroup w scores the tile's tokens [32 w, 32 w + 32) for all 64 heads (wgmma m64n32k16, Q and K
//      read from shared memory in the 128-byte-swizzled layout, WgmmaTile);
//   2. the online softmax: each warpgroup's tile row maxima are exchanged through shared memory, so both take the same
//      new maximum; each computes the probabilities P of its 32 tokens (16-bit, as wgmma A fragments) and hands them
//      to the other through shared memory;
//   3. O += P V: warpgroup w accumulates V columns [256 w, 256 w + 256) over all 64 tokens (wgmma m64n256k16, P from
//      registers, V the same shared tile read N-major), so its 64 x 256 fp32 accumulator stays in registers.
// Every thread also gathers: eight threads share a candidate row of the next tile (each copy instruction of a warp
// reads four whole 128-byte lines), with cp.async; thread i copies rows i / 8 and i / 8 + 32, their lookups (index,
// then page) issued one and two tiles ahead in registers so no copy waits on them. The
// row sums are kept per thread over its own tokens and combined at the end; the output is written as the other
// kernels write it (normalized with the sink, or the split's partial and log2-sum-exp for the merge).
//
// Needs from the generator: the sparse_decode.cuh prelude (kQRows = 64, kThreads = 256, kQBytes, kStageBytes and
// kSharedBytes as sparse_decode_geometry counts them) and the wgmma wrappers mla_wgmma_scores (SS, m64 n kBlockN / 2)
// and mla_wgmma_pv (RS, m64 n kHeadDimV / 2).

constexpr int kWarpgroupThreads = 128;
constexpr int kWarpgroups = kThreads / kWarpgroupThreads;
constexpr int kWarpgroupTokens = kBlockN / kWarpgroups;      // tokens each warpgroup scores per tile
constexpr int kWarpgroupColumns = kHeadDimV / kWarpgroups;   // V columns each warpgroup accumulates
constexpr int kWarpgroupScoreFrags = kWarpgroupTokens / 8;   // a thread's 8-column accumulator fragments of S
constexpr int kWarpgroupOutFrags = kWarpgroupColumns / 8;    // ... and of O
constexpr int kOwnSteps = kWarpgroupTokens / 16;             // those whose P this warpgroup computed
constexpr int kRowChunks = kHeadDim * 2 / 16;                // 16-byte chunks of a latent (and Q) row
constexpr int kCopyParts = 8;   // threads sharing a candidate's copies: each copy instruction reads whole 128-byte lines
constexpr int kChunksPerPart = kRowChunks / kCopyParts;
constexpr int kRowsPerPass = kThreads / kCopyParts;          // candidates the block's threads copy at once
constexpr int kCopyPasses = kBlockN / kRowsPerPass;          // ... and how many times per tile
constexpr u32 kSwizzleRowBytes = 128, kSwizzleAtomBytes = 8 * kSwizzleRowBytes;  // WgmmaTile: 8 rows of 128 bytes
constexpr u32 kKStepBytes = 16 * 2;                                              // 16 elements of 2 bytes
constexpr int kColumnsPerSwizzleBlock = 64;
typedef WgmmaTile<kQRows> QTile;
typedef WgmmaTile<kBlockN> LatentTile;

// Shared memory: the Q tile, kStages latent tiles (both WgmmaTile, 1024-byte aligned), the candidates' biases of each
// stage (log2 units, -inf where there is nothing to read), each warpgroup's tile row maxima, and each warpgroup's P
// fragments (one uint4 per thread and k16 step) for the other one.
constexpr int kBiasOffset = kQBytes + kStages * kStageBytes;
constexpr int kRowMaxOffset = kBiasOffset + kStages * kBlockN * 4;
constexpr int kProbsOffset = kRowMaxOffset + kWarpgroups * kQRows * 4;
static_assert(kSharedKv && kKvQuant == 0 && kHeadDimV % (kWarpgroups * kColumnsPerSwizzleBlock) == 0,
              "the MLA kernel reads a shared 16-bit latent row, V its first kHeadDimV columns");
static_assert(kQRows == 64 && kWarpgroups == 2 && kWarpgroupTokens % 16 == 0 && kWarpgroupColumns <= 256,
              "two warpgroups of 64 rows; one wgmma N of at most 256 columns each");
static_assert(kQBytes == kQRows * kHeadDim * 2 && kStageBytes == kBlockN * kHeadDim * 2 && kQBytes % 1024 == 0 &&
                  kStageBytes % 1024 == 0 && kProbsOffset + kWarpgroups * kWarpgroupThreads * kOwnSteps * 16 == kSharedBytes,
              "prelude shared-memory layout disagrees with the template");
static_assert(kBlockN % kRowsPerPass == 0 && kRowChunks % kCopyParts == 0, "whole candidates per group of copying threads");
static_assert(kStages == 2, "LatentGather keeps one tile in flight while one computes");

// The tile's gather: lookups one and two tiles ahead in registers, the copies of tile t + 1 issued at the top of
// iteration t once its scores are issued (two stages: tile t + 1 lands while tile t computes). Three block barriers
// per tile: tile t landed (which also frees tile t - 1's stage and both exchanges), the row maxima, P.
struct LatentGather {
  struct Slot {  // a candidate whose page is being looked up
    int j, page;
    float bias;  // log2 units
  };
  const SparseDecodeParams& P;
  QueryRow query;
  u32 stages;        // shared address of stage 0
  float* biases;     // [kStages][kBlockN]
  int kv_head, first, last, tiles;
  int token, part;   // this thread's first candidate of every tile (then + kRowsPerPass ...), its share of their chunks
  Slot ready[kCopyPasses]{};      // tile t + 1's candidates, their pages loaded (at the top of iteration t)
  Candidate ahead[kCopyPasses]{}; // tile t + 2's, their indices loaded

  __device__ __forceinline__ Candidate raw(int t, int pass) const {
    const int c = first + t * kBlockN + token + pass * kRowsPerPass;
    if (c >= last) return {-1, 0.f};
    return candidate(P, query.indices, query.bias, query.p, c);
  }
  __device__ __forceinline__ Slot resolve(const Candidate& c) const {
    if (c.j < 0) return {-1, 0, SWAJIT_NEG_INF};
    return {c.j, query.pages[(c.j / kPageSize) * P.block_table_stride_page], c.bias};
  }
  // Tile t's latent row of this thread's pass into its stage (zero-filled where there is nothing to read), its bias.
  __device__ __forceinline__ void copy(int t, int pass, const Slot& slot) const {
    const int row_in_tile = token + pass * kRowsPerPass;
    const bool valid = slot.j >= 0;
    const long long row = valid ? slot.page * P.k_stride_page + (slot.j % kPageSize) * P.k_stride_token : 0;
    const char* src = static_cast<const char*>(P.k_cache) + (row + kv_head * P.k_stride_head) * 2;
    const u32 stage = stages + (t % kStages) * kStageBytes;
#pragma unroll
    for (int i = 0; i < kChunksPerPart; ++i) {
      const int chunk = part + i * kCopyParts;  // neighbouring threads read neighbouring chunks of one row
      cp_async_16(stage + LatentTile::offset_bytes(row_in_tile, chunk), src + chunk * 16, valid);
    }
    if (part == 0) biases[(t % kStages) * kBlockN + row_in_tile] = valid ? slot.bias : SWAJIT_NEG_INF;
  }
  // Tile 0 in flight (in the caller's commit group), tiles 1 and 2 looked up.
  __device__ __forceinline__ void start() {
#pragma unroll
    for (int pass = 0; pass < kCopyPasses; ++pass) {
      if (tiles > 0) copy(0, pass, resolve(raw(0, pass)));
      ready[pass] = resolve(raw(1, pass));
      ahead[pass] = raw(2, pass);
    }
  }
  // The top of iteration t: tile t landed and visible to every thread (and to wgmma, the async proxy), and every
  // thread past tile t - 1, whose stage and bias slot tile t + 1 takes next.
  __device__ __forceinline__ void wait_for_tile() const {
    cp_async_wait<0>();
    fence_shared_for_async_proxy();
    __syncthreads();
  }
  // While tile t's scores run on the tensor cores: tile t + 1 in flight, the lookups one tile further.
  __device__ __forceinline__ void prefetch_next(int t) {
#pragma unroll
    for (int pass = 0; pass < kCopyPasses; ++pass)
      if (t + 1 < tiles) copy(t + 1, pass, ready[pass]);
    cp_async_commit();
#pragma unroll
    for (int pass = 0; pass < kCopyPasses; ++pass) {
      ready[pass] = resolve(ahead[pass]);
      ahead[pass] = raw(t + 3, pass);
    }
  }
};

// The block's 64 q heads (rows past the group's are zeros) into the Q tile, as stored (the scale joins the scores).
SWAJIT_DEVICE void load_q_tile(const SparseDecodeParams& P, u32 q_tile, int b, int s, int kv_head, int first_g) {
  for (int i = threadIdx.x; i < kQRows * kRowChunks; i += kThreads) {
    const int row = i / kRowChunks, chunk = i % kRowChunks, g = first_g + row;
    const bool real = row < kRowsPerBlock && g < kGroup;
    const u16* q = static_cast<const u16*>(P.q) + b * P.q_stride_batch + s * P.q_stride_token +
                   (real ? q_head_of(P, kv_head, g) : 0) * P.q_stride_head;
    cp_async_16(q_tile + QTile::offset_bytes(row, chunk), q + chunk * 8, real);
  }
}

// Issues (as one commit group) S[64 x kWarpgroupTokens] = Q . K^T for this warpgroup's tokens of the tile (K-major
// operands, as prefill.cuh's); the caller waits for it.
SWAJIT_DEVICE void issue_warpgroup_scores(float (&scores)[kWarpgroupScoreFrags][4], u32 q_tile, u32 latent_tile, int warpgroup) {
  const u64 q_desc = wgmma_descriptor(q_tile, kKStepBytes, kSwizzleAtomBytes);
  const u64 k_desc = wgmma_descriptor(latent_tile + warpgroup * kWarpgroupTokens * kSwizzleRowBytes, kKStepBytes, kSwizzleAtomBytes);
  constexpr int kStepsPerBlock = kColumnsPerSwizzleBlock / 16;
  wgmma_fence();
#pragma unroll
  for (int step = 0; step < kDimSteps; ++step) {
    const u32 within_row = (step % kStepsPerBlock) * kKStepBytes, block = step / kStepsPerBlock;
    mla_wgmma_scores(scores, descriptor_plus(q_desc, within_row + block * kQRows * kSwizzleRowBytes),
                     descriptor_plus(k_desc, within_row + block * kBlockN * kSwizzleRowBytes), step > 0);
  }
  wgmma_commit();
}

// O[64 x kWarpgroupColumns] += P . V over the tile's tokens: V N-major (transposed) from the latent tile, its columns
// [kWarpgroupColumns w, + kWarpgroupColumns), 64-column blocks kBlockN rows of 128 bytes apart. `own` holds P of this
// warpgroup's tokens, `other` the other warpgroup's (the order of the k16 steps does not matter to the sum).
SWAJIT_DEVICE void warpgroup_pv(float (&out)[kWarpgroupOutFrags][4], const u32 (&own)[kOwnSteps][4],
                                const u32 (&other)[kOwnSteps][4], u32 latent_tile, int warpgroup) {
  constexpr u32 kBlockBytes = kBlockN * kSwizzleRowBytes, kStepBytes = 16 * kSwizzleRowBytes;
  const u64 v_desc = wgmma_descriptor(latent_tile + warpgroup * (kWarpgroupColumns / kColumnsPerSwizzleBlock) * kBlockBytes,
                                      kBlockBytes, kSwizzleAtomBytes);
  const u32 own_first = warpgroup * kOwnSteps * kStepBytes, other_first = (1 - warpgroup) * kOwnSteps * kStepBytes;
  wgmma_fence();
#pragma unroll
  for (int step = 0; step < kOwnSteps; ++step) mla_wgmma_pv(out, own[step], descriptor_plus(v_desc, own_first + step * kStepBytes));
#pragma unroll
  for (int step = 0; step < kOwnSteps; ++step)
    mla_wgmma_pv(out, other[step], descriptor_plus(v_desc, other_first + step * kStepBytes));
  wgmma_commit();
  wgmma_wait<0>();
  pin_accumulators(out);
}

extern "C" __global__ void __launch_bounds__(kThreads, 1) SWAJIT_SPARSE_KERNEL(const SparseDecodeParams P) {
  extern __shared__ __align__(1024) unsigned char smem[];
  const u32 q_tile = smem_u32(smem), stages = q_tile + kQBytes;
  float* biases = reinterpret_cast<float*>(smem + kBiasOffset);
  float* row_max_exchange = reinterpret_cast<float*>(smem + kRowMaxOffset);  // [kWarpgroups][kQRows]
  uint4* probs_exchange = reinterpret_cast<uint4*>(smem + kProbsOffset);      // [kWarpgroups][threads][kOwnSteps]
  const auto [b, kv_head, first_g, s, split, warp, lane] = block_work(P);
  const int warpgroup = threadIdx.x / kWarpgroupThreads, partner = 1 - warpgroup;
  const int wg_thread = threadIdx.x % kWarpgroupThreads;
  // The accumulator rows of this thread (wgmma's m64 layout: warp w of the warpgroup holds rows 16 w .. 16 w + 15).
  const int rows[2] = {warp % 4 * 16 + lane / 4, warp % 4 * 16 + lane / 4 + 8};
  wait_for_prerequisite_grid();

  const QueryRow query = query_row(P, b, s);
  load_q_tile(P, q_tile, b, s, kv_head, first_g);
  const int candidates = query.valid ? P.topk + window_count(P, query.p) : 0;
  const int first = int(i64(candidates) * split / P.num_splits), last = int(i64(candidates) * (split + 1) / P.num_splits);
  LatentGather gather{P, query, stages, biases, kv_head, first, last, (last - first + kBlockN - 1) / kBlockN,
                      int(threadIdx.x) / kCopyParts, int(threadIdx.x) % kCopyParts};
  gather.start();
  cp_async_commit();  // Q and tile 0: one group

  float out[kWarpgroupOutFrags][4];
#pragma unroll
  for (int n = 0; n < kWarpgroupOutFrags; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) out[n][e] = 0.f;
  float row_max[2] = {SWAJIT_NEG_INF, SWAJIT_NEG_INF}, row_sum[2] = {0.f, 0.f};  // row_sum: this thread's tokens only
  for (int t = 0; t < gather.tiles; ++t) {
    gather.wait_for_tile();
    const u32 latent_tile = stages + (t % kStages) * kStageBytes;
    const float* tile_biases = biases + (t % kStages) * kBlockN + warpgroup * kWarpgroupTokens;

    float scores[kWarpgroupScoreFrags][4];
    issue_warpgroup_scores(scores, q_tile, latent_tile, warpgroup);
    gather.prefetch_next(t);  // its copies and lookups issue while the scores run
    wgmma_wait<0>();
    pin_accumulators(scores);
    // Fragment n, element e: row rows[e / 2], token 8 n + 2 (lane % 4) + e % 2 of this warpgroup's.
    float tile_max[2] = {SWAJIT_NEG_INF, SWAJIT_NEG_INF};
#pragma unroll
    for (int n = 0; n < kWarpgroupScoreFrags; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        scores[n][e] = scores[n][e] * P.scale_log2 + tile_biases[8 * n + 2 * (lane % 4) + e % 2];
        tile_max[e / 2] = fmaxf(tile_max[e / 2], scores[n][e]);
      }
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      tile_max[h] = quad_max(tile_max[h]);
      if (lane % 4 == 0) row_max_exchange[warpgroup * kQRows + rows[h]] = tile_max[h];
    }
    __syncthreads();  // both warpgroups' tile maxima

    float rescale[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const float new_max = fmaxf(row_max[h], fmaxf(tile_max[h], row_max_exchange[partner * kQRows + rows[h]]));
      const float reference = new_max == SWAJIT_NEG_INF ? 0.f : new_max;  // nothing seen yet: no (-inf) - (-inf)
      rescale[h] = fast_exp2(row_max[h] - reference);
      row_max[h] = new_max;
      row_sum[h] *= rescale[h];
#pragma unroll
      for (int n = 0; n < kWarpgroupScoreFrags; ++n)
#pragma unroll
        for (int e = 2 * h; e < 2 * h + 2; ++e) {
          scores[n][e] = fast_exp2(scores[n][e] - reference);
          row_sum[h] += scores[n][e];
        }
    }
    u32 own[kOwnSteps][4], other[kOwnSteps][4];  // P of this warpgroup's tokens and of the other's
    uint4* own_exchange = probs_exchange + (warpgroup * kWarpgroupThreads + wg_thread) * kOwnSteps;
#pragma unroll
    for (int step = 0; step < kOwnSteps; ++step) {
      probabilities_fragment(scores, step, own[step]);
      own_exchange[step] = make_uint4(own[step][0], own[step][1], own[step][2], own[step][3]);
    }
    __syncthreads();  // both warpgroups' P
    const uint4* other_exchange = probs_exchange + (partner * kWarpgroupThreads + wg_thread) * kOwnSteps;
#pragma unroll
    for (int step = 0; step < kOwnSteps; ++step) {
      const uint4 theirs = other_exchange[step];
      other[step][0] = theirs.x;
      other[step][1] = theirs.y;
      other[step][2] = theirs.z;
      other[step][3] = theirs.w;
    }
#pragma unroll
    for (int n = 0; n < kWarpgroupOutFrags; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) out[n][e] *= rescale[e / 2];
    warpgroup_pv(out, own, other, latent_tile, warpgroup);
  }
  cp_async_wait<0>();
  allow_dependent_grid_launch();

  // The rows' sums over both warpgroups' tokens (the row maxima's exchange is free: its last reads were before the
  // loop's last barrier, or the loop never ran).
  float* row_sum_exchange = row_max_exchange;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    row_sum[h] = quad_sum(row_sum[h]);
    if (lane % 4 == 0) row_sum_exchange[warpgroup * kQRows + rows[h]] = row_sum[h];
  }
  __syncthreads();
#pragma unroll
  for (int h = 0; h < 2; ++h) {  // accumulator elements 2 h + {0, 1}
    const int row = rows[h], g = first_g + row;
    if (row >= kRowsPerBlock || g >= kGroup) continue;
    const float sum = row_sum[h] + row_sum_exchange[partner * kQRows + row];
    const int head = q_head_of(P, kv_head, g);
    const float reference = row_max[h] == SWAJIT_NEG_INF ? 0.f : row_max[h];
    const int column0 = warpgroup * kWarpgroupColumns + 2 * (lane % 4);
    if (P.num_splits == 1) {
      const float factor = row_normalizer(kSinkLogits ? P.sink_logits[head * P.sink_logits_stride] : 0.f, reference, sum);
      u16* o = static_cast<u16*>(P.out) + b * P.out_stride_batch + s * P.out_stride_token + head * P.out_stride_head;
#pragma unroll
      for (int n = 0; n < kWarpgroupOutFrags; ++n)
        *reinterpret_cast<u32*>(o + column0 + n * 8) = pack2(out[n][2 * h] * factor, out[n][2 * h + 1] * factor, Elem());
    } else {  // sinks join in the merge, once per row
      const i64 slot = (i64(b * P.num_kv_heads + kv_head) * P.num_splits + split) * kRows + s * kGroup + g;
      const float inv_sum = sum > 0.f ? 1.f / sum : 0.f;
      float* partial = static_cast<float*>(P.partial_out) + slot * kHeadDimV + column0;
#pragma unroll
      for (int n = 0; n < kWarpgroupOutFrags; ++n)
        *reinterpret_cast<float2*>(partial + n * 8) = make_float2(out[n][2 * h] * inv_sum, out[n][2 * h + 1] * inv_sum);
      if (warpgroup == 0 && lane % 4 == 0) P.partial_lse[slot] = sum > 0.f ? reference + __log2f(sum) : SWAJIT_NEG_INF;
    }
  }
}
