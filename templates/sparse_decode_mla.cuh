// swajit kernel family: sparse top-k decode, the MLA kernel (Hopper warpgroup MMA, sm_90a).
//
// The math is sparse_decode.cuh's (see its top); this kernel shares its candidates (candidate(), window_count), metadata
// checks (query_row), block order (block_work) and split merge, and replaces its main kernel when the config asks
// for mla (without warp_specialize: sparse_decode_mla_ws.cuh is the other one). The shape, the block's work and the
// gather: sparse_decode_mla_common.cuh (FlashMLA's decode kernel is the model).
//
// Two warpgroups, 128 heads are two blocks launched next to each other so the second reads the latent rows from L2.
// Per tile of kBlockN = 64 gathered latent rows (a 64 x 576 bf16 tile, 72 KB, double buffered):
//   1. S = Q K^T: warpgroup w scores the tile's tokens [32 w, 32 w + 32) for all 64 heads (wgmma m64n32k16, Q and K
//      read from shared memory in the 128-byte-swizzled layout, WgmmaTile);
//   2. the online softmax: each warpgroup's tile row maxima are exchanged through shared memory, so both take the same
//      new maximum; each computes the probabilities P of its 32 tokens (16-bit, as wgmma A fragments) and hands them
//      to the other through shared memory;
//   3. O += P V: warpgroup w accumulates V columns [256 w, 256 w + 256) over all 64 tokens (wgmma m64n256k16, P from
//      registers, V the same shared tile read N-major), so its 64 x 256 fp32 accumulator stays in registers; over its
//      own 32 tokens first, issued before the P exchange so that the tensor cores run them across it.
// Every thread also gathers (thread i copies rows i / 8 and i / 8 + 32 of the next tile), issuing tile t + 1's copies
// at the top of iteration t once its scores are issued (two stages: tile t + 1 lands while tile t computes). Three
// block barriers per tile: tile t landed (which also frees tile t - 1's stage and both exchanges), the row maxima, P.
// With config copy_ahead (kMlaCopyAhead) tile t + 2's copies issue at the end of iteration t instead, after a fourth
// barrier (both warpgroups past tile t's P V), so that tile t + 1 is not alone in flight while it is awaited. With
// config score_ahead (kMlaScoreAhead, on top of copy_ahead) tile t + 1 is awaited right after tile t's scores and its
// scores are issued then, so that the tensor cores compute them under tile t's softmax.
// The row sums are kept per thread over its own tokens and combined at the end.
//
// Needs from the generator: the sparse_decode.cuh prelude (kQRows = 64, kThreads = 256, kQBytes, kStageBytes and
// kSharedBytes as sparse_decode_geometry counts them) and the wgmma wrappers mla_wgmma_scores (SS, m64 n kBlockN / 2)
// and mla_wgmma_pv (RS, m64 n kHeadDimV / 2).

constexpr int kWarpgroups = kThreads / kWarpgroupThreads;
constexpr int kWarpgroupTokens = kBlockN / kWarpgroups;      // tokens each warpgroup scores per tile
constexpr int kWarpgroupScoreFrags = kWarpgroupTokens / 8;   // a thread's 8-column accumulator fragments of S
constexpr int kOwnSteps = kWarpgroupTokens / 16;             // those whose P this warpgroup computed

// Shared memory: the Q tile, kStages latent tiles (both WgmmaTile, 1024-byte aligned), the candidates' biases of each
// stage (log2 units, -inf where there is nothing to read), each warpgroup's tile row maxima, and each warpgroup's P
// fragments (one uint4 per thread and k16 step) for the other one.
constexpr int kBiasOffset = kQBytes + kStages * kStageBytes;
constexpr int kRowMaxOffset = kBiasOffset + kStages * kBlockN * 4;
constexpr int kProbsOffset = kRowMaxOffset + kWarpgroups * kQRows * 4;
static_assert(kWarpgroups == kColumnWarpgroups && kWarpgroupTokens % 16 == 0,
              "two warpgroups, each scoring whole k16 steps of a tile and accumulating half of V");
static_assert(kProbsOffset + kWarpgroups * kWarpgroupThreads * kOwnSteps * 16 == kSharedBytes,
              "prelude shared-memory layout disagrees with the template");
static_assert(kStages == 2, "one tile in flight while one computes");

// Issues (as one commit group) S[64 x kWarpgroupTokens] = Q . K^T for this warpgroup's tokens of the tile (K-major
// operands, as prefill.cuh's); the caller waits for it.
SWAJIT_DEVICE void issue_warpgroup_scores(float (&scores)[kWarpgroupScoreFrags][4], u32 q_tile, u32 latent_tile, int warpgroup) {
  const u64 q_desc = warp_uniform(wgmma_descriptor(q_tile, kKStepBytes, kSwizzleAtomBytes));
  const u64 k_desc = warp_uniform(
      wgmma_descriptor(latent_tile + warpgroup * kWarpgroupTokens * kSwizzleRowBytes, kKStepBytes, kSwizzleAtomBytes));
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

// Config split_scores (kMlaSplitScores): the warpgroups split S's 576 columns instead of the tile's tokens, so each
// issues 18 wgmmas of m64 n kBlockN (twice as wide, half as many: fewer shared-memory bytes a FLOP than n kBlockN / 2)
// over its half of the columns, for all the tile's tokens; then each sends the partial sums of the other's tokens
// through shared memory (the first warpgroup into the P exchange, free until the softmax writes it; the second into
// the tile's last 64 columns, which only its own wgmmas read) and adds the other's partial sums of its own tokens.
constexpr int kSplitScoreFrags = kBlockN / 8;  // a thread's 8-column accumulator fragments of S over the whole tile
static_assert(!kMlaSplitScores || (kDimSteps % 2 == 0 && kBlockN * kSwizzleRowBytes == kWarpgroupThreads * kWarpgroupScoreFrags * 16 &&
                                   (kDimSteps / 2) * 16 <= kHeadDim - kColumnsPerSwizzleBlock &&
                                   kWarpgroups * kWarpgroupThreads * kOwnSteps * 16 == kWarpgroupThreads * kWarpgroupScoreFrags * 16),
              "split_scores: each warpgroup's half of the columns, and 8 KB for each direction of the swap");

SWAJIT_DEVICE void issue_split_scores(float (&partial)[kSplitScoreFrags][4], u32 q_tile, u32 latent_tile, int warpgroup) {
  const u64 q_desc = warp_uniform(wgmma_descriptor(q_tile, kKStepBytes, kSwizzleAtomBytes));
  const u64 k_desc = warp_uniform(wgmma_descriptor(latent_tile, kKStepBytes, kSwizzleAtomBytes));
  wgmma_fence();
  if (warpgroup == 0) issue_tile_scores<0, kDimSteps / 2>(partial, q_desc, k_desc);
  else issue_tile_scores<kDimSteps / 2, kDimSteps / 2>(partial, q_desc, k_desc);
  wgmma_commit();
}
// Each warpgroup's scores of its own tokens from both partial sums (a block barrier inside): the first warpgroup sends
// the second's tokens through the P exchange, the second the first's through its tile's last 64 columns (the stage
// `latent_offset` bytes into shared memory). Elements are picked by selects, not by an index or a reference that
// depends on the warpgroup, so that the partial sums stay in registers.
SWAJIT_DEVICE void swap_partial_scores(const float (&partial)[kSplitScoreFrags][4], float (&scores)[kWarpgroupScoreFrags][4],
                                       unsigned char* smem, u32 latent_offset, int warpgroup, int wg_thread) {
  float4* to_second = reinterpret_cast<float4*>(smem + kProbsOffset);
  float4* to_first = reinterpret_cast<float4*>(smem + latent_offset + kRopeBlockOffset);
  const bool first_warpgroup = warpgroup == 0;
  float4* sent = first_warpgroup ? to_second : to_first;
#pragma unroll
  for (int n = 0; n < kWarpgroupScoreFrags; ++n) {
    float theirs[4];
#pragma unroll
    for (int e = 0; e < 4; ++e) theirs[e] = first_warpgroup ? partial[kWarpgroupScoreFrags + n][e] : partial[n][e];
    sent[n * kWarpgroupThreads + wg_thread] = make_float4(theirs[0], theirs[1], theirs[2], theirs[3]);
  }
  __syncthreads();  // both warpgroups' partial sums of the other's tokens
  const float4* received = first_warpgroup ? to_first : to_second;
#pragma unroll
  for (int n = 0; n < kWarpgroupScoreFrags; ++n) {
    const float4 other = received[n * kWarpgroupThreads + wg_thread];
    const float others[4] = {other.x, other.y, other.z, other.w};
#pragma unroll
    for (int e = 0; e < 4; ++e) scores[n][e] = (first_warpgroup ? partial[n][e] : partial[kWarpgroupScoreFrags + n][e]) + others[e];
  }
}

extern "C" __global__ void __launch_bounds__(kThreads, 1) SWAJIT_SPARSE_KERNEL(const SparseDecodeParams P) {
  extern __shared__ __align__(1024) unsigned char smem[];
  const u32 q_tile = smem_u32(smem), stages = q_tile + kQBytes;
  float* biases = reinterpret_cast<float*>(smem + kBiasOffset);
  float* row_max_exchange = reinterpret_cast<float*>(smem + kRowMaxOffset);  // [kWarpgroups][kQRows]
  uint4* probs_exchange = reinterpret_cast<uint4*>(smem + kProbsOffset);      // [kWarpgroups][kOwnSteps][threads]
  const auto [b, kv_head, first_g, s, split, warp, lane] = block_work(P);
  // (broadcast from lane 0: the compiler then knows every branch on it is uniform across the warp, so the wgmmas
  // behind one are not serialized)
  const int warpgroup = __shfl_sync(0xffffffffu, int(threadIdx.x) / kWarpgroupThreads, 0), partner = 1 - warpgroup;
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
  gather.begin();
  gather.copy_next();  // tile 0
  cp_async_commit();   // Q and tile 0: one group
  if constexpr (kMlaCopyAhead) {
    gather.copy_next();  // tile 1
    cp_async_commit();
  }

  float out[kWarpgroupOutFrags][4];
  zero_output(out);
  float row_max[2] = {SWAJIT_NEG_INF, SWAJIT_NEG_INF}, row_sum[2] = {0.f, 0.f};  // row_sum: this thread's tokens only
  float scores[kWarpgroupScoreFrags][4];
  if constexpr (kMlaScoreAhead) {  // tile 0's scores; each later tile's are issued by the iteration before
    if (gather.tiles > 0) {
      cp_async_wait<1>();  // Q and tile 0 (tile 1 may be in flight: copy_ahead)
      fence_shared_for_async_proxy();
      __syncthreads();
      issue_warpgroup_scores(scores, q_tile, stages, warpgroup);
      wgmma_wait<0>();
      pin_accumulators(scores);
    }
  }
  for (int t = 0; t < gather.tiles; ++t) {
    const u32 latent_tile = stages + (t % kStages) * kStageBytes;
    const float* tile_biases = biases + (t % kStages) * kBlockN + warpgroup * kWarpgroupTokens;
    if constexpr (!kMlaScoreAhead) {
      // Tile t landed and visible to every thread (and to wgmma, the async proxy), and every thread past tile t - 1,
      // whose stage and bias slot tile t + 1 takes next (copy_ahead: took already, tile t + 1 may be in flight).
      cp_async_wait<kMlaCopyAhead ? 1 : 0>();
      fence_shared_for_async_proxy();
      __syncthreads();
      float partial[kSplitScoreFrags][4];  // split_scores: S over the whole tile, this warpgroup's half of the columns
      if constexpr (kMlaSplitScores) issue_split_scores(partial, q_tile, latent_tile, warpgroup);
      else issue_warpgroup_scores(scores, q_tile, latent_tile, warpgroup);
      if constexpr (!kMlaCopyAhead) {
        gather.copy_next();  // tile t + 1: its copies and lookups issue while the scores run
        cp_async_commit();
      }
      wgmma_wait<0>();
      if constexpr (kMlaSplitScores) {
        pin_accumulators(partial);
        swap_partial_scores(partial, scores, smem, latent_tile - q_tile, warpgroup, wg_thread);
      } else {
        pin_accumulators(scores);
      }
    }
    // score_ahead: tile t + 1 awaited now (the only copies in flight), its scores issued to run under tile t's softmax.
    float next_scores[kWarpgroupScoreFrags][4];
    if constexpr (kMlaScoreAhead) {
      if (t + 1 < gather.tiles) {
        cp_async_wait<0>();
        fence_shared_for_async_proxy();
        __syncthreads();
        issue_warpgroup_scores(next_scores, q_tile, stages + ((t + 1) % kStages) * kStageBytes, warpgroup);
      }
    }
    float tile_max[2];
    scale_and_bias_scores(scores, tile_biases, P.scale_log2, lane, tile_max);
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      tile_max[h] = quad_max(tile_max[h]);
      if (lane % 4 == 0) row_max_exchange[warpgroup * kQRows + rows[h]] = tile_max[h];
    }
    __syncthreads();  // both warpgroups' tile maxima

    float new_max[2], rescale[2];
#pragma unroll
    for (int h = 0; h < 2; ++h)
      new_max[h] = fmaxf(row_max[h], fmaxf(tile_max[h], row_max_exchange[partner * kQRows + rows[h]]));
    online_softmax_step(scores, new_max, row_max, row_sum, rescale);
    u32 own[kOwnSteps][4], other[kOwnSteps][4];  // P of this warpgroup's tokens and of the other's
    uint4* own_exchange = probs_exchange + warpgroup * kOwnSteps * kWarpgroupThreads;
#pragma unroll
    for (int step = 0; step < kOwnSteps; ++step) probabilities_fragment(scores, step, own[step]);
    store_probs(own_exchange, wg_thread, own);
    rescale_output(out, rescale);
    // P V over the tile's tokens: this warpgroup's own first, so that the tensor cores run them across the exchange.
    const u64 v_desc = v_descriptor(latent_tile, warpgroup);
    wgmma_fence();
    issue_pv(out, own, v_desc, warpgroup * kOwnSteps);
    wgmma_commit();
    __syncthreads();  // both warpgroups' P
    load_probs(probs_exchange + partner * kOwnSteps * kWarpgroupThreads, wg_thread, other);
    wgmma_fence();  // the other's P fragments, just loaded, to the tensor cores
    issue_pv(out, other, v_desc, partner * kOwnSteps);
    wgmma_commit();
    wgmma_wait<0>();  // (score_ahead: and tile t + 1's scores)
    pin_accumulators(out);
    if constexpr (kMlaCopyAhead) {
      __syncthreads();     // both warpgroups past tile t's P V: its stage and bias slot take tile t + 2
      gather.copy_next();  // in flight beside tile t + 1 while that one is awaited
      cp_async_commit();
    }
    if constexpr (kMlaScoreAhead) {
      pin_accumulators(next_scores);
#pragma unroll
      for (int n = 0; n < kWarpgroupScoreFrags; ++n)
#pragma unroll
        for (int e = 0; e < 4; ++e) scores[n][e] = next_scores[n][e];
    }
  }
  cp_async_wait<0>();
  allow_dependent_grid_launch();

  // (the row maxima's exchange is free: its last reads were before the loop's last barrier, or the loop never ran)
  write_both_warpgroups_output(P, out, rows, row_max, row_sum, row_max_exchange, b, s, kv_head, first_g, split, warpgroup, lane);
}
