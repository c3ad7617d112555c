// Scalar bf16/f16 -> f32 conversion, exact (every bf16 and f16 value is representable in f32).
#pragma once

#include <cstdint>
#include <cstring>

#include "../kernels.h"

namespace sqap {

static inline float bf16_to_f32(uint16_t bits) {
  uint32_t u = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

static inline float f16_to_f32(uint16_t bits) {
  uint32_t sign = static_cast<uint32_t>(bits & 0x8000) << 16;
  uint32_t exponent = (bits >> 10) & 0x1f;
  uint32_t mantissa = bits & 0x3ff;
  uint32_t u;
  if (exponent == 0x1f) {
    u = sign | 0x7f800000 | (mantissa << 13);  // inf / nan
  } else if (exponent != 0) {
    u = sign | ((exponent + 112) << 23) | (mantissa << 13);  // normal: rebias 15 -> 127
  } else if (mantissa == 0) {
    u = sign;  // ±0
  } else {
    // subnormal half: mantissa · 2^-24, normalise into an f32
    int shift = 0;
    while ((mantissa & 0x400) == 0) {
      mantissa <<= 1;
      shift++;
    }
    mantissa &= 0x3ff;
    u = sign | (static_cast<uint32_t>(113 - shift) << 23) | (mantissa << 13);
  }
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// Element i of a weight array of any WeightType, as f32.
static inline float weight_at(const void* w, WeightType type, size_t i) {
  switch (type) {
    case WeightType::bf16:
      return bf16_to_f32(static_cast<const uint16_t*>(w)[i]);
    case WeightType::f16:
      return f16_to_f32(static_cast<const uint16_t*>(w)[i]);
    case WeightType::f32:
    default:
      return static_cast<const float*>(w)[i];
  }
}

}  // namespace sqap
