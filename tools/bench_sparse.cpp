// `swajit bench sparse`: sparse top-k decode on the issue-16 shapes, timed beside its floor
// max(selected K/V bytes / read bandwidth, FLOPs / matmul rate), both measured in the same run (the matmul rate is
// passed in by the caller that measured it, as for `bench prefill`).
#include <algorithm>
#include <cmath>
#include <optional>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "bench_family.hpp"
#include "checked_input.hpp"
#include "cuda_driver.hpp"
#include "device_flag.hpp"
#include "kernel_cache.hpp"
#include "spec_flags.hpp"
#include "sparse_decode_problem.hpp"
#include "sparse_workload.hpp"
#include "utility_kernels.hpp"
#include "swajit/swajit.hpp"

namespace swajit::cli {
namespace {

constexpr size_t kBandwidthProbeBytes = size_t(2) << 30;  // far beyond any L2 (as bench decode probes)
constexpr int kBandwidthReps = 20;

struct SparseBenchOptions {
  std::vector<std::string> shapes = {"a", "b"};
  std::vector<int> batches = {1, 8, 32, 128};
  std::vector<int> topks, kv_lens;  // only the preset rows of these (empty: every row)
  std::vector<std::string> configs;  // compile keys (or full keys) timed beside the heuristic on each row
  int page_size = 64, reps = 50, device = 0;
  double matmul_tflops = 0;
  ConfigFlags config;       // forced knobs on top of each shape's heuristic config (--splits 0: the heuristic's splits)
  bool cuda_cores = false;  // the heuristic's config on the CUDA-core kernel instead of tensor cores
  SparseDiagnostics diagnostics;  // each row's (SparseShape's)
};

// The preset's rows at the listed kv lengths (all when none is listed), each at the listed topk values (its own when none
// is listed: a value the preset lacks times that selection size on the preset's kv lengths), once each.
std::vector<SparseShape> bench_rows(const SparseBenchOptions& o, const std::string& shape_name) {
  std::vector<SparseShape> rows;
  for (SparseShape s : sparse_preset(shape_name, 1)) {
    if (!o.kv_lens.empty() && std::count(o.kv_lens.begin(), o.kv_lens.end(), s.kv_len) == 0) continue;
    s.page_size = o.page_size;
    s.diagnostics = o.diagnostics;
    for (int topk : o.topks.empty() ? std::vector<int>{s.topk} : o.topks) {
      SparseShape r = s;
      r.topk = topk;
      const auto same = [&](const SparseShape& x) {
        return x.kv_len == r.kv_len && x.topk == r.topk && x.local_window == r.local_window && x.sink_logits == r.sink_logits;
      };
      if (std::none_of(rows.begin(), rows.end(), same)) rows.push_back(r);
    }
  }
  return rows;
}

int run_sparse_bench(const SparseBenchOptions& o) {
  constexpr int64_t kCopyBytes = 16;  // the kernels' 16-byte copies need 16-byte aligned rows
  if (o.diagnostics.v_gap_bytes % kCopyBytes != 0)
    throw Error(ErrorCode::kInvalidArgument, "--v-gap = " + std::to_string(o.diagnostics.v_gap_bytes) + " must be a multiple of 16");
  cuda::ScopedDeviceContext scope(o.device);
  const DeviceInfo& device = cuda_device(o.device);
  const cuda::OwnedStream stream = cuda::create_stream();
  const double read_bw = measure_read_bandwidth(device, kBandwidthProbeBytes, kBandwidthReps, stream.get());
  std::printf("device: %s (%s), %d SMs; measured read %.0f GB/s; matmul %.0f TFLOP/s (--matmul-tflops)\n",
              device.name.c_str(), device.arch().c_str(), device.sm_count, read_bw / 1e9, o.matmul_tflops);
  std::printf("floor = max(selected K/V bytes / read bandwidth, FLOPs / matmul rate); page %d, bf16, q_seqlen 1; "
              "L2 evicted before each of %d reps (median); correctness: swajit check\n\n", o.page_size, o.reps);
  std::printf("| shape | batch | kv_len | topk | window | sinks | us | floor us | %% of floor | config | heuristic us |\n"
              "|---|---:|---:|---:|---:|---|---:|---:|---:|---|---:|\n");
  for (const std::string& shape_name : o.shapes)
    for (const SparseShape& row : bench_rows(o, shape_name))
      for (int batch : o.batches) {
        SparseShape s = row;
        s.batch = batch;
        SparseWorkload workload(s, o.device, stream.get());
        const SparseDecodeProblem problem = workload.problem();
        const double floor_us = 1e6 * std::max(s.selected_bytes() / read_bw, o.matmul_tflops > 0 ? s.flops() / (o.matmul_tflops * 1e12) : 0.0);
        const auto print_row = [&](double us, const SparseDecodeConfig& config, const char* origin, double heuristic_us) {
          std::printf("| %s | %d | %d | %d | %d | %s | %.1f | %.1f | %.0f%% | %s%s | %.1f |\n", shape_name.c_str(), batch,
                      s.kv_len, s.topk, s.local_window, s.sink_logits ? "yes" : "no", us, floor_us, 100 * floor_us / us,
                      config.key().c_str(), origin, heuristic_us);
          std::fflush(stdout);
        };
        const auto timed = [&](const SparseDecodeConfig& config) {
          workload.run(config);
          check_device_errors(o.device, stream.get());
          return workload.time_us(config, o.reps);
        };
        if (!o.configs.empty()) {  // each listed config on this workload right after the heuristic's (less drift)
          SparseDecodeOptions heuristic_only;
          heuristic_only.tuning = TuningPolicy::kHeuristic;
          const SparseDecodeConfig heuristic = plan_sparse_decode(problem, heuristic_only, device, stream.get()).config;
          const double heuristic_us = timed(heuristic);
          print_row(heuristic_us, heuristic, "", heuristic_us);
          for (const std::string& key : o.configs) {
            const bool has_splits = key.find("_sp") != std::string::npos;
            SparseDecodeConfig c = SparseDecodeConfig::from_key(has_splits ? key : key + "_sp1");
            if (!has_splits) c.num_splits = sparse_decode_splits(problem, c, device);
            try {
              c.validate(problem.spec);
              print_row(timed(c), c, " (listed)", heuristic_us);
            } catch (const Error& e) {
              std::printf("| %s | %d | %d | %d | | | - | | | %s: %s | |\n", shape_name.c_str(), batch, s.kv_len, s.topk,
                          c.key().c_str(), e.what());
            }
          }
          continue;
        }
        SparseDecodeOptions as_called;  // the config the runtime picks (tuned if the database has it), or the forced one
        if (o.cuda_cores || o.config.any()) {  // the heuristic's config with the forced knobs, its splits unless forced
          // --mla false: the general heuristic's tile (the MLA kernel's one does not fit the other kernels' layout)
          const bool general = o.config.mla && !*o.config.mla;
          SparseDecodeConfig c = o.config.apply(general ? sparse_decode_heuristic(problem.spec, device.max_shared_per_block_optin, !o.cuda_cores)
                                                         : sparse_decode_heuristic(problem.spec, device, !o.cuda_cores));
          if (!o.config.num_splits || *o.config.num_splits == 0) c.num_splits = sparse_decode_splits(problem, c, device);
          as_called.config = c;
        }
        const SparseDecodePlan plan = plan_sparse_decode(problem, as_called, device, stream.get());
        const double us = timed(plan.config);
        double heuristic_us = us;
        if (plan.origin == SparseDecodePlan::Origin::kTuned) {  // the heuristic beside the database's winner
          SparseDecodeOptions heuristic_only;
          heuristic_only.tuning = TuningPolicy::kHeuristic;
          heuristic_us = workload.time_us(plan_sparse_decode(problem, heuristic_only, device, stream.get()).config, o.reps);
        }
        print_row(us, plan.config,
                  plan.origin == SparseDecodePlan::Origin::kForced ? " (forced)" : plan.origin == SparseDecodePlan::Origin::kTuned ? " (tuned)" : "",
                  heuristic_us);
      }
  return 0;
}

}  // namespace

BenchVerb FamilyBench<SparseDecodeConfig>::add_to(CLI::App& bench) {
  struct Flags {
    SparseBenchOptions options;
    std::string device = "cuda";
  };
  const auto flags = std::make_shared<Flags>();
  CLI::App* verb = bench.add_subcommand("sparse", "sparse top-k decode (issue 16 shapes a and b) beside its floor");
  verb->add_option("--shape", flags->options.shapes, "a (64/8 heads, d128, topk 512/2048) | b (MLA 576/512, 128 heads)")
      ->delimiter(',')->capture_default_str();
  verb->add_option("--batch", flags->options.batches, "batch sizes")->delimiter(',')->check(size_range())->capture_default_str();
  verb->add_option("--configs", flags->options.configs,
                   "config keys timed on each row right after the heuristic's (without _sp<P>: the heuristic's splits)")
      ->delimiter(',');
  verb->add_option("--topk", flags->options.topks, "these topk values on the preset's kv lengths (default: the preset's rows)")
      ->delimiter(',')->check(CLI::Range(1, SpecLimits::kMaxTopk));
  verb->add_option("--kv-len", flags->options.kv_lens, "only the preset rows of these kv lengths")->delimiter(',');
  verb->add_option("--page-size", flags->options.page_size)->check(CLI::Range(1, 256))->capture_default_str();
  verb->add_option("--reps", flags->options.reps)->check(reps_range())->capture_default_str();
  verb->add_option("--matmul-tflops", flags->options.matmul_tflops, "bf16 matmul rate measured in the same run (floor)")
      ->check(CLI::NonNegativeNumber);
  verb->add_option("--device", flags->device, "cuda | cuda:N")->capture_default_str();
  verb->add_flag("--cuda-cores", flags->options.cuda_cores, "the heuristic's tile and splits on the CUDA-core kernel (not mma)");
  verb->add_option("--index-span", flags->options.diagnostics.index_span,
                   "diagnostic: indices drawn from the first N tokens, so the gathered rows stay in L2 (0: all)")
      ->check(CLI::NonNegativeNumber);
  verb->add_flag("--empty-selection", flags->options.diagnostics.empty_selection,
                 "diagnostic: every index -1, the kernel's work without the gather's reads (the floor still counts them)");
  verb->add_flag("--contiguous-pages", flags->options.diagnostics.contiguous_pages,
                 "diagnostic: each sequence's pages consecutive in the cache (default: random pages)");
  verb->add_option("--v-gap", flags->options.diagnostics.v_gap_bytes,
                   "diagnostic: the V cache this many bytes (a multiple of 16) into its allocation, moving its addresses against K's")
      ->check(CLI::Range(int64_t(0), int64_t(1) << 30));
  verb->add_flag("--eager", flags->options.diagnostics.eager_timing, "diagnostic: time direct launches instead of CUDA graph replays");
  flags->options.config.add_to(*verb);
  return {verb, [flags] {
            flags->options.device = cuda_ordinal(parse_device(flags->device), "bench sparse");
            return run_sparse_bench(flags->options);
          }};
}

}  // namespace swajit::cli
