// How a paged-decode call gets its config: forced by the caller, tuned (database, or tuned on a miss), or the
// heuristic. The one place that decides, used by paged_decode and by the tuner (to time the heuristic it beats).
#pragma once
#include <cuda.h>

#include "kernel_cache.hpp"
#include "paged_decode_problem.hpp"
#include "stream_scratch.hpp"
#include "tuning_store.hpp"

namespace swajit {

// The work list of a call: entries per kv head of the partial results (0: no split, no merge) and the work slots per
// kv head, for the scheduled kernel (templates/decode_schedule.h: slots it balances) or the direct kernel
// (sequence_pieces > 0: one item per block, that many blocks per sequence, cut evenly; slots = batch x pieces).
struct WorkList {
  int items = 0;
  int slots = 0;
  int sequence_pieces = 1;  // 0: the scheduled kernel
  // Entries the workspace holds: the scheduled kernel's for these slots whichever kernel runs (never fewer), so a
  // workspace sized once (paged_decode_workspace_bytes) fits the batch whatever lengths it has later.
  int workspace_items = 0;
  bool scheduled() const { return sequence_pieces == 0; }
};

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
