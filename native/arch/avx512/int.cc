// AVX512-VNNI integer GEMM: vpdpbusd on zmm (u8 weight bytes as packed, s8 activation codes broadcast 4 at a time),
// non-saturating int32 accumulation; the driver subtracts the weights' +128 / +8 bias as bias · Σx per group.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "../../kernel_table.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")
#endif

namespace sqap {

namespace {

struct Ops {
  using V = __m512i;
  using VF = __m512;
  static constexpr int kLanes = 16;
  static constexpr int kBiasI8 = 128;
  static V zero() { return _mm512_setzero_si512(); }
  static V load(const uint8_t* p) { return _mm512_loadu_si512(p); }
  static V bcast4(const int8_t* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm512_set1_epi32(v);
  }
  static V dot_i8(V acc, V w, V x) { return _mm512_dpbusd_epi32(acc, w, x); }
  static V dot_u4(V acc, V w, V x) { return _mm512_dpbusd_epi32(acc, w, x); }
  static V low4(V v) { return _mm512_and_si512(v, _mm512_set1_epi8(0x0F)); }
  static V high4(V v) { return _mm512_and_si512(_mm512_srli_epi16(v, 4), _mm512_set1_epi8(0x0F)); }
  static V sub(V a, V b) { return _mm512_sub_epi32(a, b); }
  static V add(V a, V b) { return _mm512_add_epi32(a, b); }
  static V loadi(const int32_t* p) { return _mm512_loadu_si512(p); }
  static V set1(int32_t v) { return _mm512_set1_epi32(v); }
  static void store(int32_t* p, V v) { _mm512_storeu_si512(p, v); }
  static VF tof(V v) { return _mm512_cvtepi32_ps(v); }
  static VF fzero() { return _mm512_setzero_ps(); }
  static VF fload(const float* p) { return _mm512_loadu_ps(p); }
  static void fstore(float* p, VF v) { _mm512_storeu_ps(p, v); }
  static VF fmul(VF a, VF b) { return _mm512_mul_ps(a, b); }
  static VF fadd(VF a, VF b) { return _mm512_add_ps(a, b); }
  static VF fset1(float v) { return _mm512_set1_ps(v); }
};

#include "../int_gemm.h"

}  // namespace

// Contract Q3–Q5 with 16 lanes (masked tail): max of |h| (exact), division (correctly rounded), round to nearest-even
// (vrndscaleps), clamp, narrow with vpmovsdb.
float quantize_row_avx512(int8_t* codes, const float* h, int K, float qmax, float clip) {
  __m512 vmax = _mm512_setzero_ps();
  int k = 0;
  for (; k + 16 <= K; k += 16) vmax = _mm512_max_ps(vmax, _mm512_abs_ps(_mm512_loadu_ps(h + k)));
  if (k < K) {
    const __mmask16 mask = static_cast<__mmask16>((1u << (K - k)) - 1);
    vmax = _mm512_max_ps(vmax, _mm512_abs_ps(_mm512_maskz_loadu_ps(mask, h + k)));
  }
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, vmax);
  float amax = 0.0f;
  for (float v : lanes) amax = amax > v ? amax : v;
  if (clip != 1.0f) amax = amax * clip;
  const float scale = amax / qmax;
  if (scale == 0.0f) {
    std::memset(codes, 0, K);
    return scale;
  }
  const __m512 vs = _mm512_set1_ps(scale), hi = _mm512_set1_ps(qmax), lo = _mm512_set1_ps(-qmax);
  for (k = 0; k < K; k += 16) {
    const __mmask16 mask = K - k >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (K - k)) - 1);
    __m512 q = _mm512_roundscale_ps(_mm512_div_ps(_mm512_maskz_loadu_ps(mask, h + k), vs),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    q = _mm512_min_ps(_mm512_max_ps(q, lo), hi);
    _mm_mask_storeu_epi8(codes + k, mask, _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(q)));
  }
  return scale;
}

// 6 rows × 64 columns: 24 zmm accumulators + 4 weight vectors + 1 broadcast of the 32 registers
void int_gemm_avx512vnni(const IntGemmArgs& a, int b0, int b1) {
  if (a.i4) int_columns<Ops, true, 6, 4>(a, b0, b1);
  else int_columns<Ops, false, 6, 4>(a, b0, b1);
}

}  // namespace sqap

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#else  // not x86-64 GCC/Clang

namespace sqap {
void int_gemm_avx512vnni(const IntGemmArgs& a, int b0, int b1) { int_gemm_generic(a, b0, b1); }
float quantize_row_avx512(int8_t* codes, const float* h, int K, float qmax, float clip) {
  return quantize_row_generic(codes, h, K, qmax, clip);
}
}

#endif
