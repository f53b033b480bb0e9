// swajit kernel family: sparse top-k decode, what the two MLA kernels share (sparse_decode_mla.cuh: two warpgroups
// that score and accumulate; sparse_decode_mla_ws.cuh: a scoring warpgroup beside two accumulating ones).
//
// The shape: DeepSeek's MLA, one shared latent cache row of kHeadDim = 576 columns per token that is K, whose first
// kHeadDimV = 512 columns are V, read by 64..128 q heads. A block owns 64 q heads (kQRows) of one (sequence, query
// token, split); two warpgroups each accumulate half of V's columns (64 x 256 fp32 in registers). Q and the gathered
// latent tiles sit in shared memory in wgmma's 128-byte-swizzled layout (WgmmaTile): tiles of kBlockN rows, kStages
// of them (kQBytes = 0: the warp-specialized kernel's scorer holds Q in registers instead).
//
// The gather: kGatherThreads threads, eight of them sharing a candidate row (each copy instruction of a warp reads four
// whole 128-byte lines), cp.async; each thread's lookups (index, then page) run one and two tiles ahead of its copies
// in registers so that no copy waits on them.

constexpr int kWarpgroupThreads = 128;
constexpr int kColumnWarpgroups = 2;                                // the warpgroups that accumulate O
constexpr int kWarpgroupColumns = kHeadDimV / kColumnWarpgroups;    // V columns each of them accumulates
constexpr int kWarpgroupOutFrags = kWarpgroupColumns / 8;           // a thread's 8-column accumulator fragments of O
constexpr int kRowChunks = kHeadDim * 2 / 16;                       // 16-byte chunks of a latent (and Q) row
constexpr int kGatherThreads = kColumnWarpgroups * kWarpgroupThreads;
constexpr int kCopyParts = 8;   // threads sharing a candidate's copies: each copy instruction reads whole 128-byte lines
constexpr int kChunksPerPart = kRowChunks / kCopyParts;
constexpr int kRowsPerPass = kGatherThreads / kCopyParts;           // candidates the gathering threads copy at once
constexpr int kCopyPasses = kBlockN / kRowsPerPass;                 // ... and how many times per tile
constexpr u32 kSwizzleRowBytes = 128, kSwizzleAtomBytes = 8 * kSwizzleRowBytes;  // WgmmaTile: 8 rows of 128 bytes
constexpr u32 kKStepBytes = 16 * 2;                                              // 16 elements of 2 bytes
constexpr int kColumnsPerSwizzleBlock = 64;
// A latent tile's last 64 columns (past V's), which only S reads: free scratch in its stage once S is computed.
constexpr u32 kRopeBlockOffset = (kHeadDim / kColumnsPerSwizzleBlock - 1) * kBlockN * kSwizzleRowBytes;
typedef WgmmaTile<kQRows> QTile;
typedef WgmmaTile<kBlockN> LatentTile;
static_assert(kSharedKv && kKvQuant == 0 && kHeadDimV % (kColumnWarpgroups * kColumnsPerSwizzleBlock) == 0,
              "the MLA kernels read a shared 16-bit latent row, V its first kHeadDimV columns");
static_assert(kQRows == 64 && kWarpgroupColumns <= 256, "64 q heads; one wgmma N of at most 256 columns per warpgroup");
static_assert((kQBytes == kQRows * kHeadDim * 2 || kQBytes == 0) && kStageBytes == kBlockN * kHeadDim * 2 && kQBytes % 1024 == 0 &&
                  kStageBytes % 1024 == 0,
              "prelude shared-memory layout disagrees with the template");
static_assert(kBlockN % kRowsPerPass == 0 && kRowChunks % kCopyParts == 0, "whole candidates per group of copying threads");

// With config l2_prefetch (SWAJIT_L2_PREFETCH_BYTES > 0), the gather also asks L2 for each row of the tile after the
// one it copies (one bulk prefetch per row), so that those copies find their rows in L2: one more tile of reads in
// flight than the stages hold. Its pages are then looked up one tile earlier (`resolved`).
constexpr bool kPrefetchNextTile = kL2PrefetchBytes > 0;
SWAJIT_DEVICE void prefetch_to_l2(const void* src, u32 bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(src), "r"(bytes) : "memory");
#endif
}

// The tile gather of one thread of the kGatherThreads: tile `next` is copied next, into stage next % kStages, its
// candidates' pages already looked up (`ready`), the tile after it judged with its pages being loaded (or, when
// prefetching, loaded: `resolved`) and the one after that with its index loads in flight (`ahead`). Each load is read
// a tile after it was issued: a read waits for its load, which queues behind the tile's copies issued before it.
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
  int next = 0;                   // the tile copy_next copies
  Slot ready[kCopyPasses]{};      // tile next's candidates, their pages loaded
  Slot resolved[kPrefetchNextTile ? kCopyPasses : 1]{};  // prefetching: tile next + 1's, their pages loaded
  SlotLoad ahead[kCopyPasses]{};  // tile next + 1's (prefetching: next + 2's), their slots' loads issued

  __device__ __forceinline__ int slot_of(int t, int pass) const { return first + t * kBlockN + token + pass * kRowsPerPass; }
  __device__ __forceinline__ SlotLoad load(int t, int pass) const {
    const int c = slot_of(t, pass);
    return c < last ? load_slot(P, query.indices, query.bias, c) : SlotLoad{-1, 0.f};
  }
  // Tile t's candidate of `pass` from its slot's loads, its page load issued.
  __device__ __forceinline__ Slot resolve(int t, int pass, const SlotLoad& loaded) const {
    const int c = slot_of(t, pass);
    const Candidate cand = c < last ? judge_slot(P, loaded, query.p, c) : Candidate{-1, 0.f};
    if (cand.j < 0) return {-1, 0, SWAJIT_NEG_INF};
    return {cand.j, query.pages[(cand.j / kPageSize) * P.block_table_stride_page], cand.bias};
  }
  __device__ __forceinline__ const char* row_address(const Slot& slot) const {
    const long long row = slot.j >= 0 ? slot.page * P.k_stride_page + (slot.j % kPageSize) * P.k_stride_token : 0;
    return static_cast<const char*>(P.k_cache) + (row + kv_head * P.k_stride_head) * 2;
  }
  // Tile t's latent row of this thread's pass, its 64-column blocks [kFirstBlock, kEndBlock) (this thread's chunk of
  // block i is its i-th), into its stage (zero-filled where there is nothing to read); with the first block, its bias.
  template <int kFirstBlock = 0, int kEndBlock = kChunksPerPart>
  __device__ __forceinline__ void copy(int t, int pass, const Slot& slot) const {
    const int row_in_tile = token + pass * kRowsPerPass;
    const bool valid = slot.j >= 0;
    const char* src = row_address(slot);
    const u32 stage = stages + (t % kStages) * kStageBytes;
#pragma unroll
    for (int i = kFirstBlock; i < kEndBlock; ++i) {
      const int chunk = part + i * kCopyParts;  // neighbouring threads read neighbouring chunks of one row
      cp_async_16(stage + LatentTile::offset_bytes(row_in_tile, chunk), src + chunk * 16, valid);
    }
    if (kFirstBlock == 0 && part == 0) biases[(t % kStages) * kBlockN + row_in_tile] = valid ? slot.bias : SWAJIT_NEG_INF;
  }
  // Tile 0's pages loaded, tile 1's slots (prefetching: tile 1's pages, tile 2's slots).
  __device__ __forceinline__ void begin() {
#pragma unroll
    for (int pass = 0; pass < kCopyPasses; ++pass) {
      ready[pass] = resolve(0, pass, load(0, pass));
      if constexpr (kPrefetchNextTile) resolved[pass] = resolve(1, pass, load(1, pass));
      ahead[pass] = load(kPrefetchNextTile ? 2 : 1, pass);
    }
  }
  // Tile `next` in flight (if there is one; the caller commits or arrives), the lookups one tile further
  // (prefetching: the rows of tile next + 1 asked of L2).
  __device__ __forceinline__ void copy_next() {
    copy_next_blocks();
    advance();
  }
  // Tile `next`'s 64-column blocks [kFirstBlock, kEndBlock) in flight (if there is one); advance() then moves on.
  template <int kFirstBlock = 0, int kEndBlock = kChunksPerPart>
  __device__ __forceinline__ void copy_next_blocks() const {
#pragma unroll
    for (int pass = 0; pass < kCopyPasses; ++pass)
      if (next < tiles) copy<kFirstBlock, kEndBlock>(next, pass, ready[pass]);
  }
  __device__ __forceinline__ void advance() {
    constexpr u32 kRowBytes = kHeadDim * 2;
#pragma unroll
    for (int pass = 0; pass < kCopyPasses; ++pass) {
      if constexpr (kPrefetchNextTile) {
        if (part == 0 && resolved[pass].j >= 0) prefetch_to_l2(row_address(resolved[pass]), kRowBytes);
        ready[pass] = resolved[pass];
        resolved[pass] = resolve(next + 2, pass, ahead[pass]);
        ahead[pass] = load(next + 3, pass);
      } else {
        ready[pass] = resolve(next + 1, pass, ahead[pass]);
        ahead[pass] = load(next + 2, pass);
      }
    }
    ++next;
  }
};

// The online softmax of a tile for this thread's two rows (h: accumulator elements 2 h + {0, 1} of each fragment),
// given each row's new maximum over everything seen (log2 units): scores become probabilities relative to it, the
// rows' previous maxima and (this thread's) sums are rescaled, and `rescale` says by how much (for O).
template <int kFrags>
SWAJIT_DEVICE void online_softmax_step(float (&scores)[kFrags][4], const float (&new_max)[2], float (&row_max)[2],
                                       float (&row_sum)[2], float (&rescale)[2]) {
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const float reference = new_max[h] == SWAJIT_NEG_INF ? 0.f : new_max[h];  // nothing seen yet: no (-inf) - (-inf)
    rescale[h] = fast_exp2(row_max[h] - reference);
    row_max[h] = new_max[h];
    row_sum[h] *= rescale[h];
#pragma unroll
    for (int n = 0; n < kFrags; ++n)
#pragma unroll
      for (int e = 2 * h; e < 2 * h + 2; ++e) {
        scores[n][e] = fast_exp2(scores[n][e] - reference);
        row_sum[h] += scores[n][e];
      }
  }
}

// The tile's raw scores of this thread's fragments scaled (log2 units) plus each candidate's bias (fragment n, element
// e: row rows[e / 2], token kFirstToken + 8 n + 2 (lane % 4) + e % 2 of the tile), and the rows' maxima over them
// (over this thread's tokens only: the caller reduces across the quad).
template <int kFrags>
SWAJIT_DEVICE void scale_and_bias_scores(float (&scores)[kFrags][4], const float* tile_biases, float scale_log2, int lane,
                                         float (&tile_max)[2]) {
  tile_max[0] = tile_max[1] = SWAJIT_NEG_INF;
#pragma unroll
  for (int n = 0; n < kFrags; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      scores[n][e] = scores[n][e] * scale_log2 + tile_biases[8 * n + 2 * (lane % 4) + e % 2];
      tile_max[e / 2] = fmaxf(tile_max[e / 2], scores[n][e]);
    }
}

// A thread's P fragments (one uint4 per k16 step, as wgmma A fragments) to and from a warpgroup's exchange in shared
// memory, laid out [step][thread]: a warp's 16-byte accesses of one step are contiguous, so each quarter warp covers
// the 32 banks once (conflict-free; [thread][step] put a warp's accesses kSteps * 16 bytes apart, up to 4-way).
template <int kSteps>
SWAJIT_DEVICE void store_probs(uint4* exchange, int wg_thread, const u32 (&probs)[kSteps][4]) {
#pragma unroll
  for (int step = 0; step < kSteps; ++step)
    exchange[step * kWarpgroupThreads + wg_thread] = make_uint4(probs[step][0], probs[step][1], probs[step][2], probs[step][3]);
}
template <int kSteps>
SWAJIT_DEVICE void load_probs(const uint4* exchange, int wg_thread, u32 (&probs)[kSteps][4]) {
#pragma unroll
  for (int step = 0; step < kSteps; ++step) {
    const uint4 p = exchange[step * kWarpgroupThreads + wg_thread];
    probs[step][0] = p.x;
    probs[step][1] = p.y;
    probs[step][2] = p.z;
    probs[step][3] = p.w;
  }
}

SWAJIT_DEVICE void zero_output(float (&out)[kWarpgroupOutFrags][4]) {
#pragma unroll
  for (int n = 0; n < kWarpgroupOutFrags; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) out[n][e] = 0.f;
}

// O *= the rows' rescale factors (accumulator elements 2 h + {0, 1} of each fragment are row h's). The rows' maxima
// settle after the first tiles: the 128 multiplies are skipped when none of the warp's rows moved (rescale exactly 1).
SWAJIT_DEVICE void rescale_output(float (&out)[kWarpgroupOutFrags][4], const float (&rescale)[2]) {
  if (!__any_sync(0xffffffffu, rescale[0] != 1.f || rescale[1] != 1.f)) return;
#pragma unroll
  for (int n = 0; n < kWarpgroupOutFrags; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) out[n][e] *= rescale[e / 2];
}

// A shared-memory descriptor the warp agrees on but the compiler cannot prove it does (it depends on the stage and the
// warpgroup), broadcast from lane 0 so that it lives in uniform registers: each wgmma then takes its descriptor from
// one uniform add instead of a chain of register moves (R2UR) in front of it.
SWAJIT_DEVICE u64 warp_uniform(u64 descriptor) {
  const u32 lo = __shfl_sync(0xffffffffu, u32(descriptor), 0), hi = __shfl_sync(0xffffffffu, u32(descriptor >> 32), 0);
  return (u64(hi) << 32) | lo;
}

// O[64 x kWarpgroupColumns] += P . V, issued (the caller fences before, commits and waits after): V N-major
// (transposed) from the latent tile, column warpgroup c's columns [kWarpgroupColumns c, + kWarpgroupColumns) (64-column
// blocks kBlockN rows of 128 bytes apart); P as wgmma A fragments of the tile's k16 steps [first, first + kSteps).
SWAJIT_DEVICE u64 v_descriptor(u32 latent_tile, int column_warpgroup) {
  constexpr u32 kBlockBytes = kBlockN * kSwizzleRowBytes;
  return warp_uniform(wgmma_descriptor(
      latent_tile + column_warpgroup * (kWarpgroupColumns / kColumnsPerSwizzleBlock) * kBlockBytes, kBlockBytes, kSwizzleAtomBytes));
}
template <int kSteps>
SWAJIT_DEVICE void issue_pv(float (&out)[kWarpgroupOutFrags][4], const u32 (&probs)[kSteps][4], u64 v_desc, int first) {
  constexpr u32 kStepBytes = 16 * kSwizzleRowBytes;
  const u64 first_desc = warp_uniform(descriptor_plus(v_desc, first * kStepBytes));  // (first depends on the warpgroup)
#pragma unroll
  for (int step = 0; step < kSteps; ++step) mla_wgmma_pv(out, probs[step], descriptor_plus(first_desc, step * kStepBytes));
}

// S[64 x kBlockN] (+)= Q . K^T over the k16 steps [kFirstStep, kFirstStep + kSteps) of the head dimension, the whole
// tile's tokens (wgmma m64 n kBlockN, mla_wgmma_split_scores; K-major operands, as prefill.cuh's), issued (the caller
// fences, commits and waits). Constant steps, so that every descriptor offset is one uniform add.
template <int kFirstStep, int kSteps, bool kAccumulate = false>  // (kAccumulate: onto the steps before kFirstStep)
SWAJIT_DEVICE void issue_tile_scores(float (&scores)[kBlockN / 8][4], u64 q_desc, u64 k_desc) {
  constexpr int kStepsPerBlock = kColumnsPerSwizzleBlock / 16;
#pragma unroll
  for (int i = 0; i < kSteps; ++i) {
    const int step = kFirstStep + i;
    const u32 within_row = (step % kStepsPerBlock) * kKStepBytes, block = step / kStepsPerBlock;
    mla_wgmma_split_scores(scores, descriptor_plus(q_desc, within_row + block * kQRows * kSwizzleRowBytes),
                           descriptor_plus(k_desc, within_row + block * kBlockN * kSwizzleRowBytes), kAccumulate || i > 0);
  }
}

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

// A column warpgroup's output rows (wgmma's m64 layout: warp w of the warpgroup holds rows 16 w .. 16 w + 15, this
// thread rows[0] and rows[1], accumulator elements 2 h + {0, 1} of row h), given each row's maximum (log2 units) and
// sum over the whole selection share (the split's log2-sum-exp written by the first column warpgroup).
SWAJIT_DEVICE void write_output_rows(const SparseDecodeParams& P, const float (&out)[kWarpgroupOutFrags][4],
                                     const int (&rows)[2], const float (&row_max)[2], const float (&sum)[2], int b,
                                     int s, int kv_head, int first_g, int split, int column_warpgroup, int lane) {
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int row = rows[h], g = first_g + row;
    if (row >= kRowsPerBlock || g >= kGroup) continue;
    write_fragment_row(P, out, 2 * h, column_warpgroup * kWarpgroupColumns + 2 * (lane % 4), row_max[h], sum[h], b, s,
                       kv_head, g, split, column_warpgroup == 0 && lane % 4 == 0);
  }
}

// Both column warpgroups' output: the rows' sums over both warpgroups' tokens (each thread's row_sum covers the tokens
// it summed; `exchange`, 2 x kQRows floats, is read by no one any more; a block barrier inside), then the rows.
SWAJIT_DEVICE void write_both_warpgroups_output(const SparseDecodeParams& P, const float (&out)[kWarpgroupOutFrags][4],
                                                const int (&rows)[2], const float (&row_max)[2], float (&row_sum)[2],
                                                float* exchange, int b, int s, int kv_head, int first_g, int split,
                                                int warpgroup, int lane) {
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    row_sum[h] = quad_sum(row_sum[h]);
    if (lane % 4 == 0) exchange[warpgroup * kQRows + rows[h]] = row_sum[h];
  }
  __syncthreads();
  float sum[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) sum[h] = row_sum[h] + exchange[(1 - warpgroup) * kQRows + rows[h]];
  write_output_rows(P, out, rows, row_max, sum, b, s, kv_head, first_g, split, warpgroup, lane);
}
