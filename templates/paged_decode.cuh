// swajit kernel family: paged sliding-window decode (tensor cores, sm_80+).
//
// The math. For sequence b with KV length L = seq_lens[b], query token s (0 <= s < kQSeqlen) sits at position
// p = L - kQSeqlen + s. Query head h reads kv head h / kGroup (kGqaInterleaved: h % num_kv_heads). For each
// visible KV position j:
//     score_j = scale * <q, k_j>,   out = sum_j exp(score_j - m) v_j / (sum_j exp(score_j - m) + sink),
//     m = max_j score_j,            sink = kSinkLogits ? exp(sink_logits[h] - m) : 0
// and a row with no visible j is all zeros (never 0/0). Scores are kept in log2 units (scale * log2 e) for exp2.
// 8-bit KV caches (kKvQuant): k_j = k_scale * k8_j and v_j = v_scale * v8_j per (kv head, channel). The K scale is
// folded into q once (<q, k_scale * k8> = <q * k_scale, k8>), the V scale into the output (sum_j p_j v_scale v8_j
// = v_scale sum_j p_j v8_j); 8-bit tiles stay 8-bit in shared memory and are widened in registers right before the
// mma (kv8_fragments.cuh).
//
// The mask. j is visible from p iff
//     j <= p  and  ( !kLocalWindow or p - j < local_window  or  (kGlobalWindow and j < global_window) )
// so the KV tokens any query of the block can see are the sinks [0, global_window) and the window
// [p_min - local_window + 1, L), where p_min = L - kQSeqlen. Only those tiles are loaded.
//
// The work split. One thread block per work item: a (sequence, kv head) or a chunk of its tiles. Its rows are all kQSeqlen x kGroup queries of
// that kv head (padded to 16-row mma tiles, one warp row per tile), so every K/V element is read from memory once
// per kv head. K/V tiles of kBlockN tokens stream through a kStages-deep pipeline, gathered page by page; kWarpsN
// warps split each tile's tokens and keep their own online-softmax state, merged at the end. Loads (kProducer): every
// warp issues cp.async chunks and the block meets at a barrier per tile (0), or one producer warp after the compute
// warps fills the stages, cp.async chunks (1) or one bulk copy per token row (2; 3: K and V complete separately),
// each stage completing on its "full" mbarrier; the compute warps wait on it and release the stage on its "empty"
// mbarrier (no block barrier).
// The direct grid (kDirectGrid) gives each block one (sequence, kv head), or one of P.sequence_pieces even pieces of
// it; the scheduled grid's blocks follow the work schedule of templates/decode_schedule.h (a fixed grid whose blocks
// each walk an equal-cost range of the batch's windows: several short sequences in turn, or a piece of a long one); a
// sequence cut into pieces has each write (out / l in the 16-bit dtype, log2-sum-exp) and SWAJIT_MERGE_KERNEL combines
// them in fp32, or (kFusedMerge) the last of its blocks to finish does (merge_pair_if_last: no second grid).
//
// Needs templates/decode_schedule.h and, from the generator prelude: the spec (Elem, kHeadDim, kPageSize, kQSeqlen, kGroup, kLocalWindow,
// kGlobalWindow, kCausal, kSinkLogits, kGqaInterleaved, KvElem, kKvQuant, kKvBytes), the config (kBlockN, kWarpsN, kStages, kProducer, kFusedMerge, kDirectGrid, ...), the launch geometry the host also uses (kRows, kWarpsM,
// kThreads, kQBytes, kTileBytes, kStoredRowBytes, kBarrierOffset, kEpilogueStride, kEpilogueBytes, kSharedBytes, kMergeThreads)
// and the symbol names
// SWAJIT_DECODE_KERNEL (the direct or the scheduled grid: kDirectGrid) and SWAJIT_MERGE_KERNEL.

constexpr int kRowsPadded = kWarpsM * 16;
constexpr int kWarps = kWarpsM * kWarpsN;              // compute warps
constexpr int kBlockWarps = kThreads / 32;             // with the producer warp (kProducer > 0), the last one
constexpr int kTokensPerWarp = kBlockN / kWarpsN;       // tokens of each tile one warp handles
constexpr int kScoreFrags = kTokensPerWarp / 8;        // 16x8 score fragments per warp and tile

static_assert(kTokensPerWarp % 16 == 0, "each warp needs whole k16 steps of tokens");
// Rows 8..15 of the one row tile are padding when the block has at most 8 rows: the softmax skips them.
constexpr int kLiveHalves = kRows <= 8 ? 1 : 2;

// Shared memory (sizes from the prelude): the Q tile (kQBytes), then kStages K tiles and kStages V tiles
// (kTileBytes each, as stored: 8-bit caches stay 8-bit). After the
// main loop the K/V area is reused by the epilogue (kEpilogueBytes: per-warp fp32 outputs with row stride
// kEpilogueStride, then per-row max and sum for each warp column).
constexpr bool kBulkRows = kProducer == 2 || kProducer == 3;  // token rows bulk-copied into padded rows
constexpr bool kSplitKv = kProducer == 3;   // K and V of a stage land on their own full barriers
constexpr bool kTmaPages = kProducer == 4;  // TMA boxes of whole pages into 128-byte-swizzled tiles
static_assert(kThreads == (kWarps + (kProducer > 0 ? 1 : 0)) * 32, "prelude geometry disagrees with the template");
static_assert(kBarrierOffset >= kQBytes + 2 * kStages * kTileBytes && kBarrierOffset >= kQBytes + kEpilogueBytes &&
                  kSharedBytes >= kBarrierOffset + (kProducer > 0 ? (kSplitKv ? 24 : 16) * kStages : 0) &&
                  kBarrierOffset % 8 == 0,
              "prelude shared-memory size too small for the template's layout");
static_assert(!kBulkRows || kStoredRowBytes == kHeadDim * kKvBytes + 16, "bulk-copied rows are padded by 16 bytes");
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900  // mbarrier try_wait, expect_tx, bulk copies: sm_90
static_assert(kProducer == 0, "the producer-warp loaders (producer 1, 2, 3) need sm_90 or newer");
#endif

// Query head of row `row` in kv head `kv_head`'s block (rows are query token major: row = s * kGroup + g).
SWAJIT_DEVICE int q_head_of(const PagedDecodeParams& P, int kv_head, int row) {
  const int g = row % kGroup;
  return kGqaInterleaved ? kv_head + g * P.num_kv_heads : kv_head * kGroup + g;
}

// The factor that turns a row's accumulator into its output, with the learned sink of `head` if the spec has one.
SWAJIT_DEVICE float normalizer(const PagedDecodeParams& P, int head, float reference, float sum) {
  return row_normalizer(kSinkLogits ? P.sink_logits[head * P.sink_logits_stride] : 0.f, reference, sum);
}

// ---- SWAJIT_DECODE_TIMELINE (kTimeline; compiled out otherwise): thread 0 of a block stamps its record ------------
SWAJIT_DEVICE unsigned long long global_time_ns() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t)::"memory");
  return t;
}
SWAJIT_DEVICE unsigned long long sm_id() {
  unsigned id;
  asm volatile("mov.u32 %0, %%smid;" : "=r"(id));
  return id;
}
// Word `word` of this main-grid block's record (DecodeTimelineWord): the time now, or `value`.
SWAJIT_DEVICE void timeline_set(const PagedDecodeParams& P, int word, unsigned long long value) {
  if constexpr (kTimeline)
    if (threadIdx.x == 0) P.timeline[blockIdx.x * kTimelineWords + word] = value;
}
SWAJIT_DEVICE void stamp(const PagedDecodeParams& P, int point, bool when = true) {
  if constexpr (kTimeline)
    if (when) timeline_set(P, point, global_time_ns());
}

// kPrefetchMetadata: before the wait for the previous kernel, the grid's threads ask L2 (never L1: the previous kernel
// may still write them, and L2 is where its writes land) for the lines of seq_lens and the block table (each thread a
// few, spread over the grid), and a direct-grid block for its Q rows, so that after the wait these reads hit L2.
constexpr int kLineBytes = 128;
constexpr int kPrefetchLinesPerThread = 4;  // bounds the cost where the table is much larger than the windows use
SWAJIT_DEVICE void prefetch_line(const void* p) { asm volatile("prefetch.global.L2 [%0];" ::"l"(p)); }
SWAJIT_DEVICE void prefetch_metadata(const PagedDecodeParams& P, int direct_b, int kv_head) {
  const long long thread = blockIdx.x * i64(blockDim.x) + threadIdx.x, threads = gridDim.x * i64(blockDim.x);
  constexpr int kIntsPerLine = kLineBytes / int(sizeof(int));
  if (thread * kIntsPerLine < i64(P.batch) * P.seq_lens_stride)
    prefetch_line(P.seq_lens + thread * kIntsPerLine);
  const long long row_lines = (i64(P.max_pages_per_seq) * P.block_table_stride_page + kIntsPerLine - 1) / kIntsPerLine;
  // Only a table that costs at most 1/kTableShare of the K/V a window reads (its rows far beyond the windows, e.g.
  // pages of one token and a long capacity, would add reads the call never needed).
  constexpr long long kTableShare = 64;
  const long long window_tokens = P.local_window > 0 ? i64(P.local_window) + kQSeqlen + P.global_window
                                                     : i64(P.max_pages_per_seq) * kPageSize;
  const bool table_small = row_lines * kLineBytes * kTableShare <= window_tokens * P.num_kv_heads * kHeadDim * kKvBytes * 2;
  const long long lines = table_small ? row_lines * P.batch : 0;
#pragma unroll
  for (int i = 0; i < kPrefetchLinesPerThread; ++i) {
    const long long line = thread + i * threads;
    if (line < lines)
      prefetch_line(P.block_table + (line / row_lines) * P.block_table_stride_batch + (line % row_lines) * kIntsPerLine);
  }
  if (direct_b >= 0 && threadIdx.x < kRows * (kHeadDim * 2 / kLineBytes)) {
    const int row = threadIdx.x / (kHeadDim * 2 / kLineBytes), line = threadIdx.x % (kHeadDim * 2 / kLineBytes);
    const u16* q = static_cast<const u16*>(P.q);
    prefetch_line(q + direct_b * P.q_stride_batch + (row / kGroup) * P.q_stride_token +
                  q_head_of(P, kv_head, row) * P.q_stride_head + line * (kLineBytes / 2));
  }
}

// kKvEvictFirst: the K/V copies ask L2 to evict their lines first (each is read once a call), so that the stream does
// not push out what the next call reads again (its code, seq_lens, the block table, the merge's partial results).
SWAJIT_DEVICE unsigned long long l2_evict_first_policy() {
  unsigned long long policy;
  asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(policy));
  return policy;
}
SWAJIT_DEVICE void cp_async_16_evict_first(u32 dst, const void* src, bool valid, unsigned long long policy) {
  const int src_bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global.L2::cache_hint [%0], [%1], 16, %2, %3;" ::"r"(dst), "l"(src), "r"(src_bytes),
               "l"(policy) : "memory");
}

// ---- loads -----------------------------------------------------------------------------------------------------------
// Q rows of this kv head into the swizzled Q tile; padding rows are zero-filled.
SWAJIT_DEVICE void load_q_tile(const PagedDecodeParams& P, u32 q_smem, int b, int kv_head) {
  const u16* q = static_cast<const u16*>(P.q);
  for (int i = threadIdx.x; i < kRowsPadded * kChunks; i += kThreads) {
    const int row = i / kChunks, chunk = i % kChunks;
    const bool real = row < kRows;
    const int s = real ? row / kGroup : 0, head = q_head_of(P, kv_head, real ? row : 0);
    const u16* src = q + b * P.q_stride_batch + s * P.q_stride_token + head * P.q_stride_head + chunk * 8;
    cp_async_16(q_smem + RowTile::offset_bytes(row, chunk), src, real);
  }
}

// 16-bit K/V tiles of bulk-copied rows (kBulkRows): plain rows kStoredRowBytes apart, whose 16 bytes of padding put
// the 8 rows one ldmatrix reads in 8 different bank groups, as the swizzle does for the other loaders.
struct PaddedRowTile {
  SWAJIT_DEVICE u32 offset_bytes(int row, int chunk) { return u32(row) * kStoredRowBytes + u32(chunk) * 16u; }
};
// kTmaPages: the layout TMA's 128-byte swizzle writes (WgmmaTile: 128-byte channel blocks, each [kBlockN x 128 B]).
template <bool kPadded, bool kTma> struct KvTileLayout { typedef RowTile type; };
template <> struct KvTileLayout<true, false> { typedef PaddedRowTile type; };
template <> struct KvTileLayout<false, true> { typedef WgmmaTile<kBlockN> type; };
typedef KvTileLayout<kBulkRows, kTmaPages>::type KvTile;  // how a stored 16-bit K/V tile is laid out

// Where chunk `chunk` of row `row` of a stored K/V tile lives: 16-bit tiles in KvTile, 8-bit tiles for the fragment
// reads of kv8_fragments.cuh.
SWAJIT_DEVICE u32 stored_offset(int row, int chunk) {
  return kKvQuant ? kv8_offset_bytes(row, chunk) : KvTile::offset_bytes(row, chunk);
}

// Token j's page in the cache, or -1 (recorded, and `saw_bad_page` set) when its block_table entry is outside
// [0, num_pages).
SWAJIT_DEVICE int page_of_token(const PagedDecodeParams& P, const int* block_table_row, int b, int j, bool& saw_bad_page) {
  const int page = block_table_row[(j / kPageSize) * P.block_table_stride_page];
  if (page >= 0 && page < P.num_pages) return page;
  record_status(P.status, kStatusPageOutOfRange, b);
  saw_bad_page = true;
  return -1;
}
// Byte offset of token j (>= 0) of kv head `kv_head` in a cache with these strides (elements). The unsigned remainder
// lets the compiler see that rows a multiple of the page apart (a loader's passes) share it.
SWAJIT_DEVICE i64 row_offset_bytes(int page, int j, int kv_head, i64 stride_page, i64 stride_token, i64 stride_head) {
  return (page * stride_page + i64(u32(j) % u32(kPageSize)) * stride_token + kv_head * stride_head) * kKvBytes;
}

// The block_table entries of a tile that loader `loader` of `kLoaders` copies rows of (pass p: chunk loader + p
// kLoaders), read unconditionally (a row past the tile reads its last row's) and checked only when copied.
template <int kLoaders>
struct TilePages {
  static constexpr int kItems = kBlockN * kKvChunks;
  static constexpr int kPasses = (kItems + kLoaders - 1) / kLoaders;
  int page[kPasses];
  SWAJIT_MEMBER void read(const PagedDecodeParams& P, const int* block_table_row, int tile_begin, int tile_end, int loader) {
#pragma unroll
    for (int pass = 0; pass < kPasses; ++pass) {
      const int row = min(loader + pass * kLoaders, kItems - 1) / kKvChunks;
      const u32 j = u32(max(0, min(tile_begin + row, tile_end - 1)));
      page[pass] = block_table_row[(j / u32(kPageSize)) * P.block_table_stride_page];
    }
  }
};

// One K tile and one V tile (tokens [tile_begin, tile_end) of sequence b) into pipeline stage `stage`, by cp.async
// chunks: thread `loader` of `kLoaders` takes chunks loader, loader + kLoaders, ... `ahead`, if given, holds the
// tile's block_table entries read earlier (kPagesAhead).
template <int kLoaders = kThreads>
SWAJIT_DEVICE void load_kv_tile(const PagedDecodeParams& P, u32 k_smem, u32 v_smem, const int* block_table_row,
                                int b, int kv_head, int tile_begin, int tile_end, bool& saw_bad_page,
                                int loader = threadIdx.x, const TilePages<kLoaders>* ahead = nullptr) {
  const char* k_cache = static_cast<const char*>(P.k_cache);
  const char* v_cache = static_cast<const char*>(P.v_cache);
  // Unrolled over a count known at compile time, so that a thread's block_table reads all issue before its first
  // copy waits on one (a rolled loop serializes them: read, copy, read, copy). Unrolling alone does not do that: each
  // read sits behind the branches on the previous one's value (its range check and report), so a tile's passes wait
  // for their entries one after another; kPagesFirst reads every entry first, unconditionally, and checks them after
  // (kPagesAhead: a tile step earlier, in attend_item).
  constexpr int kItems = TilePages<kLoaders>::kItems;
  constexpr int kPasses = TilePages<kLoaders>::kPasses;
  constexpr bool kReadFirst = kPagesFirst || kPagesAhead;
  TilePages<kLoaders> pages;
  if (ahead != nullptr) pages = *ahead;
  else if (kReadFirst) pages.read(P, block_table_row, tile_begin, tile_end, loader);
  bool bad_page = false;
#pragma unroll
  for (int pass = 0; pass < kPasses; ++pass) {
    const int i = loader + pass * kLoaders;
    if (kItems % kLoaders != 0 && i >= kItems) break;
    const int row = i / kKvChunks, chunk = i % kKvChunks;
    const int j = tile_begin + row;
    bool valid = j < tile_end;
    int page = 0;
    if constexpr (kReadFirst) {
      const bool page_valid = pages.page[pass] >= 0 && pages.page[pass] < P.num_pages;
      bad_page |= valid && !page_valid;
      valid = valid && page_valid;
      page = valid ? pages.page[pass] : 0;
    } else {
      page = valid ? page_of_token(P, block_table_row, b, j, saw_bad_page) : 0;
      if (page < 0) valid = false, page = 0;
    }
    const char* k_src = k_cache + row_offset_bytes(page, j, kv_head, P.k_stride_page, P.k_stride_token, P.k_stride_head) + chunk * 16;
    const char* v_src = v_cache + row_offset_bytes(page, j, kv_head, P.v_stride_page, P.v_stride_token, P.v_stride_head) + chunk * 16;
    const u32 offset = stored_offset(row, chunk);
    if constexpr (kKvEvictFirst) {
      const unsigned long long policy = l2_evict_first_policy();
      cp_async_16_evict_first(k_smem + offset, k_src, valid, policy);
      cp_async_16_evict_first(v_smem + offset, v_src, valid, policy);
    } else {
      cp_async_16(k_smem + offset, k_src, valid);
      cp_async_16(v_smem + offset, v_src, valid);
    }
  }
  if (bad_page) {
    record_status(P.status, kStatusPageOutOfRange, b);
    saw_bad_page = true;
  }
}

// ---- the producer warp (kProducer > 0) ------------------------------------------------------------------------------
// Two mbarriers per stage after the rest of shared memory: full (the producer's 32 lanes each arrive once, their
// copies counted in: cp.async arrivals or bulk-copy transactions) and empty (each compute warp arrives once it is done
// reading); kSplitKv: full is K's and a third, full_v, V's. The block's i-th tile uses stage i % kStages for the
// (i / kStages)-th time: that phase's parity.
constexpr int kProducerLanes = 32;
SWAJIT_DEVICE void mbarrier_inval(u32 barrier) {
  asm volatile("mbarrier.inval.shared::cta.b64 [%0];" ::"r"(barrier) : "memory");
}
struct StageBarriers {
  u32 base;
  SWAJIT_MEMBER u32 full(int i) const { return base + 8 * (i % kStages); }
  SWAJIT_MEMBER u32 empty(int i) const { return base + 8 * (kStages + i % kStages); }
  SWAJIT_MEMBER u32 full_v(int i) const { return kSplitKv ? base + 8 * (2 * kStages + i % kStages) : full(i); }
  SWAJIT_MEMBER static u32 parity(int i) { return (i / kStages) & 1; }
  SWAJIT_MEMBER void invalidate() const {  // before the same memory is initialized again
    for (int s = 0; s < kStages; ++s) {
      mbarrier_inval(full(s));
      mbarrier_inval(empty(s));
      if (kSplitKv) mbarrier_inval(full_v(s));
    }
  }
  SWAJIT_MEMBER void init() const {
    for (int s = 0; s < kStages; ++s) {
      mbarrier_init(full(s), kProducerLanes);
      mbarrier_init(empty(s), kWarps);
      if (kSplitKv) mbarrier_init(full_v(s), kProducerLanes);
    }
  }
};

// Tile rows [tile_begin, tile_end) of K (kCopyK) and V (kCopyV) into a stage, one bulk copy per token row and cache,
// rows lane, lane + 32, ...; rows past tile_end or on an invalid page are zero-filled (masked tokens must not carry NaN
// into P.V). Each lane announces its bytes on `full` before its copies and arrives after them.
template <bool kCopyK, bool kCopyV>
SWAJIT_DEVICE void copy_kv_rows_bulk(const PagedDecodeParams& P, u32 k_tile, u32 v_tile, const int* block_table_row,
                                     int b, int kv_head, int tile_begin, int tile_end, u32 full, int lane,
                                     bool& saw_bad_page) {
  constexpr int kRowsPerLane = (kBlockN + kProducerLanes - 1) / kProducerLanes;
  constexpr u32 kRowBytes = kHeadDim * kKvBytes;
  const char* k_cache = static_cast<const char*>(P.k_cache);
  const char* v_cache = static_cast<const char*>(P.v_cache);
  int page[kRowsPerLane];
  u32 bytes = 0;
#pragma unroll
  for (int r = 0; r < kRowsPerLane; ++r) {  // every block_table read issues before the first copy
    const int row = lane + r * kProducerLanes, j = tile_begin + row;
    page[r] = row < kBlockN && j < tile_end ? page_of_token(P, block_table_row, b, j, saw_bad_page) : -1;
    bytes += page[r] >= 0 ? (int(kCopyK) + int(kCopyV)) * kRowBytes : 0;
  }
  if (bytes > 0) mbarrier_expect_tx(full, bytes);
  bool zeroed = false;
#pragma unroll
  for (int r = 0; r < kRowsPerLane; ++r) {
    const int row = lane + r * kProducerLanes, j = tile_begin + row;
    if (row >= kBlockN) break;
    const u32 k_row = k_tile + u32(row) * kStoredRowBytes, v_row = v_tile + u32(row) * kStoredRowBytes;
    if (page[r] >= 0) {
      if (kCopyK)
        bulk_copy_to_shared(k_row, k_cache + row_offset_bytes(page[r], j, kv_head, P.k_stride_page, P.k_stride_token, P.k_stride_head), kRowBytes, full);
      if (kCopyV)
        bulk_copy_to_shared(v_row, v_cache + row_offset_bytes(page[r], j, kv_head, P.v_stride_page, P.v_stride_token, P.v_stride_head), kRowBytes, full);
    } else {
      for (u32 c = 0; c < kRowBytes; c += 16) {
        if (kCopyK) st_shared_16(k_row + c, make_uint4(0u, 0u, 0u, 0u));
        if (kCopyV) st_shared_16(v_row + c, make_uint4(0u, 0u, 0u, 0u));
      }
      zeroed = true;
    }
  }
  if (zeroed) fence_shared_for_async_proxy();  // these stores before a later bulk copy into the same rows
  mbarrier_arrive(full);
}

// kTmaPages: the tile of kBlockN tokens from `tile_begin` (a multiple of kBlockN) into a stage as TMA boxes of
// kTmaBoxRows tokens (a page, or the tile inside one) x 128 bytes of channels of one kv head, one box per lane (K's,
// then V's), each lane announcing its bytes on `full` before its copies. A tile reaching past kv_len (unwritten rows,
// which may hold NaN: masked tokens must not carry it into P.V) or over an invalid block_table entry is gathered by
// cp.async, zero-filled and reported as for the other loaders. Every lane arrives on `full` once.
constexpr int kTmaBoxRows = kBlockN < kPageSize ? kBlockN : kPageSize;
constexpr int kTmaBoxesPerTile = kBlockN / kTmaBoxRows;
constexpr int kTmaColumnBlocks = kHeadDim * kKvBytes / 128;  // 128-byte channel blocks of a row
constexpr int kTmaCopiesPerTile = 2 * kTmaBoxesPerTile * kTmaColumnBlocks;
constexpr u32 kTmaBoxBytes = kTmaBoxRows * 128;
static_assert(!kTmaPages || (kBlockN % kTmaBoxRows == 0 && kTmaBoxRows % 8 == 0 && kTmaBoxesPerTile <= kProducerLanes),
              "TMA boxes fill whole 1024-byte swizzle atoms of the tile");

SWAJIT_DEVICE void copy_tile_pages(const PagedDecodeParams& P, u32 k_tile, u32 v_tile, const int* block_table_row, int b,
                                   int kv_head, int tile_begin, int tile_end, int kv_len, u32 full, int lane,
                                   bool& saw_bad_page) {
  const bool written = tile_begin + kBlockN <= kv_len;  // (so are its block_table entries: kv_len was checked)
  int page = 0;
  bool valid = true;
  if (written && lane < kTmaBoxesPerTile) {
    page = block_table_row[((tile_begin + lane * kTmaBoxRows) / kPageSize) * P.block_table_stride_page];
    valid = page >= 0 && page < P.num_pages;
  }
  if (!__all_sync(0xffffffffu, valid && written)) {
    load_kv_tile<kProducerLanes>(P, k_tile, v_tile, block_table_row, b, kv_head, tile_begin, tile_end, saw_bad_page, lane);
    cp_async_arrive_on(full);
    return;
  }
  const bool heads_inside_tokens = P.k_stride_token < P.k_stride_head;  // HND: the map's token and head swapped
  constexpr int kCopiesPerLane = (kTmaCopiesPerTile + kProducerLanes - 1) / kProducerLanes;
  const int my_copies = lane < kTmaCopiesPerTile % kProducerLanes || kTmaCopiesPerTile % kProducerLanes == 0
                            ? kCopiesPerLane : kCopiesPerLane - 1;
  if (my_copies > 0) mbarrier_expect_tx(full, my_copies * kTmaBoxBytes);
#pragma unroll
  for (int i = 0; i < kCopiesPerLane; ++i) {
    const int copy = lane + i * kProducerLanes;
    const int column = copy % kTmaColumnBlocks, box = (copy / kTmaColumnBlocks) % kTmaBoxesPerTile;
    const bool is_v = copy >= kTmaCopiesPerTile / 2;
    const int box_page = __shfl_sync(0xffffffffu, page, box);  // every lane takes part, copying or not
    if (copy >= kTmaCopiesPerTile) continue;
    const int row = (tile_begin + box * kTmaBoxRows) % kPageSize;
    const u32 dst = (is_v ? v_tile : k_tile) + u32(column) * (kBlockN * 128) + u32(box) * kTmaBoxBytes;
    tma_load_4d(dst, is_v ? &P.v_map : &P.k_map, column * (128 / kKvBytes), heads_inside_tokens ? row : kv_head,
                heads_inside_tokens ? kv_head : row, box_page, full);
  }
  mbarrier_arrive(full);
}

// The producer warp: fills the stages with the item's tiles [from_tile, last_tile) (the item starts at first_tile),
// each once the compute warps released the tile kStages before it.
SWAJIT_DEVICE void produce_tiles(const PagedDecodeParams& P, const StageBarriers& barriers, u32 k_smem, u32 v_smem,
                                 const int* block_table_row, int b, int kv_head, const TileRanges& ranges,
                                 int first_tile, int from_tile, int last_tile, int kv_len, int lane, bool& saw_bad_page) {
  for (int t = from_tile; t < last_tile; ++t) {
    const int i = t - first_tile;
    if (i >= kStages) mbarrier_wait(barriers.empty(i), StageBarriers::parity(i - kStages));
    const u32 k_tile = k_smem + (i % kStages) * kTileBytes, v_tile = v_smem + (i % kStages) * kTileBytes;
    if constexpr (kTmaPages) {
      // The stage's earlier cp.async (generic proxy) writes, if any, before the TMA engine's writes into it.
      if (i >= kStages) fence_shared_for_async_proxy();
      copy_tile_pages(P, k_tile, v_tile, block_table_row, b, kv_head, ranges.tile_begin(t), ranges.tile_end(t), kv_len,
                      barriers.full(i), lane, saw_bad_page);
    } else if constexpr (kSplitKv) {  // K first: the scores need it before V
      copy_kv_rows_bulk<true, false>(P, k_tile, v_tile, block_table_row, b, kv_head, ranges.tile_begin(t),
                                     ranges.tile_end(t), barriers.full(i), lane, saw_bad_page);
      copy_kv_rows_bulk<false, true>(P, k_tile, v_tile, block_table_row, b, kv_head, ranges.tile_begin(t),
                                     ranges.tile_end(t), barriers.full_v(i), lane, saw_bad_page);
    } else if constexpr (kBulkRows) {
      copy_kv_rows_bulk<true, true>(P, k_tile, v_tile, block_table_row, b, kv_head, ranges.tile_begin(t),
                                    ranges.tile_end(t), barriers.full(i), lane, saw_bad_page);
    } else {
      load_kv_tile<kProducerLanes>(P, k_tile, v_tile, block_table_row, b, kv_head, ranges.tile_begin(t),
                                   ranges.tile_end(t), saw_bad_page, lane);
      cp_async_arrive_on(barriers.full(i));
    }
  }
  cp_async_wait_all();  // no copy of this thread in flight past the loop
}

// ---- the tile step: scores, online softmax, P.V (16-bit tiles: attention_tile.cuh; 8-bit: kv8_fragments.cuh) ----
// The warp's Q operand: 16-bit fragments, or int8 hi / lo chunks for the integer scores.
template <bool kInteger> struct QOperandOf { typedef QFragments<1> type; };
template <> struct QOperandOf<true> { typedef IntegerQFragments type; };
typedef QOperandOf<kIntegerScores>::type QOperand;

// `before_v()` runs once the scores are computed, before anything reads the V tile (kSplitKv: waits for it).
template <bool kMasked, class RowColumns, class BeforeV, class QOp>  // QOp: QOperand (generic: each branch compiles)
SWAJIT_DEVICE void attend_tile(WarpState<1>& st, const QOp& q_frag, float score_scale, u32 q_smem,
                               u32 k_tile, u32 v_tile, int warp_m, int token0, int lane, RowColumns row_columns,
                               BeforeV before_v) {
  float scores[1][kScoreFrags][4];
  if constexpr (kKvQuant != 0) {
    if constexpr (kIntegerScores) tile_scores_int8(scores, q_frag, q_smem, k_tile, warp_m, token0, lane);
    else tile_scores_kv8(scores, q_frag, q_smem, k_tile, warp_m, token0, lane);
    float rescale[1][2];
    online_softmax<kMasked, kLiveHalves>(st, scores, score_scale, lane, row_columns, rescale);
    rescale_output(st, rescale);
    before_v();
    accumulate_pv_kv8(st, scores, v_tile, token0, lane);
  } else {
    tile_scores<1, kScoreFrags, KvTile>(scores, q_frag, q_smem, k_tile, warp_m, token0, lane);
    before_v();
    softmax_and_accumulate<kMasked, KvTile, kLiveHalves>(st, scores, score_scale, v_tile, token0, lane, row_columns);
  }
}

// Tile t of the block's ranges, stored at k_tile / v_tile, into the warp's state; masked only where a row needs it.
template <class BeforeV>
SWAJIT_DEVICE void attend_stored_tile(const PagedDecodeParams& P, WarpState<1>& st, const QOperand& q_frag,
                                      float score_scale, u32 q_smem, u32 k_tile, u32 v_tile, const TileRanges& ranges,
                                      int t, int kv_len, int warp_m, int token0, int lane, BeforeV before_v) {
  const int tile_begin = ranges.tile_begin(t), tile_end = ranges.tile_end(t);
  if (tile_fully_visible(tile_begin, tile_end, kv_len - kQSeqlen, kv_len - 1, P.local_window, P.global_window)) {
    attend_tile<false>(st, q_frag, score_scale, q_smem, k_tile, v_tile, warp_m, token0, lane, AllVisible(), before_v);
  } else {
    // Row r of this warp is query token (warp_m * 16 + r) / kGroup; column t of the warp is token token0 + t.
    const auto row_columns = [&](int r) {
      const int p = kv_len - kQSeqlen + (warp_m * 16 + r) / kGroup;
      return visible_columns(p, tile_begin + token0, tile_end, P.local_window, P.global_window);
    };
    attend_tile<true>(st, q_frag, score_scale, q_smem, k_tile, v_tile, warp_m, token0, lane, row_columns, before_v);
  }
}

// Row `tile_row` (lane / 4 + 8 h) of a warp's output fragments, unnormalized, into the fp32 row `dst`: 16-bit caches
// hold columns f * 8 + n, 8-bit ones the permuted kv_output_dim(f, n).
SWAJIT_DEVICE void store_output_fragments(float* dst, const WarpState<1>& st, int h, int lane) {
  const int n = 2 * (lane % 4);
#pragma unroll
  for (int f = 0; f < kOutFrags; ++f) {
    if constexpr (kKvQuant != 0) {
      dst[kv_output_dim(f, n)] = st.out[0][f][2 * h];
      dst[kv_output_dim(f, n + 1)] = st.out[0][f][2 * h + 1];
    } else {
      *reinterpret_cast<float2*>(dst + f * 8 + n) = make_float2(st.out[0][f][2 * h], st.out[0][f][2 * h + 1]);
    }
  }
}

// out[b, row / kGroup, q_head_of(row), column .. column + kN) = acc * scale, one 8- or 16-byte store.
template <int kN>
SWAJIT_DEVICE void store_output(const PagedDecodeParams& P, int b, int kv_head, int row, int column,
                                const float (&acc)[kN], float scale) {
  static_assert(kN == 4 || kN == 8, "one 8- or 16-byte store");
  const int s = row / kGroup, head = q_head_of(P, kv_head, row);
  u16* out = static_cast<u16*>(P.out) + b * P.out_stride_batch + s * P.out_stride_token + head * P.out_stride_head + column;
  float v[kN];
#pragma unroll
  for (int e = 0; e < kN; ++e) v[e] = acc[e] * scale * (kKvQuant ? v_scale_at(P, kv_head, column + e) : 1.f);
  if constexpr (kN == 4) *reinterpret_cast<uint2*>(out) = pack4(v, Elem());
  else *reinterpret_cast<uint4*>(out) = pack8(v, Elem());
}

// Where work item `item`'s partial result for row `row` lives in the split-KV workspace: partial_lse[slot] and
// partial_out[slot * kHeadDim ...] (the host sizes the workspace in paged_decode.cpp).
SWAJIT_DEVICE i64 partial_slot(int item, int row) { return i64(item) * kRows + row; }

// ---- the work schedule (templates/decode_schedule.h) ---------------------------------------------------------
// There is no planning grid: every warp derives its block's range from seq_lens on its own (coalesced reads and
// shuffles; no shared memory and no barrier, and every warp reaches the same answer), so the call stays two fixed
// grids that a CUDA graph replays as lengths change, and a block pays a few shuffles, not block-wide scans. Then the
// block walks the sequences of its range in turn. Kv head 0's block s writes merge record s (the cut sequence whose
// first piece it holds, or -1) on every call, so the merge never reads a stale one.
struct DecodeWork {
  int b = 0, kv_head = 0;
  bool first_of_block = true;  // the block's first item (kTimeline stamps its points)
  int item = 0;            // the partial-result slot: work entry x num_kv_heads + kv head
  bool whole = true;       // the whole sequence, whose output is written directly (else a piece of a cut one)
  int first_block = 0;     // a cut sequence's: the schedule block of its first piece (schedule_cut)
  int pieces = 1;          // ... and how many pieces it has
  int first_tile = 0, last_tile = 0;
};

// The call's cut flag, after the merge records (the workspace has room for it): whether this call's schedule cuts
// sequences (SchedulePlan::cut). The scheduled grid's block 0 writes it first thing on every call, then a release
// fence, before its launch trigger; the merge grid starts only once every main block has triggered, so the flag is
// final when a merge block reads it (PTX griddepcontrol: a release fence before launch_dependents synchronizes with
// the dependent grid's start). With nothing cut the merge blocks leave before their grid-dependency wait. The merge
// grid still ends after the main grid, so the stream's order holds: session 14's probes (tools/bench/pdl_*_probe.cu)
// saw no stale read by a PDL or plain kernel after it, by another stream waiting on an event recorded after it, by
// the host after an event synchronize, or in a graph branch. But its blocks no longer wait for the main grid's end
// and flush one by one (probe, after a 100 us grid: +6.4 us with every block waiting, +3.1 with none). H200, session
// 14, the same call alternated over two rounds: uniform q4 b32 / b128 / b256 139.2 / 510.4 / 1001.3 -> 137.9 / 508.5 /
// 994.7 us, fp8 b32 q4 88.2 -> 85.3; ragged rows and q1 level (within 0.7%). SWAJIT_DECODE_MERGE_LEAVES_UNCUT=0: off.
SWAJIT_DEVICE int* cut_flag(const PagedDecodeParams& P) {
  return P.merge_records + kMergeRecordInts * (P.work_items / kEntriesPerBlock);
}

// seq_lens[b] as the kernel uses it: an invalid value (reported by the block that owns the sequence) reads as 0.
SWAJIT_DEVICE int raw_kv_len(const PagedDecodeParams& P, int b) { return P.seq_lens[b * P.seq_lens_stride]; }
SWAJIT_DEVICE bool kv_len_valid(const PagedDecodeParams& P, int kv_len) {
  return !(kv_len != 0 && kv_len < kQSeqlen) && kv_len <= P.max_pages_per_seq * kPageSize;
}
SWAJIT_DEVICE TileRanges sequence_tiles(const PagedDecodeParams& P, int kv_len) {
  const TileRanges ranges = visible_tile_ranges(kv_len - kQSeqlen, kv_len - 1, kv_len, P.local_window, P.global_window);
  return kTmaPages ? tiles_on_block_grid(ranges) : ranges;  // TMA boxes start on page (or tile) boundaries
}
SWAJIT_DEVICE int visible_tile_count(const PagedDecodeParams& P, int b) {
  const int kv_len = raw_kv_len(P, b);
  return kv_len_valid(P, kv_len) ? sequence_tiles(P, kv_len).count() : 0;
}

// Sum / max of `value` over the warp (every lane gets it).
template <class T>
SWAJIT_DEVICE T warp_sum(T value) {
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) value += __shfl_xor_sync(0xffffffffu, value, offset);
  return value;
}
SWAJIT_DEVICE int warp_max(int value) {
#pragma unroll
  for (int offset = 16; offset > 0; offset /= 2) value = max(value, __shfl_xor_sync(0xffffffffu, value, offset));
  return value;
}
// Inclusive prefix sum of `value` over the warp's lanes.
template <class T>
SWAJIT_DEVICE T warp_inclusive_scan(T value) {
  const int lane = threadIdx.x % 32;
#pragma unroll
  for (int offset = 1; offset < 32; offset *= 2) {
    const T below = __shfl_up_sync(0xffffffffu, value, offset);
    if (lane >= offset) value += below;
  }
  return value;
}

// A boundary of the cost axis and the sequence it falls in (start and tiles): found by scan, then snapped.
struct ScheduleBoundary {
  long long at = 0, start = 0;
  int b = 0, tiles = 0;
};

// One block's walk over its range [begin, end) of the schedule (per warp; every warp holds the same values).
struct ScheduledBlock {
  long long begin = 0, end = 0;
  SchedulePlan plan{0, 1, false};
  int block = 0, kv_head = 0;
  int b = 0;            // the next sequence to visit
  long long start = 0;  // its start on the cost axis
  bool equal_lengths = false;  // every sequence of the batch has the same visible tiles (the same for every block)

  // This block's range: the batch's total cost, the block's raw boundaries, and the sequences they fall in.
  SWAJIT_MEMBER void find(const PagedDecodeParams& P) {
    const int lane = threadIdx.x % 32;
    block = blockIdx.x / P.num_kv_heads;
    kv_head = blockIdx.x % P.num_kv_heads;
    // The lane's sequence among the first 32 is read once and kept: a batch of up to 32 reads seq_lens once in all.
    const int own_tiles = lane < P.batch ? visible_tile_count(P, lane) : 0;
    const auto tiles_of = [&](int i) { return i < 32 ? own_tiles : visible_tile_count(P, i); };
    long long sum = 0;
    int longest = 0;
#pragma unroll 4
    for (int i = lane; i < P.batch; i += 32) {
      const int t = tiles_of(i);
      sum += schedule_cost(t);
      longest = max(longest, t);
    }
    const long long total = warp_sum(sum);
    const long long longest_cost = schedule_cost(warp_max(longest));
    plan = schedule_plan(total, longest_cost, P.batch, P.schedule_slots);
    if (P.schedule_snap_shares > 0) plan.snap_shares = P.schedule_snap_shares;
    equal_lengths = total == longest_cost * P.batch;
    if (kv_head == 0 && threadIdx.x == 0) P.merge_records[kMergeRecordInts * block] = -1;  // unless next() finds one
    if (kMergeLeavesUncut && blockIdx.x == 0 && threadIdx.x == 0) {
      *cut_flag(P) = plan.cut;
      __threadfence();  // released before this block's launch trigger (the merge grid reads it before its wait)
    }
    if (block >= plan.blocks) {  // an unused block: an empty range
      begin = end = total;
      b = P.batch;
      return;
    }
    if (!plan.cut && plan.blocks == P.batch && equal_lengths) {  // block s = sequence s
      b = block;
      begin = start = block * longest_cost;
      end = begin + longest_cost;
      return;
    }
    ScheduleBoundary lo, hi;
    lo.at = schedule_boundary(block, plan);
    hi.at = schedule_boundary(block + 1, plan);
    bool found_lo = false, found_hi = hi.at >= total;  // the last block's end is the batch's
    long long before = 0;  // cost of the sequences before this round's 32
    for (int base = 0; base < P.batch && !(found_lo && found_hi); base += 32) {
      const int i = base + lane;
      const int t = i < P.batch ? tiles_of(i) : 0;
      const long long cost = i < P.batch ? schedule_cost(t) : 0;
      const long long inclusive = warp_inclusive_scan(cost);
      const long long first = before + inclusive - cost;
      const auto take = [&](ScheduleBoundary& x, bool& found) {
        const unsigned hit = __ballot_sync(0xffffffffu, x.at >= first && x.at < first + cost);
        if (found || hit == 0) return;
        const int src = __ffs(hit) - 1;
        x.b = base + src;
        x.start = __shfl_sync(0xffffffffu, first, src);
        x.tiles = __shfl_sync(0xffffffffu, t, src);
        found = true;
      };
      take(lo, found_lo);
      take(hi, found_hi);
      before += __shfl_sync(0xffffffffu, inclusive, 31);
    }
    begin = schedule_snap(lo.at, lo.start, lo.tiles, plan);
    end = hi.at >= total ? total : schedule_snap(hi.at, hi.start, hi.tiles, plan);
    const long long lo_end = lo.start + schedule_cost(lo.tiles);  // snapped there: the range starts at the next one
    b = begin == lo_end ? lo.b + 1 : lo.b;
    start = begin == lo_end ? lo_end : lo.start;
  }

  // The next segment of the range into `work`; false when the range is done. The block of a cut sequence's first
  // piece records it for the merge.
  SWAJIT_MEMBER bool done(const PagedDecodeParams& P) const { return b >= P.batch || start >= end; }
  SWAJIT_MEMBER bool next(const PagedDecodeParams& P, DecodeWork& work) {
    if (done(P)) return false;
    const int tiles = visible_tile_count(P, b);
    const ScheduleSegment segment = schedule_segment(begin, end, start, tiles);
    work.b = b;
    work.kv_head = kv_head;
    const bool first_piece = !segment.whole && segment.first_tile == 0;
    work.item = schedule_entry(block, first_piece) * P.num_kv_heads + kv_head;
    work.whole = segment.whole;
    work.first_tile = segment.first_tile;
    work.last_tile = segment.last_tile;
    if (!segment.whole) {
      const ScheduleCut cut = schedule_cut(start, tiles, plan);
      work.first_block = cut.first_block;
      work.pieces = cut.pieces;
      if (first_piece && kv_head == 0 && threadIdx.x == 0) {  // for the merge grid
        P.merge_records[kMergeRecordInts * block] = b;
        P.merge_records[kMergeRecordInts * block + 1] = cut.pieces;
      }
    }
    start += schedule_cost(tiles);
    ++b;
    return true;
  }
};

// A split's log2-sum-exp when its sequence met an invalid block_table entry: above every real one, so the merge's
// max finds it, and the merge writes the row as zeros.
#define SWAJIT_FLAGGED_LSE __int_as_float(0x7f800000)

// ---- epilogue --------------------------------------------------------------------------------------------------------
// Merges the kWarpsN warps of each row group through shared memory and writes either the final output (one
// split) or this split's normalized partial output and log2-sum-exp. Only the kRows real rows travel (q_seqlen 1 with
// a small group fills a fraction of its 16-row tile), as 8-byte stores and 16-byte loads that hit distinct banks.
constexpr int kQuads = kHeadDim / 4;  // 4-column pieces of an output row: the unit of the epilogue's second pass
static_assert(kEpilogueStride % 32 == 8, "rows r and r + 4 of a warp's 8-byte stores must not share banks");

SWAJIT_DEVICE void write_block_output(const PagedDecodeParams& P, WarpState<1>& st, char* epilogue, int warp_m, int warp_n,
                                      int lane, const DecodeWork& work, bool sequence_flagged) {
  const int b = work.b, kv_head = work.kv_head;
  const bool direct = work.whole;  // the whole sequence: write the output
  float* warp_out = reinterpret_cast<float*>(epilogue);                  // [kWarps][16][kEpilogueStride]
  float* stat_max = warp_out + kWarps * 16 * kEpilogueStride;            // [kWarpsN][kRowsPadded]
  float* stat_sum = stat_max + kWarpsN * kRowsPadded;                    // [kWarpsN][kRowsPadded]
  const int warp = warp_m * kWarpsN + warp_n;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int tile_row = lane / 4 + h * 8;
    const float sum = quad_sum(st.row_sum[0][h]);
    if (warp_m * 16 + tile_row >= kRows) continue;  // a padding row: nothing reads it
    if (lane % 4 == 0) {
      stat_max[warp_n * kRowsPadded + warp_m * 16 + tile_row] = st.row_max[0][h];
      stat_sum[warp_n * kRowsPadded + warp_m * 16 + tile_row] = sum;
    }
    store_output_fragments(warp_out + (warp * 16 + tile_row) * kEpilogueStride, st, h, lane);
  }
  __syncthreads();

  // Row pass: a row's warps combine with weights 2^(max_w - M), M the row's max, and the row's final factor (1 / sum,
  // or the normalizer with its sink when this is the only split) is folded into them; they replace the row's sums.
  float* row_weight = stat_sum;  // [kWarpsN][kRowsPadded]
  const i64 first_slot = partial_slot(work.item, 0);
  for (int row = threadIdx.x; row < kRows; row += kThreads) {
    float row_max = SWAJIT_NEG_INF;
#pragma unroll
    for (int w = 0; w < kWarpsN; ++w) row_max = fmaxf(row_max, stat_max[w * kRowsPadded + row]);
    const float reference = row_max == SWAJIT_NEG_INF ? 0.f : row_max;
    float weight[kWarpsN];
    float sum = 0.f;
#pragma unroll
    for (int w = 0; w < kWarpsN; ++w) {
      weight[w] = fast_exp2(stat_max[w * kRowsPadded + row] - reference);
      sum += weight[w] * stat_sum[w * kRowsPadded + row];
    }
    float factor;
    if (direct) {
      factor = normalizer(P, q_head_of(P, kv_head, row), reference, sum);
    } else {  // sinks join in the merge, once per row
      factor = sum > 0.f ? 1.f / sum : 0.f;
      const float lse = sequence_flagged ? SWAJIT_FLAGGED_LSE : sum > 0.f ? reference + __log2f(sum) : SWAJIT_NEG_INF;
      P.partial_lse[first_slot + row] = lse;
    }
#pragma unroll
    for (int w = 0; w < kWarpsN; ++w) row_weight[w * kRowsPadded + row] = weight[w] * factor;
  }
  __syncthreads();

  // Each thread finishes 4 consecutive output elements of one row (a warp covers whole rows); the passes are
  // independent, so they are unrolled for their loads to overlap.
  constexpr int kItems = kRows * kQuads;
#pragma unroll
  for (int pass = 0; pass < (kItems + kThreads - 1) / kThreads; ++pass) {
    const int i = threadIdx.x + pass * kThreads;
    if (kItems % kThreads != 0 && i >= kItems) break;
    const int row = i / kQuads, column = (i % kQuads) * 4;
    float acc[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
    for (int w = 0; w < kWarpsN; ++w) {
      const float weight = row_weight[w * kRowsPadded + row];
      const float4 src = *reinterpret_cast<const float4*>(
          warp_out + (((row / 16) * kWarpsN + w) * 16 + row % 16) * kEpilogueStride + column);
      acc[0] += weight * src.x;
      acc[1] += weight * src.y;
      acc[2] += weight * src.z;
      acc[3] += weight * src.w;
    }
    if (direct)
      store_output(P, b, kv_head, row, column, acc, 1.f);
    else
      *reinterpret_cast<uint2*>(static_cast<u16*>(P.partial_out) + (first_slot + row) * kHeadDim + column) = pack4(acc, Elem());
  }
}

// Split-KV merge: out = sum_s 2^(lse_s - M) o_s / (sum_s 2^(lse_s - M) + sink), M = max_s lse_s; all -inf gives
// zeros. kMergeThreads threads (a merge block) merge one (cut sequence, kv head, row): thread t sums 8 consecutive elements (chunk
// t / kMergeSplitLanes) over the splits s = t % kMergeSplitLanes (mod kMergeSplitLanes); the lanes that share a
// chunk are adjacent in one warp, so the max, the sum and the outputs combine with shuffles, without shared memory or
// barriers. A thread's first kMergePrefetch partial outputs load together with the log-sum-exps, so the two reads
// overlap. Done by SWAJIT_MERGE_KERNEL (one block per row), or, kFusedMerge, by the main grid's last block of the
// (sequence, kv head) (merge_own_pair).
constexpr int kMergeSplitLanes = kMergeThreads / kChunks;  // 8 at head_dim 128
constexpr int kMergePrefetch = 5;                          // covers 5 x kMergeSplitLanes splits (40 at head_dim 128)
static_assert(kMergeThreads % kChunks == 0 && 32 % kMergeSplitLanes == 0, "a chunk's split lanes share one warp");

// Sum (or max) of x over the kSplitLanes adjacent lanes that share a chunk.
template <int kSplitLanes, class Op>
SWAJIT_DEVICE float split_lanes_reduce(float x, Op op) {
#pragma unroll
  for (int offset = kSplitLanes / 2; offset > 0; offset /= 2) x = op(x, __shfl_xor_sync(0xffffffffu, x, offset));
  return x;
}

// Where piece s of a cut sequence leaves its partial result for (kv head, row), its first piece being in schedule block
// `first_block` (templates/decode_schedule.h): the first piece in that block's second work entry, piece s >= 1 in the
// first entry of block first_block + s.
struct PieceSlots {
  i64 first, later, stride;
  SWAJIT_MEMBER PieceSlots(const PagedDecodeParams& P, int first_block, int kv_head, int row)
      : first(partial_slot(schedule_entry(first_block, true) * P.num_kv_heads + kv_head, row)),
        later(partial_slot(schedule_entry(first_block, false) * P.num_kv_heads + kv_head, row)),
        stride(i64(kEntriesPerBlock) * P.num_kv_heads * kRows) {}
  SWAJIT_MEMBER i64 operator()(int s) const { return s == 0 ? first : later + s * stride; }
};

// Row `row` of (sequence b, kv head) from its `splits` partial results (piece s at slots(s)), by kChunks x
// kSplitLanes threads of which this is `thread` (every lane of the calling warp takes part), each loading kPrefetch
// splits at once first. The partials are read past L1 (ld.global.cg): in the fused merge other SMs wrote them during
// this grid.
template <int kSplitLanes = kMergeSplitLanes, int kPrefetch = kMergePrefetch>
SWAJIT_DEVICE void merge_row(const PagedDecodeParams& P, int b, int kv_head, int row, const PieceSlots& slots, int splits, int thread) {
  static_assert(32 % kSplitLanes == 0, "a chunk's split lanes share one warp");
  const int split_lane = thread % kSplitLanes, chunk = thread / kSplitLanes;
  const auto lse_of = [&](int s) { return __ldcg(P.partial_lse + slots(s)); };
  const auto partial_of = [&](int s) {  // split s's 8 values of this thread's chunk
    return __ldcg(reinterpret_cast<const uint4*>(static_cast<const u16*>(P.partial_out) + slots(s) * kHeadDim + chunk * 8));
  };
  uint4 early[kPrefetch];
  float early_lse[kPrefetch];
  float max_lse = SWAJIT_NEG_INF;
#pragma unroll
  for (int i = 0; i < kPrefetch; ++i) {
    const int s = split_lane + i * kSplitLanes;
    early_lse[i] = SWAJIT_NEG_INF;
    if (s < splits) {
      early[i] = partial_of(s);
      early_lse[i] = lse_of(s);
    }
  }
#pragma unroll
  for (int i = 0; i < kPrefetch; ++i) max_lse = fmaxf(max_lse, early_lse[i]);
  for (int s = split_lane + kPrefetch * kSplitLanes; s < splits; s += kSplitLanes)
    max_lse = fmaxf(max_lse, lse_of(s));
  max_lse = split_lanes_reduce<kSplitLanes>(max_lse, [](float x, float y) { return fmaxf(x, y); });
  if (max_lse == SWAJIT_FLAGGED_LSE) {  // the same for every lane of the row: they all reduce the same splits
    float zeros[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
    if (split_lane == 0) store_output(P, b, kv_head, row, chunk * 8, zeros, 0.f);
    return;
  }
  const float reference = max_lse == SWAJIT_NEG_INF ? 0.f : max_lse;

  float acc[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
  float sum = 0.f;
  const auto accumulate = [&](float lse, const uint4& packed) {
    const float weight = fast_exp2(lse - reference);  // 0 for an empty split (lse -inf)
    float v[8];
    unpack8(packed, v, Elem());
    sum += weight;
#pragma unroll
    for (int e = 0; e < 8; ++e) acc[e] += weight * v[e];
  };
#pragma unroll
  for (int i = 0; i < kPrefetch; ++i)
    if (split_lane + i * kSplitLanes < splits) accumulate(early_lse[i], early[i]);
#pragma unroll 4
  for (int s = split_lane + kPrefetch * kSplitLanes; s < splits; s += kSplitLanes)
    accumulate(lse_of(s), partial_of(s));

  const auto add = [](float x, float y) { return x + y; };
  sum = split_lanes_reduce<kSplitLanes>(sum, add);
#pragma unroll
  for (int e = 0; e < 8; ++e) acc[e] = split_lanes_reduce<kSplitLanes>(acc[e], add);
  if (split_lane == 0)
    store_output(P, b, kv_head, row, chunk * 8, acc, normalizer(P, q_head_of(P, kv_head, row), reference, sum));
}

// ---- the fused merge (kFusedMerge) ---------------------------------------------------------------------------------
// The last of a cut (sequence, kv head)'s blocks to finish merges its items, so no merge grid is launched. Each block
// makes its partial results visible (__threadfence) before counting its arrival on the pair's counter
// (P.arrival_counts, zero before the call); the block that brings it to the pair's item count resets it to zero for
// the next call or graph replay (no other block of this grid touches it again) and merges. Its threads cover all
// rows at once, kFusedSplitLanes per 8-column chunk (at least a warp per row, so the shuffles see whole warps).
constexpr int kFusedSplitLanesWanted = kThreads / (kRows * kChunks);  // every thread busy in one pass, if it fits
constexpr int kFusedSplitLanes = kFusedSplitLanesWanted >= 32 ? 32 : kFusedSplitLanesWanted >= 16 ? 16
                                 : kFusedSplitLanesWanted >= 8 ? 8 : kFusedSplitLanesWanted >= 4 ? 4 : kFusedSplitLanesWanted >= 2 ? 2 : 1;
constexpr int kFusedRowThreads = kChunks * (kFusedSplitLanes * kChunks >= 32 ? kFusedSplitLanes : 32 / kChunks);
constexpr int kFusedMergePrefetch = 8;  // one block reads every split: more loads in flight per thread

SWAJIT_DEVICE void merge_pair_if_last(const PagedDecodeParams& P, const DecodeWork& work) {
  __threadfence();  // this block's partial results, before its arrival
  __syncthreads();
  bool last = false;
  if (threadIdx.x == 0) {
    int* const arrivals = P.arrival_counts + work.b * P.num_kv_heads + work.kv_head;
    last = atomicAdd(arrivals, 1) == work.pieces - 1;
    if (last) atomicExch(arrivals, 0);
  }
  if (!__syncthreads_or(last)) return;
  __threadfence();  // the other blocks' partial results, after their arrivals
  constexpr int kSplitLanes = kFusedRowThreads / kChunks;
  for (int i = threadIdx.x; i < kRows * kFusedRowThreads; i += kThreads) {  // whole warps: both counts are multiples of 32
    const int row = i / kFusedRowThreads;
    merge_row<kSplitLanes, kFusedMergePrefetch>(P, work.b, work.kv_head, row,
                                                PieceSlots(P, work.first_block, work.kv_head, row), work.pieces,
                                                i % kFusedRowThreads);
  }
}

// ---- the kernel --------------------------------------------------------------------------------------------------------
// One work item: tiles [first_tile, last_tile) of (sequence, kv head), all of the block's threads. Inlined: called
// (__noinline__), every read of P in the tile loop became a load through a pointer (H200 run B3: the direct grid 33%
// slower).
SWAJIT_DEVICE void attend_item(const PagedDecodeParams& P, const DecodeWork& work) {
  extern __shared__ __align__(1024) char smem[];  // kTmaPages: the swizzle atoms of the K/V tiles are 1024-byte aligned
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int warp_m = warp / kWarpsN, warp_n = warp % kWarpsN;
  const int token0 = warp_n * kTokensPerWarp;

  const int b = work.b, kv_head = work.kv_head, first_tile = work.first_tile, last_tile = work.last_tile;
  int kv_len = raw_kv_len(P, b);
  if (!kv_len_valid(P, kv_len)) {
    if (threadIdx.x == 0 && first_tile == 0 && kv_head == 0)
      record_status(P.status, kv_len > 0 && kv_len >= kQSeqlen ? kStatusSeqLenOverCapacity : kStatusSeqLenBelowQSeqlen, b);
    kv_len = 0;
  }
  const int* block_table_row = P.block_table + b * P.block_table_stride_batch;
  const TileRanges ranges = sequence_tiles(P, kv_len);
  // Set by the loads when a block_table entry of this block's tiles is outside [0, num_pages). The blocks of a
  // sequence read the same pages for every kv head, and together all of its visible range, so the one that meets a
  // bad entry zeroes its rows and the merge zeroes the rest (SWAJIT_FLAGGED_LSE): every row of the sequence is zeros, as the
  // status message says, at the cost of one barrier that was there anyway.
  bool saw_bad_page = false;

  const u32 q_smem = smem_u32(smem);
  const u32 k_smem = q_smem + kQBytes;
  const u32 v_smem = k_smem + kStages * kTileBytes;

  stamp(P, kTimelineItemFound, work.first_of_block);
  load_q_tile(P, q_smem, b, kv_head);
  cp_async_commit();
  stamp(P, kTimelineQIssued, work.first_of_block);
  const StageBarriers barriers{q_smem + kBarrierOffset};  // kProducer > 0 only
  if constexpr (kProducer == 0) {
#pragma unroll
    for (int s = 0; s < kStages - 1; ++s) {
      const int t = first_tile + s;
      if (t < last_tile)
        load_kv_tile(P, k_smem + s * kTileBytes, v_smem + s * kTileBytes, block_table_row, b, kv_head,
                     ranges.tile_begin(t), ranges.tile_end(t), saw_bad_page);
      cp_async_commit();
    }
  } else if (threadIdx.x == 0) {
    barriers.init();
  }
  stamp(P, kTimelineCopiesIssued, work.first_of_block);  // (their addresses waited for the block_table reads)

  WarpState<1> st;  // one 16-row tile per warp
  st.clear();

  QOperand q_frag;
  const bool producer_warp = kProducer > 0 && warp == kWarps;
  // kEarlyTiles: the producer issues the item's first kStages tiles (free stages: nothing to wait for) before the
  // block waits for Q, so the first tile's latency passes with Q's instead of after it.
  const int early_end = kEarlyTiles ? min(last_tile, first_tile + kStages) : first_tile;
  if constexpr (kProducer > 0 && kEarlyTiles) {
    __syncthreads();  // the stage barriers are initialized
    if (producer_warp)
      produce_tiles(P, barriers, k_smem, v_smem, block_table_row, b, kv_head, ranges, first_tile, first_tile, early_end,
                    kv_len, lane, saw_bad_page);
  }
  cp_async_wait<kProducer == 0 ? kStages - 1 : 0>();  // the Q group is complete
  __syncthreads();                                     // (and the stage barriers initialized)
  float score_scale = P.scale_log2;  // scores are <q, k> times this (log2 units)
  if constexpr (kIntegerScores) {
    quantize_q_rows(P, q_smem, kv_head);
    __syncthreads();
  } else if constexpr (kKvQuant != 0) {
    score_scale *= permute_q_and_fold_k_scale<kRowsPadded>(P, q_smem, kv_head);
    __syncthreads();
  }
  if (!producer_warp) q_frag.load(q_smem, warp_m, lane);

  if constexpr (kProducer == 0) {
    // kPagesAhead: the entries of the next tile to load are read a tile step before its copies, so that their latency
    // (a DRAM round trip per tile with pages of one token) passes during a tile's math instead of before its copies.
    TilePages<kThreads> ahead;
    const auto read_ahead = [&](int tile) {
      if (kPagesAhead && tile < last_tile)
        ahead.read(P, block_table_row, ranges.tile_begin(tile), ranges.tile_end(tile), threadIdx.x);
    };
    read_ahead(first_tile + kStages - 1);
    for (int t = first_tile; t < last_tile; ++t) {
      cp_async_wait<kStages - 2>();  // tile t has landed
      __syncthreads();               // ... for every thread, and every warp is done with tile t - 1's stage
      stamp(P, kTimelineFirstTile, work.first_of_block && t == first_tile);
      const int next = t + kStages - 1;
      const int next_stage = (next - first_tile) % kStages;
      if (next < last_tile)
        load_kv_tile(P, k_smem + next_stage * kTileBytes, v_smem + next_stage * kTileBytes, block_table_row, b, kv_head,
                     ranges.tile_begin(next), ranges.tile_end(next), saw_bad_page, threadIdx.x,
                     kPagesAhead ? &ahead : nullptr);
      cp_async_commit();
      read_ahead(next + 1);
      const int stage = (t - first_tile) % kStages;
      attend_stored_tile(P, st, q_frag, score_scale, q_smem, k_smem + stage * kTileBytes, v_smem + stage * kTileBytes,
                         ranges, t, kv_len, warp_m, token0, lane, [] {});
    }
  } else if (producer_warp) {
    produce_tiles(P, barriers, k_smem, v_smem, block_table_row, b, kv_head, ranges, first_tile, early_end, last_tile,
                  kv_len, lane, saw_bad_page);
  } else {
    for (int t = first_tile; t < last_tile; ++t) {
      const int i = t - first_tile, stage = i % kStages;
      mbarrier_wait(barriers.full(i), StageBarriers::parity(i));  // tile t (kSplitKv: its K) has landed
      stamp(P, kTimelineFirstTile, work.first_of_block && i == 0);
      const auto wait_for_v = [&] {
        if (kSplitKv) mbarrier_wait(barriers.full_v(i), StageBarriers::parity(i));
      };
      attend_stored_tile(P, st, q_frag, score_scale, q_smem, k_smem + stage * kTileBytes, v_smem + stage * kTileBytes,
                         ranges, t, kv_len, warp_m, token0, lane, wait_for_v);
      __syncwarp();  // every lane's reads of the stage are done
      if (lane == 0) mbarrier_arrive(barriers.empty(i));
    }
  }
  stamp(P, kTimelineLoopDone, work.first_of_block);
  allow_dependent_grid_launch();  // the merge grid may get scheduled; it waits for this grid's writes
  cp_async_wait<0>();
  const bool sequence_flagged = __syncthreads_or(saw_bad_page);  // and the K/V area becomes the epilogue buffer
  if (sequence_flagged) st.clear();
  write_block_output(P, st, smem + kQBytes, warp_m, warp_n, lane, work, sequence_flagged);
  stamp(P, kTimelineEpilogueDone, work.first_of_block);
  if (kFusedMerge && !work.whole) merge_pair_if_last(P, work);
  // Every arrival on the stage barriers came before the barriers above: the next item may initialize them again.
  if (kProducer > 0 && threadIdx.x == 0) barriers.invalidate();
}

// kTimeline: the block's last points and what it did.
SWAJIT_DEVICE void record_items(const PagedDecodeParams& P, int items, int tiles, int pieces) {
  stamp(P, kTimelineBlockDone);
  timeline_set(P, kTimelineSm, sm_id());
  timeline_set(P, kTimelineItems, items);
  timeline_set(P, kTimelineTiles, tiles);
  timeline_set(P, kTimelinePieces, pieces);
}

// The scheduled grid (templates/decode_schedule.h): every block walks its range of the batch, item after item.
// One copy of the item body only: a second one outside the loop for blocks of one item (equal lengths, q4: the loop
// sits at the 255-register cap) took the kernel from 5624 to 9472 SASS instructions and cost ragged q4 3-19% while
// uniform q4 gained nothing (H200, session 10: log-uniform b8 37.6 -> 30.4 us without it; uniform b128 513.6 / 516.3).
SWAJIT_DEVICE void run_scheduled_block(const PagedDecodeParams& P) {
  DecodeWork work;
  ScheduledBlock schedule;
  schedule.find(P);
  timeline_set(P, kTimelineItems, schedule.end - schedule.begin);  // (waits for the lengths) before the stamp
  stamp(P, kTimelineScheduled);
  bool more = schedule.next(P, work);
  int items = 0, tiles = 0, pieces = 1;  // kTimeline only
  while (more) {
    attend_item(P, work);
    ++items, tiles += work.last_tile - work.first_tile, pieces = max(pieces, work.whole ? 1 : work.pieces);
    work.first_of_block = false;
    more = schedule.next(P, work);
    if (more) __syncthreads();  // every thread is done with the epilogue's shared memory before the next loads
  }
  record_items(P, items, tiles, pieces);
}

// The direct grid: one item per block and no schedule, so none of the scheduled kernel's loop state is live across
// the tile loop (H200, session 5: the item loop took 195 -> 225 registers and the schedule's scan at every block's
// head cost batch 1 11.6 -> 14.1 us). Block x is (sequence, piece, kv head), kv head fastest: a sequence's kv heads run
// side by side and read the same pages (session 5 run C: that order beat (sequence, kv head) blocks 530 vs 554 us at
// batch 128). P.sequence_pieces 1: the whole sequence, output written directly; N > 1: its visible tiles cut evenly
// into N pieces, written as the schedule writes the pieces of a sequence cut at block b N (its first piece in that
// block's second entry, piece s in block b N + s's first), which the merge grid reads from the records.
SWAJIT_DEVICE void run_direct_block(const PagedDecodeParams& P) {
  const int pieces = P.sequence_pieces;
  const int block = blockIdx.x / P.num_kv_heads;  // b x pieces + piece
  DecodeWork work;
  work.b = block / pieces;
  work.kv_head = blockIdx.x % P.num_kv_heads;
  const int tiles = visible_tile_count(P, work.b);
  timeline_set(P, kTimelineTiles, tiles);  // (waits for seq_lens) before the stamp
  stamp(P, kTimelineScheduled);
  if (pieces == 1) {
    work.last_tile = tiles;
  } else {
    const int piece = block % pieces;
    work.whole = false;
    work.first_block = block - piece;
    work.pieces = pieces;
    work.first_tile = piece * tiles / pieces;
    work.last_tile = (piece + 1) * tiles / pieces;
    work.item = schedule_entry(block, piece == 0) * P.num_kv_heads + work.kv_head;
    if (work.kv_head == 0 && threadIdx.x == 0) {  // the merge grid's record of this block, written every call
      P.merge_records[kMergeRecordInts * block] = piece == 0 ? work.b : -1;
      P.merge_records[kMergeRecordInts * block + 1] = pieces;
    }
  }
  attend_item(P, work);
  record_items(P, 1, work.last_tile - work.first_tile, pieces);
}

// The module's one main kernel: the direct or the scheduled grid (kDirectGrid, DecodeConfig::direct_grid), never both,
// so a module compiles the item body once.
extern "C" __global__ void __launch_bounds__(kThreads, kMinBlocks) SWAJIT_DECODE_KERNEL(const __grid_constant__ PagedDecodeParams P) {
  if constexpr (kTimeline)  // a fresh record (points a block never passes stay 0)
    for (int word = 1; word < kTimelineWords; ++word) timeline_set(P, word, 0);
  stamp(P, kTimelineEntry);
  if constexpr (kPrefetchMetadata)  // (the direct grid's sequence and kv head as run_direct_block finds them)
    prefetch_metadata(P, kDirectGrid ? int(blockIdx.x / P.num_kv_heads) / P.sequence_pieces : -1,
                      blockIdx.x % P.num_kv_heads);
  wait_for_prerequisite_grid();  // a programmatic dependent launch: nothing is read before the stream's prior work ends
  stamp(P, kTimelineWaited);
  if constexpr (kDirectGrid)
    run_direct_block(P);
  else
    run_scheduled_block(P);
}

// Block x merges the x-th cut sequence: the grid has a block for each a call can cut, and the records (one per
// schedule block, -1 where none) hold them wherever the cuts fell. Each warp finds the x-th by ballots over 32
// records at a time (their loads issue together), so no block walks the records one load after another.
extern "C" __global__ void __launch_bounds__(kMergeThreads) SWAJIT_MERGE_KERNEL(const PagedDecodeParams P) {
  unsigned long long* const timeline = kTimeline && threadIdx.x == 0
      ? P.timeline + i64(kTimelineWords) * (P.work_items / kEntriesPerBlock) * P.num_kv_heads +
            (blockIdx.x + i64(gridDim.x) * (blockIdx.y + i64(gridDim.y) * blockIdx.z)) * kTimelineMergeWords
      : nullptr;
  const auto merge_stamp = [&](int point) {
    if (timeline != nullptr) timeline[point] = point == kTimelineMergeSm ? sm_id() : global_time_ns();
  };
  if (timeline != nullptr)
    for (int word = 0; word < kTimelineMergeWords; ++word) timeline[word] = 0;
  merge_stamp(kTimelineMergeEntry);
  merge_stamp(kTimelineMergeSm);
  if constexpr (kEarlyTrigger) allow_dependent_grid_launch();  // the next kernel waits for this grid's end anyway
  if constexpr (kMergeLeavesUncut && !kDirectGrid)  // (the direct grid's merge runs only when it cuts)
    if (__ldcg(cut_flag(P)) == 0) return;  // nothing cut: no wait for the main grid (see cut_flag)
  wait_for_prerequisite_grid();
  merge_stamp(kTimelineMergeWaited);
  const int lane = threadIdx.x % 32;
  int wanted = blockIdx.x;  // cut sequences still to pass
  const int records = P.work_items / kEntriesPerBlock;  // one per block of the scheduled grid
  for (int base = 0; base < records; base += 32) {
    const int record = base + lane;
    const bool cut = record < records && P.merge_records[kMergeRecordInts * record] >= 0;
    const unsigned cuts = __ballot_sync(0xffffffffu, cut);
    if (wanted < __popc(cuts)) {
      unsigned rest = cuts;
      for (int i = 0; i < wanted; ++i) rest &= rest - 1;  // drop the lowest `wanted` cut records
      const int record = base + __ffs(rest) - 1;
      const int* merge_record = P.merge_records + kMergeRecordInts * record;
      merge_stamp(kTimelineMergeFound);
      const int row = blockIdx.z;  // the merge grid has a block per row: kRows of them
      // (threadIdx.x < kMergeThreads: the modulo tells the compiler, which then bounds merge_row's loops)
      merge_row(P, merge_record[0], blockIdx.y, row, PieceSlots(P, record, blockIdx.y, row), merge_record[1],
                threadIdx.x % kMergeThreads);
      merge_stamp(kTimelineMergeDone);
      return;
    }
    wanted -= __popc(cuts);
  }
}
