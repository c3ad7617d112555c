// AVX-512 (F, BW, VL) kernels. Same structure as arch/avx2/kernels.cc with 16-float vectors, a larger register tile
// (32 zmm registers) and masked loads for the K remainder instead of a scalar tail.
//
// Why not _mm512_dpbf16_ps (AVX512-BF16)? It multiplies bf16 by bf16, so x would have to be rounded to bf16 and
// linear would lose f32 accuracy; widening bf16 weights by a shift is exact and cheap next to the FMA.
#include <cstddef>
#include <cstdint>

#include "../../kernel_table.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

// GCC 12's AVX-512 headers initialise "undefined" vectors from themselves (GCC bug 105593, fixed in 12.3/13), which
// -Wall reports at every inlined intrinsic. The warning is about the header, not this code.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")
#endif

namespace sqap {

namespace {

// 6 rows of x × 4 weight rows: 24 accumulators + 4 weight vectors + 1 x vector of the 32 zmm registers.
constexpr int kMR = 6;
constexpr int kNR = 4;
constexpr int kKC = 512;

template <WeightType W>
inline __m512 load16(const void* w, size_t i, __mmask16 mask) {
  if constexpr (W == WeightType::f32) {
    return _mm512_maskz_loadu_ps(mask, static_cast<const float*>(w) + i);
  } else if constexpr (W == WeightType::bf16) {
    __m256i bits = _mm256_maskz_loadu_epi16(mask, static_cast<const uint16_t*>(w) + i);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(bits), 16));
  } else {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask, static_cast<const uint16_t*>(w) + i));
  }
}

template <WeightType W>
inline __m512 load16(const void* w, size_t i) {
  if constexpr (W == WeightType::f32) {
    return _mm512_loadu_ps(static_cast<const float*>(w) + i);
  } else if constexpr (W == WeightType::bf16) {
    __m256i bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(w) + i));
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(bits), 16));
  } else {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(w) + i)));
  }
}

// Sum of the 16 lanes. (Not _mm512_reduce_add_ps: GCC 12's version trips -Wmaybe-uninitialized in its header.)
inline float hsum(__m512 v) {
  __m512 folded = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, 0x4E));  // lanes 0-7 += lanes 8-15
  __m256 s8 = _mm512_castps512_ps256(folded);
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// out[m, n+j] += Σ_{k0 <= k < k1} x[m, k] · w[n+j, k] for m < MR, j < NR.
// x (MR rows, K apart), w (N,K) in type W, out (MR rows, N apart)
template <WeightType W, int MR, int NR>
inline void micro_kernel(float* out, int N, const float* x, const void* w, int K, int n, int k0, int k1) {
  __m512 acc[MR][NR];
  for (int i = 0; i < MR; i++)
    for (int j = 0; j < NR; j++) acc[i][j] = _mm512_setzero_ps();
  const size_t w_row = static_cast<size_t>(n) * K;
  int k = k0;
  for (; k + 16 <= k1; k += 16) {
    __m512 wv[NR];
    for (int j = 0; j < NR; j++) wv[j] = load16<W>(w, w_row + static_cast<size_t>(j) * K + k);
    for (int i = 0; i < MR; i++) {
      __m512 xv = _mm512_loadu_ps(x + static_cast<size_t>(i) * K + k);
      for (int j = 0; j < NR; j++) acc[i][j] = _mm512_fmadd_ps(xv, wv[j], acc[i][j]);
    }
  }
  if (k < k1) {
    const __mmask16 mask = static_cast<__mmask16>((1u << (k1 - k)) - 1);
    __m512 wv[NR];
    for (int j = 0; j < NR; j++) wv[j] = load16<W>(w, w_row + static_cast<size_t>(j) * K + k, mask);
    for (int i = 0; i < MR; i++) {
      __m512 xv = _mm512_maskz_loadu_ps(mask, x + static_cast<size_t>(i) * K + k);
      for (int j = 0; j < NR; j++) acc[i][j] = _mm512_fmadd_ps(xv, wv[j], acc[i][j]);
    }
  }
  for (int i = 0; i < MR; i++)
    for (int j = 0; j < NR; j++) out[static_cast<size_t>(i) * N + n + j] += hsum(acc[i][j]);
}

// One column tile (NR weight rows) against all M rows of x, for K block [k0, k1).
template <WeightType W, int NR>
inline void column_tile(float* out, const float* x, const void* w, int M, int K, int N, int n, int k0, int k1) {
  int m = 0;
  for (; m + kMR <= M; m += kMR) {
    micro_kernel<W, kMR, NR>(out + static_cast<size_t>(m) * N, N, x + static_cast<size_t>(m) * K, w, K, n, k0, k1);
  }
  for (; m + 2 <= M; m += 2) {
    micro_kernel<W, 2, NR>(out + static_cast<size_t>(m) * N, N, x + static_cast<size_t>(m) * K, w, K, n, k0, k1);
  }
  for (; m < M; m++) {
    micro_kernel<W, 1, NR>(out + static_cast<size_t>(m) * N, N, x + static_cast<size_t>(m) * K, w, K, n, k0, k1);
  }
}

template <WeightType W>
void linear_columns(float* out, const float* x, const void* w, int M, int K, int N, int n0, int n1) {
  for (int k0 = 0; k0 < K; k0 += kKC) {
    const int k1 = k0 + kKC < K ? k0 + kKC : K;
    int n = n0;
    if (M == 1) {
      for (; n + 8 <= n1; n += 8) micro_kernel<W, 1, 8>(out, N, x, w, K, n, k0, k1);
    }
    for (; n + kNR <= n1; n += kNR) column_tile<W, kNR>(out, x, w, M, K, N, n, k0, k1);
    for (; n < n1; n++) column_tile<W, 1>(out, x, w, M, K, N, n, k0, k1);
  }
}

void linear_columns_avx512(float* out, const float* x, const void* w, WeightType w_type, int M, int K, int N, int n0,
                           int n1) {
  switch (w_type) {
    case WeightType::f32:
      return linear_columns<WeightType::f32>(out, x, w, M, K, N, n0, n1);
    case WeightType::bf16:
      return linear_columns<WeightType::bf16>(out, x, w, M, K, N, n0, n1);
    case WeightType::f16:
      return linear_columns<WeightType::f16>(out, x, w, M, K, N, n0, n1);
  }
}

float dot_avx512(const float* a, const float* b, int n) {
  __m512 acc = _mm512_setzero_ps();
  int i = 0;
  for (; i + 16 <= n; i += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc);
  if (i < n) {
    const __mmask16 mask = static_cast<__mmask16>((1u << (n - i)) - 1);
    acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, a + i), _mm512_maskz_loadu_ps(mask, b + i), acc);
  }
  return hsum(acc);
}

void axpy_avx512(float* y, float alpha, const float* x, int n) {
  const __m512 a = _mm512_set1_ps(alpha);
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    _mm512_storeu_ps(y + i, _mm512_fmadd_ps(a, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
  }
  if (i < n) {
    const __mmask16 mask = static_cast<__mmask16>((1u << (n - i)) - 1);
    _mm512_mask_storeu_ps(y + i, mask,
                          _mm512_fmadd_ps(a, _mm512_maskz_loadu_ps(mask, x + i), _mm512_maskz_loadu_ps(mask, y + i)));
  }
}

}  // namespace

const KernelTable kAvx512Kernels = {Isa::avx512, linear_columns_avx512, dot_avx512, axpy_avx512};

}  // namespace sqap

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#else  // not x86-64 GCC/Clang: the path exists but is never selected

namespace sqap {
const KernelTable kAvx512Kernels = {Isa::generic, linear_columns_generic, dot_generic, axpy_generic};
}

#endif
