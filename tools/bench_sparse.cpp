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
#include "utility_kernels.hpp"
#include "swajit/swajit.hpp"

namespace swajit::cli {
namespace {

constexpr size_t kBandwidthProbeBytes = size_t(2) << 30;  // far beyond any L2 (as bench decode probes)
constexpr int kBandwidthReps = 20;
constexpr int kMaxPhysicalTokens = 1 << 22;  // the cache every sequence's pages are scattered over

// One bench shape of the issue: (a) separate K/V GQA, (b) MLA's shared latent row.
struct SparseBenchShape {
  const char* name;
  int num_q_heads, num_kv_heads, head_dim, head_dim_v;
  bool shared_kv;
  int topk, kv_len, local_window;
  bool sinks;
};

struct SparseBenchOptions {
  std::vector<std::string> shapes = {"a", "b"};
  std::vector<int> batches = {1, 8, 32, 128};
  int page_size = 64, reps = 50, device = 0;
  double matmul_tflops = 0;
  ConfigFlags config;       // forced knobs on top of each shape's heuristic config (--splits 0: the heuristic's splits)
  bool cuda_cores = false;  // the heuristic's config on the CUDA-core kernel instead of tensor cores
};

std::vector<SparseBenchShape> shapes_of(const std::string& name) {
  if (name == "a")
    return {{"a", 64, 8, 128, 128, false, 512, 32768, 0, false}, {"a", 64, 8, 128, 128, false, 2048, 32768, 0, false},
            {"a", 64, 8, 128, 128, false, 512, 131072, 0, false}, {"a", 64, 8, 128, 128, false, 2048, 131072, 0, false}};
  if (name == "b")
    return {{"b", 128, 1, 576, 512, true, 2048, 131072, 0, false}, {"b", 128, 1, 576, 512, true, 2048, 131072, 128, true}};
  throw Error(ErrorCode::kInvalidArgument, "bench sparse --shape '" + name + "' is unknown; accepted: a, b");
}

DLTensor view(const DeviceBuffer& buffer, std::vector<int64_t>& shape, DLDataType dtype, int device) {
  DLTensor t{};
  t.data = buffer.data();
  t.device = {kDLCUDA, device};
  t.ndim = int(shape.size());
  t.dtype = dtype;
  t.shape = shape.data();
  return t;
}

int run_sparse_bench(const SparseBenchOptions& o) {
  cuda::ScopedDeviceContext scope(o.device);
  const DeviceInfo& device = cuda_device(o.device);
  const cuda::OwnedStream stream = cuda::create_stream();
  const double read_bw = measure_read_bandwidth(device, kBandwidthProbeBytes, kBandwidthReps, stream.get());
  std::printf("device: %s (%s), %d SMs; measured read %.0f GB/s; matmul %.0f TFLOP/s (--matmul-tflops)\n",
              device.name.c_str(), device.arch().c_str(), device.sm_count, read_bw / 1e9, o.matmul_tflops);
  std::printf("floor = max(selected K/V bytes / read bandwidth, FLOPs / matmul rate); page %d, bf16, q_seqlen 1; "
              "L2 evicted before each of %d reps (median); correctness: swajit check\n\n", o.page_size, o.reps);
  std::printf("| shape | batch | kv_len | topk | window | sinks | us | floor us | %% of floor | config |\n"
              "|---|---:|---:|---:|---:|---|---:|---:|---:|---|\n");
  std::mt19937_64 rng(16);
  const DLDataType bf16{kDLBfloat, 16, 1}, i32{kDLInt, 32, 1}, f32{kDLFloat, 32, 1};
  for (const std::string& shape_name : o.shapes)
    for (const SparseBenchShape& s : shapes_of(shape_name))
      for (int batch : o.batches) {
        const int P = o.page_size, pages_per_seq = (s.kv_len + P - 1) / P;
        const int num_pages = std::max(1, std::min(batch * pages_per_seq, kMaxPhysicalTokens / P));
        std::vector<int64_t> q_shape{batch, 1, s.num_q_heads, s.head_dim}, out_shape{batch, 1, s.num_q_heads, s.head_dim_v},
            cache_shape{num_pages, P, s.num_kv_heads, s.head_dim}, bt_shape{batch, pages_per_seq}, sl_shape{batch},
            idx_shape{batch, 1, s.topk}, sink_shape{s.num_q_heads};
        const size_t cache_elements = size_t(num_pages) * P * s.num_kv_heads * s.head_dim;
        DeviceBuffer q(size_t(batch) * s.num_q_heads * s.head_dim * 2), out(size_t(batch) * s.num_q_heads * s.head_dim_v * 2);
        DeviceBuffer k(cache_elements * 2), v(s.shared_kv ? 0 : cache_elements * 2);
        fill_uniform(device, q.ptr(), size_t(batch) * s.num_q_heads * s.head_dim, 1, DType::kBF16, stream.get());
        fill_uniform(device, k.ptr(), cache_elements, 2, DType::kBF16, stream.get());
        if (!s.shared_kv) fill_uniform(device, v.ptr(), cache_elements, 3, DType::kBF16, stream.get());
        std::uniform_int_distribution<int> page(0, num_pages - 1), position(0, s.kv_len - 1);
        std::vector<int> table(size_t(batch) * pages_per_seq), indices(size_t(batch) * s.topk);
        for (int& x : table) x = page(rng);
        for (int& x : indices) x = position(rng);
        const DeviceBuffer table_d(table), lens_d(std::vector<int>(batch, s.kv_len)), indices_d(indices);
        std::normal_distribution<float> sink(0.f, 1.f);
        std::vector<float> sinks(s.num_q_heads);
        for (float& x : sinks) x = sink(rng);
        const DeviceBuffer sinks_d(sinks);
        const DLTensor q_t = view(q, q_shape, bf16, o.device), out_t = view(out, out_shape, bf16, o.device);
        const DLTensor k_t = view(k, cache_shape, bf16, o.device), v_t = view(v, cache_shape, bf16, o.device);
        const DLTensor bt_t = view(table_d, bt_shape, i32, o.device), sl_t = view(lens_d, sl_shape, i32, o.device);
        const DLTensor idx_t = view(indices_d, idx_shape, i32, o.device), sink_t = view(sinks_d, sink_shape, f32, o.device);
        SparseDecodeOptions options;
        options.local_window = s.local_window;
        options.sink_logits = s.sinks ? &sink_t : nullptr;
        const bool forced = o.cuda_cores || o.config.any();
        if (forced) {  // the heuristic's config with the forced knobs (CUDA cores: mma off), its splits unless forced
          const SparseDecodeProblem problem = describe_sparse_decode(q_t, k_t, s.shared_kv ? nullptr : &v_t, bt_t, sl_t, idx_t, out_t, options);
          SparseDecodeConfig c = o.config.apply(sparse_decode_heuristic(problem.spec, device.max_shared_per_block_optin, !o.cuda_cores));
          if (!o.config.num_splits || *o.config.num_splits == 0) c.num_splits = sparse_decode_splits(problem, c, device);
          if (!c.mma) c.token_split = false;
          options.config = c;
        }
        options.softmax_scale = s.shared_kv ? 1.f / std::sqrt(192.f) : 1.f / std::sqrt(float(s.head_dim));  // DeepSeek: nope + rope
        const auto launch = [&] {
          sparse_decode(q_t, k_t, s.shared_kv ? nullptr : &v_t, bt_t, sl_t, idx_t, out_t, stream.get(), options);
        };
        launch();
        check_device_errors(o.device, stream.get());
        const double us = 1e3 * median_ms(launch, 3, o.reps, stream.get(), device);
        const double rows = double(batch) * (s.topk + s.local_window);
        const double bytes = rows * s.num_kv_heads * (s.head_dim + (s.shared_kv ? 0 : s.head_dim_v)) * 2 +
                             double(batch) * s.num_q_heads * (s.head_dim + s.head_dim_v) * 2;
        const double flops = 2 * rows * s.num_q_heads * (s.head_dim + s.head_dim_v);
        const double floor_us = 1e6 * std::max(bytes / read_bw, o.matmul_tflops > 0 ? flops / (o.matmul_tflops * 1e12) : 0.0);
        const SparseDecodeProblem problem = describe_sparse_decode(q_t, k_t, s.shared_kv ? nullptr : &v_t, bt_t, sl_t, idx_t, out_t, options);
        SparseDecodeConfig config = options.config ? *options.config : sparse_decode_heuristic(problem.spec, device.max_shared_per_block_optin);
        if (!options.config) config.num_splits = sparse_decode_splits(problem, config, device);
        std::printf("| %s | %d | %d | %d | %d | %s | %.1f | %.1f | %.0f%% | %s%s |\n", s.name, batch, s.kv_len, s.topk,
                    s.local_window, s.sinks ? "yes" : "no", us, floor_us, 100 * floor_us / us, config.key().c_str(),
                    forced ? " (forced)" : "");
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
  verb->add_option("--page-size", flags->options.page_size)->check(CLI::Range(1, 256))->capture_default_str();
  verb->add_option("--reps", flags->options.reps)->check(reps_range())->capture_default_str();
  verb->add_option("--matmul-tflops", flags->options.matmul_tflops, "bf16 matmul rate measured in the same run (floor)")
      ->check(CLI::NonNegativeNumber);
  verb->add_option("--device", flags->device, "cuda | cuda:N")->capture_default_str();
  verb->add_flag("--cuda-cores", flags->options.cuda_cores, "the heuristic's tile and splits on the CUDA-core kernel (not mma)");
  flags->options.config.add_to(*verb);
  return {verb, [flags] {
            flags->options.device = cuda_ordinal(parse_device(flags->device), "bench sparse");
            return run_sparse_bench(flags->options);
          }};
}

}  // namespace swajit::cli
