// How a paged-decode call gets its config: forced by the caller, tuned (database, or tuned on a miss), or the
// heuristic. The one place that decides, used by paged_decode and by the tuner (to time the heuristic it beats).
#pragma once
#include <cuda.h>

#include "kernel_cache.hpp"
#include "paged_decode_problem.hpp"
#include "stream_scratch.hpp"
#include "tuning_store.hpp"

namespace swajit {

// The work list of a call, for the grid its config runs (DecodeConfig::direct_grid). The grid has
// schedule_grid_blocks(slots, batch) blocks per kv head; each holds kEntriesPerBlock partial-result entries when the
// call is split (work_items).
struct WorkList {
  // 0: no split, a block per (sequence, kv head), output written directly. Else the blocks per kv head that share the
  // batch's work: the scheduled grid's resident slots its schedule balances (templates/decode_schedule.h), or the
  // direct grid's batch x sequence_pieces.
  int slots = 0;
  int sequence_pieces = 1;  // the direct grid: blocks per sequence, its visible tiles cut evenly
  // Entries the workspace holds: for the scheduled grid's slots on the most blocks an SM could hold whichever grid
  // runs (never fewer), so a workspace sized once (paged_decode_workspace_bytes) fits the batch whatever lengths and
  // grid it has later.
  int workspace_items = 0;
  bool split() const { return slots > 0; }
};
// `config` with the grid the call runs (DecodeConfig::direct_grid), decided before its module is loaded: the direct
// grid for num_splits 1, for pairs too short for the capacity rule to cut, and for a batch of equal lengths (batch 1,
// or equal lengths the host knows: paged_decode.cpp lengths_uniform); else the scheduled grid.
DecodeConfig with_call_grid(const DecodeProblem& problem, DecodeConfig config);
// That rule for a call whose pairs see at most `visible_tokens` and whose lengths are known equal (`lengths_equal`):
// also what the check harness compiles ahead for a case.
bool runs_direct_grid(const DecodeConfig& config, int64_t visible_tokens, bool lengths_equal);

// A tuned `config` for this call's lengths. The tuner times a uniform batch at the bucket's bound, where num_splits 1
// means its pairs fill the device; a batch whose lengths may differ (on the device, or unequal on the host) takes the
// capacity rule instead, whose schedule balances them (and gives a uniform batch the same one item per pair). The
// bucket of a ragged batch is the uniform one at its block table's bound (decode_bucket_of): its tile and loader
// knobs carry over, its split count only where the lengths are known equal.
DecodeConfig tuned_for_lengths(const DecodeProblem& problem, DecodeConfig config);

// Partial-result entries per kv head the call's grid writes (PagedDecodeParams::work_items): 0 when not split.
int work_items(const WorkList& work, int batch);

struct DecodePlan {
  enum class Origin { kForced, kTuned, kHeuristic };
  DecodeConfig config;
  const LoadedDecodeKernel* kernel = nullptr;
  Origin origin = Origin::kHeuristic;
  WorkList work;
};

// `stream` may be null (no capture check needed: nothing is tuned then unless the policy asks and it is safe).
DecodePlan plan_decode(const DecodeProblem& problem, const DecodeOptions& options, const DeviceInfo& device,
                       CUcontext context, CUstream stream);

ShapeBucket decode_bucket_of(const DecodeProblem& problem);

// kDefault -> kTuneOnMiss when the environment sets SWAJIT_TUNE=1, else kDatabase; other policies unchanged.
TuningPolicy resolve_tuning_policy(TuningPolicy policy);

}  // namespace swajit
