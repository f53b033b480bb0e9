// swajit kernel family: sparse top-k decode, the seesaw MLA kernel (Hopper warpgroup MMA, sm_90a; config mla with
// seesaw, key flag "_sw").
//
// The math is sparse_decode.cuh's; the shape, the block's work and the gather are sparse_decode_mla_common.cuh's; the
// shared-memory layout is sparse_decode_mla.cuh's (the same geometry). FlashMLA's "seesaw" schedule: two warpgroups,
// warpgroup w owning V's columns [256 w, 256 w + 256) of O, take the tiles in pairs (a, b) = (2k, 2k + 1), each in its
// stage, and each scores a whole tile (wgmma m64 n kBlockN over the 576 columns): warpgroup 0 tile a, warpgroup 1
// tile b, so that one's softmax runs while the other's wgmmas do.
//   warpgroup 0: S_a; m_a = max(m, rowmax S_a); P_a = exp2(S_a - m_a); P_a and m_a to warpgroup 1 (named barrier X);
//     O_L = O_L * exp2(m - m_a) + P_a V_aL; then (barrier Y) P_b and m_b from warpgroup 1:
//     O_L = O_L * exp2(m_a - m_b) + P_b V_bL.
//   warpgroup 1: S_b; (barrier X) m_b = max(m_a, rowmax S_b); P_b = exp2(S_b - m_b); P_b and m_b to warpgroup 0
//     (barrier Y); O_R = O_R * exp2(m - m_a) + P_a V_aR; O_R = O_R * exp2(m_a - m_b) + P_b V_bR.
// Both end the pair with the running maximum m_b; each keeps the row sums of its own tile's tokens, combined at the
// end. A tile's P goes to the other warpgroup through its own stage's last 64 columns (past V's: only S reads them,
// and S is done). When both are done with tile a's stage (the third named barrier), every thread issues its copies of
// tile a + kStages into it, while the P V of tile b runs; then, both done with tile b's, those of tile b + kStages.
// So in 64-token tiles (two stages) the next pair is copied under this pair's last P V only; in 32-token tiles (four
// stages, S in m64 n32 wgmmas that read Q twice as often a token) under a whole pair. Each thread copies its rows'
// first kEarlyBlocks 64-column blocks first and arrives (cp.async) on its stage's early mbarrier, then the rest, and
// arrives twice on its stage's full mbarrier (its bias store, and cp.async once its copies landed): S's wgmmas over
// those first columns start while the rest of the tile is still landing, as FlashMLA's per-block TMA copies do.
//
// Needs from the generator: sparse_decode_mla.cuh's prelude and geometry (kThreads = 256, 128 tokens of stages) and the
// wgmma wrappers mla_wgmma_split_scores (SS, m64 n kBlockN) and mla_wgmma_pv (RS, m64 n kHeadDimV / 2).

constexpr int kSeesawScoreFrags = kBlockN / 8;  // a thread's 8-column accumulator fragments of a whole tile's S
constexpr int kSeesawProbSteps = kBlockN / 16;  // k16 steps of P V per tile
constexpr int kProbsReadyA = 1, kProbsReadyB = 2, kStageFree = 3;  // named barriers (0 is __syncthreads)
constexpr int kEarlyBlocks = 4;                                      // V's first half: 16 of S's 36 k16 steps
constexpr int kEarlySteps = kEarlyBlocks * kColumnsPerSwizzleBlock / 16;
// Shared memory: Q, the two stages, each stage's candidate biases, the running maxima after tile a and after tile b
// ([2][kQRows]), and the stages' full and early mbarriers (in the two-warpgroup kernel's P exchange, unused here).
constexpr int kSeesawBiasOffset = kQBytes + kStages * kStageBytes;
constexpr int kSeesawRowMaxOffset = kSeesawBiasOffset + kStages * kBlockN * 4;
constexpr int kSeesawBarrierOffset = kSeesawRowMaxOffset + 2 * kQRows * 4;
static_assert(kThreads == kColumnWarpgroups * kWarpgroupThreads && kStages % 2 == 0 && kStages * kBlockN == 128,
              "two warpgroups taking the tiles in pairs, each in its stage");
static_assert(kSeesawBarrierOffset % 8 == 0 && kSeesawBarrierOffset + 2 * kStages * 8 <= kSharedBytes,
              "prelude shared-memory layout disagrees with the template");
static_assert(kHeadDim - kHeadDimV >= kColumnsPerSwizzleBlock && kWarpgroupThreads * kSeesawProbSteps * 16 <= kBlockN * kSwizzleRowBytes,
              "a tile's P fits its stage's last 64 columns, which V does not read");

SWAJIT_DEVICE void named_barrier_sync(int barrier) { asm volatile("bar.sync %0, %1;" ::"r"(barrier), "n"(kThreads) : "memory"); }
SWAJIT_DEVICE void named_barrier_arrive(int barrier) { asm volatile("bar.arrive %0, %1;" ::"r"(barrier), "n"(kThreads) : "memory"); }
// The reference the probabilities are taken against: the row maximum, or 0 while the row has seen nothing (-inf).
SWAJIT_DEVICE float softmax_reference(float row_max) { return row_max == SWAJIT_NEG_INF ? 0.f : row_max; }

// Waits for the tile in `stage` (its `use`-th, 0, 1, ...: its first columns, then all), then issues and waits for its
// S[64 x kBlockN] = Q . K^T, the scores scaled and biased, and the rows' tile maxima (reduced over the quad).
SWAJIT_DEVICE void score_tile(const SparseDecodeParams& P, float (&scores)[kSeesawScoreFrags][4], float (&tile_max)[2],
                              u32 full_barrier, u32 early_barrier, int use, u32 q_tile, u32 latent_tile,
                              const float* tile_biases, int lane) {
  mbarrier_wait(early_barrier, u32(use) & 1u);
  fence_shared_for_async_proxy();  // the gathered (generic-proxy) bytes, before wgmma reads them
  const u64 q_desc = warp_uniform(wgmma_descriptor(q_tile, kKStepBytes, kSwizzleAtomBytes));
  const u64 k_desc = warp_uniform(wgmma_descriptor(latent_tile, kKStepBytes, kSwizzleAtomBytes));
  wgmma_fence();
  issue_tile_scores<0, kEarlySteps>(scores, q_desc, k_desc);
  wgmma_commit();
  mbarrier_wait(full_barrier, u32(use) & 1u);
  fence_shared_for_async_proxy();
  wgmma_fence();
  issue_tile_scores<kEarlySteps, kDimSteps - kEarlySteps, true>(scores, q_desc, k_desc);
  wgmma_commit();
  wgmma_wait<0>();
  pin_accumulators(scores);
  scale_and_bias_scores(scores, tile_biases, P.scale_log2, lane, tile_max);
  tile_max[0] = quad_max(tile_max[0]);
  tile_max[1] = quad_max(tile_max[1]);
}

// This thread's tile probabilities against the rows' new maxima (row_max and row_sum updated, `rescale` the old
// maxima's factor), as wgmma A fragments; published with the maxima for the other warpgroup (the caller arrives).
SWAJIT_DEVICE void tile_probabilities(float (&scores)[kSeesawScoreFrags][4], const float (&tile_max)[2], float (&row_max)[2],
                                      float (&row_sum)[2], float (&rescale)[2], u32 (&probs)[kSeesawProbSteps][4],
                                      uint4* probs_exchange, float* row_max_exchange, const int (&rows)[2], int wg_thread, int lane) {
  const float new_max[2] = {fmaxf(row_max[0], tile_max[0]), fmaxf(row_max[1], tile_max[1])};
  online_softmax_step(scores, new_max, row_max, row_sum, rescale);
#pragma unroll
  for (int step = 0; step < kSeesawProbSteps; ++step) probabilities_fragment(scores, step, probs[step]);
  store_probs(probs_exchange, wg_thread, probs);
  if (lane % 4 == 0) {
    row_max_exchange[rows[0]] = row_max[0];
    row_max_exchange[rows[1]] = row_max[1];
  }
}

// The rows' maxima the other warpgroup took its tile's probabilities against: this thread's O (not yet: the caller,
// once no wgmma writes it) and sums are rescaled to them (`rescale`), and they become the running maxima.
SWAJIT_DEVICE void take_maxima(float (&row_max)[2], float (&row_sum)[2], float (&rescale)[2], const float* row_max_exchange,
                               const int (&rows)[2]) {
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const float theirs = row_max_exchange[rows[h]];
    rescale[h] = fast_exp2(row_max[h] - softmax_reference(theirs));
    row_max[h] = theirs;
    row_sum[h] *= rescale[h];
  }
}

// O += P V over a whole tile, this warpgroup's columns, issued as one commit group.
SWAJIT_DEVICE void issue_tile_pv(float (&out)[kWarpgroupOutFrags][4], const u32 (&probs)[kSeesawProbSteps][4], u32 latent_tile,
                                 int column_warpgroup) {
  wgmma_fence();
  issue_pv(out, probs, v_descriptor(latent_tile, column_warpgroup), 0);
  wgmma_commit();
}
SWAJIT_DEVICE void await_output(float (&out)[kWarpgroupOutFrags][4]) {  // the P V in flight
  wgmma_wait<0>();
  pin_accumulators(out);
}
// Once the P V in flight is done, O rescaled and the next tile's P V issued.
SWAJIT_DEVICE void rescale_then_issue_pv(float (&out)[kWarpgroupOutFrags][4], const float (&rescale)[2],
                                         const u32 (&probs)[kSeesawProbSteps][4], u32 latent_tile, int column_warpgroup) {
  await_output(out);
  rescale_output(out, rescale);
  issue_tile_pv(out, probs, latent_tile, column_warpgroup);
}

extern "C" __global__ void __launch_bounds__(kThreads, 1) SWAJIT_SPARSE_KERNEL(const SparseDecodeParams P) {
  extern __shared__ __align__(1024) unsigned char smem[];
  const u32 q_tile = smem_u32(smem), stages = q_tile + kQBytes;
  float* biases = reinterpret_cast<float*>(smem + kSeesawBiasOffset);  // [kStages][kBlockN]
  float* row_max_exchange = reinterpret_cast<float*>(smem + kSeesawRowMaxOffset);
  const u32 full_barriers = smem_u32(smem + kSeesawBarrierOffset);  // one per stage, then the early ones
  const u32 early_barriers = full_barriers + 8 * kStages;
  const auto [b, kv_head, first_g, s, split, warp, lane] = block_work(P);
  // (broadcast from lane 0: the compiler then knows every branch on it is uniform across the warp)
  const int warpgroup = __shfl_sync(0xffffffffu, int(threadIdx.x) / kWarpgroupThreads, 0);
  const int wg_thread = threadIdx.x % kWarpgroupThreads;
  // The accumulator rows of this thread (wgmma's m64 layout: warp w of the warpgroup holds rows 16 w .. 16 w + 15),
  // the same in both warpgroups.
  const int rows[2] = {warp % 4 * 16 + lane / 4, warp % 4 * 16 + lane / 4 + 8};
  if (threadIdx.x == 0)
    for (int stage = 0; stage < kStages; ++stage) {
      mbarrier_init(full_barriers + 8 * stage, 2 * kGatherThreads);
      mbarrier_init(early_barriers + 8 * stage, kGatherThreads);
    }
  wait_for_prerequisite_grid();

  const QueryRow query = query_row(P, b, s);
  load_q_tile(P, q_tile, b, s, kv_head, first_g);  // its copies land before this thread's first arrival on stage 0
  const int candidates = query.valid ? P.topk + window_count(P, query.p) : 0;
  const int first = int(i64(candidates) * split / P.num_splits), last = int(i64(candidates) * (split + 1) / P.num_splits);
  const int tiles = (last - first + kBlockN - 1) / kBlockN;
  __syncthreads();  // the barriers' initialization, before anyone arrives
  LatentGather gather{P, query, stages, biases, kv_head, first, last, tiles, int(threadIdx.x) / kCopyParts,
                      int(threadIdx.x) % kCopyParts};
  // Arrivals on the stage's full barrier for the tile just copied (none past the last tile: nobody waits for it).
  const auto copy_next_tile = [&] {
    const int t = gather.next;
    gather.copy_next_blocks<0, kEarlyBlocks>();
    if (t < tiles) cp_async_arrive_on(early_barriers + 8 * (t % kStages));
    gather.copy_next_blocks<kEarlyBlocks, kChunksPerPart>();
    gather.advance();
    if (t >= tiles) return;
    mbarrier_arrive(full_barriers + 8 * (t % kStages));  // the bias store
    cp_async_arrive_on(full_barriers + 8 * (t % kStages));
  };
  gather.begin();
#pragma unroll 1
  for (int stage = 0; stage < kStages; ++stage) copy_next_tile();  // tiles 0 .. kStages - 1

  float out[kWarpgroupOutFrags][4];
  zero_output(out);
  float row_max[2] = {SWAJIT_NEG_INF, SWAJIT_NEG_INF}, row_sum[2] = {0.f, 0.f};  // row_sum: this warpgroup's tiles only
  float* row_max_a = row_max_exchange;           // the running maxima after tile a
  float* row_max_b = row_max_exchange + kQRows;  // ... after tile b
#pragma unroll 1
  for (int pair = 0; 2 * pair < tiles; ++pair) {
    const int a = 2 * pair;
    const bool has_b = a + 1 < tiles;  // (the same for the whole block)
    const int stage_a = 2 * (pair % (kStages / 2)), stage_b = stage_a + 1;  // (with two stages: constants)
    const u32 tile_a = stages + stage_a * kStageBytes, tile_b = tile_a + kStageBytes;
    uint4* probs_a = reinterpret_cast<uint4*>(smem + kQBytes + stage_a * kStageBytes + kRopeBlockOffset);
    uint4* probs_b = probs_a + kStageBytes / sizeof(uint4);
    float scores[kSeesawScoreFrags][4], tile_max[2], rescale[2];
    u32 probs[kSeesawProbSteps][4], other[kSeesawProbSteps][4];
    if (warpgroup == 0) {
      score_tile(P, scores, tile_max, full_barriers + 8 * stage_a, early_barriers + 8 * stage_a, a / kStages, q_tile, tile_a,
                 biases + stage_a * kBlockN, lane);
      tile_probabilities(scores, tile_max, row_max, row_sum, rescale, probs, probs_a, row_max_a, rows, wg_thread, lane);
      named_barrier_arrive(kProbsReadyA);
      rescale_output(out, rescale);
      issue_tile_pv(out, probs, tile_a, 0);
      if (has_b) {
        named_barrier_sync(kProbsReadyB);
        take_maxima(row_max, row_sum, rescale, row_max_b, rows);
        load_probs(probs_b, wg_thread, other);
        rescale_then_issue_pv(out, rescale, other, tile_b, 0);
      } else {
        await_output(out);
      }
    } else {
      tile_max[0] = tile_max[1] = SWAJIT_NEG_INF;
      if (has_b)
        score_tile(P, scores, tile_max, full_barriers + 8 * stage_b, early_barriers + 8 * stage_b, (a + 1) / kStages, q_tile,
                   tile_b, biases + stage_b * kBlockN, lane);
      named_barrier_sync(kProbsReadyA);
      take_maxima(row_max, row_sum, rescale, row_max_a, rows);
      float rescale_b[2];  // (the softmax of tile b first: the scores' registers free before P_a's are loaded)
      if (has_b) {
        tile_probabilities(scores, tile_max, row_max, row_sum, rescale_b, probs, probs_b, row_max_b, rows, wg_thread, lane);
        named_barrier_arrive(kProbsReadyB);
      }
      load_probs(probs_a, wg_thread, other);
      rescale_output(out, rescale);
      issue_tile_pv(out, other, tile_a, 1);
      if (has_b) rescale_then_issue_pv(out, rescale_b, probs, tile_b, 1);
      else await_output(out);
    }
    // Both warpgroups done with tile a's stage (its P V complete, P_a taken): it takes tile a + kStages while tile b's
    // P V runs; then, both done with tile b's, tile b + kStages.
    named_barrier_sync(kStageFree);
    copy_next_tile();
    await_output(out);
    named_barrier_sync(kStageFree);
    copy_next_tile();
  }
  cp_async_wait_all();  // the copies past the last tile (zero-filled, none issued) and nothing else in flight
  allow_dependent_grid_launch();

  // Against the running maxima both warpgroups hold (the maxima's exchange is free: its last reads were before the
  // loop's last barrier, or the loop never ran).
  write_both_warpgroups_output(P, out, rows, row_max, row_sum, row_max_exchange, b, s, kv_head, first_g, split, warpgroup, lane);
}
