// swajit: the work schedule of paged decode, shared verbatim by the CUDA kernel (paged_decode.cuh: each block finds
// its own item with block-wide scans), the CPU backend (paged_decode_cpu.cpp: serially) and the host (the size of the
// work list), so the CPU check matrix runs the very cuts the GPU makes.
//
// Direct (params.num_splits == 1): one item per (sequence, kv head), all of its visible tiles, output written directly.
// Scheduled: a work list of L >= batch + 2 entries per kv head (L x kv_heads blocks, a fixed grid that CUDA graphs
// replay); the lengths (on the device, changing every step) decide the work. Sequence b's T_b visible tiles are cut
// into n_b = max(1, ceil(T_b / chunk)) items with chunk = max(kMinChunkTiles, ceil(sum_b T_b / (L - batch))): since
// sum_b n_b <= sum_b T_b / chunk + batch <= L, the list always holds them, and every item costs about the same, so
// the processors finish together however ragged the batch is. L comes from the grid's capacity (SMs x resident blocks
// of the kernel, schedule_capacity_items) or, for a forced or tuned num_splits N > 1, from N: L = (N + 1) x batch,
// the chunk of N items per sequence on average (equal lengths: exactly N each).
// Items are ordered by sequence, then chunk, then kv head: item i is kv head i % kv_heads of chunk i / kv_heads.
// A sequence of one item (not longer than a chunk, or empty) writes its output directly; the items of a sequence cut
// in several leave partial results that the merge combines.
#ifndef SWAJIT_DECODE_SCHEDULE_H
#define SWAJIT_DECODE_SCHEDULE_H

#ifdef __CUDACC__
#define SWAJIT_SCHEDULE_FN __device__ __forceinline__
#else
#define SWAJIT_SCHEDULE_FN inline
#endif

constexpr int kMinChunkTiles = 2;      // a smaller chunk costs more in partial writes and merge reads than it balances
constexpr int kMinSpareItems = 2;      // with one spare entry per kv head the chunk is the whole batch: nothing is cut
constexpr int kNoSplitChunk = 0x7fffffff;

// Entries of the work list per (sequence, kv head) for a config's num_splits N > 1 (1: direct).
SWAJIT_SCHEDULE_FN int schedule_list_splits(int num_splits) { return num_splits > 1 ? num_splits + 1 : 1; }

// Entries of the work list per kv head that the grid's capacity (`slots` = SMs x resident blocks per SM) allows; batch
// when the (sequence, kv head) pairs already fill it (or leave too little spare to cut anything): the direct grid.
SWAJIT_SCHEDULE_FN int schedule_capacity_items(long long slots, int kv_heads, int batch) {
  const long long per_head = slots / (kv_heads > 0 ? kv_heads : 1);
  return per_head >= (long long)batch + kMinSpareItems ? int(per_head) : batch;
}

// Tiles per item, from the visible tiles of the whole batch and the work list's entries per kv head.
SWAJIT_SCHEDULE_FN int schedule_chunk_tiles(long long total_tiles, int list_items, int batch) {
  if (list_items - batch < 1) return kNoSplitChunk;
  const long long spare = list_items - batch;
  // 32-bit division whenever the tiles fit (always in practice): a 64-bit one is a long subroutine on the GPU.
  const long long chunk = total_tiles <= kNoSplitChunk ? (unsigned(total_tiles) + unsigned(spare) - 1u) / unsigned(spare)
                                                       : (total_tiles + spare - 1) / spare;
  return chunk < kMinChunkTiles ? kMinChunkTiles : chunk > kNoSplitChunk ? kNoSplitChunk : int(chunk);
}

// Items of a sequence with `tiles` visible tiles: at least one (an empty sequence's item writes its zeros).
SWAJIT_SCHEDULE_FN int schedule_items(int tiles, int chunk) { return tiles > chunk ? (tiles + chunk - 1) / chunk : 1; }

// First tile of item `split` of a sequence cut into `items` (split == items: the end); the items differ by at most
// one tile.
SWAJIT_SCHEDULE_FN int schedule_first_tile(int tiles, int split, int items) {
  return int((long long)tiles * split / items);
}

#endif  // SWAJIT_DECODE_SCHEDULE_H
