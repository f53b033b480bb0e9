#include "prefill_workload.hpp"

#include <algorithm>
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
constexpr int kWarmupCalls = 3;
constexpr int kSampledRows = 8;  // query rows of sequence 0 checked against the reference
constexpr uint64_t kSeed = 7;
}  // namespace

double PrefillShape::useful_flops() const {
  std::vector<int> q(sequences()), kv(sequences());
  for (int b = 0; b < sequences(); ++b) q[b] = q_len(b), kv[b] = kv_len(b);
  return prefill_flops(q, kv, num_q_heads, head_dim, local_window, global_window, true);
}

PrefillShape PrefillGrid::shape(int kv_heads, int seq_len) const {
  PrefillShape s;
  s.batch = batch;
  s.seq_len = seq_len;
  s.num_q_heads = num_q_heads;
  s.num_kv_heads = kv_heads;
  s.head_dim = head_dim;
  s.local_window = local_window;
  s.global_window = global_window;
  s.kv_quant = kv_quant;
  s.page_size = page_size;
  s.q_lens = q_lens;
  s.prefix_len = prefix_len;
  s.shuffled_pages = shuffled_pages;
  s.per_tensor_scale = per_tensor_scale;
  return s;
}

PrefillWorkload::PrefillWorkload(const PrefillShape& shape, int device, CUstream stream)
    : shape_(shape), device_(device), stream_(stream) {
  const int batch = shape.sequences(), hq = shape.num_q_heads, hkv = shape.num_kv_heads, D = shape.head_dim;
  // Offsets of each sequence's queries and K/V rows (paged: K/V rows of whole pages, sequence after sequence).
  std::vector<int> cu_q(batch + 1, 0), cu_kv(batch + 1, 0), lens(batch), pages(batch);
  const int page = std::max(shape.page_size, 1);
  int max_pages = 1;
  for (int b = 0; b < batch; ++b) {
    lens[b] = shape.kv_len(b);
    pages[b] = (lens[b] + page - 1) / page;
    max_pages = std::max(max_pages, pages[b]);
    cu_q[b + 1] = cu_q[b] + shape.q_len(b);
    cu_kv[b + 1] = cu_kv[b] + (paged() ? pages[b] * page : lens[b]);
  }
  const int total = cu_q[batch], total_kv = std::max(cu_kv[batch], page);
  q_shape_ = {total, hq, D};
  k_shape_ = paged() ? std::vector<int64_t>{total_kv / page, page, hkv, D} : std::vector<int64_t>{total_kv, hkv, D};
  cu_shape_ = {batch + 1};
  table_shape_ = {batch, max_pages};
  lens_shape_ = {batch};
  scale_shape_ = shape.per_tensor_scale ? std::vector<int64_t>{1} : std::vector<int64_t>{hkv, D};
  std::mt19937_64 rng(kSeed);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  const auto random_bits = [&](size_t n, std::vector<uint16_t>& bits) {
    bits.resize(n);
    for (auto& b : bits) b = half::from_float(dist(rng), shape.dtype);
  };
  // K/V bytes: 16-bit values as q, or random 8-bit codes (never an e4m3 NaN) under per-channel scales.
  const auto random_kv = [&](size_t n, std::vector<uint8_t>& store) {
    if (shape.kv_quant == KvQuant::kNone) {
      std::vector<uint16_t> bits;
      random_bits(n, bits);
      store.resize(n * sizeof(uint16_t));
      std::memcpy(store.data(), bits.data(), store.size());
      return;
    }
    constexpr uint8_t kFp8NanBits = 0x7f;
    store.resize(n);
    for (auto& code : store) {
      code = uint8_t(rng() >> 56);
      if (shape.kv_quant == KvQuant::kFp8E4M3 && (code & 0x7f) == kFp8NanBits) code ^= 1;
    }
  };
  random_bits(size_t(total) * hq * D, q_bits_);
  random_kv(size_t(total_kv) * hkv * D, k_store_);
  random_kv(size_t(total_kv) * hkv * D, v_store_);
  if (shape.kv_quant != KvQuant::kNone)
    scales_ = half::varied_kv_scales(shape.kv_quant, shape.per_tensor_scale ? 1 : size_t(hkv) * D);
  // Logical page g (of the sequences' pages, in order) lives in cache page place[g]; k_store_ / v_store_ keep the
  // logical order (what the reference reads), the cache gets each page at its place.
  std::vector<int> place(total_kv / page);
  std::iota(place.begin(), place.end(), 0);
  if (shape.shuffled_pages) std::shuffle(place.begin(), place.end(), rng);
  std::vector<int> table(size_t(batch) * max_pages, 0);
  for (int b = 0; b < batch; ++b)
    for (int i = 0; i < pages[b]; ++i) table[size_t(b) * max_pages + i] = place[cu_kv[b] / page + i];
  const auto to_cache = [&](const std::vector<uint8_t>& logical) {
    if (!paged() || !shape.shuffled_pages) return logical;
    std::vector<uint8_t> cache(logical.size());
    const size_t page_bytes = logical.size() / place.size();
    for (size_t g = 0; g < place.size(); ++g)
      std::memcpy(&cache[place[g] * page_bytes], &logical[g * page_bytes], page_bytes);
    return cache;
  };
  q_ = DeviceBuffer(q_bits_);
  k_ = DeviceBuffer(to_cache(k_store_));
  v_ = DeviceBuffer(to_cache(v_store_));
  scales_d_ = DeviceBuffer(scales_);
  cu_seqlens_q_ = DeviceBuffer(cu_q);
  cu_seqlens_k_ = DeviceBuffer(cu_kv);
  block_table_ = DeviceBuffer(table);
  seq_lens_ = DeviceBuffer(lens);
  out_ = DeviceBuffer(q_bits_.size() * sizeof(uint16_t));
}

DLTensor PrefillWorkload::view(const DeviceBuffer& b, std::vector<int64_t>& shape, DLDataType dtype) const {
  DLTensor t{};
  t.data = b.data();
  t.device = {kDLCUDA, device_};
  t.ndim = int(shape.size());
  t.dtype = dtype;
  t.shape = shape.data();
  return t;
}

PrefillWorkload::Call PrefillWorkload::call(const std::optional<PrefillConfig>& config, TuningPolicy policy) const {
  const DLDataType dt = shape_.dtype == DType::kBF16 ? DLDataType{kDLBfloat, 16, 1} : DLDataType{kDLFloat, 16, 1};
  Call c;
  c.q = view(q_, q_shape_, dt);
  c.k = view(k_, k_shape_, kv_storage_dtype(shape_.kv_quant, shape_.dtype));
  c.v = view(v_, k_shape_, c.k.dtype);
  c.out = view(out_, q_shape_, dt);
  const DLDataType int32{kDLInt, 32, 1};
  c.cu_seqlens_q = view(cu_seqlens_q_, cu_shape_, int32);
  c.cu_seqlens_k = view(cu_seqlens_k_, cu_shape_, int32);
  c.block_table = view(block_table_, table_shape_, int32);
  c.seq_lens = view(seq_lens_, lens_shape_, int32);
  c.options.local_window = shape_.local_window;
  c.options.global_window = shape_.global_window;
  c.options.max_q_len = 0;
  for (int b = 0; b < shape_.sequences(); ++b) c.options.max_q_len = std::max(c.options.max_q_len, shape_.q_len(b));
  c.options.config = config;
  c.options.tuning = policy;
  c.options.kv_quant = shape_.kv_quant;
  c.scale = view(scales_d_, scale_shape_, DLDataType{kDLFloat, 32, 1});
  return c;
}

float PrefillWorkload::kv_value(const std::vector<uint8_t>& store, size_t element) const {
  if (shape_.kv_quant != KvQuant::kNone)
    return scales_[element % scales_.size()] * half::kv_code_value(store[element], shape_.kv_quant);
  uint16_t bits;
  std::memcpy(&bits, &store[element * sizeof(uint16_t)], sizeof(bits));
  return half::to_float(bits, shape_.dtype);
}

PrefillProblem PrefillWorkload::problem() const {
  Call c = call(std::nullopt, TuningPolicy::kDefault);
  if (shape_.kv_quant != KvQuant::kNone) c.options.k_scale = c.options.v_scale = &c.scale;
  if (paged()) return describe_prefill(c.q, c.k, c.v, nullptr, &c.block_table, &c.seq_lens, c.cu_seqlens_q, c.out, c.options);
  return describe_prefill(c.q, c.k, c.v, &c.cu_seqlens_k, nullptr, nullptr, c.cu_seqlens_q, c.out, c.options);
}

void PrefillWorkload::run(const std::optional<PrefillConfig>& config, TuningPolicy policy, bool poison) {
  if (poison) cuda::check(cuda::driver().cuMemsetD8Async(out_.ptr(), 0xff, out_.bytes(), stream_), "cuMemsetD8Async");
  Call c = call(config, policy);
  if (shape_.kv_quant != KvQuant::kNone) c.options.k_scale = c.options.v_scale = &c.scale;
  if (paged()) paged_prefill(c.q, c.k, c.v, c.block_table, c.seq_lens, c.cu_seqlens_q, c.out, stream_, c.options);
  else prefill(c.q, c.k, c.v, c.cu_seqlens_q, c.cu_seqlens_k, c.out, stream_, c.options);
}

double PrefillWorkload::time_ms(const std::optional<PrefillConfig>& config, int reps, TuningPolicy policy) {
  return median_ms([&] { run(config, policy); }, kWarmupCalls, reps, stream_, cuda_device(device_));
}

double PrefillWorkload::host_us_per_call(const std::optional<PrefillConfig>& config, int calls) {
  return swajit::host_us_per_call([&] { run(config, TuningPolicy::kDefault); }, calls, stream_);
}

double PrefillWorkload::sampled_relative_error() {
  // Sequence 0's rows: its queries are the first q rows and its keys the first K/V rows (both layouts).
  const int hq = shape_.num_q_heads, hkv = shape_.num_kv_heads, D = shape_.head_dim, seq = shape_.q_len(0);
  const int first_position = shape_.kv_len(0) - seq;  // of query row 0 (chunked prefill: after the prefix)
  if (seq == 0) return 0;
  const int heads[] = {0, hq - 1};
  if (sampled_rows_.empty()) {  // the reference does not depend on the config: computed once
    std::mt19937_64 rng(kSeed + 1);
    for (int s = 0; s < kSampledRows; ++s) sampled_rows_.push_back(s == 0 ? 0 : s == 1 ? seq - 1 : int(rng() % seq));
    for (int row : sampled_rows_) {
      // The row as the last query of the keys it can reach (shifted to start at 0 when only a window matters).
      const bool window_only = shape_.global_window == 0 && shape_.local_window > 0;
      const int position = first_position + row;
      const int first_key = window_only ? std::max(0, position - shape_.local_window + 1) : 0;
      const int kv_len = position - first_key + 1;
      HostPrefill host;
      host.num_q_heads = hq;
      host.num_kv_heads = hkv;
      host.head_dim = D;
      host.local_window = shape_.local_window;
      host.global_window = shape_.global_window;
      host.scale = 1.0 / std::sqrt(double(D));
      host.cu_seqlens_q = {0, 1};
      host.cu_seqlens_k = {0, kv_len};
      host.q.resize(size_t(hq) * D);
      for (size_t i = 0; i < host.q.size(); ++i) host.q[i] = half::to_float(q_bits_[size_t(row) * hq * D + i], shape_.dtype);
      host.k.resize(size_t(kv_len) * hkv * D);
      host.v.resize(host.k.size());
      for (size_t i = 0; i < host.k.size(); ++i) {  // dequantized values for 8-bit K/V
        host.k[i] = kv_value(k_store_, size_t(first_key) * hkv * D + i);
        host.v[i] = kv_value(v_store_, size_t(first_key) * hkv * D + i);
      }
      const std::vector<double> ref = reference_prefill(host);
      for (int h : heads) sampled_expected_.insert(sampled_expected_.end(), &ref[size_t(h) * D], &ref[size_t(h) * D] + D);
    }
  }
  cuda::check(cuda::driver().cuStreamSynchronize(stream_), "cuStreamSynchronize");
  double err2 = 0, ref2 = 0;
  std::vector<uint16_t> got(D);
  size_t n = 0;
  for (int row : sampled_rows_)
    for (int h : heads) {
      const size_t offset = (size_t(row) * hq + h) * D * sizeof(uint16_t);  // only the sampled rows come back
      cuda::check(cuda::driver().cuMemcpyDtoH(got.data(), out_.ptr() + offset, D * sizeof(uint16_t)), "cuMemcpyDtoH");
      for (int e = 0; e < D; ++e, ++n) {
        const double want = sampled_expected_[n], have = half::to_float(got[e], shape_.dtype);
        err2 += std::isfinite(have) ? (have - want) * (have - want) : INFINITY;
        ref2 += want * want;
      }
    }
  return std::sqrt(err2 / std::max(ref2, 1e-30));
}

}  // namespace swajit
