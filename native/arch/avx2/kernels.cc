// AVX2 + FMA + F16C kernels. The target is set per function (pragma below), not per file or for the whole binary,
// so the addon still loads on a CPU without AVX2; dispatch.cc only selects this table when the CPU has it.
// Everything but the table is file-local (anonymous namespace): no inline function compiled for AVX2 can be merged
// by the linker into code that runs on the generic path.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "../../kernel_table.h"
#include "../../threadpool.h"

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

#include "../panel_blocking.h"

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Packed x: row tiles of kMR rows (the last one zero-padded), each tile a run of K chunks of kLanes, and a chunk
// holds kLanes consecutive k of each of the kMR rows: [tile][chunk][row][lane]. The micro-kernel then reads one
// sequential stream instead of kMR strided rows. K is zero-padded to whole chunks.
// From this many rows on, the linear runs as an outer-product GEMM on packed weight panels (below, "panel path");
// under it, as dot products on the weights in place (the micro-kernel above), which needs no weight packing.
constexpr int kPanelMinM = 8;
// Panel path: a register tile of kPR rows of x against one panel of kPN = 16 weight rows (2 vectors); 6 × 2
// accumulators + 2 weight vectors + 1 broadcast = 15 of the 16 ymm registers (the shape of MLAS's and BLIS's AVX2
// SGEMM kernels). K is cut into blocks of kPKC: a panel (kPKC × 16 floats, 24 KB) stays in L1 while every x tile
// of the block streams past it from L2. Sizes from single-thread selftest runs on a 2-core EPYC (32 KB L1d, 512 KB
// L2), M = 290, K = N = 4096, medians of 4 interleaved runs: f32 / bf16 GFLOP/s 56 / 58 for the dot-product kernel,
// 63 / 69 at kPKC 256, 68 / 73 at 512, 65 / 77 at 384; SQAP_AVX2_PANEL_KC/NB override them at compile time.
constexpr int kPR = 6;
constexpr int kPN = 16;
#ifndef SQAP_AVX2_PANEL_KC
#define SQAP_AVX2_PANEL_KC 384
#endif
#ifndef SQAP_AVX2_PANEL_NB
#define SQAP_AVX2_PANEL_NB 4
#endif
constexpr int kPKC = SQAP_AVX2_PANEL_KC;
// panels packed at a time per thread (kPNB × 24 KB of f32 in L2)
constexpr int kPNB = SQAP_AVX2_PANEL_NB;

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
    for (int j = 0; j < NR; j++) wv[j] = widen8<W>(w, w_row + static_cast<size_t>(j) * K + k);
    for (int i = 0; i < kMR; i++) {
      __m256 xv = _mm256_loadu_ps(xp + i * kLanes);
      for (int j = 0; j < NR; j++) acc[i][j] = _mm256_fmadd_ps(xv, wv[j], acc[i][j]);
    }
  }
  for (int i = 0; i < rows; i++) {
    for (int j = 0; j < NR; j++) {
      float sum = hsum(acc[i][j]);
      for (int kk = k; kk < k1; kk++) {  // K remainder: xp now points at the zero-padded last chunk
        sum += xp[i * kLanes + (kk - k)] * widen1<W>(w, w_row + static_cast<size_t>(j) * K + kk);
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
    for (int j = 0; j < NR; j++) acc[j] = _mm256_fmadd_ps(xv, widen8<W>(w, w_row + static_cast<size_t>(j) * K + k), acc[j]);
  }
  for (int j = 0; j < NR; j++) {
    float sum = hsum(acc[j]);
    for (int kk = k; kk < k1; kk++) sum += x[kk] * widen1<W>(w, w_row + static_cast<size_t>(j) * K + kk);
    out[n + j] += sum;
  }
}

// out[i, n+j] += Σ_k ap[k][i] · bp[k][j] over kc values of k, for i < rows, j < cols (at most kPR and kPN).
// ap: a packed x tile at the block's first k ([k][kPR]); bp: a packed panel ([k][kPN]).
inline void panel_kernel(float* out, int N, int rows, int cols, const float* ap, const float* bp, int kc) {
  __m256 c[kPR][2];
  for (int i = 0; i < kPR; i++) c[i][0] = c[i][1] = _mm256_setzero_ps();
  for (int k = 0; k < kc; k++, ap += kPR, bp += kPN) {
    const __m256 b0 = _mm256_loadu_ps(bp);
    const __m256 b1 = _mm256_loadu_ps(bp + 8);
    for (int i = 0; i < kPR; i++) {
      const __m256 a = _mm256_broadcast_ss(ap + i);
      c[i][0] = _mm256_fmadd_ps(a, b0, c[i][0]);
      c[i][1] = _mm256_fmadd_ps(a, b1, c[i][1]);
    }
  }
  // constant indices only (a runtime row count on c[i] makes the compiler keep c in memory, not in registers)
  if (cols == kPN && rows == kPR) {
#pragma GCC unroll 6
    for (int i = 0; i < kPR; i++) {
      float* o = out + static_cast<size_t>(i) * N;
      _mm256_storeu_ps(o, _mm256_add_ps(_mm256_loadu_ps(o), c[i][0]));
      _mm256_storeu_ps(o + 8, _mm256_add_ps(_mm256_loadu_ps(o + 8), c[i][1]));
    }
    return;
  }
  alignas(32) float tile[kPR][kPN];
#pragma GCC unroll 6
  for (int i = 0; i < kPR; i++) {
    _mm256_store_ps(tile[i], c[i][0]);
    _mm256_store_ps(tile[i] + 8, c[i][1]);
  }
  for (int i = 0; i < rows; i++) {
    float* o = out + static_cast<size_t>(i) * N;
    for (int j = 0; j < cols; j++) o[j] += tile[i][j];
  }
}

struct Panel {
  static constexpr int kPR = ::sqap::kPR, kPN = ::sqap::kPN, kPKC = ::sqap::kPKC, kPNB = ::sqap::kPNB;
  static void kernel(float* out, int N, int rows, int cols, const float* ap, const float* bp, int kc) {
    panel_kernel(out, N, rows, cols, ap, bp, kc);
  }
};

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

size_t linear_packed_size_avx2(int M, int K) {
  if (M == 1) return 0;  // GEMV reads the one row of x directly
  if (M >= kPanelMinM) return panel_packed_size<Panel>(M, K);
  return blocked_packed_size<Tile<WeightType::f32>>(M, K);  // the tile's sizes do not depend on the weight type
}

void linear_pack_avx2(float* packed, const float* x, int M, int K) {
  if (M >= kPanelMinM) return panel_pack_x<Panel>(packed, x, M, K);
  blocked_pack_x<Tile<WeightType::f32>>(packed, x, M, K);
}

template <WeightType W>
void linear_columns(float* out, const float* xs, const void* w, int M, int K, int N, int n0, int n1) {
  if (M >= kPanelMinM) return panel_linear_columns<Panel, W>(out, xs, w, M, K, N, n0, n1);
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
                                  int_gemm_avx2, quantize_row_avx2, dequant_row_avx2, dot_i8_avx2, axpy_i8_avx2, exp_shift_avx2, nullptr, nullptr};
// AVX2 + AVX-VNNI: the same float kernels, vpdpbusd for the integer GEMM
const KernelTable kAvxVnniKernels = {Isa::avxvnni, linear_packed_size_avx2, linear_pack_avx2, linear_columns_avx2,
                                     dot_avx2,     axpy_avx2,               gelu_avx2,        silu_mul_avx2,
                                     int_gemm_avxvnni, quantize_row_avx2, dequant_row_avx2, dot_i8_avx2, axpy_i8_avx2, exp_shift_avx2, nullptr, nullptr};

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
                                  int_gemm_generic, quantize_row_generic, dequant_row_generic, dot_i8_generic, axpy_i8_generic, exp_shift_generic, nullptr, nullptr};
const KernelTable kAvxVnniKernels = kAvx2Kernels;
}

#endif
