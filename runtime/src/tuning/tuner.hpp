// The autotuners of the paged decode (CUDA and CPU) and prefill (CUDA) families: their config spaces, pruning by the
// device's own limits, verification against the reference, timing as the benchmarks time, and the record each run
// leaves in the tuning database.
#pragma once
#include <cuda.h>

#include <functional>
#include <optional>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "decode_workload.hpp"
#include "prefill_workload.hpp"
#include "sparse_workload.hpp"
#include "swajit/device.hpp"
#include "swajit/spec.hpp"

namespace swajit {

// Every config of the family that is valid for `spec` (not yet checked against a device's resources), splits up
// to `max_splits`; pipeline depths also from `device`'s memory system and shared memory when given (tuner.cpp).
std::vector<DecodeConfig> decode_config_space(const KernelSpec& spec, int max_splits, const DeviceInfo* device = nullptr);

struct TuneOptions {
  int quick_reps = 20;    // graph replays per candidate in the first round
  int final_reps = 100;   // replays for the finalists and the heuristic
  int finalists = 4;      // best candidates of the first round timed again
  int compile_threads = 0;  // 0: one per hardware thread
  std::string origin;     // recorded with the winner, e.g. "tuned on host X"
};

// What happened to the candidates of one tuning run.
struct TuneCounts {
  int candidates = 0;         // configs in the space
  int timed = 0;              // configs that ran, verified, and were timed
  int rejected_wrong = 0;     // output beyond the family's tolerance: can never win
  int rejected_resources = 0; // over the device's shared memory, spilling, or no occupancy
  int compile_failed = 0;
  int samples = 0;            // timed runs behind the winner's time
  double wall_s = 0;
};

// What one tuning run found, whatever the family; times in microseconds.
template <class Config>
struct TuneReport : TuneCounts {
  std::string sku, spec_key, bucket;
  Config best{}, heuristic{};
  double best_us = 0, heuristic_us = 0;
};
using DecodeTuneReport = TuneReport<DecodeConfig>;
using PrefillTuneReport = TuneReport<PrefillConfig>;
using CpuDecodeTuneReport = TuneReport<CpuDecodeConfig>;
using SparseTuneReport = TuneReport<SparseDecodeConfig>;

// Tunes one shape on `device` (its context current) and, when the database is available, stores the trials and the
// winner. The heuristic config is always a candidate, so the winner is never slower than it in the final round.
DecodeTuneReport tune_decode_shape(const DecodeShape& shape, const DeviceInfo& device, CUstream stream, const TuneOptions& options);

// The prefill family: tiles, stages, row tiles per warp, mma.sync or (on sm_90a) wgmma, blocks per SM.
std::vector<PrefillConfig> prefill_config_space(const KernelSpec& spec, bool wgmma_available);

// Tunes one prefill shape on `device` (its context current) like tune_decode_shape: candidates pruned by shared
// memory, spills and occupancy read from the compiled kernels, sampled rows verified against the reference,
// finalists re-timed with the heuristic; trials and the winner stored per (SKU, spec, bucket).
PrefillTuneReport tune_prefill_shape(const PrefillShape& shape, const DeviceInfo& device, CUstream stream,
                                     const TuneOptions& options);

// The sparse top-k decode family: gather tiles, pipeline depths, the tensor-core kernels (column split, and token
// split where the group fits one tile) or the CUDA-core kernel for 8-bit caches, splits up to `max_splits`.
std::vector<SparseDecodeConfig> sparse_config_space(const KernelSpec& spec, int max_splits);
// Tunes one sparse shape like tune_prefill_shape; outputs are verified against the CUDA-core kernel's.
SparseTuneReport tune_sparse_shape(const SparseShape& shape, const DeviceInfo& device, CUstream stream, const TuneOptions& options);

// The same for the CPU backend: tile and split candidates at the machine's thread count, verified against the
// reference, timed by wall clock, stored under the host CPU's identity.
CpuDecodeTuneReport tune_cpu_decode_shape(const DecodeShape& shape, const TuneOptions& options);

// The synthetic shapes the tuner times for a call: decode as is; prefill as a batch of equal sequences of the call's
// longest query run.
DecodeShape shape_of(const DecodeProblem& problem);
PrefillShape shape_of(const PrefillProblem& problem);
SparseShape shape_of(const SparseDecodeProblem& problem);  // NHD, grouped heads, every sequence at its capacity

// Tune-on-miss, the one implementation for every family. `tuned_key` names what is missing (SKU, spec key, bucket).
// The first thread to miss a key asks `lookup` once more (a run that just ended may have stored the winner), else runs
// `tune`; threads missing the same key meanwhile wait for that run and share its winner (config JSON) or its error,
// so a key is tuned once however many threads miss it. Once the run ends, later misses start afresh.
nlohmann::json tune_on_miss(const std::string& tuned_key, const std::function<std::optional<nlohmann::json>()>& lookup,
                            const std::function<nlohmann::json()>& tune);

}  // namespace swajit
