// AVX-512 (F, BW, VL) kernels. Same structure as arch/avx2/kernels.cc with 16-float vectors, a larger register tile
// (32 zmm registers) and masked loads for the K remainder instead of a scalar tail.
//
// These kernels never round x: bf16 weights are widened by a shift (exact) and meet f32 x in the FMA. The bf16 dot
// product (_mm512_dpbf16_ps), which rounds x to bf16, runs only on weights prepacked for it by name (bf16dot.cc).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "../../kernel_table.h"
#include "../../threadpool.h"

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
constexpr int kLanes = 16;
// Blocking as in arch/avx2: a packed x tile (kMR × kKC floats, 24 KB) stays in L1 while it meets every weight tile
// of a block of kNB weight rows (64 KB of f32 in L2).
constexpr int kKC = 1024;
constexpr int kNB = 16;

#include "../panel_blocking.h"
#include "tile.h"

// From this many rows on, the linear runs as an outer-product GEMM on packed weight panels (../panel_blocking.h),
// as on the AVX2 path; under it, as dot products on the weights in place (micro_packed below).
constexpr int kPanelMinM = 8;
// Panel path: a register tile of kPR = 12 rows of x against one panel of kPN = 32 weight rows (2 zmm): 24
// accumulators + 2 weight vectors + 1 broadcast of the 32 zmm registers (the shape of MLAS's AVX-512 SGEMM kernel).
// A panel is kPKC × 32 floats (kPKC 768: 96 KB, in L2 rather than L1); kPNB 8 panels per group. From a selftest sweep
// on a 2-core Zen 4 EPYC (native/README.md, "panel path": K blocks 256-768 × 2-8 panels within ~10% of each other,
// 768 × 8 highest); SQAP_AVX512_PANEL_KC/NB override them at compile time.
constexpr int kPR = 12;
constexpr int kPN = 32;  // add_tile32 (tile.h) is a 32-column tile
#ifndef SQAP_AVX512_PANEL_KC
#define SQAP_AVX512_PANEL_KC 768
#endif
#ifndef SQAP_AVX512_PANEL_NB
#define SQAP_AVX512_PANEL_NB 8
#endif
constexpr int kPKC = SQAP_AVX512_PANEL_KC;
constexpr int kPNB = SQAP_AVX512_PANEL_NB;

// out[i, j] += Σ_{k < kc} ap[k·kPR + i] · bp[k·kPN + j] for i < rows (<= MR), j < cols (<= kPN). MR is 12, or 6 for
// a last tile of at most 6 rows (the packed tile is still kPR rows apart).
// B is f32 [k][kPN] (a packed panel, or a prepacked f32 one), or with kBf16Pairs a prepacked bf16 panel: one 64-byte
// k-row whose 32-bit lane i holds columns i (low half) and 16 + i (high half), widened exactly by a shift and a mask
// (kernels.h, "Prepacked float weights"). Same products in the same order either way.
template <int MR, bool kBf16Pairs = false>
inline void panel_kernel(float* out, int N, int rows, int cols, const float* ap, const void* bpv, int kc) {
  __m512 c[MR][2];
  for (int i = 0; i < MR; i++) c[i][0] = c[i][1] = _mm512_setzero_ps();
  const __m512i high_half = _mm512_set1_epi32(static_cast<int>(0xFFFF0000u));
  for (int k = 0; k < kc; k++, ap += kPR) {
    __m512 b0, b1;
    if constexpr (kBf16Pairs) {
      const __m512i pairs = _mm512_loadu_si512(static_cast<const uint16_t*>(bpv) + static_cast<size_t>(k) * kPN);
      b0 = _mm512_castsi512_ps(_mm512_slli_epi32(pairs, 16));
      b1 = _mm512_castsi512_ps(_mm512_and_si512(pairs, high_half));
    } else {
      const float* bp = static_cast<const float*>(bpv) + static_cast<size_t>(k) * kPN;
      b0 = _mm512_loadu_ps(bp);
      b1 = _mm512_loadu_ps(bp + 16);
    }
    for (int i = 0; i < MR; i++) {
      const __m512 a = _mm512_set1_ps(ap[i]);
      c[i][0] = _mm512_fmadd_ps(a, b0, c[i][0]);
      c[i][1] = _mm512_fmadd_ps(a, b1, c[i][1]);
    }
  }
  add_tile32<MR>(out, N, rows, cols, c);
}

struct Panel {
  static constexpr int kPR = ::sqap::kPR, kPN = ::sqap::kPN, kPKC = ::sqap::kPKC, kPNB = ::sqap::kPNB;
  static void kernel(float* out, int N, int rows, int cols, const float* ap, const float* bp, int kc) {
    if (rows > kPR / 2) return panel_kernel<kPR>(out, N, rows, cols, ap, bp, kc);
    panel_kernel<kPR / 2>(out, N, rows, cols, ap, bp, kc);
  }
};

// Prepacked weights: a panel of kernels.h's layout is this path's packed panel (f32) or its bf16 pairs, so the
// register kernel runs on it in place; x is packed as for the panel path, for every M.
static_assert(kPN == kPrepackRows, "the AVX-512 panel is the prepacked panel");

template <WeightType W>
void prepacked_columns(float* out, const float* xs, const void* packed, int M, int K, int N, int p0, int p1) {
  constexpr size_t kBytes = W == WeightType::f32 ? 4 : 2;
  const int tiles = (M + kPR - 1) / kPR;
  const size_t tile_stride = static_cast<size_t>(K) * kPR;
  for (int k0 = 0; k0 < K; k0 += kPKC) {
    const int kc = k0 + kPKC < K ? kPKC : K - k0;
    for (int p = p0; p < p1; p++) {
      const int n = p * kPN;
      const int cols = N - n < kPN ? N - n : kPN;
      const void* bp = static_cast<const char*>(packed) + (static_cast<size_t>(p) * K + k0) * kPN * kBytes;
      for (int t = 0; t < tiles; t++) {
        const int rows = M - t * kPR < kPR ? M - t * kPR : kPR;
        float* o = out + static_cast<size_t>(t) * kPR * N + n;
        const float* ap = xs + t * tile_stride + static_cast<size_t>(k0) * kPR;
        constexpr bool kPairs = W == WeightType::bf16;
        if (rows > kPR / 2) {
          panel_kernel<kPR, kPairs>(o, N, rows, cols, ap, bp, kc);
        } else {
          panel_kernel<kPR / 2, kPairs>(o, N, rows, cols, ap, bp, kc);
        }
      }
    }
  }
}

size_t prepacked_x_size_avx512(int M, int K) { return panel_packed_size<Panel>(M, K); }
void prepacked_pack_x_avx512(float* packed, const float* x, int M, int K) { panel_pack_x<Panel>(packed, x, M, K); }
void prepacked_columns_avx512(float* out, const float* xs, const void* packed, WeightType w_type, int M, int K, int N,
                              int p0, int p1) {
  if (w_type == WeightType::f32) return prepacked_columns<WeightType::f32>(out, xs, packed, M, K, N, p0, p1);
  prepacked_columns<WeightType::bf16>(out, xs, packed, M, K, N, p0, p1);
}

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

inline __mmask16 tail_mask(int count) { return static_cast<__mmask16>((1u << count) - 1); }

// out[i, n+j] += Σ_{k0 <= k < k1} x[i, k] · w[n+j, k] for i < rows (<= kMR), j < NR.
// xp: the packed tile at chunk k0/kLanes; w (N,K) in type W; out (rows, N apart)
template <WeightType W, int NR>
inline void micro_packed(float* out, int N, int rows, const float* xp, const void* w, int K, int n, int k0, int k1) {
  __m512 acc[kMR][NR];
  for (int i = 0; i < kMR; i++)
    for (int j = 0; j < NR; j++) acc[i][j] = _mm512_setzero_ps();
  const size_t w_row = static_cast<size_t>(n) * K;
  int k = k0;
  for (; k + kLanes <= k1; k += kLanes, xp += kMR * kLanes) {
    __m512 wv[NR];
    for (int j = 0; j < NR; j++) wv[j] = load16<W>(w, w_row + static_cast<size_t>(j) * K + k);
    for (int i = 0; i < kMR; i++) {
      __m512 xv = _mm512_loadu_ps(xp + i * kLanes);
      for (int j = 0; j < NR; j++) acc[i][j] = _mm512_fmadd_ps(xv, wv[j], acc[i][j]);
    }
  }
  if (k < k1) {  // K remainder: masked weight loads; the packed x chunk is already zero-padded
    const __mmask16 mask = tail_mask(k1 - k);
    __m512 wv[NR];
    for (int j = 0; j < NR; j++) wv[j] = load16<W>(w, w_row + static_cast<size_t>(j) * K + k, mask);
    for (int i = 0; i < kMR; i++) {
      __m512 xv = _mm512_loadu_ps(xp + i * kLanes);
      for (int j = 0; j < NR; j++) acc[i][j] = _mm512_fmadd_ps(xv, wv[j], acc[i][j]);
    }
  }
  for (int i = 0; i < rows; i++)
    for (int j = 0; j < NR; j++) out[static_cast<size_t>(i) * N + n + j] += hsum(acc[i][j]);
}

// GEMV row: out[n+j] += Σ_{k0 <= k < k1} x[k] · w[n+j, k] for j < NR; x (K) unpacked.
template <WeightType W, int NR>
inline void micro_row(float* out, const float* x, const void* w, int K, int n, int k0, int k1) {
  __m512 acc[NR];
  for (int j = 0; j < NR; j++) acc[j] = _mm512_setzero_ps();
  const size_t w_row = static_cast<size_t>(n) * K;
  int k = k0;
  for (; k + kLanes <= k1; k += kLanes) {
    __m512 xv = _mm512_loadu_ps(x + k);
    for (int j = 0; j < NR; j++) acc[j] = _mm512_fmadd_ps(xv, load16<W>(w, w_row + static_cast<size_t>(j) * K + k), acc[j]);
  }
  if (k < k1) {
    const __mmask16 mask = tail_mask(k1 - k);
    __m512 xv = _mm512_maskz_loadu_ps(mask, x + k);
    for (int j = 0; j < NR; j++) {
      acc[j] = _mm512_fmadd_ps(xv, load16<W>(w, w_row + static_cast<size_t>(j) * K + k, mask), acc[j]);
    }
  }
  for (int j = 0; j < NR; j++) out[n + j] += hsum(acc[j]);
}

template <WeightType W>
struct Tile {
  static constexpr int kMR = ::sqap::kMR, kNR = ::sqap::kNR, kLanes = ::sqap::kLanes, kKC = ::sqap::kKC,
                       kNB = ::sqap::kNB, kRowNR = 8;
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

size_t linear_packed_size_avx512(int M, int K) {
  if (M == 1) return 0;  // GEMV reads the one row of x directly
  if (M >= kPanelMinM) return panel_packed_size<Panel>(M, K);
  return blocked_packed_size<Tile<WeightType::f32>>(M, K);  // the tile's sizes do not depend on the weight type
}

void linear_pack_avx512(float* packed, const float* x, int M, int K) {
  if (M >= kPanelMinM) return panel_pack_x<Panel>(packed, x, M, K);
  blocked_pack_x<Tile<WeightType::f32>>(packed, x, M, K);
}

template <WeightType W>
void linear_columns(float* out, const float* xs, const void* w, int M, int K, int N, int n0, int n1) {
  if (M >= kPanelMinM) return panel_linear_columns<Panel, W>(out, xs, w, M, K, N, n0, n1);
  blocked_linear_columns<Tile<W>>(out, xs, w, M, K, N, n0, n1);
}

void linear_columns_avx512(float* out, const float* xs, const void* w, WeightType w_type, int M, int K, int N, int n0,
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

// e^x for the softmax's shifted scores (x <= 0), 16 at a time: Cephes expf's reduction x = n·ln2 + r (ln2 in two
// parts), e^r by its degree-6 polynomial (relative error about 1e-7), times 2^n by scalef. Below -87.3 the input is
// clamped (e^x < 1.2e-38 there, far under the probabilities' tolerance).
inline __m512 exp16(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-87.33654f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 y = _mm512_set1_ps(1.9875691500e-4f);
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.3981999507e-3f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(8.3334519073e-3f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(4.1665795894e-2f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.6666665459e-1f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(5.0000001201e-1f));
  y = _mm512_fmadd_ps(y, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(y, n);
}

// out (width <= 16·NV) = Σ_{s < visible} p[s] · v[s·v_stride + i]: NV accumulators held in registers over all keys
template <int NV>
inline void weighted_rows(float* out, const float* p, const float* v, size_t v_stride, int visible, int width) {
  const __mmask16 last = tail_mask(width - 16 * (NV - 1));
  // NV <= 4: even and odd keys into two sets of accumulators (eight chains hide the FMA latency), added at the end
  constexpr int kSets = NV <= 4 ? 2 : 1;
  __m512 acc[kSets][NV];
  for (int j = 0; j < kSets; j++)
    for (int i = 0; i < NV; i++) acc[j][i] = _mm512_setzero_ps();
  int s = 0;
  for (; s + kSets <= visible; s += kSets) {
#pragma GCC unroll 2
    for (int j = 0; j < kSets; j++) {
      const __m512 ps = _mm512_set1_ps(p[s + j]);
      const float* row = v + static_cast<size_t>(s + j) * v_stride;
#pragma GCC unroll 8
      for (int i = 0; i < NV - 1; i++) acc[j][i] = _mm512_fmadd_ps(ps, _mm512_loadu_ps(row + 16 * i), acc[j][i]);
      acc[j][NV - 1] = _mm512_fmadd_ps(ps, _mm512_maskz_loadu_ps(last, row + 16 * (NV - 1)), acc[j][NV - 1]);
    }
  }
  for (; s < visible; s++) {
    const __m512 ps = _mm512_set1_ps(p[s]);
    const float* row = v + static_cast<size_t>(s) * v_stride;
#pragma GCC unroll 8
    for (int i = 0; i < NV - 1; i++) acc[0][i] = _mm512_fmadd_ps(ps, _mm512_loadu_ps(row + 16 * i), acc[0][i]);
    acc[0][NV - 1] = _mm512_fmadd_ps(ps, _mm512_maskz_loadu_ps(last, row + 16 * (NV - 1)), acc[0][NV - 1]);
  }
  if constexpr (kSets == 2) {
    for (int i = 0; i < NV; i++) acc[0][i] = _mm512_add_ps(acc[0][i], acc[1][i]);
  }
#pragma GCC unroll 8
  for (int i = 0; i < NV - 1; i++) _mm512_storeu_ps(out + 16 * i, acc[0][i]);
  _mm512_mask_storeu_ps(out + 16 * (NV - 1), last, acc[0][NV - 1]);
}

void attention_row_avx512(float* out, float* p, const float* q, const float* kt, int S, const float* v,
                          size_t v_stride, int visible, int Dh, float scale) {
  // scores: 64 keys at a time, four accumulators sharing each broadcast of q[d]; then 16 (masked) at a time
  int s = 0;
  // 128 keys: eight independent accumulators cover the FMA latency (two FMA pipes × four cycles)
  for (; s + 128 <= visible; s += 128) {
    __m512 a[8];
    for (int i = 0; i < 8; i++) a[i] = _mm512_setzero_ps();
    for (int d = 0; d < Dh; d++) {
      const __m512 qd = _mm512_set1_ps(q[d]);
      const float* row = kt + static_cast<size_t>(d) * S + s;
#pragma GCC unroll 8
      for (int i = 0; i < 8; i++) a[i] = _mm512_fmadd_ps(qd, _mm512_loadu_ps(row + 16 * i), a[i]);
    }
    const __m512 sc = _mm512_set1_ps(scale);
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) _mm512_storeu_ps(p + s + 16 * i, _mm512_mul_ps(a[i], sc));
  }
  for (; s + 64 <= visible; s += 64) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int d = 0; d < Dh; d++) {
      const __m512 qd = _mm512_set1_ps(q[d]);
      const float* row = kt + static_cast<size_t>(d) * S + s;
      a0 = _mm512_fmadd_ps(qd, _mm512_loadu_ps(row), a0);
      a1 = _mm512_fmadd_ps(qd, _mm512_loadu_ps(row + 16), a1);
      a2 = _mm512_fmadd_ps(qd, _mm512_loadu_ps(row + 32), a2);
      a3 = _mm512_fmadd_ps(qd, _mm512_loadu_ps(row + 48), a3);
    }
    const __m512 sc = _mm512_set1_ps(scale);
    _mm512_storeu_ps(p + s, _mm512_mul_ps(a0, sc));
    _mm512_storeu_ps(p + s + 16, _mm512_mul_ps(a1, sc));
    _mm512_storeu_ps(p + s + 32, _mm512_mul_ps(a2, sc));
    _mm512_storeu_ps(p + s + 48, _mm512_mul_ps(a3, sc));
  }
  for (; s < visible; s += 16) {
    const __mmask16 mask = tail_mask(visible - s < 16 ? visible - s : 16);
    __m512 a = _mm512_setzero_ps();
    for (int d = 0; d < Dh; d++) {
      a = _mm512_fmadd_ps(_mm512_set1_ps(q[d]), _mm512_maskz_loadu_ps(mask, kt + static_cast<size_t>(d) * S + s), a);
    }
    _mm512_mask_storeu_ps(p + s, mask, _mm512_mul_ps(a, _mm512_set1_ps(scale)));
  }
  // softmax
  __m512 mx = _mm512_set1_ps(-INFINITY);
  for (s = 0; s < visible; s += 16) {
    const __mmask16 mask = tail_mask(visible - s < 16 ? visible - s : 16);
    mx = _mm512_max_ps(mx, _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), mask, p + s));
  }
  const __m512 shift = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
  __m512 total = _mm512_setzero_ps();
  for (s = 0; s < visible; s += 16) {
    const __mmask16 mask = tail_mask(visible - s < 16 ? visible - s : 16);
    const __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(mask, p + s), shift));
    total = _mm512_add_ps(total, _mm512_maskz_mov_ps(mask, e));
    _mm512_mask_storeu_ps(p + s, mask, e);
  }
  const __m512 inv = _mm512_set1_ps(1.0f / hsum(total));
  for (s = 0; s < visible; s += 16) {
    const __mmask16 mask = tail_mask(visible - s < 16 ? visible - s : 16);
    _mm512_mask_storeu_ps(p + s, mask, _mm512_mul_ps(_mm512_maskz_loadu_ps(mask, p + s), inv));
  }
  // out = p · V, 128 dimensions (8 accumulators) at a time
  for (int d0 = 0; d0 < Dh; d0 += 128) {
    const int width = Dh - d0 < 128 ? Dh - d0 : 128;
    const float* vd = v + d0;
    switch ((width + 15) / 16) {
      case 1: weighted_rows<1>(out + d0, p, vd, v_stride, visible, width); break;
      case 2: weighted_rows<2>(out + d0, p, vd, v_stride, visible, width); break;
      case 3: weighted_rows<3>(out + d0, p, vd, v_stride, visible, width); break;
      case 4: weighted_rows<4>(out + d0, p, vd, v_stride, visible, width); break;
      case 5: weighted_rows<5>(out + d0, p, vd, v_stride, visible, width); break;
      case 6: weighted_rows<6>(out + d0, p, vd, v_stride, visible, width); break;
      case 7: weighted_rows<7>(out + d0, p, vd, v_stride, visible, width); break;
      default: weighted_rows<8>(out + d0, p, vd, v_stride, visible, width); break;
    }
  }
}

}  // namespace

const PrepackedKernels kAvx512Prepacked = {prepacked_x_size_avx512, prepacked_pack_x_avx512, prepacked_columns_avx512};

// AVX-512 without VNNI runs the integer GEMM on the AVX2 maddubs kernel
const KernelTable kAvx512Kernels = {Isa::avx512,          linear_packed_size_avx512, linear_pack_avx512,
                                    linear_columns_avx512, dot_avx512,                axpy_avx512,
                                    gelu_avx2,             silu_mul_avx2,             int_gemm_avx2,
                                    quantize_row_avx512,   dequant_row_avx2, dot_i8_avx2, axpy_i8_avx2, exp_shift_avx2, &kAvx512Prepacked, attention_row_avx512};
const KernelTable kAvx512VnniKernels = {Isa::avx512vnni,     linear_packed_size_avx512, linear_pack_avx512,
                                        linear_columns_avx512, dot_avx512,                axpy_avx512,
                                        gelu_avx2,             silu_mul_avx2,             int_gemm_avx512vnni,
                                        quantize_row_avx512,   dequant_row_avx2, dot_i8_avx2, axpy_i8_avx2, exp_shift_avx2, &kAvx512Prepacked, attention_row_avx512};

}  // namespace sqap

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#else  // not x86-64 GCC/Clang: the path exists but is never selected

namespace sqap {
const KernelTable kAvx512Kernels = {Isa::generic,          linear_packed_size_generic, linear_pack_generic,
                                    linear_columns_generic, dot_generic,                axpy_generic,
                                    gelu_generic,           silu_mul_generic,           int_gemm_generic,
                                    quantize_row_generic,   dequant_row_generic, dot_i8_generic, axpy_i8_generic, exp_shift_generic, nullptr, nullptr};
const KernelTable kAvx512VnniKernels = kAvx512Kernels;
}

#endif
