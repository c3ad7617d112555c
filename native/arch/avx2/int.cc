// AVX2 integer GEMM (no VNNI): vpmaddubsw + vpmaddwd. vpmaddubsw multiplies u8 by s8 and adds pairs with int16
// SATURATION, so the operands are chosen so a pair can never exceed 32767:
//   i8: w = packed byte ^ 0x80 (the signed code); a = |w| (u8, <= 128), b = sign(x, w) (x's sign flipped where w < 0,
//       |x| <= 127 because activation codes are never -128): |a·b| <= 128·127, a pair <= 32512 < 32767.
//   i4: a = biased nibble (0..15), b = x: a pair <= 2·15·127 = 3810; the +8 bias is removed by the driver's row sums.
// Also the integer GEMM of the avx512 path (AVX-512 without VNNI).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "../../kernel_table.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#endif

namespace sqap {

namespace {

struct Ops {
  using V = __m256i;
  using VF = __m256;
  static constexpr int kLanes = 8;
  static constexpr int kBiasI8 = 0;  // dot_i8 undoes the +128 itself
  static V zero() { return _mm256_setzero_si256(); }
  static V load(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  static V bcast4(const int8_t* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
  }
  static V dot_i8(V acc, V w, V x) {
    const V ws = _mm256_xor_si256(w, _mm256_set1_epi8(static_cast<char>(0x80)));
    const V pairs = _mm256_maddubs_epi16(_mm256_abs_epi8(ws), _mm256_sign_epi8(x, ws));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
  }
  static V dot_u4(V acc, V w, V x) {
    const V pairs = _mm256_maddubs_epi16(w, x);
    return _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
  }
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

// Contract W1's dequantization, 32 codes per step: nibbles split by mask and shift, sign-extended by (v ^ 8) - 8,
// interleaved back into element order (low nibble first), widened to i32, converted (exact) and multiplied by the
// group's scale (one rounding, as the generic loop). Odd group starts and tails go through the generic function.
void dequant_row_avx2(float* out, const void* codes, const float* scales, WeightType type, int K, int group, int n) {
  const int G = K / group;
  const float* row_scales = scales + static_cast<size_t>(n) * G;
  if (type == WeightType::i8) {
    const int8_t* row = static_cast<const int8_t*>(codes) + static_cast<size_t>(n) * K;
    for (int g = 0; g < G; g++) {
      const __m256 s = _mm256_set1_ps(row_scales[g]);
      int k = g * group;
      const int end = k + group;
      for (; k + 8 <= end; k += 8) {
        const __m128i c = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(row + k));
        _mm256_storeu_ps(out + k, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(c)), s));
      }
      for (; k < end; k++) out[k] = static_cast<float>(row[k]) * row_scales[g];
    }
    return;
  }
  if (K % 2 != 0 || group % 2 != 0) {
    dequant_row_generic(out, codes, scales, type, K, group, n);
    return;
  }
  const uint8_t* row = static_cast<const uint8_t*>(codes) + static_cast<size_t>(n) * (K / 2);
  const __m128i mask = _mm_set1_epi8(0x0F);
  const __m128i eight = _mm_set1_epi8(8);
  for (int g = 0; g < G; g++) {
    const float scale = row_scales[g];
    const __m256 s = _mm256_set1_ps(scale);
    int k = g * group;
    const int end = k + group;
    for (; k + 32 <= end; k += 32) {
      const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + k / 2));
      const __m128i lo = _mm_sub_epi8(_mm_xor_si128(_mm_and_si128(b, mask), eight), eight);
      const __m128i hi = _mm_sub_epi8(_mm_xor_si128(_mm_and_si128(_mm_srli_epi16(b, 4), mask), eight), eight);
      const __m128i e0 = _mm_unpacklo_epi8(lo, hi);  // elements k .. k+15
      const __m128i e1 = _mm_unpackhi_epi8(lo, hi);  // elements k+16 .. k+31
      _mm256_storeu_ps(out + k, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(e0)), s));
      _mm256_storeu_ps(out + k + 8, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(e0, 8))), s));
      _mm256_storeu_ps(out + k + 16, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(e1)), s));
      _mm256_storeu_ps(out + k + 24, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(e1, 8))), s));
    }
    for (; k < end; k += 2) {
      const uint8_t byte = row[k / 2];
      out[k] = static_cast<float>(((byte & 15) ^ 8) - 8) * scale;
      out[k + 1] = static_cast<float>(((byte >> 4) ^ 8) - 8) * scale;
    }
  }
}

// Contract Q3–Q5 with 8 lanes: max of |h| (exact), division (correctly rounded), vroundps to nearest-even, clamp.
// Contract A2: int8 · int8 summed in int32, exact in any order. 16 pairs at a time: sign-extend to int16, vpmaddwd
// (pairs of int16 products, |sum| <= 2·128² fits int32) into 8 int32 lanes.
int32_t dot_i8_avx2(const int8_t* a, const int8_t* b, int n) {
  __m256i acc = _mm256_setzero_si256();
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256i va = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a + i)));
    const __m256i vb = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + i)));
    acc = _mm256_add_epi32(acc, _mm256_madd_epi16(va, vb));
  }
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  int32_t sum = _mm_cvtsi128_si32(s);
  for (; i < n; i++) sum += static_cast<int32_t>(a[i]) * b[i];
  return sum;
}

// Contract A5: acc += p · v with p in [0, 255]: each product fits int16 (|p·v| <= 255·128), so vpmullw is exact;
// then widened to int32 and added.
void axpy_i8_avx2(int32_t* acc, int32_t p, const int8_t* v, int n) {
  const __m256i vp = _mm256_set1_epi16(static_cast<int16_t>(p));
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256i prod = _mm256_mullo_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(v + i))), vp);
    __m256i* lo = reinterpret_cast<__m256i*>(acc + i);
    __m256i* hi = reinterpret_cast<__m256i*>(acc + i + 8);
    _mm256_storeu_si256(lo, _mm256_add_epi32(_mm256_loadu_si256(lo), _mm256_cvtepi16_epi32(_mm256_castsi256_si128(prod))));
    _mm256_storeu_si256(hi, _mm256_add_epi32(_mm256_loadu_si256(hi), _mm256_cvtepi16_epi32(_mm256_extracti128_si256(prod, 1))));
  }
  for (; i < n; i++) acc[i] += p * v[i];
}

// Contract A3, 4 at a time: exp_portable's operations in its order (mul and add, never fused), floor, and 2^n as
// exponent bits (exact: for -700 <= x <= 0, n >= -1010 and the result is normal, where ldexp is exact too);
// x < -700 gives 0 as in the scalar version. The tail runs the scalar version.
void exp_shift_avx2(double* e, int n, double mx) {
  const __m256d vmx = _mm256_set1_pd(mx), log2e = _mm256_set1_pd(kExpLog2e), half = _mm256_set1_pd(0.5);
  const __m256d ln2hi = _mm256_set1_pd(kExpLn2Hi), ln2lo = _mm256_set1_pd(kExpLn2Lo), limit = _mm256_set1_pd(-700.0);
  const __m256i bias = _mm256_set1_epi64x(1023);
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    const __m256d x = _mm256_sub_pd(_mm256_loadu_pd(e + i), vmx);
    const __m256d nn = _mm256_floor_pd(_mm256_add_pd(_mm256_mul_pd(x, log2e), half));
    const __m256d r = _mm256_sub_pd(_mm256_sub_pd(x, _mm256_mul_pd(nn, ln2hi)), _mm256_mul_pd(nn, ln2lo));
    __m256d p = _mm256_set1_pd(kExpTaylor[0]);
    for (int t = 1; t < kExpTaylorTerms; t++) p = _mm256_add_pd(_mm256_mul_pd(p, r), _mm256_set1_pd(kExpTaylor[t]));
    const __m256i ni = _mm256_cvtepi32_epi64(_mm256_cvtpd_epi32(nn));  // exact: nn is an integer
    const __m256d pow2 = _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_add_epi64(ni, bias), 52));
    const __m256d result = _mm256_mul_pd(p, pow2);
    const __m256d tiny = _mm256_cmp_pd(x, limit, _CMP_LT_OQ);
    _mm256_storeu_pd(e + i, _mm256_andnot_pd(tiny, result));
  }
  for (; i < n; i++) e[i] = exp_portable(e[i] - mx);
}

float quantize_row_avx2(int8_t* codes, const float* h, int K, float qmax, float clip) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 vmax = _mm256_setzero_ps();
  int k = 0;
  for (; k + 8 <= K; k += 8) vmax = _mm256_max_ps(vmax, _mm256_andnot_ps(sign, _mm256_loadu_ps(h + k)));
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, vmax);
  float amax = 0.0f;
  for (float v : lanes) amax = amax > v ? amax : v;
  for (; k < K; k++) {
    const float a = h[k] < 0 ? -h[k] : h[k];
    amax = amax > a ? amax : a;
  }
  if (clip != 1.0f) amax = amax * clip;
  const float scale = amax / qmax;
  if (scale == 0.0f) {
    std::memset(codes, 0, K);
    return scale;
  }
  const __m256 vs = _mm256_set1_ps(scale), hi = _mm256_set1_ps(qmax), lo = _mm256_set1_ps(-qmax);
  for (k = 0; k + 8 <= K; k += 8) {
    __m256 q = _mm256_round_ps(_mm256_div_ps(_mm256_loadu_ps(h + k), vs), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    q = _mm256_min_ps(_mm256_max_ps(q, lo), hi);
    const __m256i i32 = _mm256_cvtps_epi32(q);
    const __m128i i16 = _mm_packs_epi32(_mm256_castsi256_si128(i32), _mm256_extracti128_si256(i32, 1));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(codes + k), _mm_packs_epi16(i16, i16));
  }
  for (; k < K; k++) {
    const float q = __builtin_nearbyintf(h[k] / scale);
    codes[k] = static_cast<int8_t>(q > qmax ? qmax : (q < -qmax ? -qmax : q));
  }
  return scale;
}

// 6 rows × 16 columns: 12 ymm accumulators + 2 weight vectors + 1 broadcast of the 16 registers
void int_gemm_avx2(const IntGemmArgs& a, int b0, int b1) {
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
void int_gemm_avx2(const IntGemmArgs& a, int b0, int b1) { int_gemm_generic(a, b0, b1); }
int32_t dot_i8_avx2(const int8_t* a, const int8_t* b, int n) { return dot_i8_generic(a, b, n); }
void axpy_i8_avx2(int32_t* acc, int32_t p, const int8_t* v, int n) { axpy_i8_generic(acc, p, v, n); }
void exp_shift_avx2(double* e, int n, double mx) { exp_shift_generic(e, n, mx); }
float quantize_row_avx2(int8_t* codes, const float* h, int K, float qmax, float clip) {
  return quantize_row_generic(codes, h, K, qmax, clip);
}
void dequant_row_avx2(float* out, const void* codes, const float* scales, WeightType type, int K, int group, int n) {
  dequant_row_generic(out, codes, scales, type, K, group, n);
}
}

#endif
