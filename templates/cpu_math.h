// swajit CPU kernels' shared math: 16-bit and 8-bit element access, the query-head mapping, the K/V dequant scales,
// exp2 for the softmax, the row normalizer with its learned sink, and the split merge. Included by every CPU family's template after
// its argument struct and specialization constants (kIsBf16, kKvQuant, kGroup, kGqaInterleaved, kSinkLogits), so the
// helpers take the family's argument struct as a template parameter.

constexpr float kNegInf = -__builtin_inff();
constexpr float kLog2e = 1.4426950408889634f;
// ---- element access -----------------------------------------------------------------------------------------------
static inline float bf16_to_float(u16 h) { return __builtin_bit_cast(float, u32(h) << 16); }
static inline u16 float_to_bf16(float f) {
  const u32 bits = __builtin_bit_cast(u32, f);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;  // NaN stays NaN
  return u16((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);  // round to nearest even
}
static inline float half_to_float(u16 h) { return float(__builtin_bit_cast(_Float16, h)); }
static inline u16 float_to_half(float f) { return __builtin_bit_cast(u16, _Float16(f)); }
static inline float elem_to_float(u16 h) { return kIsBf16 ? bf16_to_float(h) : half_to_float(h); }
static inline u16 float_to_elem(float f) { return kIsBf16 ? float_to_bf16(f) : float_to_half(f); }

// e4m3 ("fn": no infinities), bias 7: a subnormal below exponent 1.
static inline float fp8_e4m3_to_float(unsigned char b) {
  const int exponent = (b >> 3) & 0xf, mantissa = b & 0x7;
  const float magnitude = exponent == 0 ? float(mantissa) * (1.f / 512.f)  // m / 8 * 2^-6
                                        : __builtin_ldexpf(1.f + float(mantissa) / 8.f, exponent - 7);
  return (b & 0x80) ? -magnitude : magnitude;
}
// Element i of a cache row as stored (8-bit codes not yet scaled).
static inline float kv_to_float(const void* row, int i) {
  if (kKvQuant == 1) return float(static_cast<const signed char*>(row)[i]);
  if (kKvQuant == 2) return fp8_e4m3_to_float(static_cast<const unsigned char*>(row)[i]);
  return elem_to_float(static_cast<const u16*>(row)[i]);
}
constexpr int kKvBytes = kKvQuant ? 1 : 2;

template <class Params>
static inline int q_head_of(const Params& P, int kv_head, int row) {
  const int g = row % kGroup;
  return kGqaInterleaved ? kv_head + g * P.num_kv_heads : kv_head * kGroup + g;
}
template <class Params>
static inline float k_scale_at(const Params& P, int kv_head, int d) {
  return kKvQuant ? P.k_scale[kv_head * P.k_scale_stride_head + d * P.k_scale_stride_channel] : 1.f;
}
template <class Params>
static inline float v_scale_at(const Params& P, int kv_head, int d) {
  return kKvQuant ? P.v_scale[kv_head * P.v_scale_stride_head + d * P.v_scale_stride_channel] : 1.f;
}

// 2^x for the softmax, inline so the loops that call it vectorize (a libm call per score would dominate the
// kernel). x = i + f with f in [0, 1): 2^f by a degree-5 polynomial fitted for relative error (under 1.5e-7),
// 2^i through the exponent bits. Scores of masked tokens are -inf and give exactly 0.
static inline float fast_exp2(float x) {
  constexpr float kMinExponent = -126.f;  // below this 2^x is under the smallest normal float: flush to 0
  const bool underflow = !(x >= kMinExponent);  // -inf (masked) lands here
  const float clamped = underflow ? 0.f : x;
  const float whole = __builtin_floorf(clamped);
  const float f = clamped - whole;
  float p = 1.876232945334693e-03f;
  p = p * f + 8.992584031004003e-03f;
  p = p * f + 5.582360446256712e-02f;
  p = p * f + 2.401545298866137e-01f;
  p = p * f + 6.931529681766510e-01f;
  p = p * f + 1.0f;
  const float scale = __builtin_bit_cast(float, u32(int(whole) + 127) << 23);
  return underflow ? 0.f : p * scale;
}

// Normalizer of a row whose sum and accumulator are relative to `reference` (log2 units), with its learned sink.
template <class Params>
static inline float normalizer(const Params& P, int head, float reference, float sum) {
  if (kSinkLogits) {
    const float sink = P.sink_logits[head * P.sink_logits_stride] * kLog2e;
    const float new_reference = sink > reference ? sink : reference;
    const float rescale = fast_exp2(reference - new_reference);
    return rescale / (sum * rescale + fast_exp2(sink - new_reference));
  }
  return sum > 0.f ? 1.f / sum : 0.f;  // nothing visible: zeros, not 0/0
}

// Work item (b, kv_head, split)'s finished row r, kColumns wide, `acc` and `sum` relative to `row_max` (log2 units):
// its output when there is one split, else its split's (out / sum, log2-sum-exp) for merge_splits (which adds the
// sink and the V scale, once per row).
template <int kColumns, class Params>
static inline void finish_row(const Params& P, int b, int kv_head, int split, int r, const float* acc, float row_max, float sum) {
  const float reference = row_max == kNegInf ? 0.f : row_max;
  if (P.num_splits == 1) return store_row(P, b, kv_head, r, acc, normalizer(P, q_head_of(P, kv_head, r), reference, sum));
  const i64 slot = (i64(b * P.num_kv_heads + kv_head) * P.num_splits + split) * kRows + r;
  const float inv_sum = sum > 0.f ? 1.f / sum : 0.f;
  float* partial_out = static_cast<float*>(P.partial_out) + slot * kColumns;
  for (int d = 0; d < kColumns; ++d) partial_out[d] = acc[d] * inv_sum;
  P.partial_lse[slot] = sum > 0.f ? reference + __builtin_log2f(sum) : kNegInf;
}

// Row r of one split item: its `splits` partials (split s at slot slot_of(s) + r) merged into scratch and written by
// the family's store_row.
template <int kColumns, class Params, class SlotOf>
static inline void merge_row(const Params& P, int b, int kv_head, int r, SlotOf slot_of, int splits, float* scratch) {
  float max_lse = kNegInf;
  for (int s = 0; s < splits; ++s) {
    const float lse = P.partial_lse[slot_of(s) + r];
    max_lse = lse > max_lse ? lse : max_lse;
  }
  const float reference = max_lse == kNegInf ? 0.f : max_lse;
  float* acc = scratch;
  for (int d = 0; d < kColumns; ++d) acc[d] = 0.f;
  float sum = 0.f;
  for (int s = 0; s < splits; ++s) {
    const i64 slot = slot_of(s) + r;
    const float weight = fast_exp2(P.partial_lse[slot] - reference);
    sum += weight;
    const float* partial_out = static_cast<const float*>(P.partial_out) + slot * kColumns;
    for (int d = 0; d < kColumns; ++d) acc[d] += weight * partial_out[d];
  }
  store_row(P, b, kv_head, r, acc, normalizer(P, q_head_of(P, kv_head, r), reference, sum));
}

// Split merge over items [item_begin, item_end) of the (sequence, kv head) grid, kColumns output columns a row:
// out = sum_s 2^(lse_s - M) o_s / (sum_s 2^(lse_s - M) + sink), M = max_s lse_s; all -inf gives zeros. Partial
// outputs are float [items, num_splits, kRows, kColumns]; the family's store_row writes each merged row.
template <int kColumns, class Params>
static inline void merge_splits(const Params& P, int item_begin, int item_end, float* scratch) {
  for (int item = item_begin; item < item_end; ++item) {
    const int b = item / P.num_kv_heads, kv_head = item % P.num_kv_heads;
    const i64 first_slot = i64(item) * P.num_splits * kRows;
    const auto slot_of = [&](int s) { return first_slot + s * kRows; };
    for (int r = 0; r < kRows; ++r) merge_row<kColumns>(P, b, kv_head, r, slot_of, P.num_splits, scratch);
  }
}
