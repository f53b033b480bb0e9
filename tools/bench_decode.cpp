#include "bench_decode.hpp"

#include <memory>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>

#ifdef SWAJIT_HAVE_CPU_BACKEND
#include "cpu_backend.hpp"
#endif

#include "checked_input.hpp"
#include "decode_lengths.hpp"
#include "cuda_driver.hpp"
#include "bench_family.hpp"
#include "check.hpp"
#include "device_flag.hpp"
#include "spec_flags.hpp"
#include "decode_plan.hpp"
#include "decode_timeline.hpp"
#include "decode_workload.hpp"
#include "memory_system.hpp"
#include "swajit/swajit.hpp"
#include "utility_kernels.hpp"

namespace swajit::cli {
namespace {
constexpr size_t kBandwidthProbeBytes = size_t(2) << 30;  // far beyond any L2
constexpr int kBandwidthReps = 20;
}  // namespace

DecodeShape shape_for(const DecodeBenchOptions& o, int batch, int kv_len, int qs) {
  DecodeShape shape;
  shape.batch = batch; shape.kv_len = kv_len; shape.q_seqlen = qs;
  shape.num_q_heads = o.num_q_heads; shape.num_kv_heads = o.num_kv_heads; shape.head_dim = o.head_dim;
  shape.page_size = o.page_size; shape.dtype = parse_dtype(o.dtype); shape.kv_quant = parse_kv_quant(o.kv_quant);
  shape.local_window = o.local_window; shape.global_window = o.global_window;
  shape.sink_logits = o.sink_logits;
  shape.host_lengths = o.host_lengths;
  return shape;
}

#ifdef SWAJIT_HAVE_CPU_BACKEND
// Host memory read bandwidth in bytes/s: every hardware thread sums its slice of a buffer far beyond the caches.
double host_read_bandwidth() {
  constexpr size_t kBytes = size_t(1) << 30;
  constexpr int kReps = 5;
  std::vector<uint64_t> data(kBytes / sizeof(uint64_t), 1);
  const int threads = hardware_threads();
  std::vector<uint64_t> sums(threads);
  std::vector<double> times;
  for (int rep = 0; rep < kReps; ++rep) {
    const auto start = std::chrono::steady_clock::now();
    parallel_for(threads, threads, [&](int first, int, int) {
      const size_t per = data.size() / threads;
      uint64_t s = 0;
      for (size_t i = first * per; i < (first + 1) * per; ++i) s += data[i];
      sums[first] = s;
    });
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(times.begin(), times.end());
  return kBytes / times[kReps / 2];
}

// The CPU table: time per shape, its memory floor, and the simple double-precision reference on the same data.
int run_cpu_decode_bench(const DecodeBenchOptions& o) {
  constexpr int kReferenceSequences = 1;  // the reference is slow: timed on one sequence, scaled by batch
  const double read_bw = host_read_bandwidth();
  const cpu::HostCpu& host = cpu::host_cpu();
  std::printf("device: cpu %s (%s), %d threads; measured host read bandwidth %.1f GB/s\n", host.model_name.c_str(),
              host.cpu_name.c_str(), hardware_threads(), read_bw / 1e9);
  std::printf("paged decode on the CPU backend: %d q heads, %d kv heads, head_dim %d, page %d, %s, local window %d; "
              "median of %d; reference = the double-precision reference on %d sequence, times batch\n\n",
              o.num_q_heads, o.num_kv_heads, o.head_dim, o.page_size, o.dtype.c_str(), o.local_window, o.reps,
              kReferenceSequences);
  std::printf("| batch | kv_len | q_seqlen | time (ms) | floor (ms) | %% of floor | reference (ms) | speedup | config | rel err (seq 0) |\n");
  std::printf("|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|\n");
  bool ok = true;
  for (int batch : o.batches)
    for (int kv_len : o.kv_lens)
      for (int qs : o.q_seqlens) {
        try {
          const DecodeShape shape = shape_for(o, batch, kv_len, qs);
          DecodeWorkload workload(shape, DLDevice{kDLCPU, 0}, nullptr);
          const CpuDecodeConfig config = plan_cpu_decode(workload.problem(0), DecodeOptions{});
          const double us = workload.time_cpu_us(config, o.reps);
          const double rel_err = workload.relative_error(0);
          const auto ref_start = std::chrono::steady_clock::now();
          for (int i = 0; i < kReferenceSequences; ++i) workload.relative_error(0);  // reference + compare
          const double ref_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - ref_start).count() /
                                kReferenceSequences * batch;
          const double floor_ms = (workload.kv_bytes() + workload.qo_bytes()) / read_bw * 1e3;
          const bool verified = rel_err <= tolerance_for(shape.dtype);
          ok = ok && verified;
          std::printf("| %d | %d | %d | %.3f | %.3f | %.0f%% | %.1f | %.0fx | %s | %.6f%s |\n", batch, kv_len, qs, us / 1e3,
                      floor_ms, 100 * floor_ms / (us / 1e3), ref_ms, ref_ms / (us / 1e3), config.key().c_str(), rel_err,
                      verified ? "" : " FAIL");
        } catch (const std::exception& e) {
          ok = false;
          std::printf("| %d | %d | %d | error: %s |\n", batch, kv_len, qs, e.what());
        }
        std::fflush(stdout);
      }
  return ok ? 0 : 1;
}
#endif

std::vector<DecodeBenchRow> decode_bench_rows(const DecodeBenchOptions& o) {
  std::vector<DecodeBenchRow> rows;
  const LengthDistribution distribution = LengthDistribution::parse(o.distribution);
  const auto add_ragged = [&](int qs, std::vector<int> lengths, const std::string& label) {
    DecodeShape shape = shape_for(o, int(lengths.size()), *std::max_element(lengths.begin(), lengths.end()), qs);
    for (int& len : lengths) len = len > 0 ? std::max(len, qs) : 0;  // below q_seqlen is invalid input
    shape.kv_len = std::max(1, *std::max_element(lengths.begin(), lengths.end()));
    shape.seq_lens = std::move(lengths);
    if (!o.write_lengths_dir.empty())
      write_lengths(o.write_lengths_dir + "/lengths_b" + std::to_string(shape.batch) + "_q" + std::to_string(qs) + ".txt",
                    shape.seq_lens);
    rows.push_back({shape, label});
  };
  if (!o.lengths.empty()) {
    for (int qs : o.q_seqlens) add_ragged(qs, read_lengths(o.lengths), "list");
  } else if (distribution.kind == LengthDistribution::Kind::kUniform) {
    for (int batch : o.batches)
      for (int kv_len : o.kv_lens)
        for (int qs : o.q_seqlens) rows.push_back({shape_for(o, batch, kv_len, qs), std::to_string(kv_len)});
  } else {  // the same lengths at every q_seqlen (lifted to it)
    for (int batch : o.batches)
      for (int qs : o.q_seqlens) add_ragged(qs, distribution.draw(batch, 1, o.seed * 1000003 + batch), distribution.text);
  }
  return rows;
}

// Relative error against the reference: sequence 0 of a uniform batch; of a ragged one, the worst of sequence 0, the
// shortest and the longest.
double worst_relative_error(const DecodeWorkload& workload) {
  const std::vector<int>& lengths = workload.shape().seq_lens;
  double worst = workload.relative_error(0);
  if (lengths.empty()) return worst;
  for (auto it : {std::min_element(lengths.begin(), lengths.end()), std::max_element(lengths.begin(), lengths.end())})
    worst = std::max(worst, workload.relative_error(int(it - lengths.begin())));
  return worst;
}

int run_decode_bench(const DecodeBenchOptions& o) {
  const std::vector<DecodeBenchRow> rows = decode_bench_rows(o);
  for (const DecodeBenchRow& row : rows)  // every shape checked before the first is timed
    check_decode_shape(row.shape,
                       "bench decode shape b" + std::to_string(row.shape.batch) + " kv" + row.label + " q" +
                           std::to_string(row.shape.q_seqlen),
                       o.device);
  if (o.device.device_type == kDLCPU) {
#ifdef SWAJIT_HAVE_CPU_BACKEND
    if (!o.lengths.empty() || o.distribution != "uniform")
      throw Error(ErrorCode::kUnsupported, "bench decode --device cpu times the uniform --kv-len grid only");
    return run_cpu_decode_bench(o);
#else
    throw Error(ErrorCode::kUnsupported, "this build has no CPU backend (-DSWAJIT_CPU_BACKEND=ON)");
#endif
  }
  const cuda::Driver& d = cuda::driver();
  cuda::ScopedDeviceContext scope(o.device.device_id);
  const DeviceInfo& device = cuda_device(o.device.device_id);
  CUstream stream;
  cuda::check(d.cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING), "cuStreamCreate");
  const double read_bw = measure_read_bandwidth(device, kBandwidthProbeBytes, kBandwidthReps, stream);
  const double copy_bw = measure_copy_bandwidth(device, kBandwidthProbeBytes, kBandwidthReps, stream);
  std::printf("device: %s (%s), %d SMs, L2 %d MiB\n", device.name.c_str(), device.arch().c_str(), device.sm_count,
              device.l2_bytes >> 20);
  const MemorySystem memory = memory_system(device);
  std::printf("measured: read %.0f GB/s, copy (read+write) %.0f GB/s; floor = (KV bytes in window + q + out) / read bandwidth\n",
              read_bw / 1e9, copy_bw / 1e9);
  std::printf("memory system (tuning/memory_system.hpp): peak %.0f GB/s, read expected %.0f GB/s (measured / expected "
              "%.2f)\n", memory.peak_bytes_per_s / 1e9, memory.read_bytes_per_s / 1e9, read_bw / memory.read_bytes_per_s);
  std::printf("paged decode: %d q heads, %d kv heads, head_dim %d, page %d, %s, KV %s, local window %d, global "
              "window %d, CUDA graph replay over rotated KV copies, L2 evicted before each of %d reps (median)\n\n", o.num_q_heads, o.num_kv_heads, o.head_dim, o.page_size,
              o.dtype.c_str(), o.kv_quant == "none" ? o.dtype.c_str() : o.kv_quant.c_str(), o.local_window,
              o.global_window, o.reps);
  if (o.compare_heuristic) {
    std::printf("| batch | kv_len | q_seqlen | time (us) | floor (us) | %% of floor | rel err (seq 0) | host us per call | config | heuristic (us) | speedup |\n");
    std::printf("|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|\n");
  } else {
    std::printf("| batch | kv_len | q_seqlen | time (us) | floor (us) | %% of floor | rel err (seq 0) | host us per call |\n");
    std::printf("|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  }
  for (const DecodeBenchRow& row : rows)
    if (!row.shape.seq_lens.empty())
      std::printf("lengths of b%d q%d (%s): %s\n", row.shape.batch, row.shape.q_seqlen, row.label.c_str(),
                  summarize_lengths(row.shape.seq_lens, o.local_window, row.shape.q_seqlen).c_str());
  bool ok = true;
  for (const DecodeBenchRow& row : rows) {
        const DecodeShape& shape = row.shape;
        const int batch = shape.batch, qs = shape.q_seqlen;
        const char* kv_len = row.label.c_str();
        try {
          DecodeWorkload workload(shape, o.device, stream);
          // The config the runtime picks for this call (tuned if the database has it), timed as forced.
          const DecodeProblem problem = workload.problem(0);
          DecodeOptions as_called;
          as_called.config = o.config;
          const DecodePlan plan = plan_decode(problem, as_called, device, scope.context(), stream);
          const double us = workload.time_us(plan.config, o.reps);
          const size_t timed_calls_end = decode_timeline_calls();  // the graph's calls were the last replicas() recorded
          const double floor_us = (workload.kv_bytes() + workload.qo_bytes()) / read_bw * 1e6;
          const double rel_err = o.verify ? worst_relative_error(workload) : 0;
          const bool verified = !o.verify || rel_err <= tolerance_for(shape.dtype);
          ok = ok && verified;
          std::printf("| %d | %s | %d | %.1f | %.1f | %.0f%% | %s | %.1f |", batch, kv_len, qs, us, floor_us,
                      100 * floor_us / us, o.verify ? (std::to_string(rel_err).substr(0, 8) + (verified ? "" : " FAIL")).c_str() : "-",
                      workload.host_us_per_call(plan.config, kHostTimedCalls));
          if (o.compare_heuristic) {
            DecodeOptions heuristic_only;
            heuristic_only.tuning = TuningPolicy::kHeuristic;
            const DecodeConfig heuristic = plan_decode(problem, heuristic_only, device, scope.context(), stream).config;
            const double heuristic_us = heuristic == plan.config ? us : workload.time_us(heuristic, o.reps);
            std::printf(" %s%s | %.1f | %.2fx |", plan.origin == DecodePlan::Origin::kTuned ? "tuned " : "heuristic ",
                        plan.config.key().c_str(), heuristic_us, heuristic_us / us);
          }
          std::printf("\n");
          // SWAJIT_DECODE_TIMELINE: the middle call of the graph's last replay (its neighbours run on either side)
          if (decode_timeline_enabled()) print_decode_timeline(timed_calls_end - workload.replicas() / 2 - 1, stdout);
        } catch (const std::exception& e) {
          ok = false;
          std::printf("| %d | %s | %d | error: %s |\n", batch, kv_len, qs, e.what());
        }
        std::fflush(stdout);
  }
  d.cuStreamDestroy(stream);
  return ok ? 0 : 1;
}

BenchVerb FamilyBench<DecodeConfig>::add_to(CLI::App& bench) {
  struct Flags {
    DecodeBenchOptions options;
    ConfigFlags config;
    std::string device = "auto";
  };
  const auto flags = std::make_shared<Flags>();  // filled by the parse, read by the run
  CLI::App* verb = bench.add_subcommand("decode", "paged decode: time beside the bandwidth floor");
  verb->add_option("--batch", flags->options.batches, "batch sizes")->delimiter(',')->check(size_range())->capture_default_str();
  verb->add_option("--kv-len", flags->options.kv_lens, "KV lengths")->delimiter(',')->check(size_range())->capture_default_str();
  verb->add_option("--q-seqlen", flags->options.q_seqlens, "query tokens per sequence")->delimiter(',')->check(size_range())->capture_default_str();
  verb->add_option("--local-window", flags->options.local_window)->check(window_range())->capture_default_str();
  verb->add_option("--global-window", flags->options.global_window)->check(window_range())->capture_default_str();
  verb->add_option("--num-q-heads", flags->options.num_q_heads)->check(size_range())->capture_default_str();
  verb->add_option("--num-kv-heads", flags->options.num_kv_heads)->check(size_range())->capture_default_str();
  verb->add_option("--head-dim", flags->options.head_dim)->check(size_range())->capture_default_str();
  verb->add_option("--page-size", flags->options.page_size)->check(size_range())->capture_default_str();
  verb->add_option("--dtype", flags->options.dtype)->capture_default_str();
  verb->add_option("--kv-quant", flags->options.kv_quant, "none | int8 | fp8 (per-channel scales)")->capture_default_str();
  verb->add_option("--reps", flags->options.reps, "timed graph replays per shape")->check(reps_range())->capture_default_str();
  verb->add_option("--device", flags->device, kDeviceHelp)->capture_default_str();
  verb->add_flag("!--no-verify", flags->options.verify, "skip the reference check of sequence 0");
  verb->add_option("--lengths", flags->options.lengths, "a ragged batch: KV lengths as a,b,c or a file of them (CUDA)");
  verb->add_option("--distribution", flags->options.distribution,
                   "uniform (the --kv-len grid) | log-uniform:LO:HI | bimodal:SHORT:LONG:FRACTION, one batch per --batch (CUDA)")
      ->capture_default_str();
  verb->add_option("--seed", flags->options.seed, "seed of --distribution")->capture_default_str();
  verb->add_option("--write-lengths", flags->options.write_lengths_dir,
                   "directory (made if missing): write each ragged row's lengths to lengths_b<batch>_q<q_seqlen>.txt (for ragged_peer.py)");
  flags->config.add_to(*verb);
  verb->add_flag("--sink-logits", flags->options.sink_logits, "learned per-head attention sinks");
  verb->add_option("--host-lengths", flags->options.host_lengths,
                   "give paged_decode the lengths on the host too (DecodeOptions::host_seq_lens: an equal-length batch "
                   "takes the direct kernel), as FlashInfer's plan() has them (true/false)")->capture_default_str();
  verb->add_flag("--compare-heuristic", flags->options.compare_heuristic,
                   "time the tuned config (database) and the heuristic side by side");
  return {verb, [flags] {
            flags->options.device = parse_device(flags->device);
            // Forced knobs split as the heuristic does unless --splits says otherwise: DecodeConfig{}'s one block per
            // (sequence, kv head) would also time the direct grid, not the knob (session 13 read a fused-merge row so).
            DecodeConfig forced;
            forced.num_splits = DecodeConfig::kSplitsFromCapacity;
            if (flags->config.any()) flags->options.config = flags->config.apply(forced);
            return run_decode_bench(flags->options);
          }};
}

}  // namespace swajit::cli
