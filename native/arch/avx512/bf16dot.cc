// AVX512-BF16 kernels for prepacked bf16-dot weights (kernels.h linear_prepacked_dot): vdpbf16ps multiplies 32
// bf16 pairs and adds each lane's two products to an f32 accumulator, two k per instruction where the f32 panel
// kernel (kernels.cc) does one per FMA. x is rounded to bf16 once per call (vcvtne2ps2bf16, round to nearest even).
//
// Register tile: 12 rows of x × one panel of 32 weight rows (2 zmm per pair-row): 24 accumulators + 2 weight vectors
// + 1 broadcast pair, as the f32 panel kernel. K blocks of kQC pairs: the panel's block (kQC × 128 bytes, 32 KB) stays
// in L1 while every x tile of the block (12 × kQC × 4 bytes each) streams past it from L2.
#include <cstddef>
#include <cstdint>

#include "../../kernel_table.h"
#include "../../threadpool.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && \
    (defined(__clang__) || __GNUC__ >= 10)  // GCC 10 and Clang 9 know avx512bf16
#include <immintrin.h>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512bf16")
#endif

namespace sqap {

namespace {

#include "tile.h"

constexpr int kTR = kDotTileRows;  // 12
constexpr int kPN = kPrepackRows;  // 32
static_assert(kPN == 32, "add_tile32 (tile.h) is a 32-column tile");
#ifndef SQAP_BF16DOT_QC
#define SQAP_BF16DOT_QC 256
#endif
constexpr int kQC = SQAP_BF16DOT_QC;

size_t dot_x_size(int M, int K) {
  return static_cast<size_t>((M + kTR - 1) / kTR) * ((K + 1) / 2) * kTR;
}

// x (M,K) f32 -> [tile][q][row] bf16 pairs. Each row is converted 32 floats (16 pairs) at a time, then its pairs are
// written 12 apart; large inputs are split over the pool by tiles.
void dot_pack_x(uint32_t* xs, const float* x, int M, int K) {
  const int tiles = (M + kTR - 1) / kTR;
  const int Q = (K + 1) / 2;
  auto pack_tiles = [&](int t0, int t1) {
    alignas(64) uint32_t pairs[16];
    for (int t = t0; t < t1; t++) {
      uint32_t* tile = xs + static_cast<size_t>(t) * Q * kTR;
      for (int i = 0; i < kTR; i++) {
        const int m = t * kTR + i;
        if (m >= M) {
          for (int q = 0; q < Q; q++) tile[static_cast<size_t>(q) * kTR + i] = 0;
          continue;
        }
        const float* row = x + static_cast<size_t>(m) * K;
        for (int k = 0; k < K; k += 32) {
          const int left = K - k;
          const __mmask16 lo_mask = left >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << left) - 1);
          const __mmask16 hi_mask =
              left >= 32 ? 0xFFFF : (left <= 16 ? 0 : static_cast<__mmask16>((1u << (left - 16)) - 1));
          const __m512 lo = _mm512_maskz_loadu_ps(lo_mask, row + k);
          const __m512 hi = _mm512_maskz_loadu_ps(hi_mask, row + k + 16);
          // element order: lo's 16 values, then hi's; 32-bit lane l = (x[k + 2l], x[k + 2l + 1])
          _mm512_store_si512(pairs, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
          const int q0 = k / 2;
          const int count = Q - q0 < 16 ? Q - q0 : 16;
          for (int l = 0; l < count; l++) tile[static_cast<size_t>(q0 + l) * kTR + i] = pairs[l];
        }
      }
    }
  };
  const bool small = static_cast<size_t>(M) * K < (size_t{1} << 18);
  parallel_range(tiles, 1, small ? tiles + 1 : 0, pack_tiles);
}

// out[i, j] += Σ_{q < kq} dot(ap[q·kTR + i], bp[q·32 + j]) for i < rows (<= MR), j < cols (<= 32). MR is 12, or 6
// for a last tile of at most 6 rows (the packed tile is still kTR rows apart).
template <int MR>
inline void dot_kernel(float* out, int N, int rows, int cols, const uint32_t* ap, const uint16_t* bp, int kq) {
  __m512 c[MR][2];
  for (int i = 0; i < MR; i++) c[i][0] = c[i][1] = _mm512_setzero_ps();
  for (int q = 0; q < kq; q++, ap += kTR, bp += 2 * kPN) {
    const __m512bh b0 = (__m512bh)(_mm512_loadu_si512(bp));
    const __m512bh b1 = (__m512bh)(_mm512_loadu_si512(bp + kPN));
    for (int i = 0; i < MR; i++) {
      const __m512bh a = (__m512bh)(_mm512_set1_epi32(static_cast<int>(ap[i])));
      c[i][0] = _mm512_dpbf16_ps(c[i][0], a, b0);
      c[i][1] = _mm512_dpbf16_ps(c[i][1], a, b1);
    }
  }
  add_tile32<MR>(out, N, rows, cols, c);
}

void dot_columns(float* out, const uint32_t* xs, const uint16_t* packed, int M, int K, int N, int p0, int p1) {
  const int Q = (K + 1) / 2;
  const int tiles = (M + kTR - 1) / kTR;
  const size_t tile_stride = static_cast<size_t>(Q) * kTR;
  for (int q0 = 0; q0 < Q; q0 += kQC) {
    const int kq = q0 + kQC < Q ? kQC : Q - q0;
    for (int p = p0; p < p1; p++) {
      const int n = p * kPN;
      const int cols = N - n < kPN ? N - n : kPN;
      const uint16_t* bp = packed + (static_cast<size_t>(p) * Q + q0) * 2 * kPN;
      for (int t = 0; t < tiles; t++) {
        const int rows = M - t * kTR < kTR ? M - t * kTR : kTR;
        float* o = out + static_cast<size_t>(t) * kTR * N + n;
        const uint32_t* ap = xs + t * tile_stride + static_cast<size_t>(q0) * kTR;
        if (rows > kTR / 2) {
          dot_kernel<kTR>(o, N, rows, cols, ap, bp, kq);
        } else {
          dot_kernel<kTR / 2>(o, N, rows, cols, ap, bp, kq);
        }
      }
    }
  }
}

const PrepackedDotKernels kKernels = {dot_x_size, dot_pack_x, dot_columns};

}  // namespace

const PrepackedDotKernels* const kAvx512Bf16DotKernels = &kKernels;

}  // namespace sqap

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#else

namespace sqap {
const PrepackedDotKernels* const kAvx512Bf16DotKernels = nullptr;
}  // namespace sqap

#endif
