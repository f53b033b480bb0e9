// swajit: the work schedule of paged decode with num_splits > 1, shared verbatim by the CUDA kernel
// (paged_decode.cuh: each block finds its own item with block-wide scans), the CPU backend (paged_decode_cpu.cpp:
// serially) and the host (the size of the work list), so the CPU check matrix runs the very cuts the GPU makes.
//
// num_splits == 1: one item per (sequence, kv head), all of its visible tiles, output written directly.
// num_splits > 1: the lengths (on the device, changing every step) decide the work. Sequence b's T_b visible tiles
// are cut into n_b = max(1, ceil(T_b / chunk)) items, chunk = max(kMinChunkTiles, ceil(sum_b T_b / (num_splits x
// batch))) tiles: every item costs about the same, so the processors finish together however ragged the batch is.
// There are at most num_splits x batch + batch items per kv head (each ceil adds at most one), so a fixed work list of
// schedule_list_splits(num_splits) x batch x kv_heads entries holds them (the entries past the end do nothing).
// Items are ordered by sequence, then chunk, then kv head: item i is kv head i % kv_heads of chunk i / kv_heads.
// A sequence of one item (shorter than a chunk, or empty) writes its output directly; the items of a sequence cut
// in several leave partial results that the merge combines. With equal lengths every n_b is num_splits (when the
// heuristic chose it: its splits cover the tiles evenly), as before the schedule.
#ifndef SWAJIT_DECODE_SCHEDULE_H
#define SWAJIT_DECODE_SCHEDULE_H

#ifdef __CUDACC__
#define SWAJIT_SCHEDULE_FN __device__ __forceinline__
#else
#define SWAJIT_SCHEDULE_FN inline
#endif

constexpr int kMinChunkTiles = 2;  // a smaller chunk costs more in partial writes and merge reads than it balances

// Entries of the work list per (sequence, kv head).
SWAJIT_SCHEDULE_FN int schedule_list_splits(int num_splits) { return num_splits > 1 ? num_splits + 1 : 1; }

// Tiles per item, from the visible tiles of the whole batch.
SWAJIT_SCHEDULE_FN int schedule_chunk_tiles(long long total_tiles, int num_splits, int batch) {
  const long long target_items = (long long)num_splits * batch;
  const long long chunk = (total_tiles + target_items - 1) / target_items;
  return chunk > kMinChunkTiles ? int(chunk) : kMinChunkTiles;
}

// Items of a sequence with `tiles` visible tiles: at least one (an empty sequence's item writes its zeros).
SWAJIT_SCHEDULE_FN int schedule_items(int tiles, int chunk) { return tiles > chunk ? (tiles + chunk - 1) / chunk : 1; }

// First tile of item `split` of a sequence cut into `items` (split == items: the end); the items differ by at most
// one tile.
SWAJIT_SCHEDULE_FN int schedule_first_tile(int tiles, int split, int items) {
  return int((long long)tiles * split / items);
}

#endif  // SWAJIT_DECODE_SCHEDULE_H
