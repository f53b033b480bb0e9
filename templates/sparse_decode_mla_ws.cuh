// swajit kernel family: sparse top-k decode, the warp-specialized MLA kernel (Hopper warpgroup MMA, sm_90a; config
// mla with warp_specialize, key flag "_ws").
//
// The math is sparse_decode.cuh's; the shape, the block's work and the gather are sparse_decode_mla_common.cuh's. As
// FlashMLA splits the work: three warpgroups and no block barrier inside the loop.
//   warpgroup 0, the scorer: for each tile, S = Q K^T over the whole tile (wgmma m64 n kBlockN k16, Q and K from
//     shared memory), the online softmax (it alone keeps the row maxima and sums), and P (16-bit wgmma A fragments,
//     one uint4 per thread and k16 step) with the tile's rescale factors into an exchange buffer for the others;
//   warpgroups 1 and 2, the accumulators: each takes P from the exchange (thread i of each reads what thread i of the
//     scorer wrote: the same accumulator rows), rescales its O and adds P V over its 256 of V's columns (wgmma
//     m64n256k16, P from registers). They also gather: when both are done with a tile, its stage takes the tile
//     kStages further.
// So the scorer's S of tile t + 1 and its softmax run while the accumulators' P V of tile t does, and kStages - 1
// tiles are in flight while one is computed (kBlockN = 32 in 4 stages: 108 KB of the 144 KB; the Q tile takes the
// rest of shared memory). In 6 stages (180 KB in flight) the scorer keeps Q in registers instead, as the A
// fragments of its wgmma (kDimSteps x 4 registers: it takes registers from the accumulators).
// Synchronization, all mbarriers (a thread's arrive releases its shared-memory writes, a wait acquires them):
//   full[stage]: every gathering thread arrives twice per tile, once after its bias store and once (cp.async) when its
//     copies land;
//   probs_full[buffer] (the scorer's 128 threads) and probs_empty[buffer] (the accumulators' 256, once they hold P in
//     registers) over kProbBuffers exchange buffers; after the last tile the scorer passes each row's maximum and sum
//     through the next buffer the same way;
//   the two accumulating warpgroups meet at a named barrier after each tile's P V before refilling its stage.
//
// Needs from the generator: the sparse_decode.cuh prelude (kQRows = 64, kThreads = 384, kQBytes, kStageBytes and
// kSharedBytes as sparse_decode_geometry counts them, kProbBuffers) and the wgmma wrappers mla_wgmma_scores (SS,
// m64 n kBlockN) and mla_wgmma_pv (RS, m64 n kHeadDimV / 2).

constexpr int kScoreFrags = kBlockN / 8;  // the scorer's 8-column accumulator fragments of S
constexpr int kProbSteps = kBlockN / 16;  // k16 steps of P V per tile
constexpr int kAccumulatorBarrier = 1;    // named barrier of the two accumulating warpgroups (0 is __syncthreads)
// setmaxnreg: the scorer (S, P and the softmax state) hands registers to the accumulators (64 x 256 fp32 of O each,
// which spill at the 168 a thread gets at launch). sm_90 has 64 K registers per SM; setmaxnreg counts in steps of 8.
constexpr int kRegistersPerSm = 65536, kRegisterGranule = 8;
constexpr int kLaunchRegisters = kRegistersPerSm / kThreads / kRegisterGranule * kRegisterGranule;
// With Q in registers (SWAJIT_MLA_Q_IN_REGISTERS: kDimSteps x 4 of them) the scorer takes registers from the
// accumulators: 184 / 160 spilled least in ptxas -v (132 bytes; 176 / 168 and 192 / 152 spill about 370).
constexpr bool kScorerQInRegisters = SWAJIT_MLA_Q_IN_REGISTERS;
constexpr int kScorerRegisters = kScorerQInRegisters ? 184 : 96;
constexpr int kAccumulatorRegisters =
    (kLaunchRegisters * kThreads - kScorerRegisters * kWarpgroupThreads) / kGatherThreads / kRegisterGranule * kRegisterGranule;
static_assert(kAccumulatorRegisters <= 256 && kScorerRegisters >= 24, "setmaxnreg takes 24..256");
static_assert(kScorerQInRegisters == (kQBytes == 0), "the generator's Q placement disagrees with the geometry");
template <int kRegisters>
SWAJIT_DEVICE void set_registers_to() {  // from kLaunchRegisters
  if constexpr (kRegisters < kLaunchRegisters) release_registers_to<kRegisters>();
  else if constexpr (kRegisters > kLaunchRegisters) claim_registers_up_to<kRegisters>();
}

// Shared memory: the Q tile, kStages latent tiles (both WgmmaTile, 1024-byte aligned), then kProbBuffers exchanges of
// P (a uint4 per scorer thread and k16 step) and of the rescale factors (a float2 per scorer thread), each stage's
// candidate biases (log2 units, -inf where there is nothing to read), and the mbarriers.
constexpr int kProbsOffset = kQBytes + kStages * kStageBytes;
constexpr int kRescaleOffset = kProbsOffset + kProbBuffers * kWarpgroupThreads * kProbSteps * 16;
constexpr int kBiasOffset = kRescaleOffset + kProbBuffers * kWarpgroupThreads * 8;
constexpr int kBarrierOffset = kBiasOffset + kStages * kBlockN * 4;
static_assert(kThreads == (1 + kColumnWarpgroups) * kWarpgroupThreads && kBlockN % 16 == 0 && kBlockN <= 256,
              "a scoring warpgroup (one wgmma N of kBlockN) and two accumulating ones");
static_assert(kBarrierOffset % 8 == 0 && kBarrierOffset + (kStages + 2 * kProbBuffers) * 8 == kSharedBytes,
              "prelude shared-memory layout disagrees with the template");
static_assert(kProbSteps >= 1 && kChunksPerPart >= 1, "whole k16 steps per tile");

struct MlaBarriers {
  u32 base;  // shared address of the first mbarrier
  SWAJIT_MEMBER u32 full(int stage) const { return base + 8 * stage; }
  SWAJIT_MEMBER u32 probs_full(int buffer) const { return base + 8 * (kStages + buffer); }
  SWAJIT_MEMBER u32 probs_empty(int buffer) const { return base + 8 * (kStages + kProbBuffers + buffer); }
  SWAJIT_MEMBER void init() const {
    for (int s = 0; s < kStages; ++s) mbarrier_init(full(s), 2 * kGatherThreads);
    for (int i = 0; i < kProbBuffers; ++i) {
      mbarrier_init(probs_full(i), kWarpgroupThreads);
      mbarrier_init(probs_empty(i), kGatherThreads);
    }
  }
};
// The phase parity of the n-th use (0, 1, ...) of a barrier.
SWAJIT_DEVICE u32 use_parity(int use) { return u32(use) & 1u; }

// The scorer's Q: the Q tile's shared address, or (kScorerQInRegisters) this thread's wgmma A fragments of every k16 step,
// loaded from global memory once (rows past the group's are zeros; the layout of probabilities_fragment's).
struct ScorerQ {
  u32 tile;
  u32 fragments[kScorerQInRegisters ? kDimSteps : 1][4];
};
SWAJIT_DEVICE void load_q_fragments(const SparseDecodeParams& P, ScorerQ& q, int b, int s, int kv_head, int first_g,
                                    int warp, int lane) {
  const u32* rows[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int row = warp % 4 * 16 + lane / 4 + 8 * h, g = first_g + row;
    const bool real = row < kRowsPerBlock && g < kGroup;
    rows[h] = real ? reinterpret_cast<const u32*>(static_cast<const u16*>(P.q) + b * P.q_stride_batch +
                                                  s * P.q_stride_token + q_head_of(P, kv_head, g) * P.q_stride_head)
                   : nullptr;
  }
#pragma unroll
  for (int step = 0; step < (kScorerQInRegisters ? kDimSteps : 0); ++step)
#pragma unroll
    for (int i = 0; i < 4; ++i) {  // a[i]: row h = i % 2, columns 16 step + 8 (i / 2) + 2 (lane % 4) + {0, 1}
      const u32* row = rows[i % 2];
      q.fragments[step][i] = row ? row[(16 * step + 8 * (i / 2)) / 2 + lane % 4] : 0u;
    }
}

// Issues and waits for S[64 x kBlockN] = Q . K^T over the whole tile (K-major operands, as prefill.cuh's).
SWAJIT_DEVICE void tile_scores(float (&scores)[kScoreFrags][4], const ScorerQ& q, u32 latent_tile) {
  const u64 k_desc = warp_uniform(wgmma_descriptor(latent_tile, kKStepBytes, kSwizzleAtomBytes));
#if !SWAJIT_MLA_Q_IN_REGISTERS
  const u64 q_desc = warp_uniform(wgmma_descriptor(q.tile, kKStepBytes, kSwizzleAtomBytes));
#endif
  constexpr int kStepsPerBlock = kColumnsPerSwizzleBlock / 16;
  wgmma_fence();
#pragma unroll
  for (int step = 0; step < kDimSteps; ++step) {
    const u32 within_row = (step % kStepsPerBlock) * kKStepBytes, block = step / kStepsPerBlock;
    const u64 k_step = descriptor_plus(k_desc, within_row + block * kBlockN * kSwizzleRowBytes);
#if SWAJIT_MLA_Q_IN_REGISTERS
    mla_wgmma_scores(scores, q.fragments[step], k_step, step > 0);
#else
    mla_wgmma_scores(scores, descriptor_plus(q_desc, within_row + block * kQRows * kSwizzleRowBytes), k_step, step > 0);
#endif
  }
  wgmma_commit();
  wgmma_wait<0>();
  pin_accumulators(scores);
}

// The scorer warpgroup: every tile's S, softmax and P; then each row's maximum and sum (log2 units, over the whole
// share) through the exchange as one more "tile".
SWAJIT_DEVICE void score_tiles(const SparseDecodeParams& P, const MlaBarriers& barriers, const ScorerQ& q, u32 stages,
                               const float* biases, uint4* probs_exchange, float2* rescale_exchange, int tiles,
                               int wg_thread, int lane) {
  float row_max[2] = {SWAJIT_NEG_INF, SWAJIT_NEG_INF}, row_sum[2] = {0.f, 0.f};  // row_sum: this thread's tokens only
  // Waits until the accumulators are done with exchange buffer `buffer`'s use before `use`.
  const auto claim = [&](int buffer, int use) {
    if (use > 0) mbarrier_wait(barriers.probs_empty(buffer), use_parity(use - 1));
  };
  for (int t = 0; t < tiles; ++t) {
    const int stage = t % kStages;
    mbarrier_wait(barriers.full(stage), use_parity(t / kStages));
    fence_shared_for_async_proxy();  // the gathered (generic-proxy) bytes, before wgmma reads them
    float scores[kScoreFrags][4];
    tile_scores(scores, q, stages + stage * kStageBytes);
    float tile_max[2];
    scale_and_bias_scores(scores, biases + stage * kBlockN, P.scale_log2, lane, tile_max);
    const float new_max[2] = {fmaxf(row_max[0], quad_max(tile_max[0])), fmaxf(row_max[1], quad_max(tile_max[1]))};
    float rescale[2];
    online_softmax_step(scores, new_max, row_max, row_sum, rescale);
    const int buffer = t % kProbBuffers;
    claim(buffer, t / kProbBuffers);
    u32 probs[kProbSteps][4];
#pragma unroll
    for (int step = 0; step < kProbSteps; ++step) probabilities_fragment(scores, step, probs[step]);
    store_probs(probs_exchange + buffer * kProbSteps * kWarpgroupThreads, wg_thread, probs);
    rescale_exchange[buffer * kWarpgroupThreads + wg_thread] = make_float2(rescale[0], rescale[1]);
    mbarrier_arrive(barriers.probs_full(buffer));
  }
  const int buffer = tiles % kProbBuffers;
  claim(buffer, tiles / kProbBuffers);
  probs_exchange[buffer * kProbSteps * kWarpgroupThreads + wg_thread] =  // (the first step's slot)
      make_uint4(__float_as_uint(row_max[0]), __float_as_uint(row_max[1]), __float_as_uint(quad_sum(row_sum[0])),
                 __float_as_uint(quad_sum(row_sum[1])));
  mbarrier_arrive(barriers.probs_full(buffer));
}

extern "C" __global__ void __launch_bounds__(kThreads, 1) SWAJIT_SPARSE_KERNEL(const SparseDecodeParams P) {
  extern __shared__ __align__(1024) unsigned char smem[];
  const u32 q_tile = smem_u32(smem), stages = q_tile + kQBytes;
  uint4* probs_exchange = reinterpret_cast<uint4*>(smem + kProbsOffset);        // [kProbBuffers][kProbSteps][128]
  float2* rescale_exchange = reinterpret_cast<float2*>(smem + kRescaleOffset);  // [kProbBuffers][128]
  float* biases = reinterpret_cast<float*>(smem + kBiasOffset);                 // [kStages][kBlockN]
  const MlaBarriers barriers{smem_u32(smem + kBarrierOffset)};
  const auto [b, kv_head, first_g, s, split, warp, lane] = block_work(P);
  const int warpgroup = threadIdx.x / kWarpgroupThreads, wg_thread = threadIdx.x % kWarpgroupThreads;
  if (threadIdx.x == 0) barriers.init();
  wait_for_prerequisite_grid();

  const QueryRow query = query_row(P, b, s);  // its checks meet at block barriers: every thread, before the roles
  if constexpr (!kScorerQInRegisters) {
    load_q_tile(P, q_tile, b, s, kv_head, first_g);
    cp_async_commit();
    cp_async_wait<0>();
    fence_shared_for_async_proxy();
  }
  __syncthreads();  // Q and the barriers' initialization, for everyone
  const int candidates = query.valid ? P.topk + window_count(P, query.p) : 0;
  const int first = int(i64(candidates) * split / P.num_splits), last = int(i64(candidates) * (split + 1) / P.num_splits);
  const int tiles = (last - first + kBlockN - 1) / kBlockN;

  if (warpgroup == 0) {
    set_registers_to<kScorerRegisters>();
    ScorerQ q{q_tile};
    if constexpr (kScorerQInRegisters) load_q_fragments(P, q, b, s, kv_head, first_g, warp, lane);
    score_tiles(P, barriers, q, stages, biases, probs_exchange, rescale_exchange, tiles, wg_thread, lane);
    allow_dependent_grid_launch();
    return;
  }
  set_registers_to<kAccumulatorRegisters>();
  const int column_warpgroup = warpgroup - 1, gather_thread = threadIdx.x - kWarpgroupThreads;
  LatentGather gather{P, query, stages, biases, kv_head, first, last, tiles, gather_thread / kCopyParts,
                      gather_thread % kCopyParts};
  // Arrivals on the stage's full barrier for the tile just copied (none past the last tile: nobody waits for it).
  const auto copy_next_tile = [&] {
    const int t = gather.next;
    gather.copy_next();
    if (t >= tiles) return;
    mbarrier_arrive(barriers.full(t % kStages));  // the bias store
    cp_async_arrive_on(barriers.full(t % kStages));
  };
  gather.begin();
#pragma unroll 1
  for (int stage = 0; stage < kStages; ++stage) copy_next_tile();

  float out[kWarpgroupOutFrags][4];
  zero_output(out);
  // The accumulator rows of this thread (wgmma's m64 layout: warp w of the warpgroup holds rows 16 w .. 16 w + 15),
  // the same as the scorer's thread wg_thread.
  const int rows[2] = {warp % 4 * 16 + lane / 4, warp % 4 * 16 + lane / 4 + 8};
  for (int t = 0; t < tiles; ++t) {
    const int buffer = t % kProbBuffers;
    mbarrier_wait(barriers.probs_full(buffer), use_parity(t / kProbBuffers));
    u32 probs[kProbSteps][4];
    load_probs(probs_exchange + buffer * kProbSteps * kWarpgroupThreads, wg_thread, probs);
    const float2 rescale = rescale_exchange[buffer * kWarpgroupThreads + wg_thread];
    mbarrier_arrive(barriers.probs_empty(buffer));
    const int stage = t % kStages;
    mbarrier_wait(barriers.full(stage), use_parity(t / kStages));  // complete already (the scorer waited): acquires it here
    fence_shared_for_async_proxy();
#pragma unroll
    for (int n = 0; n < kWarpgroupOutFrags; ++n) {
      out[n][0] *= rescale.x;
      out[n][1] *= rescale.x;
      out[n][2] *= rescale.y;
      out[n][3] *= rescale.y;
    }
    wgmma_fence();  // P V over the tile, then waits
    issue_pv(out, probs, v_descriptor(stages + stage * kStageBytes, column_warpgroup), 0);
    wgmma_commit();
    wgmma_wait<0>();
    pin_accumulators(out);
    // Both accumulating warpgroups past tile t (the scorer was, before it handed out P): its stage takes tile t + kStages.
    asm volatile("bar.sync %0, %1;" ::"n"(kAccumulatorBarrier), "n"(kGatherThreads) : "memory");
    copy_next_tile();
  }
  cp_async_wait_all();  // the copies past the last tile (zero-filled, none issued) and nothing else in flight
  allow_dependent_grid_launch();

  const int buffer = tiles % kProbBuffers;
  mbarrier_wait(barriers.probs_full(buffer), use_parity(tiles / kProbBuffers));
  const uint4 stats = probs_exchange[buffer * kProbSteps * kWarpgroupThreads + wg_thread];
  const float row_max[2] = {__uint_as_float(stats.x), __uint_as_float(stats.y)};
  const float sum[2] = {__uint_as_float(stats.z), __uint_as_float(stats.w)};
  write_output_rows(P, out, rows, row_max, sum, b, s, kv_head, first_g, split, column_warpgroup, lane);
}
