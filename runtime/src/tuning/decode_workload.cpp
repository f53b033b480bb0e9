#include "decode_workload.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>

#include "cuda_driver.hpp"
#include "half.hpp"
#include "reference.hpp"
#include "tensor_checks.hpp"
#include "utility_kernels.hpp"

namespace swajit {
namespace {

constexpr double kL2Multiple = 4.0;  // rotate through at least this many L2s of distinct KV between repeats
constexpr int kMaxReplicas = 64;
constexpr int kElementBytes = 2;     // q, out and 16-bit K/V
constexpr int kWarmupReplays = 5;

DLTensor view(void* data, DLDataType dtype, DLDevice device, std::vector<int64_t>& shape) {
  return dl_tensor(data, dtype, device, shape);
}
DLDataType dl_dtype(DType t) { return t == DType::kBF16 ? DLDataType{kDLBfloat, 16, 1} : DLDataType{kDLFloat, 16, 1}; }
DLDataType dl_kv_dtype(const DecodeShape& s) {
  if (s.kv_quant == KvQuant::kInt8) return {kDLInt, 8, 1};
  if (s.kv_quant == KvQuant::kFp8E4M3) return {kDLUInt, 8, 1};
  return dl_dtype(s.dtype);
}
int kv_element_bytes(const DecodeShape& s) { return s.kv_quant == KvQuant::kNone ? kElementBytes : 1; }

// The cache a call's KV must not be found in: L2 of the GPU, the last-level cache of the CPU (both read from the
// system, never assumed).
double cache_bytes_to_defeat(DLDevice where) {
  if (where.device_type != kDLCPU) return cuda_device(where.device_id).l2_bytes;
  long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE), l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
  return double(std::max({l3, l2, 0L}));
}

// Host fills for the CPU backend: uniform(-1, 1) 16-bit values, or random bytes (valid e4m3 codes if asked).
void fill_host(WorkloadBuffer& buffer, uint64_t seed, DType dtype) {
  std::vector<uint16_t> values(buffer.bytes() / 2);
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> uniform(-1.f, 1.f);
  for (auto& v : values) v = half::from_float(uniform(rng), dtype);
  buffer.write(values.data(), values.size() * 2);
}
void fill_host_bytes(WorkloadBuffer& buffer, uint64_t seed, bool avoid_fp8_nan) {
  constexpr uint8_t kFp8NanBits = 0x7f;
  std::vector<uint8_t> bytes(buffer.bytes());
  std::mt19937_64 rng(seed);
  for (auto& b : bytes) {
    b = uint8_t(rng() >> 56);
    if (avoid_fp8_nan && (b & 0x7f) == kFp8NanBits) b ^= 1;
  }
  buffer.write(bytes.data(), bytes.size());
}

}  // namespace

WorkloadBuffer::WorkloadBuffer(size_t bytes, bool host) : bytes_(bytes) {
  if (host) host_ = std::make_unique<char[]>(bytes);
  else device_ = DeviceBuffer(bytes);
}
void WorkloadBuffer::write(const void* src, size_t bytes) {
  if (host_) std::memcpy(host_.get(), src, bytes);
  else device_.write(src, bytes);
}
void WorkloadBuffer::read(size_t offset, void* dst, size_t bytes) const {
  if (host_) std::memcpy(dst, host_.get() + offset, bytes);
  else cuda::check(cuda::driver().cuMemcpyDtoH(dst, device_.ptr() + offset, bytes), "cuMemcpyDtoH");
}

DecodeWorkload::DecodeWorkload(const DecodeShape& s, DLDevice where, CUstream stream)
    : shape_(s), where_(where), stream_(stream) {
  const bool host = where.device_type == kDLCPU;
  const int P = s.page_size, D = s.head_dim;
  // KV positions any query of a sequence can see: the window (plus the extra queries) and the sinks; the floor counts
  // what each sequence really reads.
  int64_t visible_tokens = 0, pages = 0;
  max_pages_ = 1;
  logical_pages_.resize(s.batch);
  for (int b = 0; b < s.batch; ++b) {
    const int len = s.seq_len(b);
    const int first_visible = s.first_visible(b);
    const DecodeShape::TouchedPages touched = s.touched_pages(b);
    for (int page = 0; page < touched.sink_end; ++page) logical_pages_[b].push_back(page);
    for (int page = touched.window_begin; page < touched.end; ++page) logical_pages_[b].push_back(page);
    visible_tokens += len - first_visible + std::min(s.global_window, first_visible);
    pages += int64_t(logical_pages_[b].size());
    max_pages_ = std::max(max_pages_, (len + P - 1) / P);
  }
  kv_bytes_ = double(s.num_kv_heads) * visible_tokens * D * kv_element_bytes(s) * 2;
  qo_bytes_ = 2.0 * s.batch * s.q_seqlen * s.num_q_heads * D * kElementBytes;
  replicas_ = std::clamp(int(std::ceil(kL2Multiple * cache_bytes_to_defeat(where) / std::max(kv_bytes_, 1.0))), 1, kMaxReplicas);

  num_pages_ = int64_t(replicas_) * pages + 1;
  std::vector<int> physical(num_pages_ - 1);
  std::iota(physical.begin(), physical.end(), 1);
  std::mt19937_64 rng(uint64_t(s.kv_len) * 131 + s.batch * 7 + s.q_seqlen);
  std::shuffle(physical.begin(), physical.end(), rng);  // scattered pages, as in a real cache
  tables_.assign(size_t(replicas_) * s.batch * max_pages_, 0);  // pages outside the window: page 0, never read
  size_t next = 0;
  for (int r = 0; r < replicas_; ++r)
    for (int b = 0; b < s.batch; ++b)
      for (int page : logical_pages_[b]) tables_[(size_t(r) * s.batch + b) * max_pages_ + page] = physical[next++];

  const size_t page_elems = size_t(P) * s.num_kv_heads * D;
  const size_t qo_elems = size_t(s.batch) * s.q_seqlen * s.num_q_heads * D;
  const size_t cache_bytes = num_pages_ * page_elems * kv_element_bytes(s);
  k_ = WorkloadBuffer(cache_bytes, host);
  v_ = WorkloadBuffer(cache_bytes, host);
  q_ = WorkloadBuffer(replicas_ * qo_elems * kElementBytes, host);
  out_ = WorkloadBuffer(replicas_ * qo_elems * kElementBytes, host);
  tables_d_ = WorkloadBuffer(tables_, host);
  std::vector<int> lens(s.batch);
  for (int b = 0; b < s.batch; ++b) lens[b] = s.seq_len(b);
  lens_d_ = WorkloadBuffer(lens, host);
  lens_ = lens;
  // Per-channel dequant scales that differ across channels and heads (8-bit caches only).
  scales_ = half::varied_kv_scales(s.kv_quant, size_t(s.num_kv_heads) * D);
  scales_d_ = WorkloadBuffer(scales_, host);
  sinks_.resize(s.num_q_heads);
  std::uniform_real_distribution<float> sink(-1.f, 3.f);  // comparable to the scores, so they matter
  for (float& x : sinks_) x = sink(rng);
  sinks_d_ = WorkloadBuffer(sinks_, host);
  sinks_shape_ = {s.num_q_heads};
  const bool fp8 = s.kv_quant == KvQuant::kFp8E4M3;
  constexpr uint64_t kKSeed = 11, kVSeed = 12, kQSeed = 13;
  if (host) {
    if (s.kv_quant == KvQuant::kNone) {
      fill_host(k_, kKSeed, s.dtype);
      fill_host(v_, kVSeed, s.dtype);
    } else {
      fill_host_bytes(k_, kKSeed, fp8);
      fill_host_bytes(v_, kVSeed, fp8);
    }
    fill_host(q_, kQSeed, s.dtype);
  } else {
    const DeviceInfo& device = cuda_device(where.device_id);
    const auto ptr = [](const WorkloadBuffer& b) { return reinterpret_cast<CUdeviceptr>(b.data()); };
    if (s.kv_quant == KvQuant::kNone) {
      fill_uniform(device, ptr(k_), num_pages_ * page_elems, kKSeed, s.dtype, stream);
      fill_uniform(device, ptr(v_), num_pages_ * page_elems, kVSeed, s.dtype, stream);
    } else {
      fill_random_bytes(device, ptr(k_), num_pages_ * page_elems, kKSeed, fp8, stream);
      fill_random_bytes(device, ptr(v_), num_pages_ * page_elems, kVSeed, fp8, stream);
    }
    fill_uniform(device, ptr(q_), replicas_ * qo_elems, kQSeed, s.dtype, stream);
  }
  poison_output();

  q_shape_ = {s.batch, s.q_seqlen, s.num_q_heads, D};
  cache_shape_ = {num_pages_, P, s.num_kv_heads, D};
  table_shape_ = {s.batch, max_pages_};
  lens_shape_ = {s.batch};
  scale_shape_ = {s.num_kv_heads, D};
}

void DecodeWorkload::poison_output() {
  if (where_.device_type == kDLCPU)
    std::memset(out_.data(), 0xff, out_.bytes());
  else
    cuda::check(cuda::driver().cuMemsetD8Async(reinterpret_cast<CUdeviceptr>(out_.data()), 0xff, out_.bytes(), stream_),
                "cuMemsetD8Async(poison out)");
}

int DecodeShape::first_visible(int b) const {
  return local_window > 0 ? std::max(0, seq_len(b) - q_seqlen - local_window + 1) : 0;
}

DecodeShape::TouchedPages DecodeShape::touched_pages(int b) const {
  TouchedPages t;
  t.end = int((int64_t(seq_len(b)) + page_size - 1) / page_size);
  t.window_begin = first_visible(b) / page_size;  // the page holding the first visible position
  t.sink_end = int(std::min<int64_t>((int64_t(global_window) + page_size - 1) / page_size, t.window_begin));
  return t;
}

KernelSpec DecodeShape::spec() const {
  AttentionCall call = *this;
  call.group = num_kv_heads > 0 ? num_q_heads / num_kv_heads : 0;  // 0: rejected by the builder
  return paged_decode_kernel_spec(call);
}

DecodeOptions DecodeWorkload::options(const std::optional<DecodeConfig>& config) const {
  DecodeOptions o;
  o.local_window = shape_.local_window;
  o.global_window = shape_.global_window;
  o.config = config;
  o.kv_quant = shape_.kv_quant;
  if (shape_.host_lengths) o.host_seq_lens = lens_.data();
  return o;
}

template <class F>
void DecodeWorkload::with_tensors(int r, DecodeOptions o, F&& f) const {
  const DecodeShape& s = shape_;
  const size_t qo_bytes = size_t(s.batch) * s.q_seqlen * s.num_q_heads * s.head_dim * kElementBytes;
  char* q_r = static_cast<char*>(q_.data()) + r * qo_bytes;
  char* out_r = static_cast<char*>(out_.data()) + r * qo_bytes;
  int* table_r = static_cast<int*>(tables_d_.data()) + size_t(r) * s.batch * max_pages_;
  auto& shapes = const_cast<DecodeWorkload&>(*this);  // DLTensor takes non-const shape pointers; nothing writes them
  DLTensor scale = view(scales_d_.data(), {kDLFloat, 32, 1}, where_, shapes.scale_shape_);
  if (s.kv_quant != KvQuant::kNone) o.k_scale = o.v_scale = &scale;
  DLTensor sinks = view(sinks_d_.data(), {kDLFloat, 32, 1}, where_, shapes.sinks_shape_);
  if (s.sink_logits) o.sink_logits = &sinks;
  const DLDataType dt = dl_dtype(s.dtype), kv = dl_kv_dtype(s), i32{kDLInt, 32, 1};
  const DLDevice dev = where_;
  f(view(q_r, dt, dev, shapes.q_shape_), view(k_.data(), kv, dev, shapes.cache_shape_),
    view(v_.data(), kv, dev, shapes.cache_shape_), view(table_r, i32, dev, shapes.table_shape_),
    view(lens_d_.data(), i32, dev, shapes.lens_shape_), view(out_r, dt, dev, shapes.q_shape_), o);
}

void DecodeWorkload::run(int r, const std::optional<DecodeConfig>& config, TuningPolicy policy,
                         const std::optional<CpuDecodeConfig>& cpu_config) {
  DecodeOptions o = options(config);
  o.tuning = policy;
  o.cpu_config = cpu_config;
  with_tensors(r, o, [&](const DLTensor& q, const DLTensor& k, const DLTensor& v, const DLTensor& table,
                         const DLTensor& lens, const DLTensor& out, const DecodeOptions& opts) {
    paged_decode(q, k, v, table, lens, out, stream_, opts);
  });
}

DecodeProblem DecodeWorkload::problem(int r) const {
  DecodeProblem p;
  with_tensors(r, options(std::nullopt), [&](const DLTensor& q, const DLTensor& k, const DLTensor& v, const DLTensor& table,
                                             const DLTensor& lens, const DLTensor& out, const DecodeOptions& opts) {
    p = describe_paged_decode(q, k, v, table, lens, out, opts);
  });
  return p;
}

double DecodeWorkload::time_us(const std::optional<DecodeConfig>& config, int reps) {
  const cuda::Driver& d = cuda::driver();
  for (int r = 0; r < replicas_; ++r) run(r, config);  // compile, allocate scratch, write every output once
  check_device_errors(where_.device_id, stream_);
  CUgraph graph;
  CUgraphExec exec;
  cuda::check(d.cuStreamBeginCapture(stream_, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL), "cuStreamBeginCapture");
  try {
    for (int r = 0; r < replicas_; ++r) run(r, config);
  } catch (...) {
    d.cuStreamEndCapture(stream_, &graph);
    throw;
  }
  cuda::check(d.cuStreamEndCapture(stream_, &graph), "cuStreamEndCapture");
  cuda::check(d.cuGraphInstantiateWithFlags(&exec, graph, 0), "cuGraphInstantiate");
  const double ms = median_ms([&] { cuda::check(d.cuGraphLaunch(exec, stream_), "cuGraphLaunch"); }, kWarmupReplays,
                              reps, stream_, cuda_device(where_.device_id));
  d.cuGraphExecDestroy(exec);
  d.cuGraphDestroy(graph);
  return ms * 1e3 / replicas_;
}

double DecodeWorkload::host_us_per_call(const std::optional<DecodeConfig>& config, int calls) {
  return swajit::host_us_per_call([&] { run(0, config); }, calls, stream_);
}

double DecodeWorkload::time_cpu_us(const std::optional<CpuDecodeConfig>& config, int reps) {
  for (int r = 0; r < replicas_; ++r) run(r, std::nullopt, TuningPolicy::kDefault, config);  // compile, warm up
  std::vector<double> times(reps);
  for (auto& t : times) {
    const auto start = std::chrono::steady_clock::now();
    for (int r = 0; r < replicas_; ++r) run(r, std::nullopt, TuningPolicy::kDefault, config);
    t = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start).count() / replicas_;
  }
  std::nth_element(times.begin(), times.begin() + reps / 2, times.end());
  return times[reps / 2];
}

double DecodeWorkload::relative_error(int b) const {
  if (where_.device_type != kDLCPU) cuda::check(cuda::driver().cuStreamSynchronize(stream_), "cuStreamSynchronize");
  const DecodeShape& s = shape_;
  const int P = s.page_size, D = s.head_dim, bytes = kv_element_bytes(s);
  HostPagedDecode h;
  h.batch = 1; h.q_seqlen = s.q_seqlen; h.num_q_heads = s.num_q_heads; h.num_kv_heads = s.num_kv_heads;
  h.head_dim = D; h.page_size = P; h.layout = KvLayout::kNHD;
  h.local_window = s.local_window; h.global_window = s.global_window;
  h.scale = 1.0 / std::sqrt(double(D));
  h.seq_lens = {s.seq_len(b)};
  h.max_pages_per_seq = max_pages_;
  if (s.sink_logits) h.sink_logits = sinks_;
  const std::vector<int>& logical_pages = logical_pages_[b];
  h.num_pages = std::max<int>(1, int(logical_pages.size()));
  h.block_table.assign(max_pages_, 0);
  const size_t page_elems = size_t(P) * s.num_kv_heads * D;
  h.k.resize(h.num_pages * page_elems);
  h.v.resize(h.num_pages * page_elems);
  std::vector<uint8_t> page(page_elems * bytes);
  // What element e of a stored NHD page stands for; e = (slot * kv_heads + head) * D + d.
  const auto value = [&](size_t e) -> float {
    if (s.kv_quant == KvQuant::kNone) {
      uint16_t bits;
      std::memcpy(&bits, &page[e * 2], 2);
      return half::to_float(bits, s.dtype);
    }
    const float scale = scales_[e % scales_.size()];
    return scale * half::kv_code_value(page[e], s.kv_quant);
  };
  for (size_t i = 0; i < logical_pages.size(); ++i) {
    const int physical = tables_[size_t(b) * max_pages_ + logical_pages[i]];
    h.block_table[logical_pages[i]] = int(i);
    for (auto [src, dst] : {std::pair{&k_, &h.k}, std::pair{&v_, &h.v}}) {
      src->read(size_t(physical) * page.size(), page.data(), page.size());
      for (size_t e = 0; e < page_elems; ++e) (*dst)[i * page_elems + e] = value(e);
    }
  }
  const size_t seq_elems = size_t(s.q_seqlen) * s.num_q_heads * D;
  std::vector<uint16_t> q(seq_elems), out(seq_elems);
  q_.read(b * seq_elems * kElementBytes, q.data(), seq_elems * kElementBytes);
  out_.read(b * seq_elems * kElementBytes, out.data(), seq_elems * kElementBytes);
  h.q.resize(seq_elems);
  for (size_t e = 0; e < seq_elems; ++e) h.q[e] = half::to_float(q[e], s.dtype);
  const std::vector<double> ref = reference_paged_decode(h);
  double err2 = 0, ref2 = 0;
  for (size_t e = 0; e < seq_elems; ++e) {
    const double got = half::to_float(out[e], s.dtype);
    err2 += (got - ref[e]) * (got - ref[e]);
    ref2 += ref[e] * ref[e];
  }
  if (!std::isfinite(err2)) return INFINITY;
  return ref2 > 0 ? std::sqrt(err2 / ref2) : std::sqrt(err2);  // an empty sequence's reference is all zeros
}

}  // namespace swajit
