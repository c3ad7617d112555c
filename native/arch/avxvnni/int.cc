// AVX-VNNI integer GEMM (VEX-encoded vpdpbusd on ymm: Alder Lake and later, also AVX-512 CPUs that have it).
// vpdpbusd multiplies u8 by s8 and adds groups of 4 into int32 without saturation, so the weight bytes are used as
// packed (code + 128, or the nibble + 8) and the driver subtracts bias · Σx per group.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "../../kernel_table.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c,avxvnni"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avxvnni")
#endif

namespace sqap {

namespace {

struct Ops {
  using V = __m256i;
  using VF = __m256;
  static constexpr int kLanes = 8;
  static constexpr int kBiasI8 = 128;
  static V zero() { return _mm256_setzero_si256(); }
  static V load(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  static V bcast4(const int8_t* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
  }
  static V dot_i8(V acc, V w, V x) { return _mm256_dpbusd_avx_epi32(acc, w, x); }
  static V dot_u4(V acc, V w, V x) { return _mm256_dpbusd_avx_epi32(acc, w, x); }
  static V low4(V v) { return _mm256_and_si256(v, _mm256_set1_epi8(0x0F)); }
  static V high4(V v) { return _mm256_and_si256(_mm256_srli_epi16(v, 4), _mm256_set1_epi8(0x0F)); }
  static V sub(V a, V b) { return _mm256_sub_epi32(a, b); }
  static V add(V a, V b) { return _mm256_add_epi32(a, b); }
  static V loadi(const int32_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  static V set1(int32_t v) { return _mm256_set1_epi32(v); }
  static void store(int32_t* p, V v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v); }
  static VF tof(V v) { return _mm256_cvtepi32_ps(v); }
  static VF fzero() { return _mm256_setzero_ps(); }
  static VF fload(const float* p) { return _mm256_loadu_ps(p); }
  static void fstore(float* p, VF v) { _mm256_storeu_ps(p, v); }
  static VF fmul(VF a, VF b) { return _mm256_mul_ps(a, b); }
  static VF fadd(VF a, VF b) { return _mm256_add_ps(a, b); }
  static VF fset1(float v) { return _mm256_set1_ps(v); }
};

#include "../int_gemm.h"

}  // namespace

// 6 rows × 16 columns: 12 ymm accumulators + 2 weight vectors + 1 broadcast of the 16 registers
void int_gemm_avxvnni(const IntGemmArgs& a, int b0, int b1) {
  if (a.i4) int_columns<Ops, true, 6, 2>(a, b0, b1);
  else int_columns<Ops, false, 6, 2>(a, b0, b1);
}

}  // namespace sqap

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#else  // not x86-64 GCC/Clang

namespace sqap {
void int_gemm_avxvnni(const IntGemmArgs& a, int b0, int b1) { int_gemm_generic(a, b0, b1); }
}

#endif
