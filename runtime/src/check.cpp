#include "check.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <numeric>
#include <random>
#include <sstream>
#include <thread>
#include <type_traits>

#include <cstring>
#include <deque>

#ifdef SWAJIT_HAVE_CPU_BACKEND
#include "cpu_backend.hpp"
#endif
#include "cuda_driver.hpp"
#include "device_buffer.hpp"
#include "half.hpp"
#include "heuristic.hpp"
#include "kernel_cache.hpp"
#include "reference.hpp"
#include "swajit/swajit.hpp"
#include "tensor_checks.hpp"

namespace swajit {
namespace {


// A tensor as the kernel sees it: physical storage plus DLPack shape and strides (which must outlive the call).
struct StridedTensor {
  std::vector<int64_t> shape, strides;
  size_t physical_elements = 0;
  size_t offset(const std::vector<int64_t>& index) const {
    size_t o = 0;
    for (size_t i = 0; i < index.size(); ++i) o += index[i] * strides[i];
    return o;
  }
  DLTensor view(void* data, DLDataType dtype, DLDevice device) {
    DLTensor t{};
    t.data = data;
    t.device = device;
    t.ndim = int(shape.size());
    t.dtype = dtype;
    t.shape = shape.data();
    t.strides = strides.data();
    return t;
  }
};

StridedTensor make_tensor(std::vector<int64_t> shape, std::vector<int64_t> strides) {
  StridedTensor t{std::move(shape), std::move(strides), 0};
  size_t last = 0;
  for (size_t i = 0; i < t.shape.size(); ++i) last += (t.shape[i] - 1) * t.strides[i];
  t.physical_elements = last + 1;
  return t;
}
StridedTensor compact_tensor(std::vector<int64_t> shape) {
  std::vector<int64_t> strides(shape.size());
  int64_t running = 1;
  for (int i = int(shape.size()) - 1; i >= 0; --i) { strides[i] = running; running *= shape[i]; }
  return make_tensor(std::move(shape), std::move(strides));
}

// Calls f(index) for every element of `shape` in row-major order.
template <class F>
void for_each_index(const std::vector<int64_t>& shape, F f) {
  std::vector<int64_t> index(shape.size(), 0);
  const int64_t total = std::accumulate(shape.begin(), shape.end(), int64_t(1), std::multiplies<>());
  for (int64_t n = 0; n < total; ++n) {
    f(index);
    for (int d = int(shape.size()) - 1; d >= 0; --d) {
      if (++index[d] < shape[d]) break;
      index[d] = 0;
    }
  }
}

// Element n of the compact tensor (stored_value(n)) -> storage at the tensor's strides; gaps hold `poison`.
template <class T, class StoredValue>
std::vector<T> scatter(const StridedTensor& t, T poison, StoredValue stored_value) {
  std::vector<T> physical(t.physical_elements, poison);
  size_t n = 0;
  for_each_index(t.shape, [&](const std::vector<int64_t>& i) { physical[t.offset(i)] = stored_value(n++); });
  return physical;
}
std::vector<uint16_t> scatter_16bit(const std::vector<float>& compact, const StridedTensor& t, DType dtype) {
  return scatter<uint16_t>(t, half::kPoison, [&](size_t n) { return half::from_float(compact[n], dtype); });
}

// An 8-bit cache: random codes, and the float values they stand for (code * scale) for the reference.
struct QuantizedCache {
  std::vector<uint8_t> codes;
  std::vector<float> scales;  // [num_kv_heads * head_dim], or one value
  std::vector<float> values;
};
// The codes are laid out [..., num_kv_heads, head_dim] (NHD; also contiguous K/V) or [..., num_kv_heads, page_size,
// head_dim] (HND).
struct QuantizedLayout {
  KvQuant quant;
  bool per_tensor_scale;
  int num_kv_heads, head_dim, page_size;
  KvLayout layout;
};
QuantizedCache random_quantized_cache(size_t elements, const QuantizedLayout& c, std::mt19937_64& rng) {
  constexpr uint8_t kFp8NanBits = 0x7f;
  QuantizedCache q;
  const int D = c.head_dim, hkv = c.num_kv_heads;
  std::uniform_real_distribution<float> spread(0.5f, 1.5f);
  q.scales.resize(c.per_tensor_scale ? 1 : size_t(hkv) * D);
  for (float& s : q.scales) s = half::kv_unit_scale(c.quant) * spread(rng);  // values near [-1, 1]
  std::uniform_int_distribution<int> byte(0, 255);
  q.codes.resize(elements);
  q.values.resize(elements);
  for (size_t i = 0; i < elements; ++i) {
    uint8_t code = uint8_t(byte(rng));
    if (c.quant == KvQuant::kInt8 && code == 0x80) code = 0x81;                   // symmetric range [-127, 127]
    if (c.quant == KvQuant::kFp8E4M3 && (code & 0x7f) == kFp8NanBits) code ^= 1;  // never NaN
    const int d = int(i % D);
    const int head = c.layout == KvLayout::kNHD ? int(i / D % hkv) : int(i / (size_t(D) * c.page_size) % hkv);
    const float scale = c.per_tensor_scale ? q.scales[0] : q.scales[size_t(head) * D + d];
    q.codes[i] = code;
    q.values[i] = half::kv_code_value(code, c.quant) * scale;
  }
  return q;
}

std::vector<float> random_values(size_t n, DType dtype, std::mt19937_64& rng) {
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  std::vector<float> v(n);
  for (auto& x : v) x = half::to_float(half::from_float(dist(rng), dtype), dtype);  // exactly representable
  return v;
}

DLDataType dl_dtype(DType t) { return t == DType::kBF16 ? DLDataType{kDLBfloat, 16, 1} : DLDataType{kDLFloat, 16, 1}; }

// Relative L2 error of the output (read at `t`'s strides over the `logical` shape) against the reference; any
// NaN/Inf or unwritten (poisoned) element fails the case.
CaseResult compare_to_reference(const std::vector<uint16_t>& physical, const StridedTensor& t,
                                const std::vector<int64_t>& logical, const std::vector<double>& ref, DType dtype) {
  CaseResult result;
  result.tolerance = tolerance_for(dtype);
  double err2 = 0, ref2 = 0;
  size_t n = 0, not_finite = 0;
  for_each_index(logical, [&](const std::vector<int64_t>& i) {
    const double got = half::to_float(physical[t.offset(i)], dtype);
    const double want = ref[n++];
    if (!std::isfinite(got)) { ++not_finite; return; }
    err2 += (got - want) * (got - want);
    ref2 += want * want;
  });
  if (not_finite) {
    result.detail = std::to_string(not_finite) + " output elements are NaN/Inf or were never written (poison)";
    return result;
  }
  result.rel_err = ref2 > 0 ? std::sqrt(err2 / ref2) : std::sqrt(err2);
  result.passed = result.rel_err <= result.tolerance;
  if (!result.passed) {
    std::ostringstream os;
    os << "relative error " << result.rel_err << " > " << result.tolerance;
    result.detail = os.str();
  }
  return result;
}

}  // namespace

KernelSpec DecodeCase::spec() const {
  KernelSpec s;
  s.dtype = dtype;
  s.head_dim = head_dim;
  s.page_size = page_size;
  s.kv_layout = layout;
  s.q_seqlen = q_seqlen;
  s.group = group;
  s.local_window = local_window > 0;
  s.global_window = global_window > 0;
  s.sink_logits = sink_logits;
  s.gqa = gqa;
  s.kv_quant = kv_quant;
  return s;
}

double tolerance_for(DType dtype) { return dtype == DType::kBF16 ? 1e-2 : 2e-3; }

std::vector<DecodeCase> decode_check_matrix() {
  std::vector<DecodeCase> cases;
  const auto add = [&](std::string name, auto&& edit) {
    DecodeCase c;
    c.name = std::move(name);
    edit(c);
    // A sequence shorter than q_seqlen is invalid input (tested separately): lift such lengths to q_seqlen.
    for (int& len : c.seq_lens)
      if (len > 0 && len < c.q_seqlen) len = c.q_seqlen;
    cases.push_back(std::move(c));
  };
  for (DType dtype : {DType::kBF16, DType::kFP16})
    for (int d : {64, 128, 256})
      add(std::string("head_dim ") + std::to_string(d) + " " + std::string(to_string(dtype)) + " q2",
          [&](DecodeCase& c) { c.dtype = dtype; c.head_dim = d; c.q_seqlen = 2; });
  for (int page : {1, 3, 16, 17, 100, 256})
    add("page_size " + std::to_string(page), [&](DecodeCase& c) {
      c.page_size = page;
      c.layout = page % 2 ? KvLayout::kHND : KvLayout::kNHD;
      c.seq_lens = {0, 1, 257, 613};
      c.local_window = 200;
    });
  for (KvLayout layout : {KvLayout::kNHD, KvLayout::kHND})
    for (bool strided : {false, true})
      add(std::string("layout ") + std::string(to_string(layout)) + (strided ? " strided" : " contiguous"),
          [&](DecodeCase& c) { c.layout = layout; c.strided = strided; c.q_seqlen = 3; });
  for (int qs = 1; qs <= 8; ++qs)
    add("q_seqlen " + std::to_string(qs), [&](DecodeCase& c) { c.q_seqlen = qs; c.group = 2; c.seq_lens = {qs, 9, 130}; });
  for (int group : {1, 2, 3, 5, 8, 16})
    add("group " + std::to_string(group), [&](DecodeCase& c) { c.group = group; c.num_kv_heads = group > 8 ? 1 : 3; });
  add("group 16 q_seqlen 8 (128 rows)", [](DecodeCase& c) { c.group = 16; c.q_seqlen = 8; c.num_kv_heads = 1; c.seq_lens = {8, 200}; });
  add("group 16 q_seqlen 8 head_dim 256", [](DecodeCase& c) { c.group = 16; c.q_seqlen = 8; c.num_kv_heads = 1; c.head_dim = 256; c.seq_lens = {8, 150}; });
  add("no windows (full attention)", [](DecodeCase& c) { c.local_window = 0; c.global_window = 0; });
  add("local window only", [](DecodeCase& c) { c.global_window = 0; });
  add("local window 1", [](DecodeCase& c) { c.local_window = 1; c.global_window = 0; c.q_seqlen = 4; c.seq_lens = {4, 50}; });
  add("local window 1 + sink 1", [](DecodeCase& c) { c.local_window = 1; c.global_window = 1; c.q_seqlen = 2; });
  add("window larger than sequence", [](DecodeCase& c) { c.local_window = 5000; c.global_window = 0; });
  add("sinks only", [](DecodeCase& c) { c.local_window = 0; c.global_window = 4; });
  add("sinks larger than sequence", [](DecodeCase& c) { c.local_window = 16; c.global_window = 400; });
  add("sinks past the window start", [](DecodeCase& c) { c.local_window = 100; c.global_window = 250; c.seq_lens = {300, 340}; });
  add("kv length 0 everywhere", [](DecodeCase& c) { c.seq_lens = {0, 0}; });
  add("kv length 1", [](DecodeCase& c) { c.seq_lens = {1}; });
  add("kv length == q_seqlen", [](DecodeCase& c) { c.q_seqlen = 5; c.seq_lens = {5, 5, 6}; });
  add("3-D q", [](DecodeCase& c) { c.q_3d = true; c.strided = true; });
  add("long sequence, heuristic splits", [](DecodeCase& c) { c.seq_lens = {5000}; c.local_window = 4096; c.num_kv_heads = 1; });
  for (int splits : {2, 3, 7})
    add("forced num_splits " + std::to_string(splits), [&](DecodeCase& c) {
      c.seq_lens = {0, 1, 700, 2100};
      c.local_window = 1000;
      c.config = DecodeConfig{64, 4, 3, splits};
    });
  add("config bn32 wn2 st2", [](DecodeCase& c) { c.config = DecodeConfig{32, 2, 2, 1}; c.seq_lens = {0, 1, 95, 400}; });
  add("config bn128 wn1 st3", [](DecodeCase& c) { c.config = DecodeConfig{128, 1, 3, 2}; c.seq_lens = {3, 129, 1000}; c.local_window = 300; });
  add("learned sink logits", [](DecodeCase& c) { c.sink_logits = true; c.q_seqlen = 2; });
  add("learned sink logits, split", [](DecodeCase& c) {
    c.sink_logits = true; c.strided = true; c.seq_lens = {0, 700, 2100}; c.local_window = 1000;
    c.config = DecodeConfig{64, 4, 3, 3};
  });
  add("learned sink logits, window 1", [](DecodeCase& c) { c.sink_logits = true; c.local_window = 1; c.global_window = 0; });
  add("interleaved GQA", [](DecodeCase& c) { c.gqa = GqaMapping::kInterleaved; c.num_kv_heads = 3; c.q_seqlen = 3; });
  add("interleaved GQA, sinks, split", [](DecodeCase& c) {
    c.gqa = GqaMapping::kInterleaved; c.sink_logits = true; c.group = 8; c.seq_lens = {1, 900};
    c.config = DecodeConfig{32, 2, 2, 4};
  });
  for (KvQuant quant : {KvQuant::kInt8, KvQuant::kFp8E4M3}) {
    const std::string name = quant == KvQuant::kInt8 ? "int8 KV" : "fp8 KV";
    add(name + ", per-channel scales", [&](DecodeCase& c) { c.kv_quant = quant; c.q_seqlen = 2; });
    add(name + ", per-tensor scale", [&](DecodeCase& c) { c.kv_quant = quant; c.per_tensor_scale = true; });
    add(name + ", fp16 q, HND, strided", [&](DecodeCase& c) {
      c.kv_quant = quant; c.dtype = DType::kFP16; c.layout = KvLayout::kHND; c.strided = true;
    });
    add(name + ", head_dim 64, split", [&](DecodeCase& c) {
      c.kv_quant = quant; c.head_dim = 64; c.seq_lens = {0, 700, 2100}; c.local_window = 1000;
      c.config = DecodeConfig{64, 4, 3, 3};
    });
    add(name + ", head_dim 256, 128 rows, sinks", [&](DecodeCase& c) {
      c.kv_quant = quant; c.head_dim = 256; c.group = 16; c.q_seqlen = 8; c.num_kv_heads = 1; c.sink_logits = true;
      c.seq_lens = {8, 300};
    });
  }
  add("config bn16 wn1 st2", [](DecodeCase& c) { c.config = DecodeConfig{16, 1, 2, 1}; c.seq_lens = {1, 17, 33}; });
  return cases;
}

namespace {
// Where a case's tensors live: device buffers on CUDA, host vectors for the CPU backend (new[] keeps them 16-byte
// aligned).
class CaseMemory {
 public:
  explicit CaseMemory(DLDevice device) : device_(device) {}
  bool on_cpu() const { return device_.device_type == kDLCPU; }
  template <class T>
  void* put(const std::vector<T>& values) {
    if (on_cpu()) {
      host_.emplace_back(values.size() * sizeof(T));
      std::memcpy(host_.back().data(), values.data(), values.size() * sizeof(T));
      return host_.back().data();
    }
    device_.device_type = kDLCUDA;
    return buffers_.emplace_back(values).data();
  }
  template <class T>
  std::vector<T> get(const void* data, size_t count) const {
    std::vector<T> values(count);
    if (on_cpu()) std::memcpy(values.data(), data, count * sizeof(T));
    else cuda::check(cuda::driver().cuMemcpyDtoH(values.data(), reinterpret_cast<CUdeviceptr>(data), count * sizeof(T)), "cuMemcpyDtoH");
    return values;
  }

 private:
  DLDevice device_;
  std::deque<std::vector<char>> host_;
  std::deque<DeviceBuffer> buffers_;
};

// K or V at `t`'s strides: 16-bit `values`, or with an 8-bit cache its `codes` (gaps hold a byte nobody reads).
void* put_kv(CaseMemory& memory, const StridedTensor& t, const std::vector<float>& values,
             const std::vector<uint8_t>& codes, KvQuant quant, DType dtype) {
  if (quant == KvQuant::kNone) return memory.put(scatter_16bit(values, t, dtype));
  constexpr uint8_t kGapByte = 0x7f;
  return memory.put(scatter<uint8_t>(t, kGapByte, [&](size_t n) { return codes[n]; }));
}

// Elements of padding per row of a strided tensor: keeps rows 16-byte aligned for 16-bit and 8-bit elements.
int64_t row_padding(bool strided, bool eight_bit) { return strided ? (eight_bit ? kVectorBytes : kVectorBytes / 2) : 0; }

// The K and V scale tensors of a case: [num_kv_heads, head_dim] (row-padded when strided) or a single value.
struct ScaleTensors {
  StridedTensor t;
  DLTensor k{}, v{};
  ScaleTensors(CaseMemory& memory, const QuantizedCache& k_quant, const QuantizedCache& v_quant, bool per_tensor,
               bool strided, int num_kv_heads, int head_dim, DLDevice where)
      : t(per_tensor ? compact_tensor({1}) : make_tensor({num_kv_heads, head_dim}, {head_dim + (strided ? 4 : 0), 1})) {
    const auto put = [&](const QuantizedCache& q) {
      return memory.put(scatter<float>(t, NAN, [&](size_t n) { return q.scales.empty() ? 0.f : q.scales[n]; }));
    };
    k = t.view(put(k_quant), {kDLFloat, 32, 1}, where);
    v = t.view(put(v_quant), {kDLFloat, 32, 1}, where);
  }
  ScaleTensors(const ScaleTensors&) = delete;  // k and v point at t's shape
};
}  // namespace

CaseResult run_decode_case(const DecodeCase& c, DLDevice where, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const int batch = int(c.seq_lens.size());
  const int hq = c.group * c.num_kv_heads, hkv = c.num_kv_heads, D = c.head_dim, P = c.page_size, Qs = c.q_seqlen;
  const int max_len = *std::max_element(c.seq_lens.begin(), c.seq_lens.end());
  const int max_pages = (max_len + P - 1) / P + 1;  // one spare column: the table is wider than any sequence needs

  HostPagedDecode host;
  host.batch = batch; host.q_seqlen = Qs; host.num_q_heads = hq; host.num_kv_heads = hkv; host.head_dim = D;
  host.page_size = P; host.layout = c.layout; host.local_window = c.local_window; host.global_window = c.global_window;
  host.max_pages_per_seq = max_pages;
  host.scale = 1.0 / std::sqrt(double(D));
  host.seq_lens = c.seq_lens;
  // Pages: every sequence's pages drawn from a shuffled pool with spares, so neighbours are not adjacent.
  int used_pages = 0;
  for (int len : c.seq_lens) used_pages += (len + P - 1) / P;
  host.num_pages = used_pages + 3;
  std::vector<int> pool(host.num_pages);
  std::iota(pool.begin(), pool.end(), 0);
  std::shuffle(pool.begin(), pool.end(), rng);
  host.block_table.assign(size_t(batch) * max_pages, 0);
  int next = 0;
  for (int b = 0; b < batch; ++b)
    for (int i = 0; i < max_pages; ++i)
      host.block_table[size_t(b) * max_pages + i] = i < (c.seq_lens[b] + P - 1) / P ? pool[next++] : pool.back();
  host.q = random_values(size_t(batch) * Qs * hq * D, c.dtype, rng);
  const size_t cache_elems = size_t(host.num_pages) * P * hkv * D;
  QuantizedCache k_quant, v_quant;
  if (c.kv_quant == KvQuant::kNone) {
    host.k = random_values(cache_elems, c.dtype, rng);
    host.v = random_values(cache_elems, c.dtype, rng);
  } else {
    const QuantizedLayout layout{c.kv_quant, c.per_tensor_scale, hkv, D, P, c.layout};
    k_quant = random_quantized_cache(cache_elems, layout, rng);
    v_quant = random_quantized_cache(cache_elems, layout, rng);
    host.k = k_quant.values;
    host.v = v_quant.values;
  }
  host.gqa = c.gqa;
  if (c.sink_logits) {
    std::uniform_real_distribution<float> sink(-1.f, 3.f);  // comparable to the scores, so the sinks matter
    host.sink_logits.resize(hq);
    for (float& x : host.sink_logits) x = sink(rng);
  }
  const std::vector<double> ref = reference_paged_decode(host);

  // Device layouts.
  const int64_t pad = c.strided ? kVectorBytes / 2 : 0;  // 16-bit tensors
  const int64_t kv_pad = row_padding(c.strided, c.kv_quant != KvQuant::kNone);
  std::vector<int64_t> q_shape = {batch, Qs, hq, D};
  StridedTensor q_t = c.strided ? make_tensor(q_shape, {Qs * hq * (D + pad) + 2 * pad, hq * (D + pad), D + pad, 1})
                                : compact_tensor(q_shape);
  // out deliberately token-major when strided: its strides never equal q's.
  StridedTensor out_t = c.strided ? make_tensor(q_shape, {hq * D, int64_t(batch) * hq * D, D, 1}) : compact_tensor(q_shape);
  if (c.q_3d) {
    q_t = c.strided ? make_tensor({batch, hq, D}, {hq * (D + pad) + pad, D + pad, 1}) : compact_tensor({batch, hq, D});
    out_t = compact_tensor({batch, hq, D});
  }
  const std::vector<int64_t> cache_shape = c.layout == KvLayout::kNHD ? std::vector<int64_t>{host.num_pages, P, hkv, D}
                                                                         : std::vector<int64_t>{host.num_pages, hkv, P, D};
  StridedTensor k_t = compact_tensor(cache_shape), v_t = compact_tensor(cache_shape);
  if (c.strided) {
    const int64_t row = D + kv_pad;
    const std::vector<int64_t> strides = c.layout == KvLayout::kNHD
        ? std::vector<int64_t>{P * hkv * row + kv_pad, hkv * row, row, 1}
        : std::vector<int64_t>{hkv * P * row + kv_pad, P * row, row, 1};
    k_t = make_tensor(cache_shape, strides);
    v_t = make_tensor(cache_shape, strides);
  }
  StridedTensor bt_t = c.strided ? make_tensor({batch, max_pages}, {max_pages + 3, 1}) : compact_tensor({batch, max_pages});
  StridedTensor sl_t = c.strided ? make_tensor({batch}, {2}) : compact_tensor({batch});

  std::vector<int> bt_physical(bt_t.physical_elements, -1), sl_physical(sl_t.physical_elements, -1);
  for (int b = 0; b < batch; ++b) {
    sl_physical[sl_t.offset({b})] = c.seq_lens[b];
    for (int i = 0; i < max_pages; ++i) bt_physical[bt_t.offset({b, i})] = host.block_table[size_t(b) * max_pages + i];
  }

  const bool on_cpu = where.device_type == kDLCPU;
  std::optional<cuda::ScopedDeviceContext> scope;
  if (!on_cpu) scope.emplace(where.device_id);
  CaseMemory memory(where);
  void* q_d = memory.put(scatter_16bit(host.q, q_t, c.dtype));
  void* k_d = put_kv(memory, k_t, host.k, k_quant.codes, c.kv_quant, c.dtype);
  void* v_d = put_kv(memory, v_t, host.v, v_quant.codes, c.kv_quant, c.dtype);
  const DLDataType kv_dtype = kv_storage_dtype(c.kv_quant, c.dtype);
  ScaleTensors scales(memory, k_quant, v_quant, c.per_tensor_scale, c.strided, hkv, D, where);
  void* bt_d = memory.put(bt_physical);
  void* sl_d = memory.put(sl_physical);
  StridedTensor sink_t = make_tensor({hq}, {c.strided ? 2 : 1});
  std::vector<float> sink_physical(sink_t.physical_elements, NAN);
  for (int h = 0; h < hq && c.sink_logits; ++h) sink_physical[sink_t.offset({h})] = host.sink_logits[h];
  DLTensor sink_view = sink_t.view(memory.put(sink_physical), {kDLFloat, 32, 1}, where);
  void* out_d = memory.put(std::vector<uint16_t>(out_t.physical_elements, half::kPoison));

  const DLDevice dev = where;
  const DLDataType dt = dl_dtype(c.dtype);
  DecodeOptions options;
  options.local_window = c.local_window;
  options.global_window = c.global_window;
  options.kv_layout = c.layout;
  options.gqa = c.gqa;
  options.sink_logits = c.sink_logits ? &sink_view : nullptr;
  options.kv_quant = c.kv_quant;
  if (c.kv_quant != KvQuant::kNone) {
    options.k_scale = &scales.k;
    options.v_scale = &scales.v;
  }
  if (on_cpu) {
    options.cpu_config = cpu_config_of(c);
  } else {
    options.config = c.config;
    options.check_device_args = true;
  }
  CUstream stream = nullptr;
  if (!on_cpu) cuda::check(cuda::driver().cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING), "cuStreamCreate");
  struct StreamGuard {
    CUstream s;
    ~StreamGuard() { if (s) cuda::driver().cuStreamDestroy(s); }
  } guard{stream};
  paged_decode(q_t.view(q_d, dt, dev), k_t.view(k_d, kv_dtype, dev), v_t.view(v_d, kv_dtype, dev),
               bt_t.view(bt_d, {kDLInt, 32, 1}, dev), sl_t.view(sl_d, {kDLInt, 32, 1}, dev),
               out_t.view(out_d, dt, dev), stream, options);
  const std::vector<uint16_t> out_physical = memory.get<uint16_t>(out_d, out_t.physical_elements);

  const std::vector<int64_t> logical = c.q_3d ? std::vector<int64_t>{batch, hq, D} : q_shape;
  return compare_to_reference(out_physical, out_t, logical, ref, c.dtype);
}

std::optional<CpuDecodeConfig> cpu_config_of(const DecodeCase& c) {
  if (!c.config) return std::nullopt;  // the CPU heuristic
  CpuDecodeConfig cpu;
  cpu.block_n = c.config->block_n;  // the forced tile and splits carry over; warps and stages are GPU-only
  cpu.num_splits = c.config->num_splits;
  return cpu;
}

void precompile_cases(const std::vector<DecodeCase>& cases, DLDevice where, int threads) {
  std::atomic<size_t> next{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&]() noexcept {
      std::optional<cuda::ScopedDeviceContext> scope;
      try {
        if (where.device_type != kDLCPU) scope.emplace(where.device_id);
      } catch (const std::exception&) {
        return;  // no device: every case reports the same error when it runs
      }
      for (size_t i = next++; i < cases.size(); i = next++) {
        try {
          const KernelSpec spec = cases[i].spec();
          if (where.device_type == kDLCPU) {
#ifdef SWAJIT_HAVE_CPU_BACKEND
            cpu_decode_kernel(spec, cpu_config_of(cases[i]).value_or(CpuDecodeConfig{}));
#endif
            continue;
          }
          const DeviceInfo& device = cuda_device(where.device_id);
          const DecodeConfig config = cases[i].config ? *cases[i].config : heuristic_decode_config(spec, device);
          decode_kernel(spec, config, device, scope->context());
        } catch (const std::exception&) {
          // Not fatal here: the case meets the same error when it runs and reports it as its own failure.
        }
      }
    });
  for (auto& t : pool) t.join();
}

// ---- prefill -----------------------------------------------------------------------------------------------------------

KernelSpec PrefillCase::spec() const {
  KernelSpec s;
  s.family = KernelFamily::kPrefill;
  s.dtype = dtype;
  s.head_dim = head_dim;
  s.page_size = page_size;
  s.kv_layout = page_size ? layout : KvLayout::kNHD;
  s.group = group;
  s.causal = causal;
  s.local_window = local_window > 0;
  s.global_window = global_window > 0;
  s.sink_logits = sink_logits;
  s.gqa = gqa;
  s.kv_quant = kv_quant;
  return s;
}

std::vector<PrefillCase> prefill_check_matrix() {
  std::vector<PrefillCase> cases;
  const auto add = [&](std::string name, auto&& edit) {
    PrefillCase c;
    c.name = std::move(name);
    edit(c);
    cases.push_back(std::move(c));
  };
  add("contiguous, ragged varlen", [](PrefillCase&) {});
  add("contiguous, one long sequence", [](PrefillCase& c) { c.q_lens = {1000}; c.kv_lens = {1000}; c.local_window = 300; c.global_window = 0; });
  add("chunked prefill (q_len < kv_len)", [](PrefillCase& c) { c.q_lens = {17, 130}; c.kv_lens = {300, 1000}; });
  add("q_len 1", [](PrefillCase& c) { c.q_lens = {1, 1, 1}; c.kv_lens = {1, 2, 500}; });
  add("empty sequences and kv length 1", [](PrefillCase& c) { c.q_lens = {0, 1, 0, 5}; c.kv_lens = {0, 1, 9, 5}; });
  add("window 1", [](PrefillCase& c) { c.local_window = 1; c.global_window = 0; });
  add("window 1 + sink 1", [](PrefillCase& c) { c.local_window = 1; c.global_window = 1; });
  add("window larger than the sequences", [](PrefillCase& c) { c.local_window = 5000; });
  add("full causal (no windows)", [](PrefillCase& c) { c.local_window = 0; c.global_window = 0; });
  add("sinks only", [](PrefillCase& c) { c.local_window = 0; c.global_window = 3; });
  add("non-causal, window", [](PrefillCase& c) { c.causal = false; });
  add("non-causal, no window", [](PrefillCase& c) { c.causal = false; c.local_window = 0; c.global_window = 0; });
  add("learned sink logits", [](PrefillCase& c) { c.sink_logits = true; });
  add("interleaved GQA", [](PrefillCase& c) { c.gqa = GqaMapping::kInterleaved; });
  for (int group : {1, 2, 3, 8, 16})
    add("group " + std::to_string(group), [group](PrefillCase& c) { c.group = group; c.num_kv_heads = group > 8 ? 1 : 2; });
  add("head_dim 64", [](PrefillCase& c) { c.head_dim = 64; });
  add("head_dim 256", [](PrefillCase& c) { c.head_dim = 256; });
  add("fp16", [](PrefillCase& c) { c.dtype = DType::kFP16; });
  add("strided", [](PrefillCase& c) { c.strided = true; });
  add("paged NHD page 16", [](PrefillCase& c) { c.page_size = 16; });
  add("paged HND page 7, strided", [](PrefillCase& c) { c.page_size = 7; c.layout = KvLayout::kHND; c.strided = true; });
  add("paged page 1", [](PrefillCase& c) { c.page_size = 1; c.q_lens = {5, 40}; c.kv_lens = {9, 60}; });
  add("paged page 256, chunked", [](PrefillCase& c) { c.page_size = 256; c.q_lens = {100, 3}; c.kv_lens = {700, 260}; });
  add("paged page 100, head_dim 256, fp16", [](PrefillCase& c) { c.page_size = 100; c.head_dim = 256; c.dtype = DType::kFP16; });
  add("config bm64 bn32 st3", [](PrefillCase& c) { c.config = PrefillConfig{64, 32, 3}; });
  add("config bm16 bn16 st2", [](PrefillCase& c) { c.config = PrefillConfig{16, 16, 2}; });
  add("config bm128 bn128 st2, paged 13", [](PrefillCase& c) { c.config = PrefillConfig{128, 128, 2}; c.page_size = 13; });
  add("config bm128 bn64 st2 mt2", [](PrefillCase& c) { c.config = PrefillConfig{128, 64, 2, 2}; });
  add("config bm32 bn16 st3 mt2, window 1", [](PrefillCase& c) { c.config = PrefillConfig{32, 16, 3, 2}; c.local_window = 1; });
  add("config bm64 bn32 st2 mt2, head_dim 256, paged 16, sinks",
      [](PrefillCase& c) { c.config = PrefillConfig{64, 32, 2, 2}; c.head_dim = 256; c.page_size = 16; c.sink_logits = true; });
  // Hopper warpgroup MMA (sm_90a only; skipped elsewhere)
  const auto wgmma = [](int bm, int bn, int stages) { return PrefillConfig{bm, bn, stages, 1, true}; };
  add("wgmma bm128 bn64", [&](PrefillCase& c) { c.config = wgmma(128, 64, 2); });
  add("wgmma bm128 bn128 st3, one long sequence",
      [&](PrefillCase& c) { c.config = wgmma(128, 128, 3); c.q_lens = {1000}; c.kv_lens = {1000}; c.local_window = 300; });
  add("wgmma bm64 bn128, paged HND 7, strided",
      [&](PrefillCase& c) { c.config = wgmma(64, 128, 2); c.page_size = 7; c.layout = KvLayout::kHND; c.strided = true; });
  add("wgmma bm64 bn32, head_dim 64, fp16", [&](PrefillCase& c) { c.config = wgmma(64, 32, 2); c.head_dim = 64; c.dtype = DType::kFP16; });
  add("wgmma bm64 bn64, head_dim 256, sinks, chunked",
      [&](PrefillCase& c) { c.config = wgmma(64, 64, 2); c.head_dim = 256; c.sink_logits = true; c.q_lens = {17, 130}; c.kv_lens = {300, 1000}; });
  add("wgmma bm128 bn32 st3 oc2, paged 16, sinks",
      [&](PrefillCase& c) { c.config = wgmma(128, 32, 3); c.config->min_blocks = 2; c.page_size = 16; c.sink_logits = true; });
  add("wgmma bm64 bn64 st3, head_dim 256, chunked, fp16",
      [&](PrefillCase& c) { c.config = wgmma(64, 64, 3); c.head_dim = 256; c.dtype = DType::kFP16; c.q_lens = {17, 130}; c.kv_lens = {300, 1000}; });
  add("wgmma bm192 bn64 st3, window 1 + sink 1",
      [&](PrefillCase& c) { c.config = wgmma(192, 64, 3); c.local_window = 1; c.global_window = 1; });
  add("wgmma bm128 bn16, window 1, non-causal",
      [&](PrefillCase& c) { c.config = wgmma(128, 16, 2); c.local_window = 1; c.causal = false; });
  // warp specialized wgmma: producer warpgroup + mbarriers (1), and S(t+1) issued before softmax(t) (2)
  const auto ws = [](int bm, int bn, int stages, int mode) { return PrefillConfig{bm, bn, stages, 1, true, 1, mode}; };
  add("wgmma ws1 bm128 bn64", [&](PrefillCase& c) { c.config = ws(128, 64, 2, 1); });
  add("wgmma ws2 bm128 bn64", [&](PrefillCase& c) { c.config = ws(128, 64, 2, 2); });
  add("wgmma ws2 bm128 bn128 st3, one long sequence",
      [&](PrefillCase& c) { c.config = ws(128, 128, 3, 2); c.q_lens = {1000}; c.kv_lens = {1000}; c.local_window = 300; });
  add("wgmma ws1 bm64 bn128, paged HND 7, strided",
      [&](PrefillCase& c) { c.config = ws(64, 128, 2, 1); c.page_size = 7; c.layout = KvLayout::kHND; c.strided = true; });
  add("wgmma ws2 bm64 bn32 st3, head_dim 64, fp16", [&](PrefillCase& c) { c.config = ws(64, 32, 3, 2); c.head_dim = 64; c.dtype = DType::kFP16; });
  add("wgmma ws2 bm64 bn64, head_dim 256, sinks, chunked",
      [&](PrefillCase& c) { c.config = ws(64, 64, 2, 2); c.head_dim = 256; c.sink_logits = true; c.q_lens = {17, 130}; c.kv_lens = {300, 1000}; });
  add("wgmma ws2 bm64 bn32 st3 oc2, paged 16, sinks",
      [&](PrefillCase& c) { c.config = ws(64, 32, 3, 2); c.config->min_blocks = 2; c.page_size = 16; c.sink_logits = true; });
  add("wgmma ws1 bm192 bn64 st3, window 1 + sink 1",
      [&](PrefillCase& c) { c.config = ws(192, 64, 3, 1); c.local_window = 1; c.global_window = 1; });
  add("wgmma ws2 bm192 bn64, window 1 + sink 1, learned sinks",
      [&](PrefillCase& c) { c.config = ws(192, 64, 2, 2); c.local_window = 1; c.global_window = 1; c.sink_logits = true; });
  add("wgmma ws2 bm128 bn16, window 1, non-causal",
      [&](PrefillCase& c) { c.config = ws(128, 16, 2, 2); c.local_window = 1; c.causal = false; });
  add("wgmma ws2 bm128 bn64, paged 1, varlen with empty sequences",
      [&](PrefillCase& c) { c.config = ws(128, 64, 2, 2); c.page_size = 1; c.q_lens = {5, 0, 300, 1}; c.kv_lens = {9, 0, 700, 1}; });
  add("wgmma ws2 bm128 bn64, long window: the stage ring wraps many times",
      [&](PrefillCase& c) { c.config = ws(128, 64, 2, 2); c.num_kv_heads = 1; c.q_lens = {1500}; c.kv_lens = {2000}; c.local_window = 1000; });
  add("wgmma ws1 bm128 bn64 st3, long window, paged 16",
      [&](PrefillCase& c) { c.config = ws(128, 64, 3, 1); c.num_kv_heads = 1; c.page_size = 16; c.q_lens = {1500}; c.kv_lens = {2000}; c.local_window = 1000; });
  add("wgmma ws3 bm128 bn64, ping-pong", [&](PrefillCase& c) { c.config = ws(128, 64, 2, 3); });
  add("wgmma ws3 bm128 bn64 st3, ping-pong, long window, paged 13",
      [&](PrefillCase& c) { c.config = ws(128, 64, 3, 3); c.num_kv_heads = 1; c.page_size = 13; c.q_lens = {1500, 70}; c.kv_lens = {2000, 70}; c.local_window = 1000; });
  add("wgmma ws3 bm128 bn32, ping-pong, sinks, chunked",
      [&](PrefillCase& c) { c.config = ws(128, 32, 2, 3); c.sink_logits = true; c.q_lens = {17, 130}; c.kv_lens = {300, 1000}; });
  add("wgmma ws2 bm128 bn64, interleaved GQA, group 8",
      [&](PrefillCase& c) { c.config = ws(128, 64, 2, 2); c.gqa = GqaMapping::kInterleaved; c.group = 8; });
  add("config bm64 bn64 st2 mt2, head_dim 64, non-causal",
      [](PrefillCase& c) { c.config = PrefillConfig{64, 64, 2, 2}; c.head_dim = 64; c.causal = false; });
  // 8-bit K/V ("quantized ..."): the heuristic's config (wgmma on sm_90a), forced mma.sync and wgmma configs.
  for (KvQuant quant : {KvQuant::kInt8, KvQuant::kFp8E4M3}) {
    const std::string name = std::string("quantized ") + std::string(to_string(quant)) + " K/V, ";
    const auto add_quantized = [&](const std::string& what, auto&& edit) {
      add(name + what, [&](PrefillCase& c) { c.kv_quant = quant; edit(c); });
    };
    add_quantized("contiguous, per-channel scales", [](PrefillCase&) {});
    add_quantized("contiguous, per-tensor scale, chunked",
                  [](PrefillCase& c) { c.per_tensor_scale = true; c.q_lens = {17, 130}; c.kv_lens = {300, 1000}; });
    add_quantized("paged NHD page 16, mma.sync bm64 bn32 st3",
                  [](PrefillCase& c) { c.page_size = 16; c.config = PrefillConfig{64, 32, 3}; });
    add_quantized("paged HND page 7, strided, fp16 q",
                  [](PrefillCase& c) { c.page_size = 7; c.layout = KvLayout::kHND; c.strided = true; c.dtype = DType::kFP16; });
    add_quantized("head_dim 256, mma.sync bm64 bn32 mt2, per-tensor scale, group 8", [](PrefillCase& c) {
      c.head_dim = 256; c.config = PrefillConfig{64, 32, 2, 2}; c.per_tensor_scale = true; c.group = 8; c.num_kv_heads = 1;
    });
    add_quantized("head_dim 64, fp16 q, paged NHD page 100, mma.sync bm128 bn64, chunked", [](PrefillCase& c) {
      c.head_dim = 64; c.dtype = DType::kFP16; c.page_size = 100; c.config = PrefillConfig{128, 64, 2};
      c.q_lens = {100, 3}; c.kv_lens = {700, 260};
    });
    add_quantized("wgmma bm128 bn64 oc2, interleaved GQA, sinks", [&](PrefillCase& c) {
      c.config = wgmma(128, 64, 2); c.config->min_blocks = 2; c.gqa = GqaMapping::kInterleaved; c.sink_logits = true;
    });
    add_quantized("wgmma bm128 bn128 st3, one long sequence, per-tensor scale", [&](PrefillCase& c) {
      c.config = wgmma(128, 128, 3); c.q_lens = {1000}; c.kv_lens = {1000}; c.local_window = 300; c.per_tensor_scale = true;
    });
    add_quantized("wgmma bm64 bn64, head_dim 64, fp16 q, group 8, paged HND page 13", [&](PrefillCase& c) {
      c.config = wgmma(64, 64, 2); c.head_dim = 64; c.dtype = DType::kFP16; c.group = 8; c.page_size = 13;
      c.layout = KvLayout::kHND;
    });
    add_quantized("wgmma bm64 bn64 st2, head_dim 256, paged NHD page 16, chunked, window 1 + sink 1", [&](PrefillCase& c) {
      c.config = wgmma(64, 64, 2); c.head_dim = 256; c.page_size = 16; c.q_lens = {17, 130}; c.kv_lens = {300, 1000};
      c.local_window = 1; c.global_window = 1;
    });
  }
  return cases;
}

CaseResult run_prefill_case(const PrefillCase& c, int device_ordinal, uint64_t seed) {
  constexpr int kWgmmaMajor = 9;  // wgmma exists on sm_90a only
  if (c.config && c.config->wgmma && cuda_device(device_ordinal).cc_major != kWgmmaMajor) {
    CaseResult skipped;
    skipped.passed = true;
    skipped.detail = "skipped: wgmma needs sm_90a";
    return skipped;
  }
  std::mt19937_64 rng(seed);
  const int batch = int(c.q_lens.size()), D = c.head_dim, hkv = c.num_kv_heads, hq = hkv * c.group;
  HostPrefill host;
  host.num_q_heads = hq;
  host.num_kv_heads = hkv;
  host.head_dim = D;
  host.local_window = c.local_window;
  host.global_window = c.global_window;
  host.causal = c.causal;
  host.scale = 1.0 / std::sqrt(double(D));
  host.gqa = c.gqa;
  host.cu_seqlens_q = {0};
  host.cu_seqlens_k = {0};
  for (int b = 0; b < batch; ++b) {
    host.cu_seqlens_q.push_back(host.cu_seqlens_q.back() + c.q_lens[b]);
    host.cu_seqlens_k.push_back(host.cu_seqlens_k.back() + c.kv_lens[b]);
  }
  const int64_t total_q = host.cu_seqlens_q.back(), total_kv = host.cu_seqlens_k.back();
  host.q = random_values(size_t(total_q) * hq * D, c.dtype, rng);
  QuantizedCache k_quant, v_quant;  // 8-bit K/V: the reference sees the dequantized values
  if (c.kv_quant == KvQuant::kNone) {
    host.k = random_values(size_t(total_kv) * hkv * D, c.dtype, rng);
    host.v = random_values(size_t(total_kv) * hkv * D, c.dtype, rng);
  } else {
    const QuantizedLayout layout{c.kv_quant, c.per_tensor_scale, hkv, D, 1, KvLayout::kNHD};  // [total_kv, hkv, D]
    k_quant = random_quantized_cache(size_t(total_kv) * hkv * D, layout, rng);
    v_quant = random_quantized_cache(size_t(total_kv) * hkv * D, layout, rng);
    host.k = k_quant.values;
    host.v = v_quant.values;
  }
  if (c.sink_logits) {
    std::uniform_real_distribution<float> sink(-1.f, 3.f);
    for (int h = 0; h < hq; ++h) host.sink_logits.push_back(sink(rng));
  }
  const std::vector<double> ref = reference_prefill(host);

  const int64_t pad = row_padding(c.strided, false);  // elements of padding per row of q and out
  const int64_t kv_pad = row_padding(c.strided, c.kv_quant != KvQuant::kNone);
  const bool quantized = c.kv_quant != KvQuant::kNone;
  StridedTensor q_t = make_tensor({total_q, hq, D}, {hq * (D + pad) + pad, D + pad, 1});
  StridedTensor out_t = make_tensor({total_q, hq, D}, {hq * (D + 2 * pad), D + 2 * pad, 1});
  if (!c.strided) q_t = out_t = compact_tensor({total_q, hq, D});
  cuda::ScopedDeviceContext scope(device_ordinal);
  const DLDevice dev{kDLCUDA, device_ordinal};
  CaseMemory memory(dev);
  const DLDataType dt = dl_dtype(c.dtype), i32{kDLInt, 32, 1};
  const auto int_tensor = [&](const std::vector<int>& values, StridedTensor& t) {
    t = c.strided ? make_tensor({int64_t(values.size())}, {2}) : compact_tensor({int64_t(values.size())});
    std::vector<int> physical(t.physical_elements, -1);
    for (size_t i = 0; i < values.size(); ++i) physical[t.offset({int64_t(i)})] = values[i];
    return t.view(memory.put(physical), i32, dev);
  };
  StridedTensor cu_q_t, cu_k_t, lens_t;
  const DLTensor cu_q = int_tensor(host.cu_seqlens_q, cu_q_t);
  StridedTensor sink_t = make_tensor({hq}, {c.strided ? 2 : 1});
  std::vector<float> sink_physical(sink_t.physical_elements, NAN);
  for (int h = 0; h < hq && c.sink_logits; ++h) sink_physical[sink_t.offset({h})] = host.sink_logits[h];
  DLTensor sink_view = sink_t.view(memory.put(sink_physical), {kDLFloat, 32, 1}, dev);
  const DLTensor q = q_t.view(memory.put(scatter_16bit(host.q, q_t, c.dtype)), dt, dev);
  const DLTensor out = out_t.view(memory.put(std::vector<uint16_t>(out_t.physical_elements, half::kPoison)), dt, dev);

  PrefillOptions options;
  options.local_window = c.local_window;
  options.global_window = c.global_window;
  options.causal = c.causal;
  options.kv_layout = c.layout;
  options.gqa = c.gqa;
  options.sink_logits = c.sink_logits ? &sink_view : nullptr;
  options.config = c.config;
  options.check_device_args = true;
  options.kv_quant = c.kv_quant;
  ScaleTensors scales(memory, k_quant, v_quant, c.per_tensor_scale, c.strided, hkv, D, dev);
  if (quantized) {
    options.k_scale = &scales.k;
    options.v_scale = &scales.v;
  }
  const DLDataType kv_dt = kv_storage_dtype(c.kv_quant, c.dtype);
  CUstream stream = nullptr;  // the legacy stream: check_device_args synchronizes it
  if (c.page_size == 0) {
    StridedTensor k_t = make_tensor({total_kv, hkv, D}, {hkv * (D + kv_pad) + kv_pad, D + kv_pad, 1});
    if (!c.strided) k_t = compact_tensor({total_kv, hkv, D});
    const DLTensor k = k_t.view(put_kv(memory, k_t, host.k, k_quant.codes, c.kv_quant, c.dtype), kv_dt, dev);
    const DLTensor v = k_t.view(put_kv(memory, k_t, host.v, v_quant.codes, c.kv_quant, c.dtype), kv_dt, dev);
    const DLTensor cu_k = int_tensor(host.cu_seqlens_k, cu_k_t);
    prefill(q, k, v, cu_q, cu_k, out, stream, options);
  } else {
    // Pages of every sequence in shuffled order (one spare page nobody uses), token j of sequence b at
    // (block_table[b][j / P], j % P).
    const int P = c.page_size;
    int max_pages = 1, num_pages = 1;
    for (int len : c.kv_lens) { max_pages = std::max(max_pages, (len + P - 1) / P); num_pages += (len + P - 1) / P; }
    std::vector<int> page_ids(num_pages);
    std::iota(page_ids.begin(), page_ids.end(), 0);
    std::shuffle(page_ids.begin(), page_ids.end(), rng);
    const std::vector<int64_t> cache_shape = c.layout == KvLayout::kNHD ? std::vector<int64_t>{num_pages, P, hkv, D}
                                                                         : std::vector<int64_t>{num_pages, hkv, P, D};
    StridedTensor cache_t = compact_tensor(cache_shape);
    if (c.strided) {
      const int64_t row = D + kv_pad;
      cache_t = make_tensor(cache_shape, c.layout == KvLayout::kNHD
                                             ? std::vector<int64_t>{P * hkv * row + kv_pad, hkv * row, row, 1}
                                             : std::vector<int64_t>{hkv * P * row + kv_pad, P * row, row, 1});
    }
    std::vector<int> table(size_t(batch) * max_pages, 0);
    int next_page = 0;
    for (int b = 0; b < batch; ++b)
      for (int i = 0; i < (c.kv_lens[b] + P - 1) / P; ++i) table[size_t(b) * max_pages + i] = page_ids[next_page++];
    // Contiguous [total_kv, hkv, D] values (or codes) -> the compact paged cache (unused slots 0).
    const auto to_pages = [&](const auto& contiguous) {
      std::remove_cvref_t<decltype(contiguous)> paged(contiguous.empty() ? 0 : size_t(num_pages) * P * hkv * D);
      for (int b = 0; b < batch && !contiguous.empty(); ++b)
        for (int j = 0; j < c.kv_lens[b]; ++j)
          for (int h = 0; h < hkv; ++h) {
            const int page = table[size_t(b) * max_pages + j / P], slot = j % P;
            const size_t dst = c.layout == KvLayout::kNHD ? ((size_t(page) * P + slot) * hkv + h) * D
                                                          : ((size_t(page) * hkv + h) * P + slot) * D;
            std::copy_n(&contiguous[(size_t(host.cu_seqlens_k[b] + j) * hkv + h) * D], D, &paged[dst]);
          }
      return paged;
    };
    const DLTensor k = cache_t.view(
        put_kv(memory, cache_t, to_pages(host.k), to_pages(k_quant.codes), c.kv_quant, c.dtype), kv_dt, dev);
    const DLTensor v = cache_t.view(
        put_kv(memory, cache_t, to_pages(host.v), to_pages(v_quant.codes), c.kv_quant, c.dtype), kv_dt, dev);
    StridedTensor bt_t = c.strided ? make_tensor({batch, max_pages}, {max_pages + 3, 1}) : compact_tensor({batch, max_pages});
    std::vector<int> bt_physical(bt_t.physical_elements, -1);
    for (int b = 0; b < batch; ++b)
      for (int i = 0; i < max_pages; ++i) bt_physical[bt_t.offset({b, i})] = table[size_t(b) * max_pages + i];
    const DLTensor block_table = bt_t.view(memory.put(bt_physical), i32, dev);
    const DLTensor seq_lens = int_tensor(c.kv_lens, lens_t);
    paged_prefill(q, k, v, block_table, seq_lens, cu_q, out, stream, options);
  }
  const std::vector<uint16_t> out_physical = memory.get<uint16_t>(out.data, out_t.physical_elements);
  return compare_to_reference(out_physical, out_t, out_t.shape, ref, c.dtype);
}

}  // namespace swajit
