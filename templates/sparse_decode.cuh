// swajit kernel family: sparse top-k decode on CUDA (DeepSeek-V3.2/V4-style indexed attention), sm_80+.
//
// The math (the same as templates/sparse_decode_cpu.cpp, which the CPU backend runs). Sequence b has KV length
// L = seq_lens[b]; its query token s sits at p = L - kQSeqlen + s; q head h reads kv head h / kGroup
// (kGqaInterleaved: h % num_kv_heads). The row's candidates are its selection, slots i < topk of indices[b, s, :]
// (logical positions j through block_table; -1 unused; j > p masked; j inside the local window skipped, the window
// counts it; j outside [-1, L) invalid: status bit, the row is zeros), then with kLocalWindow the last local_window
// positions j <= p.
//     score_j = scale * <q, k_j> (+ score_bias[b, s, i] for a selected slot, kScoreBias)
//     out = sum_j exp(score_j - m) v_j / (sum_j exp(score_j - m) + exp(sink_h - m))   (sink only with kSinkLogits)
// v_j is the V row, or with kSharedKv the first kHeadDimV columns of the K row (MLA's latent row). A row that sees
// nothing is zeros. Scores are kept in log2 units (scale * log2 e) for exp2. 8-bit caches: values are code * scale
// per (kv head, channel); the K scale is folded into q, the V scale applied to the output.
//
// The work split on CUDA cores (any cache; the tensor-core kernel of sparse_decode_mma.cuh is the default for 16-bit
// caches and shares this file's candidates, gather and merge). One block per (sequence, kv head x block of up to
// kRowsPerBlock q heads, query token x split). The block gathers kBlockN candidates' K (and V) rows at a time, page by
// page, with cp.async into a kStages-deep pipeline (padded rows: conflict-free reads); each warp owns
// kRowsPerWarp q heads: lane t scores candidate t of each 32-token slice, the warp's online softmax reduces with
// shuffles, and each lane accumulates its kDvPerLane output columns. With num_splits > 1 each split takes a
// contiguous share of the candidates and writes (out / l in fp32, log2-sum-exp); SWAJIT_MERGE_KERNEL combines them.
//
// Needs from the generator prelude: Elem, kHeadDim, kHeadDimV, kPageSize, kQSeqlen, kGroup, kLocalWindow, kSharedKv,
// kScoreBias, kSinkLogits, kGqaInterleaved, KvElem, kKvQuant, kKvBytes, kBlockN, kStages, kThreads,
// kRowsPerBlock, kQRows, kRowBlocks, kRows, kKRowBytes, kVRowBytes, kQBytes, kStageBytes, kSharedBytes, kMergeThreads and the symbols
// SWAJIT_SPARSE_KERNEL and SWAJIT_MERGE_KERNEL; tile_ops.cuh, sparse_decode_params.h, window_mask.h and
// attention_tile.cuh (row_normalizer, the scale lookups) before it.

constexpr int kWarpSize = 32;
constexpr int kWarps = kThreads / kWarpSize;
constexpr int kRowsPerWarp = kQRows / kWarps;         // q heads each warp owns (kQRows: the block's, padded)
constexpr int kDvPerLane = kHeadDimV / kWarpSize;      // output columns one lane accumulates
constexpr int kKChunks = kHeadDim * kKvBytes / 16;     // 16-byte chunks of a stored K row
constexpr int kVChunks = kHeadDimV * kKvBytes / 16;
constexpr float kLog2e = 1.4426950408889634f;
static_assert(kBlockN % kWarpSize == 0, "a tile is whole 32-token slices, one token per lane");
static_assert(kHeadDimV % kWarpSize == 0 && kHeadDim % 16 == 0, "rows split evenly over the lanes and 16-byte chunks");
#ifndef SWAJIT_SPARSE_MMA
static_assert(kSharedBytes == kQBytes + kStages * kStageBytes + kMetaBytes && kQBytes >= kQRows * kHeadDim * 4 && kQRows % kWarps == 0,
              "prelude geometry disagrees with the template");
#endif

// ---- elements ------------------------------------------------------------------------------------------------------
// Element i of a stored (shared-memory) K/V row: 16-bit, or an 8-bit code not yet scaled.
SWAJIT_DEVICE float stored_to_float(const unsigned char* row, int i) {
  if (kKvQuant == 1) return float(static_cast<signed char>(row[i]));
  if (kKvQuant == 2) {  // e4m3 ("fn"), bias 7, subnormals below exponent 1
    const int b = row[i], exponent = (b >> 3) & 0xf, mantissa = b & 0x7;
    const float magnitude = exponent == 0 ? float(mantissa) * (1.f / 512.f) : ldexpf(1.f + float(mantissa) / 8.f, exponent - 7);
    return (b & 0x80) ? -magnitude : magnitude;
  }
  return to_float(reinterpret_cast<const u16*>(row)[i], Elem());
}
// The dequant scales of channel d (1 for a 16-bit cache); k_scale_at / v_scale_at are attention_tile.cuh's.
SWAJIT_DEVICE float k_scale_of(const SparseDecodeParams& P, int kv_head, int d) { return kKvQuant ? k_scale_at(P, kv_head, d) : 1.f; }
SWAJIT_DEVICE float v_scale_of(const SparseDecodeParams& P, int kv_head, int d) { return kKvQuant ? v_scale_at(P, kv_head, d) : 1.f; }

SWAJIT_DEVICE int q_head_of(const SparseDecodeParams& P, int kv_head, int g) {
  return kGqaInterleaved ? kv_head + g * P.num_kv_heads : kv_head * kGroup + g;
}

// ---- candidates ----------------------------------------------------------------------------------------------------
struct Candidate {
  int j;       // logical position; < 0: nothing to read
  float bias;  // log2 units
};
// Candidate c of query position p: slot c of the selection (c < topk) or the window's (c - topk)-th newest token.
// In two steps, so that a pipelined gather can issue a slot's loads (load_slot) a tile before it reads them
// (judge_slot): an instruction that reads a load waits for it, and behind every copy issued before it.
struct SlotLoad {
  int j;
  float bias;  // as stored (natural-log units)
};
SWAJIT_DEVICE SlotLoad load_slot(const SparseDecodeParams& P, const int* indices, const float* bias, int c) {
  if (c >= P.topk) return {0, 0.f};
  return {indices[c * P.indices_stride_slot], kScoreBias && bias ? bias[c * P.bias_stride_slot] : 0.f};  // null bias: only j is wanted
}
SWAJIT_DEVICE Candidate judge_slot(const SparseDecodeParams& P, const SlotLoad& slot, int p, int c) {
  if (c >= P.topk) return {p - (c - P.topk), 0.f};
  const bool in_window = kLocalWindow && p - slot.j < P.local_window;
  if (slot.j < 0 || slot.j > p || in_window) return {-1, 0.f};
  return {slot.j, slot.bias * kLog2e};
}
SWAJIT_DEVICE Candidate candidate(const SparseDecodeParams& P, const int* indices, const float* bias, int p, int c) {
  return judge_slot(P, load_slot(P, indices, bias, c), p, c);
}
SWAJIT_DEVICE int window_count(const SparseDecodeParams& P, int p) {
  if (!kLocalWindow || p < 0) return 0;
  return min(P.local_window, p + 1);
}

// Whether this block's query row may run: every index in [-1, L) and every page it reads in range (else recorded;
// the bits are those of paged_decode's status). The token-split kernel checks as it gathers instead (share_valid).
SWAJIT_DEVICE bool row_metadata_valid(const SparseDecodeParams& P, int b, int kv_len, int p, const int* indices,
                                      const int* pages) {
  // Indices first: a row with a bad index reports only that (as the CPU kernel does), its pages are not looked up.
  bool bad_index = false;
  for (int c = threadIdx.x; c < P.topk; c += kThreads) {
    const int j = indices[c * P.indices_stride_slot];
    bad_index |= j < -1 || j >= kv_len;
  }
  if (__syncthreads_or(bad_index)) {
    if (threadIdx.x == 0) record_status(P.status, kSparseIndexOutOfRange, b);
    return false;
  }
  bool bad_page = false;
  const int candidates = P.topk + window_count(P, p);
  for (int c = threadIdx.x; c < candidates; c += kThreads) {
    const int j = candidate(P, indices, nullptr, p, c).j;
    if (j < 0) continue;
    const int page = pages[(j / kPageSize) * P.block_table_stride_page];
    bad_page |= page < 0 || page >= P.num_pages;
  }
  if (__syncthreads_or(bad_page)) {
    if (threadIdx.x == 0) record_status(P.status, kSparsePageOutOfRange, b);
    return false;
  }
  return true;
}

// The log2-sum-exp a split writes for a share of its row that the checks rejected: the merge then writes the whole
// row as zeros (a NaN, which no real share produces: an empty one writes -inf).
SWAJIT_DEVICE float rejected_share_lse() { return __int_as_float(0x7fffffff); }

// Query token s of sequence b: its position, block table, selection and bias rows, and whether it may run (an
// invalid sequence reports only its length; sequence validity is the same for the whole block: no divergent sync).
struct QueryRow {
  int p, kv_len;
  const int* pages;
  const int* indices;
  const float* bias;
  bool valid;
  int sequence_error;  // the status bit of an invalid sequence length (0: valid); report_sequence records it
};
// The sequence's checks only (valid: its length is); query_row adds the selection's. Records nothing yet: a store
// before the gather's first loads would hold them back (the compiler cannot tell the status from the indices).
SWAJIT_DEVICE QueryRow query_row_of_sequence(const SparseDecodeParams& P, int b, int s) {
  int kv_len = P.seq_lens[b * P.seq_lens_stride];
  int error = 0;
  if (kv_len < 0 || (kv_len > 0 && kv_len < kQSeqlen)) error = kSparseSeqLenBelowQSeqlen;
  else if (kv_len > P.max_pages_per_seq * kPageSize) error = kSparseSeqLenOverCapacity;
  if (error) kv_len = 0;
  QueryRow row;
  row.p = kv_len - kQSeqlen + s;
  row.kv_len = kv_len;
  row.pages = P.block_table + b * P.block_table_stride_batch;
  row.indices = P.indices + b * P.indices_stride_batch + s * P.indices_stride_token;
  row.bias = kScoreBias ? P.score_bias + b * P.bias_stride_batch + s * P.bias_stride_token : nullptr;
  row.valid = error == 0;
  row.sequence_error = error;
  return row;
}
SWAJIT_DEVICE void report_sequence(const SparseDecodeParams& P, const QueryRow& row, int b) {
  if (row.sequence_error && threadIdx.x == 0) record_status(P.status, row.sequence_error, b);
}
// Both checks before anything runs.
SWAJIT_DEVICE QueryRow query_row(const SparseDecodeParams& P, int b, int s) {
  QueryRow row = query_row_of_sequence(P, b, s);
  report_sequence(P, row, b);
  row.valid = row.valid && row_metadata_valid(P, b, row.kv_len, row.p, row.indices, row.pages);
  return row;
}

// The block's work: sequence b, kv head, the first of its q heads (g within the kv head's group), query token s and
// split; and the thread's warp and lane. The grid is (row block + kRowBlocks b, kv head, s x split): the row blocks of
// one (sequence, kv head) are launched one after the other, so they gather the same rows at about the same time and
// the second reads them from L2 (MLA's 128 heads are two row blocks over one latent row). (A sequence's kv heads
// launched together instead, reading the neighbouring rows of the same tokens at once, ran 1-3% slower at batch 128
// on the H200 in session 5's run B2, beside other changes: not kept.)
struct BlockWork {
  int b, kv_head, first_g, s, split, warp, lane;
};
SWAJIT_DEVICE BlockWork block_work(const SparseDecodeParams& P) {
  return {int(blockIdx.x) / kRowBlocks, int(blockIdx.y), int(blockIdx.x) % kRowBlocks * kRowsPerBlock,
          int(blockIdx.z) / P.num_splits, int(blockIdx.z) % P.num_splits, int(threadIdx.x) / kWarpSize,
          int(threadIdx.x) % kWarpSize};
}

// ---- the gather pipeline ---------------------------------------------------------------------------------------
// Where each candidate of a tile lives, looked up ahead of its copies: the index and block-table reads are dependent
// global loads, and each cp.async (a memory clobber) would otherwise wait for them chunk by chunk. Thread i owns
// candidate i of every tile and pipelines its lookups through registers over three iterations: the raw slot (index
// and bias loads issued), then its mask and page (the block-table load issued), then its TileRow into the shared
// ring, so that no iteration waits on a global load it issued itself. The ring holds each row's byte offsets in the
// K and V caches (the kv head's column aside): computed once per candidate here, not once per 16-byte copy of it.
struct TileRow {
  long long k_offset;  // bytes from the K cache to the row's token (page and slot); < 0: nothing to read (zero-filled)
  long long v_offset;  // the same in the V cache
  float bias;          // log2 units; -inf where there is nothing to read
  int status;          // kPersistent: the status bits its lookups found (0 otherwise: share_valid tallies them)
};
constexpr int kMetaSlots = kStages + 1;  // tile t + kStages is stored into tile t - 1's slot while t computes
static_assert(kMetaBytes == kMetaSlots * kBlockN * int(sizeof(TileRow)), "prelude lookup ring disagrees with the template");
static_assert(kThreads >= kBlockN, "one thread per candidate of a tile");

// A candidate's lookup, stage 1: the raw slot (for a selected slot its index and bias as loaded; the window's
// position as computed).
struct RawSlot {
  int index;
  float bias;
  bool exists;    // within this block's share of the candidates
  bool selected;  // a slot of the selection (else the window's)
  int kv_len, b, s;  // kPersistent: the item's sequence length as loaded, its sequence and query token
};
// Stage 2: the candidate's position (< 0: nothing to read) and its page as loaded.
struct ResolvedSlot {
  int j, page;
  float bias;  // log2 units
  int status;  // kPersistent: the status bits of the item's sequence and of this index
};

// kPersistent: the grid's blocks take the work items (sequence, kv head, query token x split, in block_work's grid
// order) blockIdx.x, blockIdx.x + gridDim.x, ...; without a window every item has the same number of tiles (a share of
// topk), so the block's gather runs one stream of tiles: tile t is tile t % item_tiles of its (t / item_tiles)-th item.
static_assert(!kPersistent || (kRowBlocks == 1 && !kLocalWindow), "persistent: one block of q heads, no window");
struct WorkItem {
  int b, kv_head, s, split;
};
SWAJIT_DEVICE int work_items(const SparseDecodeParams& P) { return P.batch * P.num_kv_heads * kQSeqlen * P.num_splits; }
SWAJIT_DEVICE WorkItem work_item(const SparseDecodeParams& P, int item) {
  const int heads_and_rest = item / P.batch, z = heads_and_rest / P.num_kv_heads;
  return {item % P.batch, heads_and_rest % P.num_kv_heads, z / P.num_splits, z % P.num_splits};
}
SWAJIT_DEVICE int item_tiles(const SparseDecodeParams& P) {  // the tiles of the largest split's share
  return ((P.topk + P.num_splits - 1) / P.num_splits + kBlockN - 1) / kBlockN;
}
SWAJIT_DEVICE int block_item(int item_of_block) { return int(blockIdx.x) + item_of_block * int(gridDim.x); }

#ifndef SWAJIT_L2_PREFETCH_BYTES  // the generator's (config l2_prefetch); none when a prelude does not say
#define SWAJIT_L2_PREFETCH_BYTES 0
#endif
constexpr int kL2PrefetchBytes = SWAJIT_L2_PREFETCH_BYTES;
// One 16-byte cp.async of the row `offset` bytes past `base` (the chunk's own column added), zero-filled where offset
// < 0 (nothing to read: the ignore-src predicate, no source-size arithmetic). With kBlock 128 or 256 it asks L2 to fetch
// the whole aligned block around the chunk: a gathered row's first copy brings all of it from DRAM in one request.
template <int kBlock>
SWAJIT_DEVICE void cp_async_row_chunk(u32 dst, const char* base, long long offset) {
  const char* src = base + (offset < 0 ? 0 : offset);
  if constexpr (kBlock == 256)
    asm volatile("{\n .reg .pred skip;\n setp.lt.s64 skip, %2, 0;\n cp.async.cg.shared.global.L2::256B [%0], [%1], 16, skip;\n}"
                 ::"r"(dst), "l"(src), "l"(offset) : "memory");
  else if constexpr (kBlock == 128)
    asm volatile("{\n .reg .pred skip;\n setp.lt.s64 skip, %2, 0;\n cp.async.cg.shared.global.L2::128B [%0], [%1], 16, skip;\n}"
                 ::"r"(dst), "l"(src), "l"(offset) : "memory");
  else
    asm volatile("{\n .reg .pred skip;\n setp.lt.s64 skip, %2, 0;\n cp.async.cg.shared.global [%0], [%1], 16, skip;\n}"
                 ::"r"(dst), "l"(src), "l"(offset) : "memory");
}

// L2 prefetches (no register written, nothing waited for): the 128-byte line holding `address`, and every line of
// the `bytes` bytes from `address`.
SWAJIT_DEVICE void prefetch_l2(const void* address) { asm volatile("prefetch.global.L2 [%0];" ::"l"(address)); }
SWAJIT_DEVICE void prefetch_l2_lines(const char* address, int bytes) {
  constexpr int kLineBytes = 128;
  const char* line = address - reinterpret_cast<unsigned long long>(address) % kLineBytes;
#pragma unroll
  for (int i = 0; i < (bytes + kLineBytes - 1) / kLineBytes + 1; ++i)  // (one more: an unaligned row spans it)
    if (line + i * kLineBytes < address + bytes) prefetch_l2(line + i * kLineBytes);
}

// This split's share [first, last) of its row's candidates, in tiles. Without a window the count is topk whatever the
// sequence's length, so the gather's first index loads need not wait for seq_lens (an invalid sequence gets no tiles).
struct Share {
  int first, last, tiles;
};
SWAJIT_DEVICE Share split_share(const SparseDecodeParams& P, const QueryRow& query, int split) {
  const int candidates = kLocalWindow ? (query.valid ? P.topk + window_count(P, query.p) : 0) : P.topk;
  const int first = int(i64(candidates) * split / P.num_splits), last = int(i64(candidates) * (split + 1) / P.num_splits);
  return {first, last, query.valid ? (last - first + kBlockN - 1) / kBlockN : 0};
}

struct Gather {
  const SparseDecodeParams& P;
  QueryRow query;
  unsigned char* stages;  // kStages x kStageBytes
  TileRow* meta;          // kMetaSlots x kBlockN
  int kv_head, first, last, tiles;
  ResolvedSlot resolved_ahead{};  // this thread's candidate of tile t + kStages + 1 (at the top of iteration t)
  RawSlot raw_ahead{};            // ... and of tile t + kStages + 2
  bool bad_index = false, bad_page = false;  // what this thread's lookups found (share_valid)

  __device__ __forceinline__ const unsigned char* stage(int t) const { return stages + (t % kStages) * kStageBytes; }
  __device__ __forceinline__ const TileRow* rows(int t) const { return meta + (t % kMetaSlots) * kBlockN; }

  __device__ __forceinline__ RawSlot raw(int t) const {
    if constexpr (kPersistent) return raw_of_item(t);
    const int token = threadIdx.x, c = first + t * kBlockN + token;
    RawSlot r{-1, 0.f, token < kBlockN && c < last, c < P.topk};
    if (!r.exists) return r;
    if (!r.selected) {
      r.index = query.p - (c - P.topk);  // the window's (c - topk)-th newest position
      return r;
    }
    r.index = query.indices[c * P.indices_stride_slot];
    if (kScoreBias && query.bias) r.bias = query.bias[c * P.bias_stride_slot];
    return r;
  }
  // kPersistent: tile t of the block's stream; its item's sequence length is loaded beside the index (the items change
  // from tile to tile: none of it is known ahead).
  __device__ __forceinline__ RawSlot raw_of_item(int t) const {
    const int token = threadIdx.x, item_of_block = t / item_tiles(P), tile = t - item_of_block * item_tiles(P);
    RawSlot r{-1, 0.f, token < kBlockN && t < tiles, true, 0, 0, 0};
    if (!r.exists) return r;
    const WorkItem w = work_item(P, block_item(item_of_block));
    const int first_slot = int(i64(P.topk) * w.split / P.num_splits), last_slot = int(i64(P.topk) * (w.split + 1) / P.num_splits);
    const int c = first_slot + tile * kBlockN + token;
    r.exists = c < last_slot;
    if (!r.exists) return r;
    r.b = w.b;
    r.s = w.s;
    r.kv_len = P.seq_lens[w.b * P.seq_lens_stride];
    const i64 slot = i64(w.b) * P.indices_stride_batch + i64(w.s) * P.indices_stride_token;
    r.index = P.indices[slot + i64(c) * P.indices_stride_slot];
    if (kScoreBias && P.score_bias)
      r.bias = P.score_bias[i64(w.b) * P.bias_stride_batch + i64(w.s) * P.bias_stride_token + i64(c) * P.bias_stride_slot];
    return r;
  }
  // kPersistent: as query_row_of_sequence and resolve check and mask, the findings kept with the candidate (status).
  __device__ __forceinline__ ResolvedSlot resolve_of_item(const RawSlot& r) const {
    if (!r.exists) return {-1, -1, 0.f, 0};
    int kv_len = r.kv_len, status = 0;
    if (kv_len < 0 || (kv_len > 0 && kv_len < kQSeqlen)) status = kSparseSeqLenBelowQSeqlen;
    else if (kv_len > P.max_pages_per_seq * kPageSize) status = kSparseSeqLenOverCapacity;
    if (status) kv_len = 0;
    const int j = r.index, p = kv_len - kQSeqlen + r.s;
    if (!status && (j < -1 || j >= kv_len)) status = kSparseIndexOutOfRange;
    if (status || j < 0 || j > p) return {-1, -1, 0.f, status};
    const int* pages = P.block_table + i64(r.b) * P.block_table_stride_batch;
    return {j, pages[(j / kPageSize) * P.block_table_stride_page], r.bias * kLog2e, 0};
  }
  __device__ __forceinline__ ResolvedSlot resolve(const RawSlot& r) {  // as candidate() masks
    if constexpr (kPersistent) return resolve_of_item(r);
    const int j = r.index;
    // (an invalid sequence, whose slots may have been loaded before its length was known: reported as that alone)
    bad_index |= query.valid && r.exists && r.selected && (j < -1 || j >= query.kv_len);
    const bool in_window = kLocalWindow && query.p - j < P.local_window;
    const bool visible = r.exists && (!r.selected || (j >= 0 && j <= query.p && !in_window));
    if (!visible) return {-1, -1, 0.f, 0};
    return {j, query.pages[(j / kPageSize) * P.block_table_stride_page], r.selected ? r.bias * kLog2e : 0.f, 0};
  }
  // A page outside the cache is never read (the row it belongs to is reported and zeroed: share_valid).
  __device__ __forceinline__ void store(int t, const ResolvedSlot& r) {
    if (threadIdx.x >= kBlockN) return;
    const bool readable = r.j >= 0 && r.page >= 0 && r.page < P.num_pages;
    bad_page |= r.j >= 0 && !readable;
    const long long page = r.page, slot = r.j % kPageSize;
    const int status = r.status | (r.j >= 0 && !readable ? kSparsePageOutOfRange : 0);
    const TileRow row = readable ? TileRow{(page * P.k_stride_page + slot * P.k_stride_token) * kKvBytes,
                                           (page * P.v_stride_page + slot * P.v_stride_token) * kKvBytes, r.bias, 0}
                                 : TileRow{-1, -1, SWAJIT_NEG_INF, status};
    meta[(t % kMetaSlots) * kBlockN + threadIdx.x] = row;
    // kL2Ahead: a tile stored here is copied an iteration later (the prologue copies tile 0 at once): its rows start
    // for L2 now, so that DRAM has a tile more in flight than the stages hold.
    if (kL2Ahead && readable && t >= kStages - 1) {
      const int head = tile_kv_head(t);
      prefetch_l2_lines(k_row_base(head) + row.k_offset, kHeadDim * kKvBytes);
      if (!kSharedKv) prefetch_l2_lines(v_row_base(head) + row.v_offset, kHeadDimV * kKvBytes);
    }
  }
  __device__ __forceinline__ int tile_kv_head(int t) const {  // the kv head tile t reads
    return kPersistent ? work_item(P, block_item(t / item_tiles(P))).kv_head : kv_head;
  }
  __device__ __forceinline__ const char* k_row_base(int head) const {  // the kv head's column of the K cache
    return static_cast<const char*>(P.k_cache) + head * P.k_stride_head * kKvBytes;
  }
  __device__ __forceinline__ const char* v_row_base(int head) const {
    return static_cast<const char*>(P.v_cache) + head * P.v_stride_head * kKvBytes;
  }
  // kTablePrefetch: the block's sequence's block_table row (at most a line per thread) asked of L2 before the first
  // index loads, so that the page lookups that follow them find it there rather than in DRAM.
  __device__ __forceinline__ void prefetch_block_table() const {
    constexpr int kLineBytes = 128;
    const char* first = reinterpret_cast<const char*>(query.pages);
    const long long bytes = (i64(P.max_pages_per_seq - 1) * P.block_table_stride_page + 1) * int(sizeof(int));
    const long long lines = (reinterpret_cast<unsigned long long>(first) % kLineBytes + bytes + kLineBytes - 1) / kLineBytes;
    if (threadIdx.x < lines) prefetch_l2(first - reinterpret_cast<unsigned long long>(first) % kLineBytes + threadIdx.x * kLineBytes);
  }
  // Tile t's K rows (and V rows) of kKRowBytes (kVRowBytes) each into its stage, zero-filled where there is nothing.
  // When the threads are whole rows' worth of copiers (kThreads a multiple of kCopiersPerToken), each thread copies
  // the same kRepeat chunks, a 128-byte line apart, of every kTokensPerPass-th row: its cache, column and destination
  // offsets are fixed, and a row's kRepeat copies cost one ring read of its offset and the cp.asyncs. The lanes of
  // one copy instruction still cover whole lines (kLineChunks consecutive chunks of a row).
  static constexpr int kLineChunks = 8;  // 16-byte chunks of a 128-byte line
  static constexpr int kRepeat = kKChunks % kLineChunks == 0 && (kSharedKv || kVChunks == kKChunks) ? kKChunks / kLineChunks : 1;
  __device__ __forceinline__ void copy(int t) const {
    constexpr int kChunksPerToken = kKChunks + (kSharedKv ? 0 : kVChunks);
    constexpr int kCopiersPerToken = kChunksPerToken / kRepeat, kKCopiers = kKChunks / kRepeat;
    const TileRow* tile_rows = rows(t);
    unsigned char* dst_stage = stages + (t % kStages) * kStageBytes;
    if constexpr (kThreads % kCopiersPerToken == 0) {
      constexpr int kTokensPerPass = kThreads / kCopiersPerToken;
      const int copier = threadIdx.x % kCopiersPerToken;
      const bool is_k = copier < kKCopiers;
      const int c = is_k ? copier : copier - kKCopiers;  // chunks c, c + kKCopiers, ... of the row
      const int head = tile_kv_head(t);
      const char* base = (is_k ? k_row_base(head) : v_row_base(head)) + c * 16;
      const long long* offsets = is_k ? &tile_rows[0].k_offset : &tile_rows[0].v_offset;  // row r's: offsets[r * kOffsetStride]
      constexpr int kOffsetStride = int(sizeof(TileRow) / sizeof(long long));
      const u32 dst = smem_u32(dst_stage) + (is_k ? 0 : kBlockN * kKRowBytes) + c * 16;
      const int row_bytes = is_k ? kKRowBytes : kVRowBytes;
      constexpr int kPasses = (kBlockN + kTokensPerPass - 1) / kTokensPerPass;  // (a fixed count: no remainder loop)
      const int first_token = threadIdx.x / kCopiersPerToken;
#pragma unroll 4
      for (int pass = 0; pass < kPasses; ++pass) {
        const int token = first_token + pass * kTokensPerPass;
        if (kBlockN % kTokensPerPass != 0 && token >= kBlockN) break;
        // kStaggerV: V copiers take the row half a tile on (each row still copied once), so a copy instruction's lanes
        // never ask for one token's K and V together
        const int row = kStaggerV && !is_k ? (token + kBlockN / 2) % kBlockN : token;
        const long long offset = offsets[row * kOffsetStride];
#pragma unroll
        for (int r = 0; r < kRepeat; ++r)
          cp_async_row_chunk<kL2PrefetchBytes>(dst + u32(row * row_bytes + r * kKCopiers * 16), base + r * kKCopiers * 16, offset);
      }
    } else {
      const int head = tile_kv_head(t);
#pragma unroll 2  // (4 made ptxas cap the tile kernel at 64 registers and spill)
      for (int i = threadIdx.x; i < kBlockN * kChunksPerToken; i += kThreads) {
        const int token = i / kChunksPerToken, chunk = i % kChunksPerToken;
        const bool is_k = chunk < kKChunks;
        const int c = is_k ? chunk : chunk - kKChunks;
        const char* base = is_k ? k_row_base(head) : v_row_base(head);
        unsigned char* dst = dst_stage + (is_k ? token * kKRowBytes : kBlockN * kKRowBytes + token * kVRowBytes) + c * 16;
        cp_async_row_chunk<kL2PrefetchBytes>(smem_u32(dst), base + c * 16, is_k ? tile_rows[token].k_offset : tile_rows[token].v_offset);
      }
    }
  }
  // Whether the block's share of the row passed the checks its own lookups made, every tile's (an index outside
  // [-1, L), else a page outside the cache: recorded as row_metadata_valid records them). Every thread calls it, after
  // the last tile: it costs no load of its own.
  __device__ __forceinline__ bool share_valid(int b) const {
    if (__syncthreads_or(bad_index)) {
      if (threadIdx.x == 0) record_status(P.status, kSparseIndexOutOfRange, b);
      return false;
    }
    if (__syncthreads_or(bad_page)) {
      if (threadIdx.x == 0) record_status(P.status, kSparsePageOutOfRange, b);
      return false;
    }
    return true;
  }
  // The prologue: tiles 0 .. kStages - 1 looked up, the next two started, tiles 0 .. kStages - 2 in flight (one
  // commit group each). Ends with a __syncthreads, which also publishes what the caller wrote to shared memory before.
  // Every index load is issued before the first block-table load, and those before the first store to the ring (a
  // store may alias a later load for the compiler): two memory latencies in all, not two per tile.
  __device__ __forceinline__ void start() {
    if (kTablePrefetch && !kPersistent && P.max_pages_per_seq > 0) prefetch_block_table();
    RawSlot raws[kStages + 2];
#pragma unroll
    for (int t = 0; t < kStages + 2; ++t) raws[t] = raw(t);
    ResolvedSlot resolved[kStages + 1];
#pragma unroll
    for (int t = 0; t < kStages + 1; ++t) resolved[t] = resolve(raws[t]);
#pragma unroll
    for (int t = 0; t < kStages; ++t) store(t, resolved[t]);
    resolved_ahead = resolved[kStages];
    raw_ahead = raws[kStages + 1];
    __syncthreads();
    for (int t = 0; t < kStages - 1; ++t) {
      if (t < tiles) copy(t);
      cp_async_commit();
    }
  }
  // The top of iteration t: tile t + kStages - 1 in flight, tile t + kStages stored to the ring, the next two tiles'
  // lookups one stage further, tile t landed (this thread's copies). The caller's __syncthreads next makes tile t and
  // the stored lookups visible to every thread.
  __device__ __forceinline__ void advance(int t) {
    if (t + kStages - 1 < tiles) copy(t + kStages - 1);
    cp_async_commit();
    if (t + kStages < tiles) store(t + kStages, resolved_ahead);
    resolved_ahead = resolve(raw_ahead);
    raw_ahead = raw(t + kStages + 2);
    cp_async_wait<kStages - 1>();
  }
};

// ---- tensor-core helpers (sparse_decode_mma.cuh, sparse_decode_tokens.cuh) ----------------------------------------
constexpr int kMmaRows = 16;  // rows of one mma tile
constexpr int kHalf = 2;      // bytes of a 16-bit element
// The ldmatrix_x4 address of lane `lane` for the A fragment (16 rows x 16 columns, row-major, `stride` bytes a row)
// whose top-left element is (row, column): matrices (rows 0-7 | 8-15) x (columns 0-7 | 8-15) in a0..a3 order.
SWAJIT_DEVICE u32 a_fragment_address(u32 base, int stride, int row, int column, int lane) {
  return base + u32((row + lane % 8 + (lane / 8) % 2 * 8) * stride + (column + lane / 16 * 8) * kHalf);
}

constexpr int kQRowBytes = kHeadDim * 2 + 16;  // Q rows padded as the K rows: conflict-free ldmatrix
// The block's q heads as stored (16-bit) into kQRows rows of kQRowBytes; rows past the block's are zeros. The softmax
// scale is applied to the fp32 scores.
SWAJIT_DEVICE void load_q_rows(const SparseDecodeParams& P, unsigned char* q_rows, int b, int s, int kv_head, int first_g) {
  for (int i = threadIdx.x; i < kQRows * kHeadDim; i += kThreads) {
    const int row = i / kHeadDim, g = first_g + row, d = i % kHeadDim;
    u16 value = 0;
    if (row < kRowsPerBlock && g < kGroup)
      value = static_cast<const u16*>(P.q)[b * P.q_stride_batch + s * P.q_stride_token + q_head_of(P, kv_head, g) * P.q_stride_head + d];
    *reinterpret_cast<u16*>(q_rows + row * kQRowBytes + d * kHalf) = value;
  }
}

// One q head's output row g from mma-layout accumulator fragments (the tensor-core kernels' epilogue: fragment n holds
// this thread's column pair column0 + 8 n in elements e and e + 1), given the row's maximum (log2 units) and sum over
// its whole selection share: normalized with the sink, or the split's partial and log2-sum-exp (written by the thread
// with writes_lse) for the merge, where the sink joins once per row.
template <int kFrags>
SWAJIT_DEVICE void write_fragment_row(const SparseDecodeParams& P, const float (&acc)[kFrags][4], int e, int column0,
                                      float row_max, float sum, int b, int s, int kv_head, int g, int split, bool writes_lse) {
  const int head = q_head_of(P, kv_head, g);
  const float reference = row_max == SWAJIT_NEG_INF ? 0.f : row_max;
  if (P.num_splits == 1) {
    const float factor = row_normalizer(kSinkLogits ? P.sink_logits[head * P.sink_logits_stride] : 0.f, reference, sum);
    u16* out = static_cast<u16*>(P.out) + b * P.out_stride_batch + s * P.out_stride_token + head * P.out_stride_head;
#pragma unroll
    for (int n = 0; n < kFrags; ++n)
      *reinterpret_cast<u32*>(out + column0 + n * 8) = pack2(acc[n][e] * factor, acc[n][e + 1] * factor, Elem());
  } else {
    const i64 slot = (i64(b * P.num_kv_heads + kv_head) * P.num_splits + split) * kRows + s * kGroup + g;
    const float inv_sum = sum > 0.f ? 1.f / sum : 0.f;
    float* partial = static_cast<float*>(P.partial_out) + slot * kHeadDimV + column0;
#pragma unroll
    for (int n = 0; n < kFrags; ++n)
      *reinterpret_cast<float2*>(partial + n * 8) = make_float2(acc[n][e] * inv_sum, acc[n][e + 1] * inv_sum);
    if (writes_lse) P.partial_lse[slot] = sum > 0.f ? reference + __log2f(sum) : SWAJIT_NEG_INF;
  }
}

// ---- the kernel (CUDA cores; with SWAJIT_SPARSE_MMA sparse_decode_mma.cuh's is the main kernel) ----------------
#ifndef SWAJIT_SPARSE_MMA
extern "C" __global__ void __launch_bounds__(kThreads) SWAJIT_SPARSE_KERNEL(const SparseDecodeParams P) {
  extern __shared__ __align__(128) unsigned char smem[];
  float* q_tile = reinterpret_cast<float*>(smem);  // [kRowsPerBlock][kHeadDim], log2 units, K scale folded in
  unsigned char* stages = smem + kQBytes;
  const auto [b, kv_head, first_g, s, split, warp, lane] = block_work(P);
  wait_for_prerequisite_grid();

  const QueryRow query = query_row(P, b, s);
  const int p = query.p;

  for (int i = threadIdx.x; i < kQRows * kHeadDim; i += kThreads) {  // rows past the block's are zeros
    const int row = i / kHeadDim, g = first_g + row, d = i % kHeadDim;
    float value = 0.f;
    if (row < kRowsPerBlock && g < kGroup) {
      const u16* q = static_cast<const u16*>(P.q) + b * P.q_stride_batch + s * P.q_stride_token +
                     q_head_of(P, kv_head, g) * P.q_stride_head;
      value = to_float(q[d], Elem()) * k_scale_of(P, kv_head, d) *
              P.scale_log2;
    }
    q_tile[i] = value;
  }

  const Share share = split_share(P, query, split);
  Gather gather{P, query, stages, reinterpret_cast<TileRow*>(stages + kStages * kStageBytes), kv_head, share.first,
                share.last, share.tiles};
  gather.start();

  float acc[kRowsPerWarp][kDvPerLane];
  float row_max[kRowsPerWarp], row_sum[kRowsPerWarp];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    row_max[r] = SWAJIT_NEG_INF;
    row_sum[r] = 0.f;
#pragma unroll
    for (int e = 0; e < kDvPerLane; ++e) acc[r][e] = 0.f;
  }
  for (int t = 0; t < gather.tiles; ++t) {
    gather.advance(t);
    __syncthreads();
    const unsigned char* k_rows = gather.stage(t);
    const TileRow* tile_rows = gather.rows(t);
    const unsigned char* v_rows = kSharedKv ? k_rows : k_rows + kBlockN * kKRowBytes;
    constexpr int kVStride = kSharedKv ? kKRowBytes : kVRowBytes;
    for (int slice = 0; slice < kBlockN; slice += kWarpSize) {
      const int token = slice + lane;
      const float token_bias = tile_rows[token].bias;  // -inf where there is nothing to read
      float score[kRowsPerWarp];
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; ++r) score[r] = 0.f;
      const unsigned char* k_row = k_rows + token * kKRowBytes;
      for (int d = 0; d < kHeadDim; ++d) {
        const float k = stored_to_float(k_row, d);
#pragma unroll
        for (int r = 0; r < kRowsPerWarp; ++r) score[r] += q_tile[(warp * kRowsPerWarp + r) * kHeadDim + d] * k;
      }
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; ++r) {
        const float x = score[r] + token_bias;
        float slice_max = x;
        for (int o = 16; o > 0; o /= 2) slice_max = fmaxf(slice_max, __shfl_xor_sync(0xffffffffu, slice_max, o));
        const float new_max = fmaxf(row_max[r], slice_max);
        const float reference = new_max == SWAJIT_NEG_INF ? 0.f : new_max;  // nothing seen yet: no (-inf) - (-inf)
        const float rescale = fast_exp2(row_max[r] - reference);
        const float weight = fast_exp2(x - reference);
        float weight_sum = weight;
        for (int o = 16; o > 0; o /= 2) weight_sum += __shfl_xor_sync(0xffffffffu, weight_sum, o);
        row_sum[r] = row_sum[r] * rescale + weight_sum;
        row_max[r] = new_max;
#pragma unroll
        for (int e = 0; e < kDvPerLane; ++e) acc[r][e] *= rescale;
        for (int i = 0; i < kWarpSize; ++i) {
          const float w = __shfl_sync(0xffffffffu, weight, i);
          const unsigned char* v_row = v_rows + (slice + i) * kVStride;
#pragma unroll
          for (int e = 0; e < kDvPerLane; ++e) acc[r][e] += w * stored_to_float(v_row, lane * kDvPerLane + e);
        }
      }
    }
    __syncthreads();  // the stage and the lookup slot are refilled next
  }
  cp_async_wait<0>();
  allow_dependent_grid_launch();

#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int g = first_g + warp * kRowsPerWarp + r;
    if (warp * kRowsPerWarp + r >= kRowsPerBlock || g >= kGroup) continue;
    const int head = q_head_of(P, kv_head, g);
    const float reference = row_max[r] == SWAJIT_NEG_INF ? 0.f : row_max[r];
    const int d0 = lane * kDvPerLane;
    if (P.num_splits == 1) {
      const float sink = kSinkLogits ? P.sink_logits[head * P.sink_logits_stride] : 0.f;
      const float factor = row_normalizer(sink, reference, row_sum[r]);
      u16* out = static_cast<u16*>(P.out) + b * P.out_stride_batch + s * P.out_stride_token + head * P.out_stride_head;
#pragma unroll
      for (int e = 0; e < kDvPerLane; e += 2) {
        const float v0 = acc[r][e] * factor * v_scale_of(P, kv_head, d0 + e);
        const float v1 = acc[r][e + 1] * factor * v_scale_of(P, kv_head, d0 + e + 1);
        *reinterpret_cast<u32*>(out + d0 + e) = pack2(v0, v1, Elem());
      }
    } else {  // sinks and the V scale join in the merge, once per row
      const i64 slot = (i64(b * P.num_kv_heads + kv_head) * P.num_splits + split) * kRows + s * kGroup + g;
      const float inv_sum = row_sum[r] > 0.f ? 1.f / row_sum[r] : 0.f;
      float* partial = static_cast<float*>(P.partial_out) + slot * kHeadDimV + d0;
#pragma unroll
      for (int e = 0; e < kDvPerLane; ++e) partial[e] = acc[r][e] * inv_sum;
      if (lane == 0) P.partial_lse[slot] = row_sum[r] > 0.f ? reference + __log2f(row_sum[r]) : SWAJIT_NEG_INF;
    }
  }
}

#endif  // SWAJIT_SPARSE_MMA

// Split merge, one block per (sequence, kv head, row = s * kGroup + g): out = sum_s 2^(lse_s - M) o_s /
// (sum_s 2^(lse_s - M) + sink), M = max_s lse_s; all -inf, or a rejected share, gives zeros. At small batch the merge
// is on the critical path, so its loads are issued side by side rather than split after split: every warp reads the
// log2-sum-exps itself (lane i: split i of each 32) and reduces them with shuffles (no shared memory: the loader gives
// a merge grid the whole dynamic shared memory), then each thread reads its columns of kMergeBatch splits at once,
// one L2 latency per batch, each split's weight shuffled from the lane that holds it.
constexpr int kMergeBatch = 16;
constexpr int kMergeColumns = (kHeadDimV + kMergeThreads - 1) / kMergeThreads;  // output columns per thread
static_assert(kMergeThreads % kWarpSize == 0 && kWarpSize % kMergeBatch == 0, "whole warps, whole batches");

extern "C" __global__ void __launch_bounds__(kMergeThreads) SWAJIT_MERGE_KERNEL(const SparseDecodeParams P) {
  const int b = blockIdx.x, kv_head = blockIdx.y, row = blockIdx.z, lane = int(threadIdx.x) % kWarpSize;
  const int s = row / kGroup, head = q_head_of(P, kv_head, row % kGroup);
  wait_for_prerequisite_grid();
  allow_dependent_grid_launch();  // the next kernel may start its launch now: it waits for this grid before reading
  const i64 first_slot = i64(b * P.num_kv_heads + kv_head) * P.num_splits * kRows + row;  // split i: + i * kRows
  const float* lse = P.partial_lse + first_slot;
  float max_lse = SWAJIT_NEG_INF;
  bool rejected = false;  // a share failed its checks (rejected_share_lse): the row is zeros
  for (int split = lane; split < P.num_splits; split += kWarpSize) {
    const float x = lse[i64(split) * kRows];
    rejected |= x != x;
    max_lse = fmaxf(max_lse, x);
  }
  for (int o = kWarpSize / 2; o > 0; o /= 2) max_lse = fmaxf(max_lse, __shfl_xor_sync(0xffffffffu, max_lse, o));
  rejected = __any_sync(0xffffffffu, rejected);
  const float reference = max_lse == SWAJIT_NEG_INF ? 0.f : max_lse;
  float sum = 0.f;
  for (int split = lane; split < P.num_splits; split += kWarpSize) sum += fast_exp2(lse[i64(split) * kRows] - reference);
  for (int o = kWarpSize / 2; o > 0; o /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  const float factor = row_normalizer(kSinkLogits ? P.sink_logits[head * P.sink_logits_stride] : 0.f, reference, sum);

  float acc[kMergeColumns];
#pragma unroll
  for (int c = 0; c < kMergeColumns; ++c) acc[c] = 0.f;
  const float* partial = static_cast<const float*>(P.partial_out) + first_slot * kHeadDimV;
  for (int chunk = 0; chunk < P.num_splits; chunk += kWarpSize) {
    const int count = min(kWarpSize, P.num_splits - chunk);
    const float lane_weight = lane < count ? fast_exp2(lse[i64(chunk + lane) * kRows] - reference) : 0.f;  // split chunk + lane's
#pragma unroll
    for (int i0 = 0; i0 < kWarpSize; i0 += kMergeBatch) {
      if (i0 >= count) break;
      float value[kMergeBatch][kMergeColumns];
#pragma unroll
      for (int i = 0; i < kMergeBatch; ++i)
#pragma unroll
        for (int c = 0; c < kMergeColumns; ++c) {
          const int d = int(threadIdx.x) + c * kMergeThreads;
          value[i][c] = i0 + i < count && d < kHeadDimV ? partial[i64(chunk + i0 + i) * kRows * kHeadDimV + d] : 0.f;
        }
#pragma unroll
      for (int i = 0; i < kMergeBatch; ++i) {
        const float weight = __shfl_sync(0xffffffffu, lane_weight, i0 + i);
#pragma unroll
        for (int c = 0; c < kMergeColumns; ++c) acc[c] += weight * value[i][c];
      }
    }
  }
  u16* out = static_cast<u16*>(P.out) + b * P.out_stride_batch + s * P.out_stride_token + head * P.out_stride_head;
#pragma unroll
  for (int c = 0; c < kMergeColumns; ++c) {
    const int d = int(threadIdx.x) + c * kMergeThreads;
    if (d >= kHeadDimV) continue;
    const float value = rejected ? 0.f : acc[c] * factor * v_scale_of(P, kv_head, d);
    out[d] = u16(pack2(value, 0.f, Elem()) & 0xffffu);
  }
}
