// What the check cases of every family share: tensors at any strides with poisoned gaps, random 16-bit and
// 8-bit K/V data with their scales, case memory on the GPU or the host, and the comparison with the reference.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstring>
#include <deque>
#include <numeric>
#include <random>
#include <sstream>
#include <vector>

#include <dlpack/dlpack.h>

#include "check.hpp"
#include "cuda_driver.hpp"
#include "device_buffer.hpp"
#include "half.hpp"
#include "reference.hpp"
#include "tensor_checks.hpp"

namespace swajit::check_data {



// A tensor as the kernel sees it: physical storage plus DLPack shape and strides (which must outlive the call).
struct StridedTensor {
  std::vector<int64_t> shape, strides;
  size_t physical_elements = 0;
  size_t offset(const std::vector<int64_t>& index) const {
    size_t o = 0;
    for (size_t i = 0; i < index.size(); ++i) o += index[i] * strides[i];
    return o;
  }
  DLTensor view(void* data, DLDataType dtype, DLDevice device) { return dl_tensor(data, dtype, device, shape, &strides); }
};

inline StridedTensor make_tensor(std::vector<int64_t> shape, std::vector<int64_t> strides) {
  StridedTensor t{std::move(shape), std::move(strides), 0};
  size_t last = 0;
  for (size_t i = 0; i < t.shape.size(); ++i) last += (t.shape[i] - 1) * t.strides[i];
  t.physical_elements = last + 1;
  return t;
}
inline StridedTensor compact_tensor(std::vector<int64_t> shape) {
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
inline std::vector<uint16_t> scatter_16bit(const std::vector<float>& compact, const StridedTensor& t, DType dtype) {
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
inline QuantizedCache random_quantized_cache(size_t elements, const QuantizedLayout& c, std::mt19937_64& rng) {
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

inline std::vector<float> random_values(size_t n, DType dtype, std::mt19937_64& rng) {
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  std::vector<float> v(n);
  for (auto& x : v) x = half::to_float(half::from_float(dist(rng), dtype), dtype);  // exactly representable
  return v;
}

inline DLDataType dl_dtype(DType t) { return t == DType::kBF16 ? DLDataType{kDLBfloat, 16, 1} : DLDataType{kDLFloat, 16, 1}; }

// Relative L2 error of the output (read at `t`'s strides over the `logical` shape) against the reference; any
// NaN/Inf or unwritten (poisoned) element fails the case.
inline CaseResult compare_to_reference(const std::vector<uint16_t>& physical, const StridedTensor& t,
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
inline void* put_kv(CaseMemory& memory, const StridedTensor& t, const std::vector<float>& values,
             const std::vector<uint8_t>& codes, KvQuant quant, DType dtype) {
  if (quant == KvQuant::kNone) return memory.put(scatter_16bit(values, t, dtype));
  constexpr uint8_t kGapByte = 0x7f;
  return memory.put(scatter<uint8_t>(t, kGapByte, [&](size_t n) { return codes[n]; }));
}

// Elements of padding per row of a strided tensor: keeps rows 16-byte aligned for 16-bit and 8-bit elements.
inline int64_t row_padding(bool strided, bool eight_bit) { return strided ? (eight_bit ? kVectorBytes : kVectorBytes / 2) : 0; }

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

}  // namespace swajit::check_data
