#include "sparse_workload.hpp"

#include <algorithm>
#include <cmath>
#include <random>

#include "cuda_driver.hpp"
#include "half.hpp"
#include "tensor_checks.hpp"
#include "swajit/error.hpp"
#include "utility_kernels.hpp"

namespace swajit {
namespace {
constexpr int kWarmupReplays = 3;
constexpr double kL2Multiple = 4.0;  // a replay reads at least this many L2s of distinct rows (as the peers are timed)
constexpr int kMaxReplicas = 16;
constexpr double kMaxCacheBytes = double(size_t(16) << 30);  // all replicas' caches together
constexpr uint64_t kSeed = 16;
constexpr int kMaxPhysicalTokens = 1 << 22;  // the cache every sequence's pages are scattered over
constexpr int kBytes16 = 2;

DLTensor view(const DeviceBuffer& buffer, std::vector<int64_t>& shape, DLDataType dtype, int device) {
  return dl_tensor(buffer.data(), dtype, {kDLCUDA, device}, shape);
}
}  // namespace

double SparseShape::selected_bytes() const {
  const double rows = double(batch) * (topk + local_window);
  return rows * num_kv_heads * (head_dim + (shared_kv ? 0 : head_dim_v)) * kBytes16 +
         double(batch) * num_q_heads * (head_dim + head_dim_v) * kBytes16;
}

double SparseShape::flops() const { return 2.0 * batch * (topk + local_window) * num_q_heads * (head_dim + head_dim_v); }

std::vector<SparseShape> sparse_preset(const std::string& name, int batch) {
  const auto make = [&](int hq, int hkv, int d, int dv, bool shared, int topk, int kv_len, int window, bool sinks) {
    SparseShape s;
    s.name = name;
    s.batch = batch;
    s.num_q_heads = hq;
    s.num_kv_heads = hkv;
    s.group = hq / hkv;
    s.head_dim = d;
    s.head_dim_v = dv;
    s.shared_kv = shared;
    s.topk = topk;
    s.kv_len = kv_len;
    s.local_window = window;
    s.sink_logits = sinks;
    return s;
  };
  if (name == "a")
    return {make(64, 8, 128, 128, false, 512, 32768, 0, false), make(64, 8, 128, 128, false, 2048, 32768, 0, false),
            make(64, 8, 128, 128, false, 512, 131072, 0, false), make(64, 8, 128, 128, false, 2048, 131072, 0, false)};
  if (name == "b")
    return {make(128, 1, 576, 512, true, 2048, 131072, 0, false), make(128, 1, 576, 512, true, 2048, 131072, 128, true)};
  throw Error(ErrorCode::kInvalidArgument, "sparse shape preset '" + name + "' is unknown; accepted: a, b");
}

SparseWorkload::SparseWorkload(const SparseShape& s, int device, CUstream stream) : shape_(s), device_(device), stream_(stream) {
  const DeviceInfo& info = cuda_device(device);
  const int P = s.page_size, pages_per_seq = (s.kv_len + P - 1) / P;
  const int num_pages = std::max(1, std::min(s.batch * pages_per_seq, kMaxPhysicalTokens / P));  // one replica's
  const double replica_cache_bytes = double(num_pages) * P * s.num_kv_heads * (s.head_dim + (s.shared_kv ? 0 : s.head_dim)) * kBytes16;
  replicas_ = std::clamp(int(std::ceil(kL2Multiple * info.l2_bytes / s.selected_bytes())), 1, kMaxReplicas);
  replicas_ = std::max(1, std::min(replicas_, int(kMaxCacheBytes / replica_cache_bytes)));
  q_shape_ = {s.batch, 1, s.num_q_heads, s.head_dim};
  out_shape_ = {s.batch, 1, s.num_q_heads, s.head_dim_v};
  cache_shape_ = {int64_t(replicas_) * num_pages, P, s.num_kv_heads, s.head_dim};
  table_shape_ = {s.batch, pages_per_seq};
  lens_shape_ = {s.batch};
  idx_shape_ = {s.batch, 1, s.topk};
  sink_shape_ = {s.num_q_heads};
  const size_t cache_elements = size_t(replicas_) * num_pages * P * s.num_kv_heads * s.head_dim;
  const size_t q_elements = size_t(s.batch) * s.num_q_heads * s.head_dim;
  q_ = DeviceBuffer(q_elements * kBytes16);
  out_ = DeviceBuffer(size_t(s.batch) * s.num_q_heads * s.head_dim_v * kBytes16);
  k_ = DeviceBuffer(cache_elements * kBytes16);
  v_ = DeviceBuffer(s.shared_kv ? 0 : cache_elements * kBytes16 + s.diagnostics.v_gap_bytes);
  fill_uniform(info, q_.ptr(), q_elements, 1, s.dtype, stream);
  fill_uniform(info, k_.ptr(), cache_elements, 2, s.dtype, stream);
  if (!s.shared_kv) fill_uniform(info, v_.ptr() + s.diagnostics.v_gap_bytes, cache_elements, 3, s.dtype, stream);
  std::mt19937_64 rng(kSeed);
  const int span = s.diagnostics.index_span > 0 ? std::min(s.diagnostics.index_span, s.kv_len) : s.kv_len;
  std::uniform_int_distribution<int> page(0, num_pages - 1), position(0, span - 1);
  table_elements_ = int64_t(s.batch) * pages_per_seq;
  std::vector<int> table(size_t(replicas_) * table_elements_), indices(size_t(s.batch) * s.topk);
  for (int64_t i = 0; i < table_elements_; ++i) {
    const int random_page = page(rng);  // (drawn either way: the selections stay the same)
    table[i] = s.diagnostics.contiguous_pages ? int(i % num_pages) : random_page;
  }
  for (int r = 1; r < replicas_; ++r)  // the same pages of replica r's own cache
    for (int64_t i = 0; i < table_elements_; ++i) table[r * table_elements_ + i] = table[i] + r * num_pages;
  for (int& x : indices) x = s.diagnostics.empty_selection ? -1 : position(rng);
  std::normal_distribution<float> sink(0.f, 1.f);
  std::vector<float> sinks(s.num_q_heads);
  for (float& x : sinks) x = sink(rng);
  block_table_ = DeviceBuffer(table);
  seq_lens_ = DeviceBuffer(std::vector<int>(s.batch, s.kv_len));
  indices_ = DeviceBuffer(indices);
  sinks_ = DeviceBuffer(sinks);
}

SparseWorkload::Call SparseWorkload::call(const std::optional<SparseDecodeConfig>& config, TuningPolicy policy, int replica) const {
  const DLDataType elem{shape_.dtype == DType::kBF16 ? uint8_t(kDLBfloat) : uint8_t(kDLFloat), 16, 1};
  const DLDataType i32{kDLInt, 32, 1}, f32{kDLFloat, 32, 1};
  Call c;
  c.q = view(q_, q_shape_, elem, device_);
  c.out = view(out_, out_shape_, elem, device_);
  c.k = view(k_, cache_shape_, elem, device_);
  c.v = dl_tensor(static_cast<char*>(v_.data()) + shape_.diagnostics.v_gap_bytes, elem, {kDLCUDA, device_}, cache_shape_);
  c.block_table = dl_tensor(static_cast<int*>(block_table_.data()) + replica * table_elements_, i32, {kDLCUDA, device_}, table_shape_);
  c.seq_lens = view(seq_lens_, lens_shape_, i32, device_);
  c.indices = view(indices_, idx_shape_, i32, device_);
  c.sinks = view(sinks_, sink_shape_, f32, device_);
  c.options.local_window = shape_.local_window;
  c.options.config = config;
  c.options.tuning = policy;
  // MLA: DeepSeek's (nope 128 + rope 64) scale; else 1 / sqrt(head_dim)
  c.options.softmax_scale = shape_.shared_kv ? 1.f / std::sqrt(192.f) : 1.f / std::sqrt(float(shape_.head_dim));
  return c;
}

SparseDecodeProblem SparseWorkload::problem() const {
  const Call c = call(std::nullopt, TuningPolicy::kDefault);
  SparseDecodeOptions options = c.options;
  options.sink_logits = shape_.sink_logits ? &c.sinks : nullptr;
  return describe_sparse_decode(c.q, c.k, shape_.shared_kv ? nullptr : &c.v, c.block_table, c.seq_lens, c.indices, c.out, options);
}

void SparseWorkload::run_replica(int replica, const std::optional<SparseDecodeConfig>& config, TuningPolicy policy) {
  Call c = call(config, policy, replica);
  c.options.sink_logits = shape_.sink_logits ? &c.sinks : nullptr;
  sparse_decode(c.q, c.k, shape_.shared_kv ? nullptr : &c.v, c.block_table, c.seq_lens, c.indices, c.out, stream_, c.options);
}

void SparseWorkload::run(const std::optional<SparseDecodeConfig>& config, TuningPolicy policy) { run_replica(0, config, policy); }

double SparseWorkload::time_us(const std::optional<SparseDecodeConfig>& config, int reps, TuningPolicy policy) {
  const cuda::Driver& d = cuda::driver();
  run(config, policy);  // compiled and its scratch allocated before the capture
  check_device_errors(device_, stream_);
  if (shape_.diagnostics.eager_timing) {
    const auto calls = [&] {
      for (int r = 0; r < replicas_; ++r) run_replica(r, config, policy);
    };
    return median_ms(calls, kWarmupReplays, reps, stream_, cuda_device(device_)) * 1e3 / replicas_;
  }
  CUgraph graph;
  CUgraphExec exec;
  cuda::check(d.cuStreamBeginCapture(stream_, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL), "cuStreamBeginCapture");
  try {
    for (int r = 0; r < replicas_; ++r) run_replica(r, config, policy);
  } catch (...) {
    d.cuStreamEndCapture(stream_, &graph);
    throw;
  }
  cuda::check(d.cuStreamEndCapture(stream_, &graph), "cuStreamEndCapture");
  cuda::check(d.cuGraphInstantiateWithFlags(&exec, graph, 0), "cuGraphInstantiate");
  const double ms = median_ms([&] { cuda::check(d.cuGraphLaunch(exec, stream_), "cuGraphLaunch"); }, kWarmupReplays, reps,
                              stream_, cuda_device(device_));
  d.cuGraphExecDestroy(exec);
  d.cuGraphDestroy(graph);
  return ms * 1e3 / replicas_;
}

std::vector<uint16_t> SparseWorkload::download_out() const {
  cuda::check(cuda::driver().cuStreamSynchronize(stream_), "cuStreamSynchronize");
  return out_.download<uint16_t>();
}

double SparseWorkload::relative_error() {
  const std::vector<uint16_t> got = download_out();
  if (expected_.empty()) {
    SparseDecodeConfig cuda_cores = sparse_decode_heuristic(problem().spec, cuda_device(device_).max_shared_per_block_optin, false);
    cuda_cores.num_splits = sparse_decode_splits(problem(), cuda_cores, cuda_device(device_));
    run(cuda_cores);
    expected_ = download_out();
  }
  double diff = 0, norm = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double e = half::to_float(expected_[i], shape_.dtype), g = half::to_float(got[i], shape_.dtype);
    diff += (g - e) * (g - e);
    norm += e * e;
  }
  return norm > 0 ? std::sqrt(diff / norm) : std::sqrt(diff);
}

}  // namespace swajit
