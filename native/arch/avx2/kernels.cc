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

// Register tile of the linear micro-kernel: kMR rows of x against kNR rows of w, kMR·kNR accumulators of 8 floats.
// 4×3 uses 12 accumulators + 3 weight vectors + 1 x vector = the 16 ymm registers.
constexpr int kMR = 4;
constexpr int kNR = 3;
constexpr int kLanes = 8;
// K is cut into blocks of kKC and the thread's columns into blocks of kNB weight rows: a packed x tile (kMR × kKC
// floats, 16 KB) stays in L1 while it meets every weight tile of the block (kNB × kKC, 96 KB of f32 in L2), and each
// weight byte comes from memory once per call. Sizes tuned on Zen 3 (bench/gemm.ts); SQAP_AVX2_KC/NB override them
// at compile time for such experiments.
#ifndef SQAP_AVX2_KC
#define SQAP_AVX2_KC 1024
#endif
#ifndef SQAP_AVX2_NB
#define SQAP_AVX2_NB 24
#endif
constexpr int kKC = SQAP_AVX2_KC;
constexpr int kNB = SQAP_AVX2_NB;

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

// Packed x: row tiles of kMR rows (the last one zero-padded), each tile a run of K chunks of kLanes, and a chunk
// holds kLanes consecutive k of each of the kMR rows: [tile][chunk][row][lane]. The micro-kernel then reads one
// sequential stream instead of kMR strided rows. K is zero-padded to whole chunks.
inline int chunks_of(int K) { return (K + kLanes - 1) / kLanes; }

size_t linear_packed_size_avx2(int M, int K) {
  if (M == 1) return 0;  // GEMV reads the one row of x directly
  return static_cast<size_t>((M + kMR - 1) / kMR) * chunks_of(K) * kMR * kLanes;
}

void linear_pack_avx2(float* packed, const float* x, int M, int K) {
  const int chunks = chunks_of(K);
  for (int tile = 0; tile * kMR < M; tile++) {
    for (int c = 0; c < chunks; c++) {
      for (int i = 0; i < kMR; i++) {
        const int m = tile * kMR + i;
        for (int lane = 0; lane < kLanes; lane++) {
          const int k = c * kLanes + lane;
          *packed++ = m < M && k < K ? x[static_cast<size_t>(m) * K + k] : 0.0f;
        }
      }
    }
  }
}

// out[i, n+j] += Σ_{k0 <= k < k1} x[i, k] · w[n+j, k] for i < rows (<= kMR), j < NR.
// xp: the packed tile at chunk k0/kLanes; w (N,K) in type W; out (rows, N apart)
template <WeightType W, int NR>
inline void micro_packed(float* out, int N, int rows, const float* xp, const void* w, int K, int n, int k0, int k1) {
  __m256 acc[kMR][NR];
  for (int i = 0; i < kMR; i++)
    for (int j = 0; j < NR; j++) acc[i][j] = _mm256_setzero_ps();
  const size_t w_row = static_cast<size_t>(n) * K;
  int k = k0;
  for (; k + kLanes <= k1; k += kLanes, xp += kMR * kLanes) {
    __m256 wv[NR];
    for (int j = 0; j < NR; j++) wv[j] = load8<W>(w, w_row + static_cast<size_t>(j) * K + k);
    for (int i = 0; i < kMR; i++) {
      __m256 xv = _mm256_loadu_ps(xp + i * kLanes);
      for (int j = 0; j < NR; j++) acc[i][j] = _mm256_fmadd_ps(xv, wv[j], acc[i][j]);
    }
  }
  for (int i = 0; i < rows; i++) {
    for (int j = 0; j < NR; j++) {
      float sum = hsum(acc[i][j]);
      for (int kk = k; kk < k1; kk++) {  // K remainder: xp now points at the zero-padded last chunk
        sum += xp[i * kLanes + (kk - k)] * load1<W>(w, w_row + static_cast<size_t>(j) * K + kk);
      }
      out[static_cast<size_t>(i) * N + n + j] += sum;
    }
  }
}

// GEMV row: out[n+j] += Σ_{k0 <= k < k1} x[k] · w[n+j, k] for j < NR; x (K) unpacked.
template <WeightType W, int NR>
inline void micro_row(float* out, const float* x, const void* w, int K, int n, int k0, int k1) {
  __m256 acc[NR];
  for (int j = 0; j < NR; j++) acc[j] = _mm256_setzero_ps();
  const size_t w_row = static_cast<size_t>(n) * K;
  int k = k0;
  for (; k + kLanes <= k1; k += kLanes) {
    __m256 xv = _mm256_loadu_ps(x + k);
    for (int j = 0; j < NR; j++) acc[j] = _mm256_fmadd_ps(xv, load8<W>(w, w_row + static_cast<size_t>(j) * K + k), acc[j]);
  }
  for (int j = 0; j < NR; j++) {
    float sum = hsum(acc[j]);
    for (int kk = k; kk < k1; kk++) sum += x[kk] * load1<W>(w, w_row + static_cast<size_t>(j) * K + kk);
    out[n + j] += sum;
  }
}

template <WeightType W>
struct Tile {
  static constexpr int kMR = ::sqap::kMR, kNR = ::sqap::kNR, kLanes = ::sqap::kLanes, kKC = ::sqap::kKC,
                       kNB = ::sqap::kNB, kRowNR = 4;
  template <int NR>
  static void packed(float* out, int N, int rows, const float* xp, const void* w, int K, int n, int k0, int k1) {
    micro_packed<W, NR>(out, N, rows, xp, w, K, n, k0, k1);
  }
  template <int NR>
  static void row(float* out, const float* x, const void* w, int K, int n, int k0, int k1) {
    micro_row<W, NR>(out, x, w, K, n, k0, k1);
  }
};

#include "../linear_blocking.h"

template <WeightType W>
void linear_columns(float* out, const float* xs, const void* w, int M, int K, int N, int n0, int n1) {
  blocked_linear_columns<Tile<W>>(out, xs, w, M, K, N, n0, n1);
}

void linear_columns_avx2(float* out, const float* xs, const void* w, WeightType w_type, int M, int K, int N, int n0,
                         int n1) {
  switch (w_type) {
    case WeightType::f32:
      return linear_columns<WeightType::f32>(out, xs, w, M, K, N, n0, n1);
    case WeightType::bf16:
      return linear_columns<WeightType::bf16>(out, xs, w, M, K, N, n0, n1);
    case WeightType::f16:
      return linear_columns<WeightType::f16>(out, xs, w, M, K, N, n0, n1);
    case WeightType::i8:
    case WeightType::i4:
      return;  // integer weights go through linear_int / linear_dequant
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

const KernelTable kAvx2Kernels = {Isa::avx2, linear_packed_size_avx2, linear_pack_avx2, linear_columns_avx2,
                                  dot_avx2,   axpy_avx2,               gelu_avx2,        silu_mul_avx2,
                                  int_gemm_avx2, quantize_row_avx2, dequant_row_avx2};
// AVX2 + AVX-VNNI: the same float kernels, vpdpbusd for the integer GEMM
const KernelTable kAvxVnniKernels = {Isa::avxvnni, linear_packed_size_avx2, linear_pack_avx2, linear_columns_avx2,
                                     dot_avx2,     axpy_avx2,               gelu_avx2,        silu_mul_avx2,
                                     int_gemm_avxvnni, quantize_row_avx2, dequant_row_avx2};

}  // namespace sqap

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#else  // not x86-64 GCC/Clang: the path exists but is never selected

namespace sqap {
const KernelTable kAvx2Kernels = {Isa::generic, linear_packed_size_generic, linear_pack_generic, linear_columns_generic,
                                  dot_generic,   axpy_generic,               gelu_generic,        silu_mul_generic,
                                  int_gemm_generic, quantize_row_generic, dequant_row_generic};
const KernelTable kAvxVnniKernels = kAvx2Kernels;
}

#endif
