// AVX2 + FMA + F16C kernels. The target is set per function (pragma below), not per file or for the whole binary,
// so the addon still loads on a CPU without AVX2; dispatch.cc only selects this table when the CPU has it.
// Everything but the table is file-local (anonymous namespace): no inline function compiled for AVX2 can be merged
// by the linker into code that runs on the generic path.
#include <cstddef>
#include <cstdint>

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

// Register tile of the linear micro-kernel: MR rows of x against NR rows of w, MR·NR accumulators of 8 floats.
// 4×3 uses 12 accumulators + 3 weight vectors + 1 x vector = the 16 ymm registers.
constexpr int kMR = 4;
constexpr int kNR = 3;
// K is cut into blocks so a block of x (M × kKC floats) stays in L2 and a weight tile (kNR × kKC) in L1 while the
// tile sweeps all rows of x; each weight byte then comes from memory once per call.
constexpr int kKC = 256;

template <WeightType W>
inline __m256 load8(const void* w, size_t i) {
  if constexpr (W == WeightType::f32) {
    return _mm256_loadu_ps(static_cast<const float*>(w) + i);
  } else if constexpr (W == WeightType::bf16) {
    // bf16 is the top half of an f32: widen to 32 bits and shift left by 16 (exact)
    __m128i bits = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(w) + i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(bits), 16));
  } else {
    __m128i bits = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(w) + i));
    return _mm256_cvtph_ps(bits);
  }
}

template <WeightType W>
inline float load1(const void* w, size_t i) {
  if constexpr (W == WeightType::f32) {
    return static_cast<const float*>(w)[i];
  } else if constexpr (W == WeightType::bf16) {
    uint32_t u = static_cast<uint32_t>(static_cast<const uint16_t*>(w)[i]) << 16;
    return _mm_cvtss_f32(_mm_castsi128_ps(_mm_cvtsi32_si128(static_cast<int>(u))));
  } else {
    return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<const uint16_t*>(w)[i])));
  }
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// out[m, n+j] += Σ_{k0 <= k < k1} x[m, k] · w[n+j, k] for m < MR, j < NR.
// x (MR rows, K apart), w (N,K) in type W, out (MR rows, N apart)
template <WeightType W, int MR, int NR>
inline void micro_kernel(float* out, int N, const float* x, const void* w, int K, int n, int k0, int k1) {
  __m256 acc[MR][NR];
  for (int i = 0; i < MR; i++)
    for (int j = 0; j < NR; j++) acc[i][j] = _mm256_setzero_ps();
  const size_t w_row = static_cast<size_t>(n) * K;
  int k = k0;
  for (; k + 8 <= k1; k += 8) {
    __m256 wv[NR];
    for (int j = 0; j < NR; j++) wv[j] = load8<W>(w, w_row + static_cast<size_t>(j) * K + k);
    for (int i = 0; i < MR; i++) {
      __m256 xv = _mm256_loadu_ps(x + static_cast<size_t>(i) * K + k);
      for (int j = 0; j < NR; j++) acc[i][j] = _mm256_fmadd_ps(xv, wv[j], acc[i][j]);
    }
  }
  for (int i = 0; i < MR; i++) {
    for (int j = 0; j < NR; j++) {
      float sum = hsum(acc[i][j]);
      for (int kk = k; kk < k1; kk++) {
        sum += x[static_cast<size_t>(i) * K + kk] * load1<W>(w, w_row + static_cast<size_t>(j) * K + kk);
      }
      out[static_cast<size_t>(i) * N + n + j] += sum;
    }
  }
}

// One column tile (nr <= kNR weight rows) against all M rows of x, for K block [k0, k1).
template <WeightType W, int NR>
inline void column_tile(float* out, const float* x, const void* w, int M, int K, int N, int n, int k0, int k1) {
  int m = 0;
  for (; m + kMR <= M; m += kMR) {
    micro_kernel<W, kMR, NR>(out + static_cast<size_t>(m) * N, N, x + static_cast<size_t>(m) * K, w, K, n, k0, k1);
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
      // GEMV: memory-bound, so take 4 weight rows per x load instead of 3 (the register budget allows it).
      for (; n + 4 <= n1; n += 4) micro_kernel<W, 1, 4>(out, N, x, w, K, n, k0, k1);
    }
    for (; n + kNR <= n1; n += kNR) column_tile<W, kNR>(out, x, w, M, K, N, n, k0, k1);
    for (; n < n1; n++) column_tile<W, 1>(out, x, w, M, K, N, n, k0, k1);
  }
}

void linear_columns_avx2(float* out, const float* x, const void* w, WeightType w_type, int M, int K, int N, int n0,
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

float dot_avx2(const float* a, const float* b, int n) {
  __m256 acc0 = _mm256_setzero_ps();
  __m256 acc1 = _mm256_setzero_ps();
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
  }
  for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
  float sum = hsum(_mm256_add_ps(acc0, acc1));
  for (; i < n; i++) sum += a[i] * b[i];
  return sum;
}

void axpy_avx2(float* y, float alpha, const float* x, int n) {
  const __m256 a = _mm256_set1_ps(alpha);
  int i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(a, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; i++) y[i] += alpha * x[i];
}

}  // namespace

const KernelTable kAvx2Kernels = {Isa::avx2, linear_columns_avx2, dot_avx2, axpy_avx2};

}  // namespace sqap

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#else  // not x86-64 GCC/Clang: the path exists but is never selected

namespace sqap {
const KernelTable kAvx2Kernels = {Isa::generic, linear_columns_generic, dot_generic, axpy_generic};
}

#endif
