// swajit: the work schedule of paged decode, shared verbatim by the CUDA kernel (paged_decode.cuh: every warp derives
// its block's range with shuffles), the CPU backend (paged_decode_cpu.cpp: serially) and the host (the grid and the
// workspace), so the CPU check matrix runs the very cuts the GPU makes.
//
// Direct (the direct kernel, no schedule: num_splits 1, batch 1, or equal lengths the host knows): a block per
// (sequence, kv head), or per even piece of it (params.sequence_pieces), so no block computes a schedule.
// Scheduled: a fixed grid of max(S, batch) blocks per kv head (S = params.schedule_slots; a grid CUDA graphs replay)
// whose work the lengths decide on the device (they change every step). Per kv head the batch is laid on one cost axis, sequence
// after sequence in batch order: sequence b (T_b visible tiles) costs T_b + kItemCostTiles (an item's fixed cost: its
// Q tile, the first K/V tile's latency, its epilogue), and block s of the B blocks used takes the range between
// boundaries s C / B and (s + 1) C / B of the total cost C: every block carries the same cost, walking the sequences of
// its range in turn (several short ones, or a piece of a long one), one wave, no block launched per item.
//  - B (schedule_plan): a ragged batch uses every slot S (a share at least kMinChunkTiles); a near-uniform one lines
//    the blocks up with its sequences: with as many sequences as slots or more, blocks of whole sequences (the direct
//    grid's work, no cut, no merge), else S / batch blocks a sequence. The capacity rule (num_splits 0) takes S = the
//    grid's resident blocks per kv head (from the device); a forced or tuned num_splits N > 1 takes S = N x batch
//    (equal lengths: N pieces each).
//  - A boundary inside a sequence cuts it there unless it lies within 1 / kSnapShares of a share (C / B) of the
//    sequence's end or the cut would leave fewer than kMinChunkTiles tiles on a side: then it snaps to the nearer end
//    of the sequence (so a block carries at most 2 / kSnapShares of a share more than its share, and sequences shorter
//    than that are never cut). So a sequence is whole inside one block (its output written directly), or cut into pieces held by
//    consecutive blocks: the first piece is its block's last segment, every later piece its block's first one.
// A later piece (its block's first segment) leaves its partial result in work entry 2 s, a first piece (its block's
// last segment) in 2 s + 1 (a block has at most two pieces): the pieces of a sequence whose first piece is in block f
// are entries 2 f + 1, 2 (f + 1), 2 (f + 2), ... The block of a cut sequence's first piece records it for the merge
// grid (PagedDecodeParams::merge_records: [grid blocks][2] = sequence (or -1), pieces); the fused merge's last block finds the
// same from the lengths (schedule_cut).
#ifndef SWAJIT_DECODE_SCHEDULE_H
#define SWAJIT_DECODE_SCHEDULE_H

#ifdef __CUDACC__
#define SWAJIT_SCHEDULE_FN __device__ __forceinline__
#else
#define SWAJIT_SCHEDULE_FN inline
#endif

constexpr int kMinChunkTiles = 2;  // a smaller piece costs more in partial writes and merge reads than it balances
constexpr int kItemCostTiles = 1;  // what an item costs besides its tiles, in tiles (about one tile's latency)
constexpr int kEntriesPerBlock = 2;  // a block's first and last segment may be pieces of cut sequences
constexpr int kMergeRecordInts = 2;  // merge_records[block]: the sequence whose first piece it holds (or -1), pieces

// Whether the capacity rule schedules at all when no sequence can see more than `max_tiles` tiles. A window of at
// most two minimum chunks (gpt-oss: 128 tokens) leaves every item so short that a cut saves less than the schedule,
// the partial writes and the merge cost every block: the direct grid (H200, session 4: gpt-oss batch 1-128 ran
// 1.4-2x faster direct than scheduled, runs A and C).
SWAJIT_SCHEDULE_FN bool schedule_worth_cutting(int max_tiles) { return max_tiles > 2 * kMinChunkTiles; }

// Most pieces a sequence of `tiles` visible tiles can be cut into: the host clips the grid to batch x this.
SWAJIT_SCHEDULE_FN int schedule_max_pieces(int tiles) { return tiles > kMinChunkTiles ? (tiles + kMinChunkTiles - 1) / kMinChunkTiles : 1; }

// Blocks per kv head of the scheduled grid for `slots` resident ones: a block per sequence if there are more sequences
// (a near-uniform batch takes them all, a ragged one the first `slots`; the others exit at once).
SWAJIT_SCHEDULE_FN long long schedule_grid_blocks(long long slots, int batch) { return slots > batch ? slots : batch; }

// A sequence's cost on the schedule's axis.
SWAJIT_SCHEDULE_FN long long schedule_cost(int tiles) { return (long long)tiles + kItemCostTiles; }

// The schedule of a batch: its total cost, the blocks it uses of the grid's `slots` per kv head, and whether it cuts.
//  - Near-uniform (the mean cost at least 3/4 of the longest): the blocks line up with the sequences. As many
//    sequences as slots or more: a block per sequence, nothing cut (exactly the direct grid's work and waves: one
//    item per (sequence, kv head), no merge); fewer: slots / batch blocks a sequence, cut into that many.
//  - Ragged: every slot, a share of at least kMinChunkTiles each, cut wherever a boundary falls (see schedule_snap).
// A boundary within 1 / kSnapShares of a share of a sequence's end moves there rather than cut the sequence: a block
// then carries at most 2 / kSnapShares of a share more than its share, and a sequence shorter than 2 / kSnapShares of
// a share is never cut (no merge). (SchedulePlan::snap_shares: the CUDA kernel takes params.schedule_snap_shares when
// set, to time other values.) 32, not 8: on the H200 (session 6 run B3, ragged batches of 32-256 sequences, the
// largest block sets the time) 1/8 let a block carry up to 1.21 shares, 1/32 at most 1.04: log-uniform b256 724.9 ->
// 645.4 us, bimodal b256 303.0 -> 265.3; uniform batches are not cut either way.
constexpr long long kSnapShares = 32;

struct SchedulePlan {
  long long total;
  int blocks;
  bool cut;
  long long snap_shares = kSnapShares;
};
SWAJIT_SCHEDULE_FN SchedulePlan schedule_plan(long long total, long long longest_cost, int batch, int slots) {
  SchedulePlan plan{total, 1, true};
  if (4 * total >= 3 * longest_cost * batch) {
    if (batch >= slots) {  // a block per sequence (the grid has them: schedule_grid_blocks), in waves
      plan.blocks = batch;
      plan.cut = false;
      return plan;
    }
    plan.blocks = slots / batch * batch;
    plan.cut = plan.blocks > batch;
  } else {
    plan.blocks = slots;
  }
  const long long most = total / kMinChunkTiles;  // no two boundaries inside one sequence fall on the same cut
  plan.blocks = most < 1 ? 1 : most < plan.blocks ? int(most) : plan.blocks;
  return plan;
}

// a / b for a >= 0, b > 0, in 32 bits whenever both fit (always in practice): a 64-bit division is a long subroutine
// on the GPU, and the schedule divides a few times per block and per segment.
SWAJIT_SCHEDULE_FN long long schedule_div(long long a, long long b) {
  return a <= 0xffffffffLL && b <= 0xffffffffLL ? (long long)(unsigned(a) / unsigned(b)) : a / b;
}

// Boundary k (0..blocks) of the raw ranges: k C / B.
SWAJIT_SCHEDULE_FN long long schedule_boundary(int k, const SchedulePlan& plan) { return schedule_div(plan.total * k, plan.blocks); }

// Whether a sequence of `tiles` may be cut: some point of it lies farther than 1 / kSnapShares of a share from its ends.
SWAJIT_SCHEDULE_FN bool schedule_cuttable(int tiles, const SchedulePlan& plan) {
  return plan.cut && plan.snap_shares * schedule_cost(tiles) * plan.blocks > 2 * plan.total;
}

// A raw boundary x inside the sequence that starts at `start` with `tiles` tiles (start <= x < its end), moved where
// the schedule cuts: x itself (a cut before tile x - start - kItemCostTiles), or the sequence's nearer end when the
// schedule does not cut, the end is near (see kSnapShares), or a piece would be shorter than kMinChunkTiles.
SWAJIT_SCHEDULE_FN long long schedule_snap(long long x, long long start, int tiles, const SchedulePlan& plan) {
  const long long end = start + schedule_cost(tiles);
  const long long nearer = 2 * (x - start) <= end - start ? start : end;
  const long long distance = nearer == start ? x - start : end - x;
  if (!plan.cut || plan.snap_shares * distance * plan.blocks <= plan.total) return nearer;
  const long long before = x - start - kItemCostTiles;  // tiles left of the cut
  if (before < kMinChunkTiles) return start;
  if (tiles - before < kMinChunkTiles) return end;
  return x;
}

// The part of the sequence at `start` (`tiles` tiles) that a block with range [begin, end) takes, which overlaps it.
struct ScheduleSegment {
  int first_tile, last_tile;
  bool whole;        // the whole sequence: its output is written directly
  bool leads_block;  // the block's first segment (else its last): which of the block's two work entries it uses
};
SWAJIT_SCHEDULE_FN ScheduleSegment schedule_segment(long long begin, long long end, long long start, int tiles) {
  const long long tiles_start = start + kItemCostTiles;
  ScheduleSegment s;
  s.first_tile = begin > tiles_start ? int(begin - tiles_start) : 0;
  s.last_tile = end < tiles_start + tiles ? int(end - tiles_start) : tiles;
  s.whole = begin <= start && end >= tiles_start + tiles;
  s.leads_block = begin >= start;
  return s;
}

// Work entry (per kv head) of a piece in `block`: a cut sequence's first piece (its block's last segment) takes the
// block's second entry, a later piece (its block's first segment) the first, so that piece s >= 1 of a sequence whose
// first piece is in block f is entry 2 (f + s).
SWAJIT_SCHEDULE_FN int schedule_entry(int block, bool first_piece) { return kEntriesPerBlock * block + (first_piece ? 1 : 0); }

// Where the pieces of the sequence at `start` (`tiles` tiles) are: the block of its first piece (the last block whose
// range starts at or before the sequence) and how many (1: whole). Every block holding a piece finds the same, in a
// few divisions: the raw boundaries inside the sequence are k1..k2, and of them only the first can snap to its start
// and only the last to its end (they are a share apart; a snap moves a boundary by less).
struct ScheduleCut {
  int first_block, pieces;
};
SWAJIT_SCHEDULE_FN ScheduleCut schedule_cut(long long start, int tiles, const SchedulePlan& plan) {
  const long long end = start + schedule_cost(tiles);
  // boundary(k) > start  <=>  k >= ceil((start + 1) B / C);  boundary(k) < end  <=>  k < ceil(end B / C)
  const long long k1 = schedule_div((start + 1) * plan.blocks + plan.total - 1, plan.total);
  long long k2 = schedule_div(end * plan.blocks + plan.total - 1, plan.total) - 1;
  if (k2 > plan.blocks - 1) k2 = plan.blocks - 1;  // boundary B is the batch's end, not a cut
  ScheduleCut c{int(k1) - 1, 1};
  if (!plan.cut || k1 > k2) return c;
  const bool first_snaps = schedule_snap(schedule_boundary(int(k1), plan), start, tiles, plan) == start;
  const bool last_snaps = schedule_snap(schedule_boundary(int(k2), plan), start, tiles, plan) == end;
  c.pieces = int(k2 - k1) + 2 - (first_snaps ? 1 : 0) - (last_snaps && (k2 > k1 || !first_snaps) ? 1 : 0);
  if (first_snaps) c.first_block = int(k1);
  return c;
}

#endif  // SWAJIT_DECODE_SCHEDULE_H
