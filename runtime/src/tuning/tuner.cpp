#include "tuner.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <exception>
#include <map>
#include <mutex>
#include <thread>
#include <tuple>

#include "reference.hpp"
#ifdef SWAJIT_HAVE_CPU_BACKEND
#include "cpu_backend.hpp"
#endif
#include "cuda_driver.hpp"
#include "decode_plan.hpp"
#include "family.hpp"
#include "heuristic.hpp"
#include "kernel_cache.hpp"
#include "memory_system.hpp"
#include "nvrtc_compiler.hpp"
#include "swajit/error.hpp"
#include "swajit/generator.hpp"
#include "swajit/version.hpp"
#include "tuning_store.hpp"

namespace swajit {
namespace {

constexpr int kBlockNs[] = {32, 64, 128};
constexpr int kWarpsNs[] = {1, 2, 4};
constexpr int kStages[] = {2, 3, 4};
constexpr int kMaxWavesOfSplits = 4;  // more split blocks than this many waves only add merge work
constexpr const char* kToolVersion = "swajit " SWAJIT_VERSION;

// What happened to one compile config (tile, warps, stages) when built for the device.
struct BuildOutcome {
  db::TrialStatus status = db::TrialStatus::kOk;
  std::string detail;
};

// Builds one candidate of any CUDA family and judges its resources from the compiled function: a compile error, more
// shared memory than the device allows, more than `max_spill_bytes` of local memory, or fewer than `min_blocks`
// resident blocks per multiprocessor rule it out.
template <class Config>
BuildOutcome build_outcome(const KernelSpec& spec, const Config& config, const DeviceInfo& device, CUcontext ctx,
                           int max_spill_bytes, int min_blocks) {
  try {
    const LoadedKernelOf<Config>& k = cuda_kernel(spec, config, device, ctx);
    if (k.local_bytes > max_spill_bytes)
      return {db::TrialStatus::kRejectedResources, std::to_string(k.local_bytes) + " bytes of local memory (spills)"};
    int blocks_per_sm = 0;
    cuda::check(cuda::driver().cuOccupancyMaxActiveBlocksPerMultiprocessor(&blocks_per_sm, k.main, k.geometry.threads,
                                                                           k.geometry.shared_bytes),
                "cuOccupancyMaxActiveBlocksPerMultiprocessor");
    if (blocks_per_sm == 0) return {db::TrialStatus::kRejectedResources, "no block fits on a multiprocessor"};
    if (blocks_per_sm < min_blocks)
      return {db::TrialStatus::kRejectedResources, std::to_string(blocks_per_sm) + " blocks fit on a multiprocessor, " +
                                                       std::to_string(min_blocks) + " asked for"};
    return {};
  } catch (const Error& e) {
    const bool resources = e.code() == ErrorCode::kInvalidArgument;  // shared memory over the device's limit
    return {resources ? db::TrialStatus::kRejectedResources : db::TrialStatus::kCompileFailed, e.what()};
  }
}

// Builds `count` candidates on `threads` threads (0: one per hardware thread), each with the device's context
// current: outcome i = build(i, context).
template <class Build>
std::vector<BuildOutcome> build_in_parallel(size_t count, int threads, int device_ordinal, Build build) {
  std::vector<BuildOutcome> outcomes(count);
  std::atomic<size_t> next{0};
  std::vector<std::thread> workers;
  std::mutex error_mutex;
  std::exception_ptr error;  // the first error of any worker, rethrown here: none may leave its thread
  const int n = threads > 0 ? threads : int(std::max(1u, std::thread::hardware_concurrency()));
  for (int t = 0; t < n; ++t)
    workers.emplace_back([&]() noexcept {
      try {
        cuda::ScopedDeviceContext scope(device_ordinal);
        for (size_t i = next++; i < count; i = next++) outcomes[i] = build(i, scope.context());
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
      }
    });
  for (auto& w : workers) w.join();
  if (error) std::rethrow_exception(error);
  return outcomes;
}

// Which rows a tuning run writes: the device, spec and bucket of every trial and of the winner.
struct TuningKey {
  std::string sku, spec_key, bucket;
};

// Both rounds of a tuning run, whatever the family. Round 1: every candidate that built is run, verified (`error`
// against `tolerance`; a wrong one can never win) and timed briefly; round 2: the `finalists` fastest and the
// heuristic are timed again with more runs, and the fastest wins. `error(config)` runs a config and returns its
// relative error; `time_us(config, reps)` times it.
template <class Config>
struct Selection {
  Config best{};
  double best_us = 0, heuristic_us = 0;
  TuneCounts counts;
  std::vector<db::TrialRecord> trials;
};
template <class Config, class ToJson, class ErrorOf, class TimeUs>
Selection<Config> select_winner(const std::vector<Config>& space, const std::vector<BuildOutcome>& built,
                                const Config& heuristic, const TuningKey& key, double tolerance, const TuneOptions& o,
                                ToJson to_json, ErrorOf error, TimeUs time_us) {
  struct Timed {
    Config config;
    double us;
  };
  Selection<Config> s;
  std::vector<Timed> timed;
  bool heuristic_ok = false;
  for (size_t i = 0; i < space.size(); ++i) {
    const Config& c = space[i];
    db::TrialRecord trial;
    trial.device_sku = key.sku;
    trial.spec_key = key.spec_key;
    trial.bucket = key.bucket;
    trial.config = to_json(c);
    trial.status = built[i].status;
    trial.detail = built[i].detail;
    if (trial.status == db::TrialStatus::kOk) {
      if (c == heuristic) heuristic_ok = true;
      const double err = error(c);
      if (!(err <= tolerance)) {
        trial.status = db::TrialStatus::kRejectedWrong;
        trial.detail = "relative error " + std::to_string(err) + " > " + std::to_string(tolerance);
      } else {
        trial.time_us = time_us(c, o.quick_reps);
        timed.push_back({c, *trial.time_us});
      }
    }
    switch (trial.status) {
      case db::TrialStatus::kRejectedWrong: ++s.counts.rejected_wrong; break;
      case db::TrialStatus::kRejectedResources: ++s.counts.rejected_resources; break;
      case db::TrialStatus::kCompileFailed: ++s.counts.compile_failed; break;
      case db::TrialStatus::kOk: break;
    }
    s.trials.push_back(std::move(trial));
  }
  s.counts.candidates = int(space.size());
  s.counts.timed = int(timed.size());
  s.counts.samples = o.final_reps;
  if (timed.empty())
    throw Error(ErrorCode::kUnsupported, "no config of " + key.spec_key + " ran correctly on " + key.sku);
  std::sort(timed.begin(), timed.end(), [](const Timed& a, const Timed& b) { return a.us < b.us; });
  timed.resize(std::min<size_t>(timed.size(), o.finalists));
  if (heuristic_ok && std::none_of(timed.begin(), timed.end(), [&](const Timed& t) { return t.config == heuristic; }))
    timed.push_back({heuristic, 0});
  for (auto& t : timed) {
    t.us = time_us(t.config, o.final_reps);
    if (t.config == heuristic) s.heuristic_us = t.us;
  }
  const Timed& best = *std::min_element(timed.begin(), timed.end(), [](const Timed& a, const Timed& b) { return a.us < b.us; });
  s.best = best.config;
  s.best_us = best.us;
  return s;
}

// Stores the trials and the winner (a fresh measurement on this machine supersedes older rows).
void store_tuning(const db::DeviceRecord& device, const TuningKey& key, const std::vector<db::TrialRecord>& trials,
                  const nlohmann::json& winner, double winner_us, int samples, const std::string& origin) {
  TuningStore::instance().with_db([&](db::TuningDb& db) {
    db.upsert_device(device);
    for (const auto& t : trials) db.add_trial(t);
    db::WinnerRecord w;
    w.device_sku = key.sku;
    w.spec_key = key.spec_key;
    w.bucket = key.bucket;
    w.config = winner;
    w.time_us = winner_us;
    w.samples = samples;
    w.tool_version = kToolVersion;
    w.origin = origin;
    db.put_winner(w, db::WinnerPolicy::kReplace);
  });
  TuningStore::instance().forget_cached_winners();
}

// The end of every tuning run: the report takes the selection's counts, winner and times, and the trials and the
// winner are stored under `device`.
template <class Config, class ToJson>
void record_selection(TuneReport<Config>& report, const Selection<Config>& s, std::chrono::steady_clock::time_point start,
                      const db::DeviceRecord& device, const TuningKey& key, ToJson to_json, const std::string& origin) {
  static_cast<TuneCounts&>(report) = s.counts;
  report.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  report.best = s.best;
  report.best_us = s.best_us;
  report.heuristic_us = s.heuristic_us;
  store_tuning(device, key, s.trials, to_json(report.best), report.best_us, report.samples, origin);
}

}  // namespace

// The timed form of a call of any family: its description, its batch and heads, with K/V in the NHD layout and
// grouped heads (the workloads time those: a call in another layout or mapping is tuned on that form).
template <class Shape>
static Shape timed_shape(const CallProblem& p) {
  Shape s;
  static_cast<AttentionCall&>(s) = p.call;
  s.kv_layout = KvLayout::kNHD;
  s.gqa = GqaMapping::kGrouped;
  s.batch = p.batch;
  s.num_q_heads = p.num_q_heads;
  s.num_kv_heads = p.num_kv_heads;
  return s;
}

DecodeShape shape_of(const DecodeProblem& p) {
  DecodeShape s = timed_shape<DecodeShape>(p);
  s.kv_len = p.max_kv_len;
  return s;
}

PrefillShape shape_of(const PrefillProblem& p) {
  PrefillShape s = timed_shape<PrefillShape>(p);
  // the workload times contiguous K/V, causal, no sink logits: a call of another form is tuned on that one
  s.page_size = 0;
  s.sink_logits = false;
  s.causal = true;
  s.seq_len = p.max_q_len;
  return s;
}

nlohmann::json tune_on_miss(const std::string& tuned_key, const std::function<std::optional<nlohmann::json>()>& lookup,
                            const std::function<nlohmann::json()>& tune) {
  static std::mutex mutex;
  static std::map<std::string, std::shared_future<nlohmann::json>> in_flight;
  std::promise<nlohmann::json> promise;
  std::shared_future<nlohmann::json> result;
  bool runs_here = false;
  {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = in_flight.find(tuned_key);
    runs_here = it == in_flight.end();
    result = runs_here ? in_flight.emplace(tuned_key, promise.get_future().share()).first->second : it->second;
  }
  if (runs_here) {
    try {
      std::optional<nlohmann::json> stored = lookup();
      if (!stored) stored = tune();
      promise.set_value(*stored);
    } catch (...) {
      promise.set_exception(std::current_exception());
    }
    std::lock_guard<std::mutex> lock(mutex);
    in_flight.erase(tuned_key);  // later misses find the winner in the database (or, after an error, try again)
  }
  return result.get();
}

// The pipeline depths the space tries for tiles of block_n tokens over warps_n warp columns: kStages, the depths
// that keep as many bytes in flight ((stages - 1) K and V tiles) as kStages does with 16-bit tiles of
// kReferenceBlockN tokens (deeper pipelines of smaller tiles: 8-bit caches, block_n 32), and on a known device the
// depths its memory system asks for at 1, 2 and 4 blocks per SM (stages_for_bandwidth) and the deepest that its
// shared memory holds at 1 and 2 blocks per SM: a faster or larger SKU gets deeper candidates, not a constant.
static std::vector<int> stage_counts(const KernelSpec& spec, int block_n, int warps_n, const DeviceInfo* device) {
  constexpr int kReferenceBlockN = 64;
  const int reference_tile_bytes = kReferenceBlockN * 2, tile_bytes = block_n * (spec.kv_quant == KvQuant::kNone ? 2 : 1);
  std::vector<int> counts(std::begin(kStages), std::end(kStages));
  const auto add = [&](int stages) {  // past DecodeConfig's stage limit it fails validation below
    if (std::find(counts.begin(), counts.end(), stages) == counts.end()) counts.push_back(stages);
  };
  for (int stages : kStages) {
    const int in_flight = (stages - 1) * reference_tile_bytes;  // per head-dim column
    if (in_flight % tile_bytes == 0) add(1 + in_flight / tile_bytes);
  }
  if (!device) return counts;
  const MemorySystem memory = memory_system(*device);
  const int64_t stage_bytes = 2LL * tile_bytes * spec.head_dim;  // K and V
  for (int blocks : {1, 2, 4}) add(stages_for_bandwidth(memory, stage_bytes, blocks));
  for (int blocks : {1, 2}) {
    const int per_block = std::min(device->max_shared_per_block_optin,
                                   device->max_shared_per_sm / blocks - device->reserved_shared_per_block);
    int deepest = 0;
    for (DecodeConfig c{block_n, warps_n, 2, 1}; decode_geometry(spec, c).shared_bytes <= per_block; ++c.stages) {
      if (!runs_spec(c, spec)) break;  // past DecodeConfig's stage limit
      deepest = c.stages;
    }
    if (deepest > 0) add(deepest);
  }
  return counts;
}

namespace {

// Adds `c` to a config space if `spec` can run it: a config it cannot run is simply not part of that spec's space.
template <class Config>
void add_if_valid(std::vector<Config>& space, const Config& c, const KernelSpec& spec) {
  if (runs_spec(c, spec)) space.push_back(c);
}

}  // namespace

std::vector<DecodeConfig> decode_config_space(const KernelSpec& spec, int max_splits, const DeviceInfo* device) {
  std::vector<DecodeConfig> space;
  for (int block_n : kBlockNs)
    for (int warps_n : kWarpsNs)
      for (int stages : stage_counts(spec, block_n, warps_n, device))
        // The capacity schedule (kSplitsFromCapacity: 0), then fixed counts 1, 2, 4, ...
        for (int splits = DecodeConfig::kSplitsFromCapacity; splits <= std::max(1, max_splits); splits = std::max(1, 2 * splits)) {
          DecodeConfig c{block_n, warps_n, stages, splits};
          c.pages_ahead = true;  // every warp loading: the read order the heuristic takes (heuristic.cpp, with_pages_ahead)
          add_if_valid(space, c, spec);
        }
  return space;
}

DecodeTuneReport tune_decode_shape(const DecodeShape& shape, const DeviceInfo& device, CUstream stream, const TuneOptions& o) {
  const auto start = std::chrono::steady_clock::now();
  DecodeWorkload workload(shape, DLDevice{kDLCUDA, device.ordinal}, stream);
  const DecodeProblem problem = workload.problem(0);
  CUcontext context;
  cuda::check(cuda::driver().cuCtxGetCurrent(&context), "cuCtxGetCurrent");

  DecodeTuneReport report;
  report.sku = device.sku();
  report.spec_key = problem.spec.key();
  report.bucket = decode_bucket_of(problem).key();
  DecodeOptions heuristic_only;
  heuristic_only.tuning = TuningPolicy::kHeuristic;
  report.heuristic = plan_decode(problem, heuristic_only, device, context, stream).config;
  report.heuristic.direct_grid = false;  // not a knob: paged_decode picks the grid per call (with_call_grid)

  // The space: splits up to what still fits kMaxWavesOfSplits waves and leaves each split a tile.
  const int block_rows = problem.batch * problem.num_kv_heads;
  const int max_tiles = (visible_kv_upper_bound(problem) + kBlockNs[0] - 1) / kBlockNs[0];
  const int max_splits = std::clamp(kMaxWavesOfSplits * device.sm_count * 2 / std::max(1, block_rows), 1, max_tiles);
  std::vector<DecodeConfig> space = decode_config_space(problem.spec, max_splits, &device);
  if (std::find(space.begin(), space.end(), report.heuristic) == space.end()) space.push_back(report.heuristic);
  DecodeConfig pages_ahead = report.heuristic;  // the heuristic's tile with the other block_table read order
  pages_ahead.pages_ahead = !pages_ahead.pages_ahead;
  DecodeConfig early_tiles = report.heuristic;  // ... and (a producer warp) with the other start of an item's loads
  early_tiles.early_tiles = !early_tiles.early_tiles;
  for (const DecodeConfig& knob : {pages_ahead, early_tiles})
    if (runs_spec(knob, problem.spec) && std::find(space.begin(), space.end(), knob) == space.end()) space.push_back(knob);

  // Build every compile config in parallel, each for the grid its timed calls run (a module per grid: with_call_grid);
  // resources come from the compiled functions themselves.
  std::map<std::string, BuildOutcome> built;
  std::vector<DecodeConfig> to_build;
  const auto as_called = [&](const DecodeConfig& c) { return with_call_grid(problem, c); };
  for (const auto& c : space)
    if (!built.count(as_called(c).compile_key())) {
      built[as_called(c).compile_key()];
      to_build.push_back(as_called(c));
    }
  const std::vector<BuildOutcome> compiled = build_in_parallel(
      to_build.size(), o.compile_threads, device.ordinal,
      [&](size_t i, CUcontext ctx) {
        return build_outcome(problem.spec, to_build[i], device, ctx, /*max_spill_bytes=*/0, /*min_blocks=*/1);
      });
  for (size_t i = 0; i < to_build.size(); ++i) built[to_build[i].compile_key()] = compiled[i];

  std::vector<BuildOutcome> outcomes;
  for (const auto& c : space) outcomes.push_back(built[as_called(c).compile_key()]);
  const TuningKey key{device.sku(), report.spec_key, report.bucket};
  const Selection<DecodeConfig> s = select_winner(
      space, outcomes, report.heuristic, key, tolerance_for(shape.dtype), o, decode_config_to_json,
      [&](const DecodeConfig& c) { workload.run(0, c); return workload.relative_error(0); },
      [&](const DecodeConfig& c, int reps) { return workload.time_us(c, reps); });
  record_selection(report, s, start, device_record(device, nvrtc::version()), key, decode_config_to_json, o.origin);
  return report;
}

namespace {

constexpr int kPrefillBlockMs[] = {64, 128, 192, 256};
constexpr int kPrefillBlockNs[] = {32, 64, 128};
constexpr int kPrefillStages[] = {2, 3};
constexpr int kMaxSpillBytes = 256;  // a few spilled registers can pay for a second block per SM; more never does

}  // namespace

std::vector<PrefillConfig> prefill_config_space(const KernelSpec& spec, bool wgmma_available) {
  std::vector<PrefillConfig> space;
  for (int block_m : kPrefillBlockMs)
    for (int block_n : kPrefillBlockNs)
      for (int stages : kPrefillStages)
        // Paths: mma.sync with 1 or 2 row tiles, wgmma with every warp loading, wgmma with a producer warpgroup
        // (warp_specialize 1), and with TMA also S(t+1) before softmax(t) on a persistent grid (the H200's head_dim
        // 128 default since K and V have their own stage barriers). warp_specialize 3 stays forcible, and 2 on row
        // gathers: both measured slower than 1 at every pipeline depth on the H100 (tools/bench/RESULTS.md).
        for (int path = 0; path < 4; ++path)
          for (int min_blocks : {1, 2}) {
            const int warp_specialize = path == 3 ? 1 : 0;
            // The producer/consumer register split assumes one block per SM (bm128 at two per SM does not compile).
            if (warp_specialize && min_blocks > 1) continue;
            PrefillConfig c{block_m, block_n, stages, path == 1 ? 2 : 1, path >= 2, min_blocks, warp_specialize};
            if (c.wgmma && !wgmma_available) continue;
            // The specialized path twice: K/V rows gathered by cp.async, and tiles moved by TMA (the H200's default)
            // (8-bit K/V with bf16 q: the TMA tiles once more with f16_mma, which only such specs take)
            const auto add_with_f16 = [&](PrefillConfig config) {
              add_if_valid(space, config, spec);
              config.f16_mma = true;
              add_if_valid(space, config, spec);
            };
            for (bool tma : {false, true}) {
              if (tma && !warp_specialize) continue;
              c.tma = tma;
              add_with_f16(c);
            }
            if (c.tma) {
              PrefillConfig overlapped = c;
              overlapped.warp_specialize = 2;
              overlapped.persistent = true;
              add_with_f16(overlapped);
              // 8-bit K/V, head_dim 128 (the specs that take them), on the tile they were measured on (the one
              // whose two Q buffers, stages and staging fit the H200's 227 KB): Q.K^T from the stored K tiles, with
              // the producer or the compute warps folding Q, and with fp8 P.V from the transposed stored V tiles
              // (session 15: 4% faster than the default on a paged cache of shuffled 16-token pages, 2-5% slower on
              // contiguous K/V)
              constexpr int kStoredTileRows = 128, kStoredTileStages = 2;
              PrefillConfig stored = overlapped;
              stored.f16_mma = stored.stored_k_scores = true;
              if (block_m == kStoredTileRows && block_n == kStoredTileRows && stages == kStoredTileStages)
                for (bool consumer_fold : {false, true})
                  for (bool stored_v : {false, true}) {
                    stored.consumer_fold = consumer_fold;
                    stored.stored_v = stored_v;
                    add_if_valid(space, stored, spec);
                  }
            }
          }
  return space;
}

PrefillTuneReport tune_prefill_shape(const PrefillShape& shape, const DeviceInfo& device, CUstream stream,
                                     const TuneOptions& o) {
  const auto start = std::chrono::steady_clock::now();
  PrefillWorkload workload(shape, device.ordinal, stream);
  const PrefillProblem problem = workload.problem();
  CUcontext context;
  cuda::check(cuda::driver().cuCtxGetCurrent(&context), "cuCtxGetCurrent");
  PrefillTuneReport report;
  report.sku = device.sku();
  report.spec_key = problem.spec.key();
  report.bucket = prefill_bucket_key(problem.batch, problem.max_q_len, problem.params.local_window);
  report.heuristic = with_item_order(problem, heuristic_prefill_config(problem.spec, device));  // the call's default
  std::vector<PrefillConfig> space = prefill_config_space(problem.spec, device.arch() == "sm_90a");
  if (std::find(space.begin(), space.end(), report.heuristic) == space.end()) space.push_back(report.heuristic);

  const std::vector<BuildOutcome> outcomes = build_in_parallel(
      space.size(), o.compile_threads, device.ordinal,
      [&](size_t i, CUcontext ctx) {
        return build_outcome(problem.spec, space[i], device, ctx, kMaxSpillBytes, space[i].min_blocks);
      });

  const TuningKey key{device.sku(), report.spec_key, report.bucket};
  const Selection<PrefillConfig> s = select_winner(
      space, outcomes, report.heuristic, key, tolerance_for(shape.dtype), o, prefill_config_to_json,
      [&](const PrefillConfig& c) {
        workload.run(c, TuningPolicy::kHeuristic, /*poison=*/true);
        return workload.sampled_relative_error();
      },
      [&](const PrefillConfig& c, int reps) { return workload.time_ms(c, reps) * 1e3; });
  record_selection(report, s, start, device_record(device, nvrtc::version()), key, prefill_config_to_json, o.origin);
  return report;
}

std::vector<SparseDecodeConfig> sparse_config_space(const KernelSpec& spec, int max_splits) {
  constexpr int kSparseBlockNs[] = {32, 64, 128}, kSparseStages[] = {2, 3, 4, 6}, kSparseSplits[] = {1, 2, 3, 4, 6, 8, 16, 32};
  // 16-bit caches: the tensor-core kernels (the CUDA-core one is slower everywhere), token split with wide and narrow
  // warps; 8-bit: the CUDA-core kernel
  std::vector<std::tuple<bool, bool, bool>> kernels;  // (mma, token_split, narrow_warps)
  if (spec.kv_quant == KvQuant::kNone) kernels = {{true, false, false}, {true, true, false}, {true, true, true}};
  else kernels = {{false, false, false}};
  std::vector<SparseDecodeConfig> space;
  for (int block_n : kSparseBlockNs)
    for (int stages : kSparseStages)
      for (const auto& [mma, token_split, narrow_warps] : kernels)
        for (bool l2_prefetch : {false, true})
          for (int splits : kSparseSplits)  // 3 and 6: grids of one or two pairs per resident block whole waves
            if (splits == 1 || splits <= max_splits)
              add_if_valid(space, SparseDecodeConfig{.block_n = block_n, .stages = stages, .num_splits = splits, .mma = mma,
                                                     .token_split = token_split, .l2_prefetch = l2_prefetch,
                                                     .narrow_warps = narrow_warps}, spec);
  return space;
}

SparseTuneReport tune_sparse_shape(const SparseShape& shape, const DeviceInfo& device, CUstream stream, const TuneOptions& o) {
  constexpr int kMaxSparseSplits = 32;  // batch 1: one or two tiles per split
  const auto start = std::chrono::steady_clock::now();
  SparseWorkload workload(shape, device.ordinal, stream);
  const SparseDecodeProblem problem = workload.problem();
  SparseTuneReport report;
  report.sku = device.sku();
  report.spec_key = problem.spec.key();
  report.bucket = sparse_bucket_key(problem);
  report.heuristic = sparse_decode_default_config(problem, device);
  std::vector<SparseDecodeConfig> space = sparse_config_space(problem.spec, kMaxSparseSplits);
  if (std::find(space.begin(), space.end(), report.heuristic) == space.end()) space.push_back(report.heuristic);
  if (report.heuristic.mla) {  // the MLA kernels (the heuristic's on sm_90a only, so not in the device-free space)
    // each in its tiles (SparseDecodeConfig::validate_mla): plain 64 x 2, copying ahead, also scoring ahead, splitting
    // S's columns; warp specialized 32 x 4, 32 x 6, 64 x 2; seesaw 64 x 2, 32 x 4
    std::vector<SparseDecodeConfig> kernels;
    for (const auto& [block_n, stages, warp_specialize, copy_ahead, score_ahead, split_scores, seesaw] :
         {std::tuple{64, 2, false, false, false, false, false}, std::tuple{64, 2, false, true, false, false, false},
          std::tuple{64, 2, false, true, true, false, false}, std::tuple{64, 2, false, false, false, true, false},
          std::tuple{32, 4, true, false, false, false, false}, std::tuple{32, 6, true, false, false, false, false},
          std::tuple{64, 2, true, false, false, false, false}, std::tuple{64, 2, false, false, false, false, true},
          std::tuple{32, 4, false, false, false, false, true}}) {
      SparseDecodeConfig c = report.heuristic;
      c.block_n = block_n;
      c.stages = stages;
      c.warp_specialize = warp_specialize;
      c.copy_ahead = copy_ahead;
      c.score_ahead = score_ahead;
      c.split_scores = split_scores;
      c.seesaw = seesaw;
      kernels.push_back(c);
    }
    for (const SparseDecodeConfig& kernel : kernels)
      for (int splits = 1; splits <= kMaxSparseSplits; splits *= 2) {  // at each split
        SparseDecodeConfig c = kernel;
        c.num_splits = splits;
        if (std::find(space.begin(), space.end(), c) == space.end()) space.push_back(c);
      }
  }

  const std::vector<BuildOutcome> outcomes = build_in_parallel(
      space.size(), o.compile_threads, device.ordinal,
      [&](size_t i, CUcontext ctx) { return build_outcome(problem.spec, space[i], device, ctx, kMaxSpillBytes, 1); });
  const TuningKey key{device.sku(), report.spec_key, report.bucket};
  const auto to_json = [](const SparseDecodeConfig& c) { return Family<SparseDecodeConfig>::to_json(c); };
  const Selection<SparseDecodeConfig> s = select_winner(
      space, outcomes, report.heuristic, key, tolerance_for(shape.dtype), o, to_json,
      [&](const SparseDecodeConfig& c) {
        workload.run(c);
        return workload.relative_error();
      },
      [&](const SparseDecodeConfig& c, int reps) { return workload.time_us(c, reps); });
  record_selection(report, s, start, device_record(device, nvrtc::version()), key, to_json, o.origin);
  return report;
}

SparseShape shape_of(const SparseDecodeProblem& p) {
  SparseShape s = timed_shape<SparseShape>(p);
  s.kv_len = std::max(1, p.params.max_pages_per_seq * p.call.page_size);
  return s;
}

#ifdef SWAJIT_HAVE_CPU_BACKEND
CpuDecodeTuneReport tune_cpu_decode_shape(const DecodeShape& shape, const TuneOptions& o) {
  constexpr int kCpuBlockNs[] = {16, 32, 64, 128};
  constexpr int kMaxCpuSplits = 16;
  const auto start = std::chrono::steady_clock::now();
  DecodeWorkload workload(shape, DLDevice{kDLCPU, 0}, nullptr);
  const DecodeProblem problem = workload.problem(0);
  CpuDecodeTuneReport report;
  report.spec_key = problem.spec.key();
  report.bucket = decode_bucket_of(problem).key();
  report.sku = cpu::host_cpu().identity();
  report.heuristic = cpu_heuristic_config(problem);
  std::vector<CpuDecodeConfig> space;
  for (int block_n : kCpuBlockNs)
    for (int splits = 1; splits <= kMaxCpuSplits; splits *= 2) space.push_back({block_n, splits, report.heuristic.threads});
  if (std::find(space.begin(), space.end(), report.heuristic) == space.end()) space.push_back(report.heuristic);

  // Clang compiles one candidate at a time: the machine's threads run the timed kernels.
  std::vector<BuildOutcome> outcomes;
  for (const auto& c : space) {
    try {
      cpu_decode_kernel(problem.spec, c);
      outcomes.push_back({});
    } catch (const Error& e) {
      outcomes.push_back({db::TrialStatus::kCompileFailed, e.what()});
    }
  }
  const TuningKey key{report.sku, report.spec_key, report.bucket};
  const Selection<CpuDecodeConfig> s = select_winner(
      space, outcomes, report.heuristic, key, tolerance_for(shape.dtype), o, cpu_decode_config_to_json,
      [&](const CpuDecodeConfig& c) {
        workload.run(0, std::nullopt, TuningPolicy::kHeuristic, c);
        return workload.relative_error(0);
      },
      [&](const CpuDecodeConfig& c, int reps) { return workload.time_cpu_us(c, reps); });

  db::DeviceRecord host;
  host.sku = report.sku;
  host.name = cpu::host_cpu().model_name;
  host.backend = "cpu";
  host.compiler_version = cpu::clang_version();
  host.extra = {{"cpu", cpu::host_cpu().cpu_name}, {"features", cpu::host_cpu().features}, {"threads", hardware_threads()}};
  record_selection(report, s, start, host, key, cpu_decode_config_to_json, o.origin);
  return report;
}
#endif

}  // namespace swajit
