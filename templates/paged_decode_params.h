// Arguments of the paged decode kernel, shared verbatim by the host runtime (g++) and the generated CUDA source
// (NVRTC), so both sides agree on the layout. Only fixed-width standard types. Strides are in elements.
// paged_call_params.h comes before it (pasted in by the generator, included first by the host).
#ifndef SWAJIT_PAGED_DECODE_PARAMS_H
#define SWAJIT_PAGED_DECODE_PARAMS_H

// A CUDA tensor map (CUtensorMap: 128 opaque bytes, 128-byte aligned), encoded by the host.
struct alignas(128) DecodeTensorMap {
  unsigned long long opaque[16];
};

// Pointers, strides and sizes shared with sparse decode: PagedCallParams (templates/paged_call_params.h).
struct PagedDecodeParams : PagedCallParams {
  void* partial_out;             // split-KV only: [work entry x kv heads (templates/decode_schedule.h), rows, head_dim], out / l:
                                 //   float on the CPU, the 16-bit dtype of q on CUDA (half the merge's traffic)
  float* partial_lse;            // split-KV only: per work entry x kv head x [rows], log2 units
  int* merge_records;            // split-KV only: [work_items / 2][2], per schedule block the cut sequence whose first
                                 //   piece it holds (or -1) and its pieces (the merge grid's), then the call's cut flag
  int* arrival_counts;           // CUDA split-KV with the fused merge only: [batch, num_kv_heads] blocks of the pair done,
                                 //   zero before and after every call
  int* status;                   // [2]: bit mask of device-side argument errors, first offending batch index
  int local_window;              // > 0: a query at p sees j only if p - j < local_window
  int global_window;             // >= 0: tokens j < global_window are always visible (sinks)
  float scale_log2;              // softmax scale * log2(e): scores are exponentiated with exp2
  int num_splits;                // 1: one block per (sequence, kv head), no merge; otherwise the work schedule
                                 //   (templates/decode_schedule.h) over schedule_slots blocks per kv head
  int work_items;                // partial-result entries per kv head (2 per schedule block) when num_splits != 1
  int schedule_slots;            // resident blocks per kv head the schedule balances (num_splits != 1); the grid has
                                 //   max(schedule_slots, batch) (schedule_grid_blocks)
  int sequence_pieces;           // the direct kernel only: blocks per sequence, its tiles cut evenly (1: whole, no merge)
  int schedule_snap_shares;      // > 0: the scheduled kernel's SchedulePlan::snap_shares (templates/decode_schedule.h)
  unsigned long long* timeline;  // SWAJIT_DECODE_TIMELINE builds only (runtime/src/api/decode_timeline.hpp): per main-grid
                                 //   block kTimelineWords stamps, then per merge block kTimelineMergeWords; else unused
  // producer 4 (TMA pages) only: K and V as tensor maps for the TMA engine (runtime/src/cuda/kv_tensor_map.hpp),
  // read in place (the kernel takes these params as __grid_constant__)
  DecodeTensorMap k_map, v_map;
};

// Bits of PagedDecodeParams::status[0]; a sequence that raises one produces zeros.
enum PagedDecodeStatusBits {
  kStatusSeqLenBelowQSeqlen = 1,   // 0 < seq_lens[b] < q_seqlen (or seq_lens[b] < 0)
  kStatusSeqLenOverCapacity = 2,   // seq_lens[b] > max_pages_per_seq * page_size
  kStatusPageOutOfRange = 4,       // a block_table entry used by the window is outside [0, num_pages)
};
// The per-block records of a SWAJIT_DECODE_TIMELINE build (PagedDecodeParams::timeline): %globaltimer (ns) when
// thread 0 of a main-grid block passes each point of its first work item (kTimelineBlockDone: of its last), then its
// SM, work items, tiles and the most pieces of a cut sequence it held; a merge block's points and SM after them.
enum DecodeTimelineWord {
  kTimelineEntry, kTimelineWaited, kTimelineScheduled, kTimelineItemFound, kTimelineQIssued, kTimelineCopiesIssued,
  kTimelineFirstTile, kTimelineLoopDone, kTimelineEpilogueDone, kTimelineBlockDone, kTimelineSm, kTimelineItems,
  kTimelineTiles, kTimelinePieces, kTimelineWords
};
enum DecodeTimelineMergeWord { kTimelineMergeEntry, kTimelineMergeWaited, kTimelineMergeFound, kTimelineMergeDone,
                               kTimelineMergeSm, kTimelineMergeWords };
#endif  // SWAJIT_PAGED_DECODE_PARAMS_H
