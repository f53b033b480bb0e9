// swajit: the work schedule of paged decode, shared verbatim by the CUDA kernel (paged_decode.cuh: every warp derives
// its block's item with shuffles), the CPU backend (paged_decode_cpu.cpp: serially) and the host (the size of the work
// list), so the CPU check matrix runs the very cuts the GPU makes.
//
// Direct (params.num_splits == 1): one item per (sequence, kv head), all of its visible tiles, output written directly.
// Scheduled: a work list of L entries per kv head (L x kv_heads blocks, a fixed grid that CUDA graphs replay); the
// lengths (on the device, changing every step) decide the work. Sequence b's T_b visible tiles are cut into
// n_b = max(1, ceil(T_b / chunk)) items of at most `chunk` tiles (schedule_chunk_tiles), sized for S work slots per kv
// head (params.schedule_slots):
//  - the capacity rule (num_splits 0; S = the grid's resident blocks per kv head, from the device) balances cost, not
//    pairs: chunk = ceil(sum_b T_b / S), one slot's share of the batch, so a long sequence is cut into many items and
//    a short one takes one (no merge), and the block scheduler, handing the next item to the first free slot, evens
//    out the ends (H200, run B of session 4: a chunk of half or a quarter of the share was no faster over the ragged
//    rows, and a longer list costs every call its surplus blocks). A near-uniform batch (mean T_b at least 3/4 of the
//    longest) gets S / batch items a sequence instead, or 1 once the pairs fill the slots (the direct grid's work,
//    measured the fastest on uniform batches: no merge, one wave).
//  - a forced or tuned num_splits N > 1: S = N x batch: the chunk of N items per sequence on average (equal lengths:
//    exactly N each).
// Since sum_b n_b <= sum_b T_b / chunk + batch, the list holds every item with L = S + batch (schedule_list_items;
// the host may clip it to batch x the most items a sequence can have). Blocks past the last item return at once.
// Order of the items: the leading sequences (an item longer than half the longest item: every cut sequence) first,
// then the others, each group in sequence order, every sequence's items together, each item's kv heads adjacent:
// item i is kv head i % kv_heads of list entry i / kv_heads. Long items start first and the short ones fill the gaps
// at the end (longest-first list scheduling, to a factor of two), so a long sequence late in the batch does not run
// alone at the end. A sequence of one item writes its output directly; the items of a sequence cut in several leave
// partial results that the merge combines.
#ifndef SWAJIT_DECODE_SCHEDULE_H
#define SWAJIT_DECODE_SCHEDULE_H

#ifdef __CUDACC__
#define SWAJIT_SCHEDULE_FN __device__ __forceinline__
#else
#define SWAJIT_SCHEDULE_FN inline
#endif

constexpr int kMinChunkTiles = 2;      // a smaller chunk costs more in partial writes and merge reads than it balances
constexpr int kNoSplitChunk = 0x7fffffff;

// Entries of the work list per (sequence, kv head) for a config's num_splits N > 1 (1: direct).
SWAJIT_SCHEDULE_FN int schedule_list_splits(int num_splits) { return num_splits > 1 ? num_splits + 1 : 1; }

// Entries of the work list per kv head the capacity rule needs for `slots` resident blocks per kv head, with at most
// `max_items_per_sequence` items for any sequence (from the longest visible range the block table admits).
SWAJIT_SCHEDULE_FN long long schedule_list_items(long long slots, int batch, long long max_items_per_sequence) {
  const long long enough = slots + batch;
  const long long most = (long long)batch * max_items_per_sequence;
  return enough < most ? enough : most;
}

// Most items a sequence of `tiles` visible tiles can be cut into (the chunk is at least kMinChunkTiles).
SWAJIT_SCHEDULE_FN int schedule_max_items(int tiles) { return tiles > kMinChunkTiles ? (tiles + kMinChunkTiles - 1) / kMinChunkTiles : 1; }

// Whether the capacity rule schedules at all when no sequence can see more than `max_tiles` tiles. A window of at
// most two minimum chunks (gpt-oss: 128 tokens) leaves every item so short that a cut saves less than the schedule,
// the partial writes and the merge cost every block: the direct grid (H200, session 4: gpt-oss batch 1-128 ran
// 1.4-2x faster direct than scheduled, runs A and C).
SWAJIT_SCHEDULE_FN bool schedule_worth_cutting(int max_tiles) { return max_tiles > 2 * kMinChunkTiles; }

// ceil(a / b) for a >= 0, b > 0, in 32 bits whenever both fit (always in practice): a 64-bit division is a long
// subroutine on the GPU.
SWAJIT_SCHEDULE_FN long long schedule_ceil_div(long long a, long long b) {
  return a <= kNoSplitChunk && b <= kNoSplitChunk ? (unsigned(a) + unsigned(b) - 1u) / unsigned(b) : (a + b - 1) / b;
}

// Tiles per item from the batch's visible tiles (their sum and the longest sequence's), the work slots per kv head
// and the rule (capacity: num_splits 0). kNoSplitChunk: nothing is cut.
SWAJIT_SCHEDULE_FN int schedule_chunk_tiles(long long total_tiles, int max_tiles, int batch, long long slots, bool capacity) {
  if (batch < 1 || slots < 1) return kNoSplitChunk;
  long long chunk;
  if (capacity && 4 * total_tiles >= 3LL * batch * max_tiles) {  // near-uniform: the one-round cut
    const long long share = slots / batch;                       // items per sequence that one round holds
    if (share < 2) return kNoSplitChunk;
    chunk = schedule_ceil_div(max_tiles, share);
  } else {
    chunk = schedule_ceil_div(total_tiles, slots);
  }
  return chunk < kMinChunkTiles ? kMinChunkTiles : chunk > kNoSplitChunk ? kNoSplitChunk : int(chunk);
}

// Items of a sequence with `tiles` visible tiles: at least one (an empty sequence's item writes its zeros).
SWAJIT_SCHEDULE_FN int schedule_items(int tiles, int chunk) { return tiles > chunk ? (tiles + chunk - 1) / chunk : 1; }

// Whether a sequence of `tiles` is one of the leading ones, whose items run first: its items are longer than half the
// longest item (every cut sequence's are: they exceed chunk / 2).
SWAJIT_SCHEDULE_FN bool schedule_leads(int tiles, int chunk, int max_tiles) {
  const int longest_item = chunk < max_tiles ? chunk : max_tiles;
  return 2LL * tiles > longest_item;
}

// First tile of item `split` of a sequence cut into `items` (split == items: the end); the items differ by at most
// one tile.
SWAJIT_SCHEDULE_FN int schedule_first_tile(int tiles, int split, int items) {
  return int((long long)tiles * split / items);
}

#endif  // SWAJIT_DECODE_SCHEDULE_H
