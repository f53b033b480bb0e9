// Host conversions between float and 16-bit storage (bf16, fp16), round to nearest even, for test data and
// references. Device code has its own (templates/tile_ops.cuh).
#pragma once
#include <cstdint>
#include <bit>
#include <cmath>
#include <cstring>
#include <vector>

#include "swajit/spec.hpp"

namespace swajit::half {

inline uint16_t float_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;  // NaN stays NaN
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}
inline float bf16_to_float(uint16_t h) {
  const uint32_t bits = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
inline uint16_t float_to_fp16(float f) { return std::bit_cast<uint16_t>(static_cast<_Float16>(f)); }
inline float fp16_to_float(uint16_t h) { return static_cast<float>(std::bit_cast<_Float16>(h)); }

inline uint16_t from_float(float f, DType t) { return t == DType::kBF16 ? float_to_bf16(f) : float_to_fp16(f); }
inline float to_float(uint16_t h, DType t) { return t == DType::kBF16 ? bf16_to_float(h) : fp16_to_float(h); }

// fp8 e4m3 ("fn": no infinities; 0x7f and 0xff are NaN), bias 7.
inline float fp8_e4m3_to_float(uint8_t b) {
  const int sign = b >> 7, exponent = (b >> 3) & 0xf, mantissa = b & 0x7;
  constexpr int kBias = 7, kMantissaSteps = 8;
  const float magnitude = exponent == 0 ? std::ldexp(float(mantissa) / kMantissaSteps, 1 - kBias)
                                        : std::ldexp(1.f + float(mantissa) / kMantissaSteps, exponent - kBias);
  return sign ? -magnitude : magnitude;
}

// 8-bit KV test data: what a code stands for before its scale (int8 as an integer, fp8 as e4m3), and per-channel
// scales that map codes to about [-1, 1] and differ across channels and heads.
inline float kv_code_value(uint8_t code, KvQuant quant) {
  return quant == KvQuant::kInt8 ? float(int8_t(code)) : fp8_e4m3_to_float(code);
}
inline float kv_unit_scale(KvQuant quant) {
  constexpr float kInt8Max = 127, kFp8Max = 448;  // largest int8 magnitude used, largest finite e4m3 value
  return quant == KvQuant::kInt8 ? 1.f / kInt8Max : 1.f / kFp8Max;
}
inline std::vector<float> varied_kv_scales(KvQuant quant, size_t count) {
  constexpr int kScaleCycle = 7;
  std::vector<float> scales(count);
  for (size_t i = 0; i < count; ++i) scales[i] = (1.f + float(i % kScaleCycle) / kScaleCycle) * kv_unit_scale(quant);
  return scales;
}

constexpr uint16_t kPoison = 0xffff;  // a NaN in both bf16 and fp16: any element the kernel fails to write shows

}  // namespace swajit::half
