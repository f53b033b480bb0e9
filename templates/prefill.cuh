// swajit kernel family: sliding-window prefill, varlen, over contiguous or paged K/V (tensor cores, sm_80+).
//
// The math. Sequence b has q_len = cu_seqlens_q[b + 1] - cu_seqlens_q[b] queries and kv_len KV tokens
// (cu_seqlens_k[b + 1] - cu_seqlens_k[b], or seq_lens[b] for a paged cache). Its query i sits at position
// p = kv_len - q_len + i, so chunked prefill over a cached prefix works. Query head h reads kv head h / kGroup
// (kGqaInterleaved: h % num_kv_heads). For each visible KV position j:
//     score_j = scale * <q, k_j>,   out = sum_j exp(score_j - m) v_j / (sum_j exp(score_j - m) + sink),
//     m = max_j score_j,            sink = kSinkLogits ? exp(sink_logits[h] - m) : 0
// and a row with no visible j is all zeros (never 0/0). Scores are kept in log2 units (scale * log2 e) for exp2.
// 8-bit K/V (kKvQuant) as in paged decode: k_j = k_scale * k8_j, v_j = v_scale * v8_j per (kv head, channel); the K
// scale is folded into the Q tile once, the V scale into the output, and each stage's stored 8-bit K and V tiles are
// widened exactly to one 16-bit tile pair in shared memory before the MMAs (templates/attention_tile.cuh).
//
// The mask (templates/window_mask.h). j is visible from p iff
//     (!kCausal or j <= p)  and  ( !kLocalWindow or p - j < local_window  or  (kGlobalWindow and j < global_window) )
// A block of kBlockM queries at [p_min, p_max] visits only the sinks and [p_min - local_window + 1, p_max]: a long
// prompt costs O(S x W), not O(S^2). KV tiles that every query of the block sees whole run without mask arithmetic.
//
// The work split. One thread block per (query tile of kBlockM rows, q head, sequence); warp w owns rows
// [w kWarpRows, (w + 1) kWarpRows) of the tile (kMTiles mma row tiles of 16, which share every K/V fragment they
// read from shared memory) and keeps their online-softmax state in registers (templates/attention_tile.cuh).
// K/V tiles of kBlockN tokens stream through a kStages-deep cp.async pipeline, gathered row by row (page by page
// for a paged cache), shared by all warps. blockIdx.x runs over (query tile, q head) with the head fastest and the
// query tiles last-first, so every head's longest tiles start in the first wave and the short ones fill the tail.
// kPersistent (TMA only): the grid is as many blocks as are resident at once, and block i takes the work items
// (query tile, q head, sequence) i, i + gridDim.x, ... in that same order (kSnakeOrder: odd rounds of unequal items
// walked backwards, persistent_item); both warpgroup roles plan the same items, the pipeline's stages and barrier
// phases run on across them (BlockWork::slot), and Q has two buffers, so the producer loads the next item's Q and K/V
// while the consumers finish this one (kOverlapItems: the consumers also carry an item's last P.V into the next).
//
// Warp specialization (kWarpSpecialize > 0, Hopper wgmma path only). The block is kBlockM / 64 consumer warpgroups
// (64 query rows each) followed by one producer warpgroup:
//   producer   loads Q, then K/V tiles into the kStages stages with cp.async row gathers (so paged caches of any page
//              size and varlen work as above); each thread's copies of a stage arrive on that stage's "full" mbarriers
//              (cp.async.mbarrier.arrive.noinc), one for K and one for V; before refilling a stage's K (V) it waits
//              on the stage's "empty" mbarrier of K (V).
//   consumers  wait on K's "full", order the landed bytes for the tensor cores (fence.proxy.async), run S = Q.K^T
//              and arrive on K's "empty" (one arrival per warp), then the softmax, then O += P.V once V's "full"
//              says V has landed, and arrive on V's "empty". No __syncthreads after the start, so the consumer
//              warpgroups drift apart and one's softmax overlaps the other's MMAs.
//              kWarpSpecialize == 2 also issues S(t+1) before the softmax of tile t (two score buffers);
//              kWarpSpecialize == 3 is 2 with ping-pong between the two consumer warpgroups (kBlockM == 128): they take
//              turns issuing their MMAs (named barriers), so one's softmax runs while the other's MMAs do.
// setmaxnreg hands the producer's registers to the consumers (generator: kProducerRegisters, kConsumerRegisters).
// 8-bit K/V: the producer stages each tile's stored bytes (kStages tiles in flight, in the kDequantBytes area), widens them into
// the stage's 16-bit tiles and then arrives on both "full" barriers; it folds the K scale into Q before q_full. The consumers run
// the 16-bit path unchanged; the V scale is applied to the output.
// 8-bit K/V with kTma: each tile's stored 8-bit K (V) bytes move by TMA into a staging slot (kStagedTiles of them,
// 128-byte swizzled rows of 128 channels); two producer warps per tensor widen the staged tile into the stage's 16-bit
// tile and arrive on the stage's "full" barrier: half the HBM bytes, the consumers' unchanged 16-bit tiles, and the
// widening (shared-memory traffic and ALU work on the producer's warps) overlapped with the consumers' MMAs.
// kTma: the producer's first warp moves the K tiles with the TMA engine instead, its second warp the V tiles: each
// posts the tile's byte count on its "full" mbarrier (expect_tx) and issues boxes (one lane a box) of 64 channels x
// kBoxRows tokens from the tensor maps the host
// encoded (P.k_map / P.v_map, 128-byte swizzle = the WgmmaTile layout); the bytes complete the phase. A box covers
// whole rows of kBlockN tokens, so for a paged cache tiles start at multiples of kBlockN (tiles_on_box_grid) and a box
// is a whole page or part of one; a tile of an NHD cache whose pages follow each other in memory moves as one box of
// kBlockN tokens from the run maps instead (P.k_run_map / P.v_run_map, tma_page_runs): one copy, not one per page.
// Rows a box reads past what the row gathers would read are masked (P = 0), but they may hold uninitialized memory
// and 0 * NaN = NaN: in a tile whose box reaches outside the sequence's written tokens [range begin, kv_len) each
// consumer warpgroup zeroes those V rows in shared memory before its P.V (they were gathered by cp.async one row at
// a time, each behind its block_table load: the first tile of every paged item waited for that).
//
// Needs from the generator prelude: the spec (Elem, kHeadDim, kPageSize, kContiguousKv, kGroup, kCausal,
// kLocalWindow, kGlobalWindow, kSinkLogits, kGqaInterleaved, KvElem, kKvQuant, kKvBytes), the config (kBlockM, kBlockN,
// kStages, kMTiles, kWgmma, kMinBlocksPerSm, kWarpSpecialize), the launch geometry the host also uses (kThreads,
// kQBytes, kTileBytes, kDequantBytes, kBarrierBytes, kSharedBytes, kProducerRegisters, kConsumerRegisters), the
// symbol SWAJIT_PREFILL_KERNEL and
// the generated wgmma_scores / wgmma_pv wrappers (sm_90a, used when kWgmma).

constexpr int kWarpRows = 16 * kMTiles;   // query rows per warp
constexpr int kWarps = kBlockM / kWarpRows;  // warps that compute (the consumers when warp specialized)
constexpr int kScoreFrags = kBlockN / 8;  // 16x8 score fragments per row tile and KV tile
constexpr int kWarpgroupThreads = 128;
constexpr int kProducerThreads = kWarpSpecialize ? kWarpgroupThreads : 0;
constexpr int kLoaderThreads = kWarpSpecialize ? kProducerThreads : kThreads;  // threads that issue the loads

static_assert(kThreads == kWarps * 32 + kProducerThreads, "prelude geometry disagrees with the template");
static_assert(!kWgmma || (kMTiles == 1 && kBlockM % 64 == 0), "wgmma: warpgroups of 4 warps x 16 rows");
static_assert(!kWarpSpecialize || kWgmma, "warp specialization is the wgmma path's");
static_assert(kWarpSpecialize != 3 || kBlockM == 128, "ping-pong takes turns between exactly 2 consumer warpgroups");

// Shared-memory layouts of the Q and K/V tiles: ldmatrix-swizzled rows for mma.sync, wgmma's 128-byte swizzle else.
template <bool kForWgmma, int kRows>
struct TileLayout {
  typedef RowTile type;
};
template <int kRows>
struct TileLayout<true, kRows> {
  typedef WgmmaTile<kRows> type;
};
typedef TileLayout<kWgmma, kBlockM>::type QTile;
typedef TileLayout<kWgmma, kBlockN>::type KvTile;
// Shared memory: the Q tile (kQBytes; kQBuffers of them), kStages K tiles and kStages V tiles (kTileBytes each, as stored: QTile /
// KvTile layouts for 16-bit K/V, plain rows for 8-bit), then for 8-bit K/V one widened K and one widened V tile
// (kDequantBytes, KvTile layout, 1024-byte aligned for wgmma), then the mbarriers when warp specialized (kBarrierBytes).
constexpr int kQBuffers = kPersistent ? 2 : 1;  // persistent: the next item's Q lands while this one's is read
static_assert(!kPersistent || kTma, "the persistent grid runs the TMA producer ahead into the next item");
static_assert(!kOverlapItems || (kWarpSpecialize == 2 && kPersistent), "items overlap on ws2's persistent grid");
static_assert(!kDynamicItems || (kPersistent && !kSnakeOrder), "blocks claim items on the persistent grid, unordered by rounds");
static_assert(!kTmaStore || (kTma && !kOverlapItems && kMTiles == 1), "the TMA store stages an item's rows in its Q buffer");
static_assert(kSharedBytes >= kQBuffers * kQBytes + kStages * kKTileBytes + kVStages * kTileBytes + kDequantBytes + kBarrierBytes,
              "prelude shared-memory size too small");
static_assert((kQBytes + kKTileBytes + kTileBytes) % 1024 == 0, "wgmma tiles need 1024-byte alignment");
static_assert((kKTileBytes == kTileBytes && kVStages == kStages) ||
                  (kStoredKScores && kKTileBytes == kBlockN * kHeadDim && kVStages > kStages),
              "K's stages are V's, or (stored K) the stored tiles with V deeper");
static_assert(!kWarpSpecialize || kKvQuant == 0 || kTileBytes == kBlockN * kHeadDim * 2,
              "warp specialized 8-bit K/V: the stages hold the widened 16-bit tiles");
constexpr u32 kWidenedTileBytes = kBlockN * kHeadDim * 2;
constexpr u32 kStoredTileBytes = kBlockN * kHeadDim * kKvBytes;  // one K or V tile as the cache stores it
// Warp specialized 8-bit K/V: (K, V) pairs of stored tiles the producer stages (the generator sizes kDequantBytes):
// kStages for row gathers, fewer for TMA where the persistent grid's second Q buffer leaves less room.
constexpr int kStagedTiles = (kKvQuant != 0 && kWarpSpecialize) ? kDequantBytes / (2 * kStoredTileBytes) : 1;  // 1: unused
// kF16Mma: after the staged pairs, the producer warps' maxima of Q and each Q buffer's score factor (4 bytes each)
constexpr int kF16MmaScratchBytes = kKvQuant != 0 && kWarpSpecialize ? kDequantBytes - kStagedTiles * 2 * kStoredTileBytes : 0;
static_assert(kKvQuant == 0 || kDequantBytes == (kWarpSpecialize ? kStagedTiles * 2 * kStoredTileBytes + kF16MmaScratchBytes
                                                                 : 2 * kWidenedTileBytes),
              "8-bit K/V: the staged stored tiles (warp specialized), else the widened 16-bit pair");
// kStoredKScores: then each Q buffer's per-row score factors (kBlockM floats each)
constexpr int kRowFactorFloats = kStoredKScores ? kQBuffers * kBlockM : 0;
static_assert(kF16Mma ? kTma && kKvQuant != 0 && kF16MmaScratchBytes >= 4 * (kProducerThreads / 32 + kQBuffers + kRowFactorFloats)
                      : kF16MmaScratchBytes == 0,
              "f16_mma: 8-bit K/V on TMA, with its scratch after the staged pairs");
static_assert(kKvQuant == 0 || !kWarpSpecialize || (kTma ? kStagedTiles >= 1 : kStagedTiles == kStages),
              "8-bit K/V staging: one pair per stage for row gathers, at least one for TMA");
static_assert(kStages >= 2, "the pipeline keeps at least one tile in flight");
// 8-bit K/V on TMA: the staging slots of K (V: `values`) tiles and tile t's slot among the 2 kStagedTiles slots of the
// staged pairs (pair s: 2 s for K, 2 s + 1 for V). kStoredKScores stages no K, so V takes every slot: the V tile t + 1 is
// in flight while tile t is widened.
SWAJIT_DEVICE constexpr int staging_slots(bool values) { return kStoredKScores ? (values ? 2 * kStagedTiles : 0) : kStagedTiles; }
SWAJIT_DEVICE int staging_slot(bool values, int t) {
  return kStoredKScores ? t % (2 * kStagedTiles) : (t % kStagedTiles) * 2 + values;
}
constexpr int kLoadAhead = kStages - 1;  // tiles loaded ahead of the one being computed

// TMA boxes (kTma): 64 channels (128 bytes: one swizzle row) x kBoxRows tokens; kBoxesPerTile of them per 64-column
// block of a tile. Contiguous K/V: the whole tile; paged: a page, or the tile's part of one.
constexpr int kBoxRows = (kContiguousKv || kPageSize >= kBlockN) ? kBlockN : kPageSize;
constexpr int kBoxesPerTile = kBlockN / kBoxRows;
constexpr int kBoxChannels = 128 / kKvBytes;  // one 128-byte swizzle row: 64 16-bit or 128 8-bit channels
static_assert(!kTma || kWarpSpecialize, "the TMA copies are issued by the producer warpgroup");
static_assert(!kTma || kHeadDim % kBoxChannels == 0, "TMA boxes of whole 128-byte rows (8-bit K/V: head_dim % 128 == 0)");
static_assert(!kTma || kContiguousKv || kPageSize % kBlockN == 0 || (kBlockN % kPageSize == 0 && kPageSize % 8 == 0),
              "TMA boxes hold whole pages of 8-row swizzle atoms or lie in one page (generator: validate_tma)");

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
// `loader` is the thread's index among the kLoaderThreads that share every load.
SWAJIT_DEVICE void load_q_tile(const PrefillParams& P, u32 q_smem, int first_row, int rows, int q_head, int loader) {
  const u16* q = static_cast<const u16*>(P.q);
  for (int i = loader; i < kBlockM * kChunks; i += kLoaderThreads) {
    const int row = i / kChunks, chunk = i % kChunks;
    const bool real = row < rows;
    const u16* src = q + (real ? first_row + row : 0) * P.q_stride_token + q_head * P.q_stride_head + chunk * 8;
    cp_async_16(q_smem + QTile::offset_bytes(row, chunk), src, real);
  }
}

// Element offset of KV token j of the sequence (before the head and channel), and whether it is addressable.
SWAJIT_DEVICE long long kv_token_offset(const PrefillParams& P, const Sequence& s, const int* block_table_row, int j,
                                        long long stride_page, long long stride_token, int b, bool& valid) {
  if constexpr (kContiguousKv) {
    return (long long)(s.kv_begin + j) * stride_token;
  } else {
    constexpr int kTokensPerPage = kContiguousKv ? 1 : kPageSize;  // (this branch is compiled for both)
    const int page = block_table_row[(j / kTokensPerPage) * P.block_table_stride_page];
    if (page < 0 || page >= P.num_pages) {
      record_status(P.status, kPrefillPageOutOfRange, b);
      valid = false;
      return 0;
    }
    return page * stride_page + (j % kTokensPerPage) * stride_token;
  }
}

// One K tile and one V tile (tokens [tile_begin, tile_end) of the sequence) into one pipeline stage. A loader keeps
// one 16-byte chunk column and steps down the rows, so the per-chunk work is one address step and two copies.
static_assert(kLoaderThreads % kKvChunks == 0, "loaders cover whole rows");
constexpr int kRowsPerPass = kLoaderThreads / kKvChunks;
SWAJIT_DEVICE void load_kv_tile(const PrefillParams& P, const Sequence& s, const int* block_table_row, u32 k_smem,
                                u32 v_smem, int b, int kv_head, int tile_begin, int tile_end, int loader) {
  const int chunk = loader % kKvChunks;
  const char* k = static_cast<const char*>(P.k) + (kv_head * P.k_stride_head) * kKvBytes + chunk * 16;
  const char* v = static_cast<const char*>(P.v) + (kv_head * P.v_stride_head) * kKvBytes + chunk * 16;
#pragma unroll
  for (int row = loader / kKvChunks; row < kBlockN; row += kRowsPerPass) {
    const int j = tile_begin + row;
    bool valid = j < tile_end;
    long long k_offset = 0, v_offset = 0;
    if (valid) {
      k_offset = kv_token_offset(P, s, block_table_row, j, P.k_stride_page, P.k_stride_token, b, valid);
      v_offset = kv_token_offset(P, s, block_table_row, j, P.v_stride_page, P.v_stride_token, b, valid);
    }
    const u32 offset = kKvQuant ? u32(row * kKvChunks + chunk) * 16u : KvTile::offset_bytes(row, chunk);  // 8-bit: plain rows
    cp_async_16(k_smem + offset, k + k_offset * kKvBytes, valid);
    cp_async_16(v_smem + offset, v + v_offset * kKvBytes, valid);
  }
}

// ---- 8-bit K/V ---------------------------------------------------------------------------------------------------------
// The stage's stored 8-bit K and V tiles -> the 16-bit tile pair at `widened` (KvTile layout, K then V), which k_tile
// and v_tile then point at. Called once per KV tile right after the barrier that says the stage has landed, which also
// ends every warp's reads of the previous tile's pair; this step's own barrier publishes the pair. No-op for 16-bit K/V.
SWAJIT_DEVICE void widen_stage(u32 widened, u32& k_tile, u32& v_tile) {
  if constexpr (kKvQuant != 0) {
    constexpr bool kOneChunkAtATime = true;  // the output accumulators are live: keep the registers this takes few
    widen_kv_tile<KvTile, kBlockN, kOneChunkAtATime>(k_tile, widened);
    widen_kv_tile<KvTile, kBlockN, kOneChunkAtATime>(v_tile, widened + kWidenedTileBytes);
    if constexpr (kWgmma) fence_shared_for_async_proxy();  // the generic-proxy stores, before wgmma reads them
    __syncthreads();
    k_tile = widened;
    v_tile = widened + kWidenedTileBytes;
  }
}


// ---- Hopper warpgroup MMA path (kWgmma) ------------------------------------------------------------------------------
// Tiles are WgmmaTile: 64-column blocks of rows x 128 bytes. K-major operands (Q, K) step 16 elements = 32 bytes
// along the row per k16 step, and to the next block every 4 steps; V is read N-major (transposed): 16 tokens =
// 16 rows of 128 bytes per k16 step, with the head_dim blocks kBlockN * 128 bytes apart.
constexpr u32 kWgmmaRowBytes = 128, kWgmmaGroupBytes = 8 * kWgmmaRowBytes;  // 8-row swizzle atom
constexpr u32 kKStepBytes = 16 * 2;                                         // 16 elements of 2 bytes
// kStoredKScores: Q's 8-bit hi and lo tiles, 128-byte swizzled rows of 128 channels each, fill the Q buffer's two 64-column
// blocks: row r of each takes the place of the bf16 row r of one block (fold_k_scale_into_8bit_q_rows).
constexpr u32 kQ8TileBytes = kBlockM * kWgmmaRowBytes;
static_assert(!kStoredKScores || (kF16Mma && kHeadDim == 128), "8-bit scores: Q's two 8-bit tiles fill its bf16 tile's place");
// kStoredKScores with int8 K/V: s8 MMAs into s32 accumulators, Q = 128 hi + lo (fold_k_scale_into_8bit_q_rows)
constexpr bool kIntegerScores = kStoredKScores && kKvQuant == 1;
constexpr int kLoBits = 7;  // int8 Q: the weight of hi over lo

// Issues (and commits, as one group) S[64 x kBlockN] of this warpgroup's rows = Q . K^T.
SWAJIT_DEVICE void issue_warpgroup_scores(float (&scores)[kScoreFrags][4], u32 q_smem, u32 k_tile, int warpgroup) {
  if constexpr (kStoredKScores) {  // the Q buffer holds Q's 8-bit hi tile, then its lo tile; K is the stored tile
    constexpr u32 kStepBytes = 32;   // k32 per 8-bit wgmma: 32 one-byte elements of each 128-byte row
    constexpr int kSteps = kWgmmaRowBytes / kStepBytes;
    const u64 q_desc = wgmma_descriptor(q_smem + warpgroup * 64 * kWgmmaRowBytes, kStepBytes, kWgmmaGroupBytes);
    const u64 k_desc = wgmma_descriptor(k_tile, kStepBytes, kWgmmaGroupBytes);
    const auto issue = [&](int part, int step, bool accumulate) {
      const u64 q = descriptor_plus(q_desc, part * kQ8TileBytes + step * kStepBytes);
      const u64 k = descriptor_plus(k_desc, step * kStepBytes);
      if constexpr (kIntegerScores)
        wgmma_scores_s8(scores, q, k, accumulate);
      else
        wgmma_scores_e4m3(scores, q, k, accumulate);
    };
    wgmma_fence();
#pragma unroll
    for (int step = 0; step < kSteps; ++step) issue(0, step, step > 0);  // hi
    if constexpr (kIntegerScores) {  // S = 128 (hi . K) + lo . K, exact in int32 (|S| < 2^28)
      wgmma_commit();
      wgmma_wait<0>();
      pin_accumulators(scores);
#pragma unroll
      for (int f = 0; f < kScoreFrags; ++f)
#pragma unroll
        for (int c = 0; c < 4; ++c) scores[f][c] = __uint_as_float(__float_as_uint(scores[f][c]) << kLoBits);
      wgmma_fence();  // the accumulators were written outside the MMAs
    }
#pragma unroll
    for (int step = 0; step < kSteps; ++step) issue(1, step, true);  // lo, into the same accumulators
    wgmma_commit();
    return;
  }
  const u64 q_desc = wgmma_descriptor(q_smem + warpgroup * 64 * kWgmmaRowBytes, kKStepBytes, kWgmmaGroupBytes);
  const u64 k_desc = wgmma_descriptor(k_tile, kKStepBytes, kWgmmaGroupBytes);
  wgmma_fence();
#pragma unroll
  for (int step = 0; step < kDimSteps; ++step) {
    const u32 within_row = (step % 4) * kKStepBytes, block = step / 4;
    wgmma_scores(scores, descriptor_plus(q_desc, within_row + block * kBlockM * kWgmmaRowBytes),
                 descriptor_plus(k_desc, within_row + block * kBlockN * kWgmmaRowBytes), step > 0);
  }
  wgmma_commit();
}

// kStoredV: O += P . V on the 8-bit tensor cores. V is the stored e4m3 tile, transposed by the producer into a
// K-major tile (the only form 8-bit B operands take): row n holds channel n of the tile's keys, 128-byte swizzled.
// P's accumulator registers become the A operand as they are, so the keys go in their order: A position k (of a
// k32 step's 32) of lane l is its byte k % 4 of register 2 (k / 16) + row half, holding accumulator column
// 8 (2 (k / 16) + k % 4 / 2) + 2 (l % 4) + k % 2 where k / 4 % 4 = l % 4; so A position k carries key
// stored_v_key(k) (transpose_staged_v writes V's row stored_v_key(k) at byte k of each transposed row).
// P is 2^8 times the probabilities (online_softmax kPExponent; e4m3's subnormals start at 2^-6, so small p keep
// their bits) split as hi = e4m3(p), lo = e4m3(p - hi): about 8 mantissa bits together, bf16's precision; the two
// chains of 8-bit MMAs take the time of one 16-bit one.
constexpr int kPExponent = kStoredV ? 8 : 0;
SWAJIT_DEVICE constexpr int stored_v_key(int k) { return 16 * (k / 16) + 8 * (k % 4 / 2) + 2 * (k % 16 / 4) + k % 2; }
static_assert(!kConsumerFold || kStoredKScores, "the compute warps fold Q rows into 8-bit tiles");
static_assert(!kStoredV || (kStoredKScores && kKvQuant == 2 && kBlockN == 128), "fp8 P.V: one 128-byte row of keys");

// Four values of P (times 2^kPExponent, at most 2^8) -> their e4m3 hi and lo bytes, the first in the lowest byte. The
// residual is taken in fp16 (11 bits: exact for the 4 of hi plus the 4 lo keeps), a pair at a time.
SWAJIT_DEVICE void split_e4m3x4(float a, float b, float c, float d, u32& hi, u32& lo) {
  asm("{\n .reg .b32 x0, x1, h0, h1, r0, r1;\n .reg .b16 e0, e1, l0, l1;\n"
      " cvt.rn.f16x2.f32 x0, %3, %2;\n cvt.rn.f16x2.f32 x1, %5, %4;\n"
      " cvt.rn.satfinite.e4m3x2.f16x2 e0, x0;\n cvt.rn.satfinite.e4m3x2.f16x2 e1, x1;\n"
      " cvt.rn.f16x2.e4m3x2 h0, e0;\n cvt.rn.f16x2.e4m3x2 h1, e1;\n"
      " sub.rn.f16x2 r0, x0, h0;\n sub.rn.f16x2 r1, x1, h1;\n"
      " cvt.rn.satfinite.e4m3x2.f16x2 l0, r0;\n cvt.rn.satfinite.e4m3x2.f16x2 l1, r1;\n"
      " mov.b32 %0, {e0, e1};\n mov.b32 %1, {l0, l1};\n}"
      : "=r"(hi), "=r"(lo) : "f"(a), "f"(b), "f"(c), "f"(d));
}

// P of one tile as the A operands of the P . V wgmmas: one per 16 tokens (16-bit), or kStoredV the hi and lo
// operands of each 32 tokens (packed[2 step] and packed[2 step + 1]: as many registers).
typedef u32 PackedProbabilities[kBlockN / 16][4];
SWAJIT_DEVICE void pack_probabilities(const float (&p)[kScoreFrags][4], PackedProbabilities& packed) {
  if constexpr (kStoredV) {
#pragma unroll
    for (int step = 0; step < kBlockN / 32; ++step) {
      u32(&hi)[4] = packed[2 * step];
      u32(&lo)[4] = packed[2 * step + 1];
#pragma unroll
      for (int r = 0; r < 4; ++r) {  // register r: row half r % 2, fragments 4 step + 2 (r / 2) and the next
        const int f = 4 * step + 2 * (r / 2), c = 2 * (r % 2);
        split_e4m3x4(p[f][c], p[f][c + 1], p[f + 1][c], p[f + 1][c + 1], hi[r], lo[r]);
      }
    }
    return;
  }
#pragma unroll
  for (int step = 0; step < kBlockN / 16; ++step) probabilities_fragment<kScoreFrags, MmaElem>(p, step, packed[step]);
}

// Issues (and commits) O[64 x kHeadDim] of this warpgroup's rows += P . V (`accumulate` false: O = P . V, whatever
// O held).
template <int kWarpMTiles>  // always 1 when kWgmma; a template so other configs need not match it
SWAJIT_DEVICE void issue_warpgroup_pv(WarpState<kWarpMTiles>& st, PackedProbabilities& p, u32 v_tile,
                                      bool accumulate = true) {
  if constexpr (kStoredV) {  // hi's chain, then lo's, into the same accumulators
    constexpr u32 kStepBytes = 32;  // k32 per 8-bit wgmma
    const u64 v_desc = wgmma_descriptor(v_tile, kStepBytes, kWgmmaGroupBytes);
    wgmma_fence();
#pragma unroll
    for (int part = 0; part < 2; ++part)
#pragma unroll
      for (int step = 0; step < kBlockN / 32; ++step)
        wgmma_pv_e4m3(st.out[0], p[2 * step + part], descriptor_plus(v_desc, step * kStepBytes),
                      part > 0 || step > 0 || accumulate);
    wgmma_commit();
    return;
  }
  const u64 v_desc = wgmma_descriptor(v_tile, kBlockN * kWgmmaRowBytes, kWgmmaGroupBytes);
  wgmma_fence();
#pragma unroll
  for (int step = 0; step < kBlockN / 16; ++step)
    wgmma_pv(st.out[0], p[step], descriptor_plus(v_desc, step * 16 * kWgmmaRowBytes), step > 0 || accumulate);
  wgmma_commit();
}

// ---- epilogue --------------------------------------------------------------------------------------------------------
// The warp's rows, normalized (and for 8-bit K/V times the V scale), straight from the accumulators: `store(row, f,
// pair)` takes each lane's packed pair of columns f * 8 + 2 (lane % 4) (+1) of row `row` (of the item's rows, below
// `rows`). `zeros`: an item that saw no tile writes zeros whatever the accumulators hold.
template <class Store>
SWAJIT_DEVICE void emit_warp_output(const PrefillParams& P, const WarpState<kMTiles>& st, int rows, int warp, int lane,
                                    int q_head, bool zeros, Store&& store) {
  const float sink = kSinkLogits ? P.sink_logits[q_head * P.sink_logits_stride] : 0.f;
  const int kv_head = kv_head_of(P, q_head);
  const auto v_scale = [&](int channel) { return kKvQuant ? v_scale_at(P, kv_head, channel) : 1.f; };
#pragma unroll
  for (int m = 0; m < kMTiles; ++m)
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int row = warp * kWarpRows + m * 16 + lane / 4 + h * 8;
      const float sum = quad_sum(st.row_sum[m][h]);  // every lane takes part in the shuffle
      if (row >= rows) continue;
      const float reference = st.row_max[m][h] == SWAJIT_NEG_INF ? 0.f : st.row_max[m][h] - kPExponent;
      const float factor = row_normalizer(sink, reference, sum);
#pragma unroll
      for (int f = 0; f < kOutFrags; ++f) {
        const int channel = f * 8 + 2 * (lane % 4);
        const float lo = zeros ? 0.f : st.out[m][f][2 * h] * factor * v_scale(channel);
        const float hi = zeros ? 0.f : st.out[m][f][2 * h + 1] * factor * v_scale(channel + 1);
        store(row, f, pack2(lo, hi, Elem()));
      }
    }
}

// The warp's rows into the output (first_row: the item's first row of q / out).
SWAJIT_DEVICE void write_warp_output(const PrefillParams& P, const WarpState<kMTiles>& st, int first_row, int rows,
                                     int warp, int lane, int q_head, bool zeros = false) {
  u16* out = static_cast<u16*>(P.out) + first_row * P.out_stride_token + q_head * P.out_stride_head + 2 * (lane % 4);
  emit_warp_output(P, st, rows, warp, lane, q_head, zeros, [&](int row, int f, u32 pair) {
    *reinterpret_cast<u32*>(out + row * P.out_stride_token + f * 8) = pair;
  });
}

// ---- the block's work ------------------------------------------------------------------------------------------------
// What every warp of a block knows about its query tile and the K/V tiles it visits.
struct BlockWork {
  Sequence seq;
  TileRanges ranges;
  int b, q_head, kv_head, row0, rows, p_min, p_max, tile_count;
  int item, first_tile;  // the block's count of items and of K/V tiles before this item (persistent; else 0)
  bool zero_tiles;       // kProducerScans: the sequence has a page out of range, its tiles are loaded as zeros
  const int* block_table_row;
  u32 q_smem, k_smem, v_smem;
  // The pipeline's count of tile t of this item: its stage and its barriers' phase.
  SWAJIT_MEMBER int slot(int t) const { return first_tile + t; }
  SWAJIT_MEMBER u32 k_tile(int t) const { return k_smem + (slot(t) % kStages) * kKTileBytes; }
  SWAJIT_MEMBER u32 v_tile(int t) const { return v_smem + (slot(t) % kVStages) * kTileBytes; }
  // 8-bit K/V (warp specialized): the staging slot of tile t's stored K (V: `values`) tile, after the V stages.
  SWAJIT_MEMBER u32 staged_tile(int t, bool values) const {
    return v_smem + kVStages * kTileBytes + staging_slot(values, slot(t)) * kStoredTileBytes;
  }
  // kF16Mma: producer warp `warp`'s maximum of |q * k_scale|, and the factor the item's scores take (its Q buffer's).
  SWAJIT_MEMBER u32 q_maximum(int warp) const {
    return v_smem + kVStages * kTileBytes + kStagedTiles * 2 * kStoredTileBytes + 4 * warp;
  }
  SWAJIT_MEMBER u32 score_factor() const { return q_maximum(kProducerThreads / 32 + item % kQBuffers); }
  // kStoredKScores: the factor row `row` of the item's scores take (its Q buffer's; fold_k_scale_into_8bit_q_rows).
  SWAJIT_MEMBER u32 row_factor(int row) const {
    return q_maximum(kProducerThreads / 32 + kQBuffers + (item % kQBuffers) * kBlockM + row);
  }
};

// Threads that work through the items together: the block, or one role of a warp-specialized block (its own named
// barrier: 0 is the block's, 1 and 2 the ping-pong turns).
struct ThreadGroup {
  int thread, threads, barrier;
  bool scans_pages = true;  // a paged sequence's block_table scan (kTma: the producer's alone, kProducerScans)
};
// kTma over a paged cache: only the producer scans a sequence's pages. A sequence with a page out of range keeps its
// tiles, and the producer loads them as zeros (every box from page P.num_pages, past the cache: the TMA engine reads
// zeros), so the consumers compute its rows as zeros (scores 0, P.V = 0) without the scan: its registers and
// barrier in the consumers' item loop made the paged default spill (session 7 run B3: 116-132 bytes).
constexpr bool kProducerScans = kTma && !kContiguousKv;
constexpr int kProducerBarrier = 3, kConsumerBarrier = 4;
constexpr int kConsumerZeroBarrier = 5;  // 5 + g: consumer warpgroup g alone (publish_to_warpgroup)

// Consumer warpgroup `warpgroup`'s generic-proxy stores to shared memory, ordered for the async proxy (its wgmmas,
// the TMA engine) and seen by all four of its warps once each has passed this.
SWAJIT_DEVICE void publish_to_warpgroup(int warpgroup) {
  fence_shared_for_async_proxy();
  __syncwarp();  // bar.sync is .aligned
  asm volatile("bar.sync %0, %1;" ::"r"(kConsumerZeroBarrier + warpgroup), "n"(kWarpgroupThreads) : "memory");
}

// Tile t's K and V into its stage.
SWAJIT_DEVICE void load_tile(const PrefillParams& P, const BlockWork& w, int t, int loader) {
  load_kv_tile(P, w.seq, w.block_table_row, w.k_tile(t), w.v_tile(t), w.b, w.kv_head, w.ranges.tile_begin(t),
               w.ranges.tile_end(t), loader);
}

SWAJIT_DEVICE float ld_shared_f32(u32 addr) {
  float v;
  asm volatile("ld.shared.f32 %0, [%1];" : "=f"(v) : "r"(addr) : "memory");
  return v;
}
SWAJIT_DEVICE int ld_shared_s32(u32 addr) {
  int v;
  asm volatile("ld.shared.s32 %0, [%1];" : "=r"(v) : "r"(addr) : "memory");
  return v;
}
SWAJIT_DEVICE void st_shared_u32(u32 addr, u32 v) { asm volatile("st.shared.u32 [%0], %1;" ::"r"(addr), "r"(v) : "memory"); }
SWAJIT_DEVICE void st_shared_f32(u32 addr, float v) { asm volatile("st.shared.f32 [%0], %1;" ::"r"(addr), "f"(v) : "memory"); }

// The softmax scale of the item's scores: P.scale_log2, times (kF16Mma) the inverse of the power of 2 its Q took.
SWAJIT_DEVICE float score_scale_log2(const PrefillParams& P, const BlockWork& w) {
  return kF16Mma ? P.scale_log2 * ld_shared_f32(w.score_factor()) : P.scale_log2;
}
// The softmax scale of each row half of compute warp `warp`'s rows: kStoredKScores folds a power of 2 into each Q row
// of its own (row_factor), the other paths one per item.
SWAJIT_DEVICE void row_scales_log2(const PrefillParams& P, const BlockWork& w, int warp, int lane,
                                   float (&scale)[kMTiles][2]) {
  const float item_scale = kStoredKScores ? 0.f : score_scale_log2(P, w);  // (read once)
#pragma unroll
  for (int m = 0; m < kMTiles; ++m)
#pragma unroll
    for (int h = 0; h < 2; ++h)
      scale[m][h] = kStoredKScores ? P.scale_log2 * ld_shared_f32(w.row_factor(warp * kWarpRows + m * 16 + lane / 4 + 8 * h))
                                   : item_scale;
}

// The softmax of tile t for compute warp `warp`: whole tiles every query sees skip the mask arithmetic.
SWAJIT_DEVICE void tile_softmax(const PrefillParams& P, const BlockWork& w, WarpState<kMTiles>& st,
                                float (&scores)[kMTiles][kScoreFrags][4], int t, int warp, int lane,
                                float (&rescale)[kMTiles][2]) {
  if constexpr (kIntegerScores)  // the s32 sums (int8 stored-K scores) as floats
#pragma unroll
    for (int m = 0; m < kMTiles; ++m)
#pragma unroll
      for (int f = 0; f < kScoreFrags; ++f)
#pragma unroll
        for (int c = 0; c < 4; ++c) scores[m][f][c] = float(__float_as_int(scores[m][f][c]));
  const int tile_begin = w.ranges.tile_begin(t), tile_end = w.ranges.tile_end(t);
  float scale[kMTiles][2];
  row_scales_log2(P, w, warp, lane, scale);
  if (tile_fully_visible(tile_begin, tile_end, w.p_min, w.p_max, P.local_window, P.global_window)) {
    online_softmax<false, 2, kSoftmaxChains, kPExponent>(st, scores, scale, lane, AllVisible(), rescale);
  } else {
    const int warp_p = w.p_min + warp * kWarpRows;  // position of the warp's row 0
    const auto row_columns = [&](int r) {
      return visible_columns(warp_p + r, tile_begin, tile_end, P.local_window, P.global_window);
    };
    online_softmax<true, 2, kSoftmaxChains, kPExponent>(st, scores, scale, lane, row_columns, rescale);
  }
}

// ---- every warp loads and computes (kWarpSpecialize == 0) ------------------------------------------------------------
SWAJIT_DEVICE void load_and_compute(const PrefillParams& P, const BlockWork& w, int warp, int lane) {
  load_q_tile(P, w.q_smem, w.seq.q_begin + w.row0, w.rows, w.q_head, threadIdx.x);
  cp_async_commit();
#pragma unroll
  for (int s = 0; s < kLoadAhead; ++s) {
    if (s < w.tile_count) load_tile(P, w, s, threadIdx.x);
    cp_async_commit();
  }

  WarpState<kMTiles> st;
  st.clear();
  QFragments<kMTiles> q_frag;
  cp_async_wait<kLoadAhead>();  // the Q group is complete
  if constexpr (kKvQuant != 0) fold_k_scale_into_q_tile<QTile, kBlockM>(P, w.q_smem, w.kv_head);  // this thread's chunks
  if constexpr (kWgmma) fence_shared_for_async_proxy();
  __syncthreads();
  if constexpr (!kWgmma) q_frag.load(w.q_smem, warp * kMTiles, lane);
  const u32 widened_smem = w.v_smem + kVStages * kTileBytes;  // 8-bit K/V only

  for (int t = 0; t < w.tile_count; ++t) {
    // Wait for tile t's loads, then refill the stage tile t - 1 used with tile t + kLoadAhead.
    cp_async_wait<kLoadAhead - 1>();  // tile t has landed
    if constexpr (kWgmma) fence_shared_for_async_proxy();
    __syncthreads();  // ... for every thread; and the stage refilled below is no longer read by anyone
    if (t + kLoadAhead < w.tile_count) load_tile(P, w, t + kLoadAhead, threadIdx.x);
    cp_async_commit();

    u32 k_tile = w.k_tile(t), v_tile = w.v_tile(t);
    widen_stage(widened_smem, k_tile, v_tile);  // 8-bit K/V only
    float scores[kMTiles][kScoreFrags][4];
    float rescale[kMTiles][2];
    if constexpr (kWgmma) {
      issue_warpgroup_scores(scores[0], w.q_smem, k_tile, warp / 4);
      wgmma_wait<0>();
    } else {
      tile_scores(scores, q_frag, w.q_smem, k_tile, warp * kMTiles, 0, lane);
    }
    tile_softmax(P, w, st, scores, t, warp, lane, rescale);
    rescale_output(st, rescale);
    if constexpr (kWgmma) {
      PackedProbabilities p;
      pack_probabilities(scores[0], p);
      issue_warpgroup_pv(st, p, v_tile);
      wgmma_wait<0>();
    } else {
      accumulate_pv(st, scores, v_tile, 0, lane);
    }
  }
  cp_async_wait<0>();
  write_warp_output(P, st, w.seq.q_begin + w.row0, w.rows, warp, lane, w.q_head);
}

// ---- warp specialized (kWarpSpecialize > 0) ---------------------------------------------------------------------------
// The mbarriers after the K/V stages: full_k / full_v[stage] (the producer's copies of the stage's K / V tile landed),
// empty_k / empty_v[stage] (every consumer warp is done reading it), q_full. Tile t uses its stage for the
// (t / kStages)-th time: that phase's parity. K and V have their own barriers so a stage's K is refilled as soon as
// its Q.K^T is done, while its V may still be read by P.V: with one barrier a stage (K and V) came free only after
// P.V, and at 2 stages the overlap variants (S(t+1) issued before the P.V of t) waited for every load uncovered.
// Arrivals that fill a stage: one thread issues a tile's boxes (kTma), each widening warp's lane 0 (8-bit on TMA:
// widening_warps(values) per tensor), else every producer thread's copies.
// 8-bit K/V on TMA: the producer's warps that widen K, then those that widen V (kStoredKScores: K is not widened, its
// one warp moves K's stored tiles into the stages, and the other three widen V).
constexpr int kKWideningWarps = kStoredKScores ? 1 : 2, kVWideningWarps = kProducerThreads / 32 - kKWideningWarps;
SWAJIT_DEVICE constexpr int widening_warps(bool values) { return values ? kVWideningWarps : kKWideningWarps; }
constexpr int kFullArrivals = kTma ? (kKvQuant != 0 ? kKWideningWarps : 1) : kProducerThreads;
struct Pipeline {
  u32 base;
  static constexpr int kStageBarriers = 2 * kStages + 2 * kVStages;
  SWAJIT_MEMBER u32 full_k(int t) const { return base + 8 * (t % kStages); }
  SWAJIT_MEMBER u32 full_v(int t) const { return base + 8 * (kStages + t % kVStages); }
  SWAJIT_MEMBER u32 empty_k(int t) const { return base + 8 * (kStages + kVStages + t % kStages); }
  SWAJIT_MEMBER u32 empty_v(int t) const { return base + 8 * (2 * kStages + kVStages + t % kVStages); }
  // The Q buffer of the block's item-th item: landed (q_full), and read by every consumer warp's last Q.K^T (q_empty).
  SWAJIT_MEMBER u32 q_full(int item) const { return base + 8 * (kStageBarriers + item % kQBuffers); }
  SWAJIT_MEMBER u32 q_empty(int item) const { return base + 8 * (kStageBarriers + kQBuffers + item % kQBuffers); }
  SWAJIT_MEMBER static u32 parity(int t) { return (t / kStages) & 1; }  // K's stages (V's: v_parity)
  SWAJIT_MEMBER static u32 v_parity(int t) { return (t / kVStages) & 1; }
  SWAJIT_MEMBER static u32 q_parity(int item) { return (item / kQBuffers) & 1; }
  // 8-bit K/V on TMA: tile t's stored K (V: `values`) bytes landed in its staging slot (staged), and the widening warp
  // is done reading them (staging_free).
  SWAJIT_MEMBER u32 staged_in(int slot) const { return base + 8 * (kStageBarriers + 2 * kQBuffers + slot); }
  SWAJIT_MEMBER u32 staging_free_in(int slot) const { return staged_in(2 * kStagedTiles + slot); }
  SWAJIT_MEMBER u32 staged(bool values, int t) const { return staged_in(staging_slot(values, t)); }
  SWAJIT_MEMBER u32 staging_free(bool values, int t) const { return staging_free_in(staging_slot(values, t)); }
  SWAJIT_MEMBER static u32 staged_parity(bool values, int t) { return (t / staging_slots(values)) & 1; }
  // kDynamicItems: the item the producer claimed for the block's item-th item (its Q buffer's slot; item_count or
  // more: none left)
  SWAJIT_MEMBER u32 item_slot(int item) const {
    constexpr int kStagingBarriers = kTma && kKvQuant != 0 ? 4 * kStagedTiles : 0;
    return base + 8 * (kStageBarriers + 2 * kQBuffers + kStagingBarriers + item % kQBuffers);
  }
  SWAJIT_MEMBER void wait_staging_free(bool values, int t) const {
    if (t >= staging_slots(values)) mbarrier_wait(staging_free(values, t), staged_parity(values, t - staging_slots(values)));
  }

  SWAJIT_MEMBER void init() const {
    for (int s = 0; s < kStages; ++s) {
      mbarrier_init(full_k(s), kFullArrivals);
      mbarrier_init(empty_k(s), kWarps);
    }
    for (int s = 0; s < kVStages; ++s) {
      mbarrier_init(full_v(s), kTma && kKvQuant != 0 ? kVWideningWarps : kFullArrivals);
      mbarrier_init(empty_v(s), kWarps);
    }
    for (int b = 0; b < kQBuffers; ++b) {
      mbarrier_init(q_full(b), kProducerThreads + (kDynamicItems ? 1 : 0));  // + the claimed item's publication
      mbarrier_init(q_empty(b), kWarps);
    }
    if constexpr (kTma && kKvQuant != 0)
      for (int slot = 0; slot < 2 * kStagedTiles; ++slot) {
        const bool values = kStoredKScores || slot % 2 == 1;  // the tensor the slot stages (staging_slot)
        mbarrier_init(staged_in(slot), 1);                             // the TMA warp's lane 0, with the tile's bytes
        mbarrier_init(staging_free_in(slot), widening_warps(values));  // each widening warp's lane 0
      }
  }
  // Producer: before item `item`'s Q goes into its buffer, the item kQBuffers before it is done with it.
  SWAJIT_MEMBER void wait_q_empty(int item) const {
    if (item >= kQBuffers) mbarrier_wait(q_empty(item), q_parity(item - kQBuffers));
  }
  // Producer: before tile t's K / V go into their stage, tile t - kStages (V: t - kVStages) is done with it.
  SWAJIT_MEMBER void wait_empty_k(int t) const {
    if (t >= kStages) mbarrier_wait(empty_k(t), parity(t - kStages));
  }
  SWAJIT_MEMBER void wait_empty_v(int t) const {
    if (t >= kVStages) mbarrier_wait(empty_v(t), v_parity(t - kVStages));
  }
  // Consumers: tile t's K / V bytes have landed and are ordered for the tensor cores (the async proxy).
  SWAJIT_MEMBER void wait_k(int t) const {
    mbarrier_wait(full_k(t), parity(t));
    if constexpr (!kTma) fence_shared_for_async_proxy();  // TMA writes through the async proxy already
  }
  SWAJIT_MEMBER void wait_v(int t) const {
    mbarrier_wait(full_v(t), v_parity(t));
    if constexpr (!kTma) fence_shared_for_async_proxy();
  }
  // Consumers, after their wgmmas reading tile t's K / V have completed: one arrival per warp.
  SWAJIT_MEMBER static void release(u32 barrier, int lane) {
    __syncwarp();
    if (lane == 0) mbarrier_arrive(barrier);
  }
  SWAJIT_MEMBER void release_k(int t, int lane) const { release(empty_k(t), lane); }
  SWAJIT_MEMBER void release_v(int t, int lane) const { release(empty_v(t), lane); }
  SWAJIT_MEMBER void release_q(int item, int lane) const { release(q_empty(item), lane); }
};

// Ping-pong (kWarpSpecialize == 3): consumer warpgroup g issues its MMAs only in its turn, named barrier 1 + g,
// which the other warpgroup opens after issuing its own. Warpgroup 1 opens the first turn for warpgroup 0 and skips
// opening after its last, so every barrier sees as many openings as waits.
struct MmaTurns {
  int warpgroup;
  SWAJIT_MEMBER static void named_sync(int id) { asm volatile("bar.sync %0, %1;" ::"r"(id), "n"(2 * kWarpgroupThreads) : "memory"); }
  SWAJIT_MEMBER static void named_arrive(int id) { asm volatile("bar.arrive %0, %1;" ::"r"(id), "n"(2 * kWarpgroupThreads) : "memory"); }
  SWAJIT_MEMBER void start(int tile_count) const {
    if (kWarpSpecialize == 3 && warpgroup == 1 && tile_count > 0) named_arrive(1);
  }
  SWAJIT_MEMBER void take() const {
    if (kWarpSpecialize == 3) named_sync(1 + warpgroup);
  }
  SWAJIT_MEMBER void hand_over(bool last) const {
    if (kWarpSpecialize == 3 && !(last && warpgroup == 1)) named_arrive(2 - warpgroup);
  }
};

// ---- TMA producer (kTma) --------------------------------------------------------------------------------------------
// Tiles of a paged cache start at multiples of kBlockN (window_mask.h tiles_on_block_grid), so each is whole boxes.
SWAJIT_DEVICE TileRanges tiles_on_box_grid(const TileRanges& r) { return kContiguousKv ? r : tiles_on_block_grid(r); }

// Tokens whose K/V the caller has written: the visible ranges (as the row gathers read them), the last one up to
// kv_len. A box inside one of them holds no uninitialized V.
struct WrittenTokens {
  TileRanges visible;
  int kv_len;
  SWAJIT_MEMBER int end(int range) const { return range == 1 || visible.tiles[1] == 0 ? kv_len : visible.end[0]; }
  SWAJIT_MEMBER bool contains(int j) const {
    return (j >= visible.begin[0] && j < end(0) && visible.tiles[0] > 0) ||
           (j >= visible.begin[1] && j < end(1) && visible.tiles[1] > 0);
  }
  SWAJIT_MEMBER bool contains_all(int begin, int end_token) const {
#pragma unroll
    for (int r = 0; r < 2; ++r)
      if (visible.tiles[r] > 0 && begin >= visible.begin[r] && end_token <= end(r)) return true;
    return false;
  }
};
// The written tokens of item w's sequence, for its query rows.
SWAJIT_DEVICE WrittenTokens written_tokens(const PrefillParams& P, const BlockWork& w) {
  return WrittenTokens{visible_tile_ranges(w.p_min, w.p_max, w.seq.kv_len, P.local_window, P.global_window), w.seq.kv_len};
}

// The cache page of the tile's box `box` (lane `box` of the producer warp looks up its own box's page: the lookups of
// a tile are one load, not one per page), and whether the tile's pages follow each other in the cache. A box past the
// sequence or a page never filled in reads page P.num_pages: a coordinate past the cache, which the TMA engine reads
// as zeros (masked tokens only). `run`: P.tma_page_runs allows the tile to move as one box per 64 channels of the run
// maps (the same on every lane).
static_assert(!kTma || kBoxesPerTile <= 32, "one producer lane per box");
struct TilePage {
  int page;
  bool run;
};
SWAJIT_DEVICE TilePage tile_page(const PrefillParams& P, const BlockWork& w, int box_begin, int box) {
  TilePage pages{P.num_pages, false};
  if constexpr (!kContiguousKv) {
    constexpr int kTokensPerPage = kContiguousKv ? 1 : kPageSize;  // (this branch is compiled for both)
    const int token = box_begin + box * kBoxRows, logical_page = token / kTokensPerPage;
    if (box < kBoxesPerTile && token < w.seq.kv_len && logical_page < P.max_pages_per_seq && !w.zero_tiles) {
      const int entry = w.block_table_row[logical_page * P.block_table_stride_page];
      if (entry >= 0 && entry < P.num_pages) pages.page = entry;
    }
    if constexpr (kBoxesPerTile > 1) {
      const int first = __shfl_sync(0xffffffffu, pages.page, 0);
      const bool in_run = box >= kBoxesPerTile || (pages.page == first + box && pages.page < P.num_pages);
      pages.run = P.tma_page_runs != 0 && __all_sync(0xffffffffu, in_run);
      pages.page = pages.run ? first : pages.page;
    }
  }
  return pages;
}

// Lane `box`'s part of the boxes of tile [box_begin, box_begin + kBlockN) of one tensor (its map, and its run map for
// paged runs) into the stage at `tile`: its box's 64-channel columns, or lane 0 the run's.
SWAJIT_DEVICE void issue_tile_boxes(const PrefillParams& P, const BlockWork& w, const TilePage& pages,
                                    const PrefillTensorMap& map, const PrefillTensorMap& run_map, u32 tile,
                                    int box_begin, int box, u32 barrier) {
  constexpr int kColumns = kHeadDim / kBoxChannels;
  if (!kContiguousKv && pages.run) {  // one box of kBlockN tokens from the first page's first row (NHD only)
    constexpr int kTokensPerPage = kContiguousKv ? 1 : kPageSize;  // (this branch is compiled for both)
    if (box != 0) return;
#pragma unroll
    for (int column = 0; column < kColumns; ++column)
      tma_load_4d(tile + column * kBlockN * kWgmmaRowBytes, &run_map, column * kBoxChannels, w.kv_head,
                  pages.page * kTokensPerPage, 0, barrier);
    return;
  }
  if (box >= kBoxesPerTile) return;
  const int token = box_begin + box * kBoxRows;
  int page = 0, row = w.seq.kv_begin + token;  // contiguous: one "page" of total_kv rows
  if constexpr (!kContiguousKv) {
    constexpr int kTokensPerPage = kContiguousKv ? 1 : kPageSize;  // (this branch is compiled for both)
    page = pages.page;
    row = token % kTokensPerPage;
  }
#pragma unroll
  for (int column = 0; column < kColumns; ++column)
    tma_load_4d(tile + column * kBlockN * kWgmmaRowBytes + box * kBoxRows * kWgmmaRowBytes, &map,
                column * kBoxChannels, P.tma_tokens_inside_heads ? row : w.kv_head,
                P.tma_tokens_inside_heads ? w.kv_head : row, page, barrier);
}

// The V rows of a landed tile [box_begin, box_begin + kBlockN) outside the written tokens -> zeros, by one consumer
// warpgroup before its P.V reads them (their P is 0, but the box read them from the cache as they were, and
// 0 * NaN = NaN). Both consumer warpgroups store the same zeros; each orders its own stores before its wgmmas. A
// 16-byte chunk is zeroed whole, so the 128-byte swizzle (which permutes chunks within a row) does not matter.
SWAJIT_DEVICE void zero_unwritten_v_rows(const WrittenTokens& written, u32 v_tile, int box_begin, int warpgroup,
                                          int thread_in_warpgroup) {
  constexpr int kRowChunks = kWgmmaRowBytes / 16, kColumnBlocks = kHeadDim / (kWgmmaRowBytes / 2);  // 16-bit tile
  for (int i = thread_in_warpgroup; i < kBlockN * kColumnBlocks * kRowChunks; i += kWarpgroupThreads) {
    const int row = i / (kColumnBlocks * kRowChunks), block = i / kRowChunks % kColumnBlocks, chunk = i % kRowChunks;
    if (!written.contains(box_begin + row))
      st_shared_16(v_tile + (block * kBlockN + row) * kWgmmaRowBytes + chunk * 16, make_uint4(0, 0, 0, 0));
  }
  publish_to_warpgroup(warpgroup);  // the zeros, before this warpgroup's wgmmas read the tile
}

// The producer's first warp moves the K tiles, its second warp the V tiles (`values`), each against its own barriers:
// neither waits for the other's stage to come free, and their page lookups and box issues (a paged tile of pages out
// of order is one box per page and 64 channels, lane b issuing box b) run side by side. The whole warp waits
// together, so no lane spins ahead into the next item while another still works in this one (a warp whose lanes wait
// on barriers apart can stall, persistent grids hung on the H200). Lane 0 posts the tile's bytes before any box is
// issued and arrives after all are, so the phase cannot complete early.
SWAJIT_DEVICE void produce_with_tma(const PrefillParams& P, const BlockWork& w, const Pipeline& pipe, bool values,
                                    int lane) {
  const PrefillTensorMap& map = values ? P.v_map : P.k_map;
  const PrefillTensorMap& run_map = values ? P.v_run_map : P.k_run_map;
  for (int t = 0; t < w.tile_count; ++t) {
    const int box_begin = w.ranges.tile_begin(t);
    const TilePage pages = tile_page(P, w, box_begin, lane);  // before the wait: the lookups overlap it
    const int slot = w.slot(t);
    if (values)
      pipe.wait_empty_v(slot);
    else
      pipe.wait_empty_k(slot);
    const u32 full = values ? pipe.full_v(slot) : pipe.full_k(slot);
    if (lane == 0) mbarrier_expect_tx(full, kTileBytes);
    __syncwarp();
    issue_tile_boxes(P, w, pages, map, run_map, values ? w.v_tile(t) : w.k_tile(t), box_begin, lane, full);
    __syncwarp();
    if (lane == 0) mbarrier_arrive(full);
  }
}

// ---- 8-bit K/V producer (kKvQuant, warp specialized) ----------------------------------------------------------------
SWAJIT_DEVICE void producer_sync() {  // the producer warpgroup alone
  asm volatile("bar.sync %0, %1;" ::"n"(kProducerBarrier), "n"(kProducerThreads) : "memory");
}

// Producer thread `loader`'s chunk i of the item's Q tile (landed as bf16) times the K scale, as floats.
SWAJIT_DEVICE void q_chunk_times_k_scale(const PrefillParams& P, const BlockWork& w, int i, float (&v)[8]) {
  unpack8(ld_shared_16(w.q_smem + QTile::offset_bytes(i / kChunks, i % kChunks)), v, Elem());
#pragma unroll
  for (int e = 0; e < 8; ++e) v[e] *= k_scale_at(P, w.kv_head, (i % kChunks) * 8 + e);
}

// The power of 2 (its exponent) that brings `maximum` (>= 0) into [2^kTargetExponent, 2^(kTargetExponent + 1)).
template <int kTargetExponent>
SWAJIT_DEVICE int power_of_two_shift(float maximum) {
  constexpr int kMaxShift = 126;  // 2^(+-126): normal floats
  const int exponent = int((__float_as_uint(maximum) >> 23) & 0xffu) - 127;  // max in [2^exponent, 2^(exponent + 1))
  return maximum > 0.f ? max(-kMaxShift, min(kMaxShift, kTargetExponent - exponent)) : 0;
}

// kF16Mma: the power of 2 that brings the item's max |q * k_scale| into [2^kTargetExponent, 2^(kTargetExponent + 1)),
// as the multiplier Q takes; the scores take its inverse back in the softmax scale (score_scale_log2, written to
// the item's score factor). The whole producer warpgroup takes part (two barriers: the maxima are read by all before
// the next item's overwrite them; the caller's second barrier ends the reads of Q before it is rewritten).
template <int kTargetExponent>
SWAJIT_DEVICE float item_q_multiplier(const PrefillParams& P, const BlockWork& w, int loader) {
  float maximum = 0.f;
  for (int i = loader; i < kBlockM * kChunks; i += kProducerThreads) {
    float v[8];
    q_chunk_times_k_scale(P, w, i, v);
#pragma unroll
    for (int e = 0; e < 8; ++e) maximum = fmaxf(maximum, fabsf(v[e]));
  }
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) maximum = fmaxf(maximum, __shfl_xor_sync(0xffffffffu, maximum, offset));
  if (loader % 32 == 0) st_shared_f32(w.q_maximum(loader / 32), maximum);
  producer_sync();
  for (int warp = 0; warp < kProducerThreads / 32; ++warp) maximum = fmaxf(maximum, ld_shared_f32(w.q_maximum(warp)));
  const int shift = power_of_two_shift<kTargetExponent>(maximum);
  if (loader == 0) st_shared_f32(w.score_factor(), __uint_as_float(u32(127 - shift) << 23));
  return __uint_as_float(u32(127 + shift) << 23);
}

// kF16Mma: producer thread `loader`'s chunks of the item's Q tile (landed as bf16) -> q * k_scale * 2^shift in fp16,
// max |q * k_scale| * 2^shift in [2^14, 2^15) (fp16's largest finite value is 65504): no overflow, and small values
// keep fp16's precision.
SWAJIT_DEVICE void fold_k_scale_into_f16_q_tile(const PrefillParams& P, const BlockWork& w, int loader) {
  constexpr int kTargetExponent = 14;
  const float multiplier = item_q_multiplier<kTargetExponent>(P, w, loader);
  for (int i = loader; i < kBlockM * kChunks; i += kProducerThreads) {
    float v[8];
    q_chunk_times_k_scale(P, w, i, v);
#pragma unroll
    for (int e = 0; e < 8; ++e) v[e] *= multiplier;
    st_shared_16(w.q_smem + QTile::offset_bytes(i / kChunks, i % kChunks), pack8(v, fp16_tag()));
  }
  producer_sync();
}

// Four floats -> their e4m3 bytes (round to nearest, saturating; the first in the lowest byte).
SWAJIT_DEVICE u32 e4m3x4(float a, float b, float c, float d) {
  u32 r;
  asm("{\n .reg .b16 lo, hi;\n cvt.rn.satfinite.e4m3x2.f32 lo, %2, %1;\n cvt.rn.satfinite.e4m3x2.f32 hi, %4, %3;\n"
      " mov.b32 %0, {lo, hi};\n}" : "=r"(r) : "f"(a), "f"(b), "f"(c), "f"(d));
  return r;
}
// Byte kByte of four e4m3 bytes as a float (exact: e4m3 -> fp16 -> fp32).
template <int kByte>
SWAJIT_DEVICE float e4m3_at(u32 word) {
  const u32 pair = widen_pair<kByte & 2>(word, fp8_e4m3_kv(), fp16_tag());  // bytes (kByte & 2) and the next, as fp16
  float v;
  if constexpr (kByte % 2 == 0)
    asm("{\n .reg .b16 lo, hi;\n mov.b32 {lo, hi}, %1;\n cvt.f32.f16 %0, lo;\n}" : "=f"(v) : "r"(pair));
  else
    asm("{\n .reg .b16 lo, hi;\n mov.b32 {lo, hi}, %1;\n cvt.f32.f16 %0, hi;\n}" : "=f"(v) : "r"(pair));
  return v;
}

// Four values x of Q (times the K scale and the item's power of 2) -> their 8-bit hi and lo parts, byte e from x[e].
// e4m3: hi = e4m3(x), lo = e4m3(x - hi) (about 8 mantissa bits together, bf16's precision); int8: x rounded to an
// integer, = 128 hi + lo with lo in [-64, 64).
SWAJIT_DEVICE void split_8bit(const float (&x)[4], u32& hi, u32& lo) {
  if constexpr (kIntegerScores) {
    hi = lo = 0;
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int value = __float2int_rn(x[e]);
      const int high = (value + (1 << (kLoBits - 1))) >> kLoBits;  // arithmetic shift: rounds to the nearest
      hi |= u32(high & 0xff) << (8 * e);
      lo |= u32((value - (high << kLoBits)) & 0xff) << (8 * e);
    }
  } else {
    hi = e4m3x4(x[0], x[1], x[2], x[3]);
    lo = e4m3x4(x[0] - e4m3_at<0>(hi), x[1] - e4m3_at<1>(hi), x[2] - e4m3_at<2>(hi), x[3] - e4m3_at<3>(hi));
  }
}

// kStoredKScores: rows [first_row, end_row) of the item's Q tile (landed as bf16) -> x = q * k_scale * 2^shift_r as
// two 8-bit tiles hi and lo (split_8bit), one power of 2 per row r (its inverse is the row's score factor,
// row_factor): max_r |x| in [2^7, 2^8) for e4m3 (its largest finite value is 448), in [2^12, 2^13) for int8 (hi within
// [-64, 64], and the s32 sums of 128 (hi . K) + lo . K under 2^28). Row r of hi and lo take the places of bf16 row r's
// two 64-column blocks. 16 lanes a row, a chunk each (`thread` of `threads`, a multiple of 32): they reduce the row's
// max by shuffles, read their chunks, sync the warp, and write them back as 8 bytes of hi and of lo, so rows need no
// barrier beyond the warp's. Who folds (kConsumerFold): the producer, each thread the chunks its own Q copies landed
// (load_q_tile's order: no barrier with the other producer warps), or each compute warp its own rows after q_full,
// which spares V's widening the pause at every item (session 15: 2-5% faster on the causal ramp's short items, 3%
// slower at seq 32768).
SWAJIT_DEVICE void fold_k_scale_into_8bit_q_rows(const PrefillParams& P, const BlockWork& w, int first_row, int end_row,
                                                 int thread, int threads) {
  constexpr int kTargetExponent = kIntegerScores ? 12 : 7;
  static_assert(!kStoredKScores || kChunks == 16, "a row's 16 chunks on one half warp");
  const int chunk = thread % kChunks;  // channels [8 chunk, 8 chunk + 8) of the thread's rows
  float k_scale[8];
#pragma unroll
  for (int e = 0; e < 8; ++e) k_scale[e] = k_scale_at(P, w.kv_head, 8 * chunk + e);
#pragma unroll 1
  for (int row = first_row + thread / kChunks; row < end_row; row += threads / kChunks) {
    float x[8];
    unpack8(ld_shared_16(w.q_smem + QTile::offset_bytes(row, chunk)), x, Elem());
    float maximum = 0.f;
#pragma unroll
    for (int e = 0; e < 8; ++e) {
      x[e] *= k_scale[e];
      maximum = fmaxf(maximum, fabsf(x[e]));
    }
#pragma unroll
    for (int offset = kChunks / 2; offset > 0; offset /= 2)  // within the row's half warp
      maximum = fmaxf(maximum, __shfl_xor_sync(0xffffffffu, maximum, offset));
    const int shift = power_of_two_shift<kTargetExponent>(maximum);
    const float multiplier = __uint_as_float(u32(127 + shift) << 23);
    if (chunk == 0) st_shared_f32(w.row_factor(row), __uint_as_float(u32(127 - shift) << 23));
    float (&quads)[2][4] = reinterpret_cast<float(&)[2][4]>(x);
#pragma unroll
    for (int e = 0; e < 8; ++e) quads[e / 4][e % 4] *= multiplier;
    uint2 hi, lo;
    split_8bit(quads[0], hi.x, lo.x);
    split_8bit(quads[1], hi.y, lo.y);
    __syncwarp();  // the warp's rows are read before any is overwritten
    const u32 position = row * kWgmmaRowBytes + (((chunk / 2) ^ (row % 8)) * 16) + 8 * (chunk % 2);  // 8-bit rows
    st_shared_8(w.q_smem + position, hi);
    st_shared_8(w.q_smem + kQ8TileBytes + position, lo);
  }
}

// Chunks `thread`, thread + threads, ... of the staged tile (as the TMA engine landed it: 128-byte swizzled rows of
// 128 channels, WgmmaTile's layout in bytes) -> the 16-bit stage tile (KvTile). Work index i is (row, chunk): by
// default i = row * kKvChunks + chunk (8 lanes read one row's 8 chunks: conflict-free, but store their 16 16-bit
// chunks into 4 bank groups twice each); kWidenRows: row = i % 8 + 8 (i / (8 kKvChunks)), chunk = i / 8 % kKvChunks
// (8 lanes on 8 rows of one chunk column: the swizzle spreads both the loads and the stores over all 8 bank
// groups). Unsigned with power-of-2 divisors: shifts and masks. One chunk at a time (kWidenAhead: the next one's load
// in flight meanwhile): within the producer's 56 registers the loop does not spill (loads of 2 or 4 chunks ahead did,
// ptxas 13); ncu (session 8 run B, fp8 default) found the widening warps' conversions waiting on the loads most.
SWAJIT_DEVICE void widen_staged_chunks(u32 staged, u32 widened, u32 thread, u32 threads) {
  constexpr u32 kRowGroup = 8;  // rows of one swizzle atom: chunk c of its rows sits in 8 distinct bank groups
  constexpr u32 kItems = kBlockN * kKvChunks;
  const auto row_of = [](u32 i) { return kWidenRows ? i % kRowGroup + kRowGroup * (i / (kRowGroup * kKvChunks)) : i / kKvChunks; };
  const auto chunk_of = [](u32 i) { return kWidenRows ? i / kRowGroup % kKvChunks : i % kKvChunks; };
  const auto load = [&](u32 i) { return ld_shared_16(staged + WgmmaTile<kBlockN>::offset_bytes(row_of(i), chunk_of(i))); };
  uint4 next = kWidenAhead && thread < kItems ? load(thread) : uint4{};  // kWidenAhead: the lane's next chunk
  for (u32 i = thread; i < kItems; i += threads) {
    uint4 raw;
    if constexpr (kWidenAhead) {
      raw = next;
      if (i + threads < kItems) next = load(i + threads);
    } else {
      raw = load(i);
    }
    const u32 row = row_of(i), chunk = chunk_of(i);
    st_shared_16(widened + KvTile::offset_bytes(row, 2 * chunk),
                 make_uint4(widen_pair<0>(raw.x, KvElem(), MmaElem()), widen_pair<2>(raw.x, KvElem(), MmaElem()),
                            widen_pair<0>(raw.y, KvElem(), MmaElem()), widen_pair<2>(raw.y, KvElem(), MmaElem())));
    st_shared_16(widened + KvTile::offset_bytes(row, 2 * chunk + 1),
                 make_uint4(widen_pair<0>(raw.z, KvElem(), MmaElem()), widen_pair<2>(raw.z, KvElem(), MmaElem()),
                            widen_pair<0>(raw.w, KvElem(), MmaElem()), widen_pair<2>(raw.w, KvElem(), MmaElem())));
  }
}

// kStoredV: the staged V tile (tokens [box_begin, box_begin + 128) as the TMA engine landed them, 128-byte swizzled
// rows of 128 channels) -> the transposed tile the 8-bit P.V reads: row n (channel n, 128-byte swizzled as well)
// holds at byte k the channel of key stored_v_key(k) (pack_probabilities). Keys outside the written tokens become
// zeros (their P is 0, but 0 * NaN = NaN). Lane c + 4 s of a warp takes the keys r, r + 1, r + 8, r + 9 (r = 16 s
// + 2 c: transposed bytes 16 s + 4 c .. + 3) and 16 channels at a time (chunk column j ^ (s % 2) of j = warp, warp
// + warps, ...): its four 16-byte loads of a column land in 8 distinct bank groups per quarter warp, and its 4-byte
// stores of one channel in 32 distinct banks, so neither conflicts. A 4 x 4 byte block transposes in 8 PRMTs.
SWAJIT_DEVICE u32 byte_permute(u32 a, u32 b, u32 selector) {
  u32 r;
  asm("prmt.b32 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(selector));
  return r;
}
SWAJIT_DEVICE void transpose_staged_v(u32 staged, u32 transposed, const WrittenTokens& written, int box_begin, u32 warp,
                                      u32 warps, u32 lane) {
  const u32 c = lane % 4, s = lane / 4, first_key = stored_v_key(16 * s + 4 * c);  // keys first_key + 0, 1, 8, 9
  const bool partial = !written.contains_all(box_begin, box_begin + kBlockN);  // the same on every lane
  bool keep[4] = {true, true, true, true};
  if (partial)
#pragma unroll
    for (int k = 0; k < 4; ++k) keep[k] = written.contains(box_begin + first_key + stored_v_key(k));
  // Swizzled addresses (WgmmaTile): row r's 16-byte chunk q sits at r * 128 + ((q ^ r % 8) << 4). Key first_key + k
  // has r % 8 = 2 c + k % 2; a transposed row (channel 16 chunk + m, m < 16) has r % 8 = m % 8, a constant once
  // unrolled, and the lane's byte offset 16 s + 4 c within it: XOR the constant into bits 4-6 (the tile is 1024-byte
  // aligned, so those bits of the row's base are zero) and add the row.
#pragma unroll 1
  for (u32 column = warp; column < kKvChunks; column += warps) {
    const u32 chunk = column ^ (s % 2);  // channels [16 chunk, 16 chunk + 16)
    uint4 rows[4];
#pragma unroll
    for (int k = 0; k < 4; ++k)
      rows[k] = ld_shared_16(staged + (first_key + stored_v_key(k)) * kWgmmaRowBytes + ((chunk ^ (2 * c + k % 2)) << 4));
    if (partial)
#pragma unroll
      for (int k = 0; k < 4; ++k)
        if (!keep[k]) rows[k] = make_uint4(0, 0, 0, 0);
    const u32 lane_row = transposed + chunk * 16 * kWgmmaRowBytes + ((s << 4) | (4 * c));
#pragma unroll
    for (int word = 0; word < 4; ++word) {  // channels 16 chunk + 4 word .. + 3
      const u32 w0 = (&rows[0].x)[word], w1 = (&rows[1].x)[word], w2 = (&rows[2].x)[word], w3 = (&rows[3].x)[word];
      const u32 low01 = byte_permute(w0, w1, 0x5140), high01 = byte_permute(w0, w1, 0x7362);
      const u32 low23 = byte_permute(w2, w3, 0x5140), high23 = byte_permute(w2, w3, 0x7362);
      const u32 channel_bytes[4] = {byte_permute(low01, low23, 0x5410), byte_permute(low01, low23, 0x7632),
                                    byte_permute(high01, high23, 0x5410), byte_permute(high01, high23, 0x7632)};
#pragma unroll
      for (int b = 0; b < 4; ++b) {
        const u32 m = 4 * word + b;  // the channel within the chunk
        st_shared_u32((lane_row ^ ((m % 8) << 4)) + m * kWgmmaRowBytes, channel_bytes[b]);
      }
    }
  }
}

// kTma: warps 0 and 1 of the producer widen the K tiles, warps 2 and 3 the V tiles (each warp every other row of
// 16-byte chunks), and the first warp of each pair also moves its tensor's stored tiles by TMA into the staging slots,
// kStagedTiles tiles ahead of the widening (within the item: the next item's first tiles are issued when the warps
// reach it; the widened stages cover that gap). Two warps a tensor spread the widening's ALU work (SASS, d128: about
// 66 instructions a 16-byte chunk widened to bf16, 15-30 to fp16) over all four schedulers of the SM, and K and V go
// their own pace as in the 16-bit pipeline.
// kStoredKScores: K is not widened: warp 0 moves K's stored tiles by TMA straight into their stages (the 8-bit Q.K^T reads
// them as they are), and warps 1-3 widen V (kKWideningWarps, kVWideningWarps), V taking both staging slots of each
// staged pair (staging_slot): its next tile lands while this one is widened.
// This is producer thread `loader`, lane `lane` of warp `half` (0: the first) of those that widen K (V: `values`), through the
// item's tiles; the item's Q copies are in flight, and it folds the K scale into its chunks of them once the first
// tiles are.
SWAJIT_DEVICE void produce_widened_with_tma(const PrefillParams& P, const BlockWork& w, const Pipeline& pipe,
                                            bool values, int half, int lane, int loader) {
  const PrefillTensorMap& map = values ? P.v_map : P.k_map;
  const PrefillTensorMap& run_map = values ? P.v_run_map : P.k_run_map;
  const bool k_as_stored = kStoredKScores && !values;
  const auto stage_tile = [&](int t) {  // the pair's first warp: tile t's stored bytes into its staging slot (stage)
    const int box_begin = w.ranges.tile_begin(t);
    const TilePage pages = tile_page(P, w, box_begin, lane);  // before the wait: the lookups overlap it
    const int slot = w.slot(t);
    if (k_as_stored)
      pipe.wait_empty_k(slot);  // tile t - kStages is consumed
    else
      pipe.wait_staging_free(values, slot);
    const u32 landed = k_as_stored ? pipe.full_k(slot) : pipe.staged(values, slot);
    if (lane == 0) mbarrier_expect_tx(landed, kStoredTileBytes);
    __syncwarp();
    issue_tile_boxes(P, w, pages, map, run_map, k_as_stored ? w.k_tile(t) : w.staged_tile(t, values), box_begin, lane,
                     landed);
    __syncwarp();
    if (lane == 0) mbarrier_arrive(landed);
  };
  const int tiles_ahead = k_as_stored ? kStages : staging_slots(values);
  const WrittenTokens written = written_tokens(P, w);  // kStoredV: V's keys outside them are transposed as zeros
  if (half == 0)
    for (int t = 0; t < min(tiles_ahead, w.tile_count); ++t) stage_tile(t);
  if constexpr (!kConsumerFold) {  // (else the compute warps fold their rows, Q landed is q_full)
    cp_async_wait_all();  // this thread's Q chunks
    if constexpr (kStoredKScores)
      fold_k_scale_into_8bit_q_rows(P, w, 0, kBlockM, loader, kProducerThreads);
    else if constexpr (kF16Mma)
      fold_k_scale_into_f16_q_tile(P, w, loader);
    else
      fold_k_scale_into_q_tile<QTile, kBlockM>(P, w.q_smem, w.kv_head, loader, kProducerThreads);
    fence_shared_for_async_proxy();
    mbarrier_arrive(pipe.q_full(w.item));
  }
  if (k_as_stored) {
    if (half == 0)
      for (int t = tiles_ahead; t < w.tile_count; ++t) stage_tile(t);
    return;
  }
  for (int t = 0; t < w.tile_count; ++t) {
    const int slot = w.slot(t);
    mbarrier_wait(pipe.staged(values, slot), Pipeline::staged_parity(values, slot));
    if (values)
      pipe.wait_empty_v(slot);  // tile t - kStages is consumed
    else
      pipe.wait_empty_k(slot);
    if (kStoredV && values)
      transpose_staged_v(w.staged_tile(t, values), w.v_tile(t), written, w.ranges.tile_begin(t), half,
                         widening_warps(values), lane);
    else
      widen_staged_chunks(w.staged_tile(t, values), values ? w.v_tile(t) : w.k_tile(t), half * 32 + lane,
                          widening_warps(values) * 32);
    fence_shared_for_async_proxy();  // this lane's generic-proxy stores, before the consumers' wgmmas read them
    __syncwarp();
    if (lane == 0) {
      mbarrier_arrive(pipe.staging_free(values, slot));
      mbarrier_arrive(values ? pipe.full_v(slot) : pipe.full_k(slot));
    }
    if (half == 0 && t + tiles_ahead < w.tile_count) stage_tile(t + tiles_ahead);
  }
}

// The stored tiles of tile t land in staging buffer t % kStages: kStages - 1 tiles' copies stay in flight while the
// producer widens one (one tile in flight was latency-bound: 0.66-0.68x of bf16, session 3).
SWAJIT_DEVICE void produce_widened(const PrefillParams& P, const BlockWork& w, const Pipeline& pipe, int loader) {
  constexpr int kStagedAhead = kStages - 1;
  const u32 staging = w.v_smem + kVStages * kTileBytes;  // kStages x (K, V) stored tiles
  const auto stored_k = [&](int t) { return staging + (t % kStages) * 2 * kStoredTileBytes; };
  const auto stage_tile = [&](int t) {
    if (t < w.tile_count)
      load_kv_tile(P, w.seq, w.block_table_row, stored_k(t), stored_k(t) + kStoredTileBytes, w.b, w.kv_head,
                   w.ranges.tile_begin(t), w.ranges.tile_end(t), loader);
    cp_async_commit();  // one group per tile, empty past the last, so the waits below count tiles
  };
  pipe.wait_q_empty(w.item);
  load_q_tile(P, w.q_smem, w.seq.q_begin + w.row0, w.rows, w.q_head, loader);
  cp_async_commit();
#pragma unroll
  for (int t = 0; t < kStagedAhead; ++t) stage_tile(t);
  cp_async_wait<kStagedAhead>();  // this thread's Q chunks: the fold rescales exactly those
  fold_k_scale_into_q_tile<QTile, kBlockM>(P, w.q_smem, w.kv_head, loader, kProducerThreads);
  fence_shared_for_async_proxy();
  mbarrier_arrive(pipe.q_full(w.item));
  for (int t = 0; t < w.tile_count; ++t) {
    stage_tile(t + kStagedAhead);  // its buffer was last read by the widening of t - 1
    cp_async_wait<kStagedAhead>();
    producer_sync();  // every producer thread's copies of tile t have landed
    pipe.wait_empty_k(w.slot(t));  // tile t - kStages is consumed
    pipe.wait_empty_v(w.slot(t));
    constexpr bool kOneChunkAtATime = false;  // the producer holds no accumulators
    widen_kv_tile<KvTile, kBlockN, kOneChunkAtATime>(stored_k(t), w.k_tile(t), loader, kProducerThreads);
    widen_kv_tile<KvTile, kBlockN, kOneChunkAtATime>(stored_k(t) + kStoredTileBytes, w.v_tile(t), loader, kProducerThreads);
    fence_shared_for_async_proxy();  // the generic-proxy stores, before the consumers' wgmmas read them
    mbarrier_arrive(pipe.full_k(w.slot(t)));
    mbarrier_arrive(pipe.full_v(w.slot(t)));
    producer_sync();  // every thread is done reading tile t's staging buffer before it is refilled
  }
  cp_async_wait_all();
}

SWAJIT_DEVICE void produce(const PrefillParams& P, const BlockWork& w, const Pipeline& pipe, int loader) {
  if constexpr (kKvQuant != 0 && !kTma) {
    produce_widened(P, w, pipe, loader);
    return;
  }
  pipe.wait_q_empty(w.item);
  load_q_tile(P, w.q_smem, w.seq.q_begin + w.row0, w.rows, w.q_head, loader);
  if constexpr (kKvQuant == 0 || kConsumerFold)  // else 8-bit: after the producer folds the K scale in
    cp_async_arrive_on(pipe.q_full(w.item));
  if constexpr (kTma) {
    const int warp = loader / 32;
    if constexpr (kKvQuant != 0)
      produce_widened_with_tma(P, w, pipe, warp >= kKWideningWarps, warp - (warp >= kKWideningWarps ? kKWideningWarps : 0),
                               loader % 32, loader);
    else if (loader < 64)
      produce_with_tma(P, w, pipe, loader >= 32, loader % 32);  // warp 0: K, warp 1: V
    cp_async_wait_all();
    return;
  }
  for (int t = 0; t < w.tile_count; ++t) {
    pipe.wait_empty_k(w.slot(t));  // tile t - kStages is consumed
    pipe.wait_empty_v(w.slot(t));
    load_tile(P, w, t, loader);  // K and V rows together: one address step serves both
    cp_async_arrive_on(pipe.full_k(w.slot(t)));
    cp_async_arrive_on(pipe.full_v(w.slot(t)));
  }
  cp_async_wait_all();  // leave no copy in flight behind
}

// kTmaStore: a full item's rows (P.tma_store_out) through its Q buffer, whose rows of this warpgroup every Q.K^T that
// reads them has finished with: each lane's normalized pairs go into the buffer's 128-byte-swizzled layout (the
// layout TMA boxes land in), then the warpgroup's first thread stores its 64 rows with the TMA engine (one box a 64
// channels) and waits until the engine has read them; the Q buffer is released after that, for the next item's Q.
SWAJIT_DEVICE void tma_store_4d(const void* map, u32 src, int c0, int c1, int c2, int c3) {
#if __CUDA_ARCH__ >= 900
  asm volatile("cp.async.bulk.tensor.4d.global.shared::cta.bulk_group [%0, {%2, %3, %4, %5}], [%1];"
               ::"l"(map), "r"(src), "r"(c0), "r"(c1), "r"(c2), "r"(c3) : "memory");
#endif
}
SWAJIT_DEVICE void store_output_with_tma(const PrefillParams& P, const Pipeline& pipe, const WarpState<kMTiles>& st,
                                         const BlockWork& w, int warp, int lane) {
  constexpr int kWarpgroupRows = 64, kColumnBlocks = kHeadDim / (kWgmmaRowBytes / 2);
  emit_warp_output(P, st, w.rows, warp, lane, w.q_head, false, [&](int row, int f, u32 pair) {
    st_shared_u32(w.q_smem + QTile::offset_bytes(row, f) + 4 * (lane % 4), pair);
  });
  const int warpgroup = warp / 4;
  publish_to_warpgroup(warpgroup);  // the rows, before the TMA engine reads them
  if (threadIdx.x % kWarpgroupThreads == 0) {
    const int first_row = w.seq.q_begin + w.row0 + warpgroup * kWarpgroupRows;
#pragma unroll
    for (int block = 0; block < kColumnBlocks; ++block)
      tma_store_4d(&P.out_map, w.q_smem + (block * kBlockM + warpgroup * kWarpgroupRows) * kWgmmaRowBytes,
                   block * (kWgmmaRowBytes / 2), w.q_head, first_row, 0);
#if __CUDA_ARCH__ >= 900
    asm volatile("cp.async.bulk.commit_group;" ::: "memory");
    asm volatile("cp.async.bulk.wait_group.read 0;" ::: "memory");
#endif
  }
  pipe.release_q(w.item, lane);  // (its __syncwarp holds the first warp's lanes until the engine has read the rows)
}

// kOverlapItems (ws2 on the persistent grid): an item's last P.V is not waited for at its end; the consumers carry
// its P and output accumulators into their next item, issue that P.V together with the next item's first Q.K^T and
// run the first softmax while it does, then write the finished item's rows. Without it every item began with the
// warpgroup's tensor cores idle through S(0) and its softmax and ended idle through the last P.V (about 1.5 tiles'
// time of each 16-tile item of seq 4096).
struct PendingItem {
  bool active = false;
  int v_slot = 0;  // the pipeline count of the item's last tile: the V stage its pending P.V reads
  u32 v_tile = 0;
  bool accumulate = false;  // its last P.V adds to the accumulators (false: the item's only tile overwrites them)
  int first_row = 0, rows = 0, q_head = 0;  // where its rows go
};

// The pending item's P.V (issued) completed, its V stage released and its rows written with the row statistics
// `rows_of_pending` (st may hold the next item's already).
SWAJIT_DEVICE void complete_pending_item(const PrefillParams& P, const Pipeline& pipe, WarpState<kMTiles>& st,
                                         PendingItem& pending, const WarpState<kMTiles>& rows_of_pending, int warp,
                                         int lane) {
  wgmma_wait<0>();
  pin_accumulators(st.out[0]);
  pipe.release_v(pending.v_slot, lane);
  WarpState<kMTiles> finished = rows_of_pending;
#pragma unroll
  for (int m = 0; m < kMTiles; ++m)
#pragma unroll
    for (int f = 0; f < kOutFrags; ++f)
#pragma unroll
      for (int c = 0; c < 4; ++c) finished.out[m][f][c] = st.out[m][f][c];
  write_warp_output(P, finished, pending.first_row, pending.rows, warp, lane, pending.q_head);
  pending.active = false;
}

// The pending item's P.V with no next tile to go with: issued alone and completed.
SWAJIT_DEVICE void flush_pending_item(const PrefillParams& P, const Pipeline& pipe, WarpState<kMTiles>& st,
                                      PackedProbabilities& p, PendingItem& pending, int warp, int lane) {
  if (!pending.active) return;
  issue_warpgroup_pv(st, p, pending.v_tile, pending.accumulate);
  complete_pending_item(P, pipe, st, pending, st, warp, lane);
}

// One work item on a consumer warp. `st` and `p` live across the block's items (kOverlapItems carries an item's
// last P.V over into the next: `pending`); otherwise each item starts from a cleared state and writes its own rows.
SWAJIT_DEVICE void consume(const PrefillParams& P, const BlockWork& w, const Pipeline& pipe, int warp, int lane,
                           WarpState<kMTiles>& st, PackedProbabilities& p, PendingItem& pending) {
  const int warpgroup = warp / 4;
  const bool carried = kOverlapItems && pending.active && w.tile_count > 0;  // the pending P.V goes with S(0)
  if (kOverlapItems && !carried) flush_pending_item(P, pipe, st, p, pending, warp, lane);
  const WarpState<kMTiles> rows_of_pending = st;  // carried: its row statistics, for its output
  // kOverlapItems never sets the output accumulators outside the MMAs (an item's first P.V overwrites them, and the
  // carried ones stay the pending item's until its P.V completes): accumulators set in a branch serialize every
  // wgmma of the kernel (ptxas C7518 / C7520).
  if constexpr (kOverlapItems)
    st.clear_statistics();
  else
    st.clear();
  mbarrier_wait(pipe.q_full(w.item), Pipeline::q_parity(w.item));
  if constexpr (kConsumerFold) {  // the warp's rows of Q -> 8-bit hi and lo, before the warpgroup's Q.K^T reads them
    fold_k_scale_into_8bit_q_rows(P, w, warp * kWarpRows, (warp + 1) * kWarpRows, lane, 32);
    publish_to_warpgroup(warpgroup);
  }
  // Tile t's V has landed, and (TMA) its rows outside the written tokens are zeros for this warpgroup's P.V.
  const WrittenTokens written = written_tokens(P, w);
  const auto wait_v = [&](int t) {
    pipe.wait_v(w.slot(t));
    if constexpr (kTma) {
      const int box_begin = w.ranges.tile_begin(t);
      if (!kStoredV && !written.contains_all(box_begin, box_begin + kBlockN))  // kStoredV: the producer zeroes them
        zero_unwritten_v_rows(written, w.v_tile(t), box_begin, warpgroup, threadIdx.x % kWarpgroupThreads);
    }
  };
  float scores[kMTiles][kScoreFrags][4], rescale[kMTiles][2];
  if constexpr (kWarpSpecialize == 1) {
    for (int t = 0; t < w.tile_count; ++t) {
      pipe.wait_k(w.slot(t));
      issue_warpgroup_scores(scores[0], w.q_smem, w.k_tile(t), warpgroup);
      wgmma_wait<0>();
      pin_accumulators(scores[0]);
      pipe.release_k(w.slot(t), lane);
      tile_softmax(P, w, st, scores, t, warp, lane, rescale);
      rescale_output(st, rescale);
      pack_probabilities(scores[0], p);
      wait_v(t);
      issue_warpgroup_pv(st, p, w.v_tile(t));
      wgmma_wait<0>();
      pin_accumulators(st.out[0]);
      pipe.release_v(w.slot(t), lane);
    }
  } else if (w.tile_count > 0) {  // kWarpSpecialize 2 or 3
    // S(t + 1) = Q.K^T runs on the tensor cores with O += P(t) . V(t) while this warpgroup does the softmax of t + 1.
    const MmaTurns turns{warpgroup};
    turns.start(w.tile_count);
    pipe.wait_k(w.slot(0));
    turns.take();
    // Each branch waits for every MMA it issued: wgmma waits that differ between paths serialize every wgmma of
    // the kernel (ptxas C7518).
    if (carried) {
      issue_warpgroup_scores(scores[0], w.q_smem, w.k_tile(0), warpgroup);
      issue_warpgroup_pv(st, p, pending.v_tile, pending.accumulate);  // into the pending item's accumulators
      wgmma_wait<1>();  // S(0) is done, the pending P.V may still run
      pin_accumulators(scores[0]);
      pipe.release_k(w.slot(0), lane);
      tile_softmax(P, w, st, scores, 0, warp, lane, rescale);
      complete_pending_item(P, pipe, st, pending, rows_of_pending, warp, lane);
    } else {
      issue_warpgroup_scores(scores[0], w.q_smem, w.k_tile(0), warpgroup);
      turns.hand_over(false);
      wgmma_wait<0>();
      pin_accumulators(scores[0]);
      pipe.release_k(w.slot(0), lane);
      tile_softmax(P, w, st, scores, 0, warp, lane, rescale);  // the output is still zero: nothing to rescale
    }
    // P(t - 1) is carried from one tile to the next packed (half the registers of its scores, and no copy of them)
    pack_probabilities(scores[0], p);
    for (int t = 1; t < w.tile_count; ++t) {
      pipe.wait_k(w.slot(t));
      wait_v(t - 1);
      turns.take();
      issue_warpgroup_scores(scores[0], w.q_smem, w.k_tile(t), warpgroup);
      issue_warpgroup_pv(st, p, w.v_tile(t - 1), !kOverlapItems || t > 1);  // (the item's first P.V overwrites)
      turns.hand_over(false);
      wgmma_wait<1>();  // S(t) is done, P(t - 1) . V(t - 1) may still run
      pin_accumulators(scores[0]);
      pipe.release_k(w.slot(t), lane);
      tile_softmax(P, w, st, scores, t, warp, lane, rescale);
      wgmma_wait<0>();  // P(t - 1) . V(t - 1) has read p: it may be overwritten
      pin_accumulators(st.out[0]);
      pipe.release_v(w.slot(t - 1), lane);
      rescale_output(st, rescale);  // O was relative to tile t - 1's maxima until P(t - 1) . V(t - 1) was added
      pack_probabilities(scores[0], p);
    }
    const int last = w.tile_count - 1;
    wait_v(last);
    if constexpr (kOverlapItems) {  // its P.V goes with the next item's S(0) (or flush_pending_item after the last)
      pending = PendingItem{true, w.slot(last), w.v_tile(last), last > 0, w.seq.q_begin + w.row0, w.rows, w.q_head};
      pipe.release_q(w.item, lane);  // every Q.K^T of the item has completed
      return;
    }
    turns.take();
    issue_warpgroup_pv(st, p, w.v_tile(last));
    turns.hand_over(true);
    wgmma_wait<0>();
    pin_accumulators(st.out[0]);
    pipe.release_v(w.slot(last), lane);
  }
  if (kTmaStore && P.tma_store_out && w.rows == kBlockM) {
    store_output_with_tma(P, pipe, st, w, warp, lane);
    return;
  }
  pipe.release_q(w.item, lane);  // every Q.K^T of the item has completed
  write_warp_output(P, st, w.seq.q_begin + w.row0, w.rows, warp, lane, w.q_head, kOverlapItems && w.tile_count == 0);
}

// ---- the kernel --------------------------------------------------------------------------------------------------------
// Work item `item` (query tile, q head, sequence: kItemsPerSequence of them per sequence, heads fastest, the longest
// query tiles first) into `w`; false when it has no rows. `group` is the set of threads that plan it together (the
// block, or one warpgroup role of a warp-specialized block): the paged scan is reduced over it alone.
// The paged scan's verdict on the last sequence a group scanned: the items of one sequence share it.
struct ScannedSequence {
  int b = -1;
  bool pages_out_of_range = false;
};

// Where work item `item` lies: its sequence, q head and first query row. A sequence's items come in sections of
// P.heads_per_section q heads (all of them: one section), each the longest query tiles first, heads fastest.
struct ItemPlace {
  int b, q_head, row0;
  bool first_of_sequence;
};
SWAJIT_DEVICE ItemPlace item_place(const PrefillParams& P, int item) {
  const int items_per_sequence = P.q_tiles * P.num_q_heads, tile_item = item % items_per_sequence;
  const int section_items = P.q_tiles * P.heads_per_section;
  const int section = tile_item / section_items, in_section = tile_item % section_items;
  return ItemPlace{item / items_per_sequence, section * P.heads_per_section + in_section % P.heads_per_section,
                   (P.q_tiles - 1 - in_section / P.heads_per_section) * kBlockM, tile_item == 0};
}

// The visible tile ranges of query positions [p_min, p_max] (TMA: on the box grid).
SWAJIT_DEVICE TileRanges item_tile_ranges(const PrefillParams& P, int p_min, int p_max, int kv_len) {
  const TileRanges r = visible_tile_ranges(p_min, p_max, kv_len, P.local_window, P.global_window);
  return kTma ? tiles_on_box_grid(r) : r;
}

// The K/V tiles of item `item` as plan_item counts them before the paged scan (0: no rows), from the metadata alone.
SWAJIT_DEVICE int item_tile_count(const PrefillParams& P, int item) {
  const ItemPlace place = item_place(P, item);
  Sequence seq;
  if (!read_sequence(P, place.b, false, seq) || place.row0 >= seq.q_len || seq.zero_output) return 0;
  const int p_min = seq.kv_len - seq.q_len + place.row0, p_max = p_min + min(kBlockM, seq.q_len - place.row0) - 1;
  return item_tile_ranges(P, p_min, p_max, seq.kv_len).count();
}

SWAJIT_DEVICE bool plan_item(const PrefillParams& P, int item, const ThreadGroup& group, ScannedSequence& scanned,
                             BlockWork& w) {
  const ItemPlace place = item_place(P, item);
  w.b = place.b;
  w.q_head = place.q_head;
  const bool reporter = threadIdx.x == 0 && place.first_of_sequence;  // one report per sequence
  if (!read_sequence(P, w.b, reporter, w.seq)) return false;
  w.row0 = place.row0;
  if (w.row0 >= w.seq.q_len) return false;
  w.rows = min(kBlockM, w.seq.q_len - w.row0);
  w.kv_head = kv_head_of(P, w.q_head);
  w.p_min = w.seq.kv_len - w.seq.q_len + w.row0;
  w.p_max = w.p_min + w.rows - 1;
  w.block_table_row = kContiguousKv ? nullptr : P.block_table + w.b * P.block_table_stride_batch;
  w.zero_tiles = false;
  if (!kContiguousKv && !w.seq.zero_output && group.scans_pages) {
    // The visible range of all the sequence's rows, not only this item's, so every item of it agrees (scanned once
    // per sequence the group meets in a row). Every thread of the group reaches the scan's barrier: the returns
    // above and zero_output are the same for all of them.
    constexpr int kTokensPerPage = kContiguousKv ? 1 : kPageSize;  // (this branch is compiled for both)
    if (scanned.b != w.b) {
      const TileRanges all_rows = visible_tile_ranges(w.seq.kv_len - w.seq.q_len, w.seq.kv_len - 1, w.seq.kv_len,
                                                      P.local_window, P.global_window);
      scanned.pages_out_of_range = visible_pages_out_of_range<kTokensPerPage>(
          P, w.block_table_row, all_rows, group.thread, group.threads, group.barrier);
      scanned.b = w.b;
      if (scanned.pages_out_of_range && group.thread == 0)
        record_status(P.status, kPrefillPageOutOfRange, w.b);  // any item may be the one left
    }
    if (kProducerScans)
      w.zero_tiles = scanned.pages_out_of_range;
    else
      w.seq.zero_output = scanned.pages_out_of_range;
  }
  w.ranges = item_tile_ranges(P, w.p_min, w.p_max, w.seq.kv_len);
  if (w.seq.zero_output) w.ranges.tiles[0] = w.ranges.tiles[1] = 0;
  w.tile_count = w.ranges.count();
  return true;
}

// The block's item of round `round` of a persistent grid (block i's first item is i; `item_count` items in all).
// Items come longest first, so in round-robin order (block i takes i, i + gridDim.x, ...) the low blocks take the
// longer items of a round whose items differ: over the causal triangle of seq 4096 (costs 1..32 tiles) the busiest
// block had 1.12x the mean work. kSnakeOrder walks such a round backwards when it is an odd one (block i takes its
// (gridDim.x - 1 - i)-th item), so what a block gains in one round it gives back in the next. Rounds of equal items
// (the first and last cost the same: windows shorter than the sequence) keep the round-robin order, which measured
// up to 10% faster there (session 7 run B). Every item of a later round has a larger index, so the caller stops at
// the first one past the end.
SWAJIT_DEVICE int persistent_item(const PrefillParams& P, int round, int item_count) {
  const int blocks = gridDim.x, first = round * blocks;
  int block = blockIdx.x;
  if (kSnakeOrder && round % 2 == 1 && first < item_count &&
      item_tile_count(P, first) != item_tile_count(P, min(first + blocks, item_count) - 1))
    block = blocks - 1 - block;
  return first + block;
}

// kDynamicItems, the producer: the block's claims-th claim, published in the item slot of its items_done-th item (whose
// Q buffer the consumers of the item kQBuffers before have released). The first is the block's own (blockIdx.x); then
// producer thread 0 claims the next unclaimed item of the longest-first order (P.item_counter). Every block claims
// until it draws one past the end, so the grid claims item_count times in all and the last claim resets the counter
// to zero for the next call on the stream. The slot is read by the consumers after q_full, which the producer's
// thread 0 also arrives on once it has planned the item (produce_item); past the end, every producer thread arrives
// (no Q is loaded) and thread 0 once more, so the consumers read it and stop.
SWAJIT_DEVICE int claim_item(const PrefillParams& P, const Pipeline& pipe, int claims, int items_done, int item_count,
                             int loader) {
  const u32 slot = pipe.item_slot(items_done);
  producer_sync();  // every producer thread has read the slot's last claim (an item without rows)
  if (loader == 0) {
    pipe.wait_q_empty(items_done);
    int item = int(blockIdx.x);
    if (claims > 0) {
      const int claimed = atomicAdd(P.item_counter, 1);
      if (claimed == item_count - 1) atomicExch(P.item_counter, 0);  // the grid's last claim
      item = int(gridDim.x) + claimed;
    }
    st_shared_u32(slot, u32(item));
  }
  producer_sync();
  const int item = ld_shared_s32(slot);
  if (item >= item_count) {  // none left: arrive as the Q copies and the publication would; the consumers stop
    mbarrier_arrive(pipe.q_full(items_done));
    if (loader == 0) mbarrier_arrive(pipe.q_full(items_done));
  }
  return item;
}

// kItemClock (an experiment: SWAJIT_PREFILL_ITEM_CLOCK=1 when the source is generated): the first consumer thread
// prints each item's start and end on %globaltimer (ns) with its SM, for tools/bench/item_clock.py to place the tail.
struct ItemClock {
  unsigned long long begin;
  SWAJIT_MEMBER static unsigned long long now() {
    unsigned long long t = 0;
    if constexpr (kItemClock) asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
  }
  SWAJIT_MEMBER static ItemClock start() { return ItemClock{now()}; }
  SWAJIT_MEMBER void report(const BlockWork& w) const {
    if constexpr (kItemClock) {
      const unsigned long long end = now();
      unsigned sm;
      asm volatile("mov.u32 %0, %%smid;" : "=r"(sm));
      if (threadIdx.x == 0)
        printf("IC %u %u %d %d %d %llu %llu\n", blockIdx.x, sm, w.q_head, w.row0, w.tile_count, begin, end);
    }
  }
};

extern "C" __global__ void __launch_bounds__(kThreads, kMinBlocksPerSm) SWAJIT_PREFILL_KERNEL(const __grid_constant__ PrefillParams P) {
  extern __shared__ __align__(1024) char smem[];  // wgmma's swizzle atoms are 1024-byte aligned
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const u32 q_smem = smem_u32(smem), k_smem = q_smem + kQBuffers * kQBytes, v_smem = k_smem + kStages * kKTileBytes;
  const auto place = [&](BlockWork& w, int items_done, int tiles_done) {
    w.item = items_done;
    w.first_tile = tiles_done;
    w.q_smem = q_smem + (items_done % kQBuffers) * kQBytes;
    w.k_smem = k_smem;
    w.v_smem = v_smem;
  };
  // Persistent: the block takes items blockIdx.x, then one a round (persistent_item); else one item per block (x: the
  // item within its sequence, z: the sequence).
  const int item_count = P.q_tiles * P.num_q_heads * P.batch;
  const int first_item = kPersistent ? int(blockIdx.x) : int(blockIdx.z * gridDim.x + blockIdx.x);

  if constexpr (kWarpSpecialize) {
    const Pipeline pipe{v_smem + kVStages * kTileBytes + kDequantBytes};
    if (threadIdx.x == 0) pipe.init();
    __syncthreads();  // the barriers are initialized; from here on the warpgroups meet only through them
    // The whole block scans the first item's sequence (a paged cache): one item per block unless persistent.
    // kProducerScans: the producer alone, in its item loop.
    ScannedSequence first_scan;
    if constexpr (!kProducerScans) {
      BlockWork w;
      plan_item(P, first_item, ThreadGroup{int(threadIdx.x), kThreads, 0}, first_scan, w);
    }
    // Both roles plan the same items in the same order, so they agree on each item's count and first tile. Each
    // role has its own loop after its setmaxnreg: ptxas gives the consumers' code their raised register budget only
    // where no producer code is merged into it. `next_item(claims, items_done)`: the block's next item (item_count
    // or more: none left); the claims of items without rows are skipped.
    const auto for_each_item = [&](const ThreadGroup& group, auto&& next_item, auto&& work) {
      int items_done = 0, tiles_done = 0;
      ScannedSequence scanned = first_scan;
      for (int claims = 0;; ++claims) {
        const int item = next_item(claims, items_done);
        if (item >= item_count) break;
        BlockWork w;
        if (!plan_item(P, item, group, scanned, w)) continue;
        place(w, items_done, tiles_done);
        work(w);
        ++items_done;
        tiles_done += w.tile_count;
      }
    };
    const auto static_item = [&](int round, int) {
      return kPersistent ? persistent_item(P, round, item_count) : round == 0 ? first_item : item_count;
    };
    if (warp >= kWarps) {  // the last warpgroup
      release_registers_to<kProducerRegisters>();
      const int loader = threadIdx.x - kWarps * 32;
      const auto claimed_item = [&](int claims, int items_done) {
        return claim_item(P, pipe, claims, items_done, item_count, loader);
      };
      const auto produce_item = [&](const BlockWork& w) {
        if (kDynamicItems && loader == 0) mbarrier_arrive(pipe.q_full(w.item));  // its slot is read after q_full
        produce(P, w, pipe, loader);
      };
      const ThreadGroup producers{loader, kProducerThreads, kProducerBarrier};
      if constexpr (kDynamicItems)
        for_each_item(producers, claimed_item, produce_item);
      else
        for_each_item(producers, static_item, produce_item);
    } else {
      claim_registers_up_to<kConsumerRegisters>();
      WarpState<kMTiles> st;
      PackedProbabilities p;
      PendingItem pending;
      const auto published_item = [&](int, int items_done) {
        mbarrier_wait(pipe.q_full(items_done), Pipeline::q_parity(items_done));
        return ld_shared_s32(pipe.item_slot(items_done));
      };
      const auto consume_item = [&](const BlockWork& w) {
        const ItemClock clock = ItemClock::start();
        consume(P, w, pipe, warp, lane, st, p, pending);
        clock.report(w);
      };
      const ThreadGroup consumers{int(threadIdx.x), kWarps * 32, kConsumerBarrier, !kProducerScans};
      if constexpr (kDynamicItems)
        for_each_item(consumers, published_item, consume_item);
      else
        for_each_item(consumers, static_item, consume_item);
      if constexpr (kOverlapItems) flush_pending_item(P, pipe, st, p, pending, warp, lane);
    }
  } else {
    BlockWork w;
    ScannedSequence scanned;
    if (!plan_item(P, first_item, ThreadGroup{int(threadIdx.x), kThreads, 0}, scanned, w)) return;
    place(w, 0, 0);
    load_and_compute(P, w, warp, lane);
  }
}
