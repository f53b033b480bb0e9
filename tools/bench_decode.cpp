#include "bench_decode.hpp"

#include <cstdio>
#include <string>

#include "cuda_driver.hpp"
#include "check.hpp"
#include "decode_plan.hpp"
#include "decode_workload.hpp"
#include "swajit/swajit.hpp"
#include "utility_kernels.hpp"

namespace swajit::cli {
namespace {
constexpr size_t kBandwidthProbeBytes = size_t(2) << 30;  // far beyond any L2
constexpr int kBandwidthReps = 20;
}  // namespace

int run_decode_bench(const DecodeBenchOptions& o) {
  const cuda::Driver& d = cuda::driver();
  cuda::ScopedDeviceContext scope(o.device);
  const DeviceInfo& device = cuda_device(o.device);
  CUstream stream;
  cuda::check(d.cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING), "cuStreamCreate");
  const double read_bw = measure_read_bandwidth(device, kBandwidthProbeBytes, kBandwidthReps, stream);
  const double copy_bw = measure_copy_bandwidth(device, kBandwidthProbeBytes, kBandwidthReps, stream);
  std::printf("device: %s (%s), %d SMs, L2 %d MiB\n", device.name.c_str(), device.arch().c_str(), device.sm_count,
              device.l2_bytes >> 20);
  std::printf("measured: read %.0f GB/s, copy (read+write) %.0f GB/s; floor = (KV bytes in window + q + out) / read bandwidth\n",
              read_bw / 1e9, copy_bw / 1e9);
  std::printf("paged decode: %d q heads, %d kv heads, head_dim %d, page %d, %s, KV %s, local window %d, global "
              "window %d, CUDA graph replay, median of %d\n\n", o.num_q_heads, o.num_kv_heads, o.head_dim, o.page_size,
              o.dtype.c_str(), o.kv_quant == "none" ? o.dtype.c_str() : o.kv_quant.c_str(), o.local_window,
              o.global_window, o.reps);
  if (o.compare_heuristic) {
    std::printf("| batch | kv_len | q_seqlen | time (us) | floor (us) | %% of floor | rel err (seq 0) | config | heuristic (us) | speedup |\n");
    std::printf("|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|\n");
  } else {
    std::printf("| batch | kv_len | q_seqlen | time (us) | floor (us) | %% of floor | rel err (seq 0) |\n");
    std::printf("|---:|---:|---:|---:|---:|---:|---:|\n");
  }
  bool ok = true;
  for (int batch : o.batches)
    for (int kv_len : o.kv_lens)
      for (int qs : o.q_seqlens) {
        try {
          DecodeShape shape;
          shape.batch = batch; shape.kv_len = kv_len; shape.q_seqlen = qs;
          shape.num_q_heads = o.num_q_heads; shape.num_kv_heads = o.num_kv_heads; shape.head_dim = o.head_dim;
          shape.page_size = o.page_size; shape.dtype = parse_dtype(o.dtype); shape.kv_quant = parse_kv_quant(o.kv_quant);
          shape.local_window = o.local_window; shape.global_window = o.global_window;
          shape.sink_logits = o.sink_logits;
          DecodeWorkload workload(shape, device, stream);
          // The config the runtime picks for this call (tuned if the database has it), timed as forced.
          const DecodeProblem problem = workload.problem(0);
          const DecodePlan plan = plan_decode(problem, DecodeOptions{.config = o.config}, device, scope.context(), stream);
          const double us = workload.time_us(plan.config, o.reps);
          const double floor_us = (workload.kv_bytes() + workload.qo_bytes()) / read_bw * 1e6;
          const double rel_err = o.verify ? workload.relative_error(0) : 0;
          const bool verified = !o.verify || rel_err <= tolerance_for(shape.dtype);
          ok = ok && verified;
          std::printf("| %d | %d | %d | %.1f | %.1f | %.0f%% | %s |", batch, kv_len, qs, us, floor_us,
                      100 * floor_us / us, o.verify ? (std::to_string(rel_err).substr(0, 8) + (verified ? "" : " FAIL")).c_str() : "-");
          if (o.compare_heuristic) {
            DecodeOptions heuristic_only;
            heuristic_only.tuning = TuningPolicy::kHeuristic;
            const DecodeConfig heuristic = plan_decode(problem, heuristic_only, device, scope.context(), stream).config;
            const double heuristic_us = heuristic == plan.config ? us : workload.time_us(heuristic, o.reps);
            std::printf(" %s%s | %.1f | %.2fx |", plan.origin == DecodePlan::Origin::kTuned ? "tuned " : "heuristic ",
                        plan.config.key().c_str(), heuristic_us, heuristic_us / us);
          }
          std::printf("\n");
        } catch (const std::exception& e) {
          ok = false;
          std::printf("| %d | %d | %d | error: %s |\n", batch, kv_len, qs, e.what());
        }
        std::fflush(stdout);
      }
  d.cuStreamDestroy(stream);
  return ok ? 0 : 1;
}

}  // namespace swajit::cli
