// The panel path of the f32/bf16/f16 linear (an outer-product GEMM on packed weight panels), shared by the AVX2 and
// AVX-512 paths: the x packing, the weight-panel packing and the cache blocking are the same, only the register
// kernel differs. Include it INSIDE `namespace sqap { namespace { ... } }` of an arch file, after its target pragma
// (which must include avx2, fma and f16c), so the instantiations are compiled for that ISA and stay file-local.
//
// `Panel` supplies
//   kPR    rows of x per register tile; x is packed as [tile of kPR rows][k][row], zero-padded rows
//   kPN    weight rows per panel (a multiple of 8); a panel is [k][kPN] floats, rows past N zero
//   kPKC   K block: one panel (kPKC × kPN floats) stays in L1 while every x tile of the block streams past it
//   kPNB   panels packed at a time per thread (kPNB panels in L2)
//   static void kernel(out, N, rows, cols, ap, bp, kc)
//          out[i, j] += Σ_{k < kc} ap[k·kPR + i] · bp[k·kPN + j] for i < rows (<= kPR), j < cols (<= kPN)
// The weights are widened to f32 once per K block, so bf16/f16 weights cost what f32 does in the kernel.

// 8 consecutive weights from index i as f32 (bf16 is the top half of an f32: widen and shift left by 16, exact)
template <WeightType W>
inline __m256 widen8(const void* w, size_t i) {
  if constexpr (W == WeightType::f32) {
    return _mm256_loadu_ps(static_cast<const float*>(w) + i);
  } else if constexpr (W == WeightType::bf16) {
    __m128i bits = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(w) + i));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(bits), 16));
  } else {
    __m128i bits = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(w) + i));
    return _mm256_cvtph_ps(bits);
  }
}

template <WeightType W>
inline float widen1(const void* w, size_t i) {
  if constexpr (W == WeightType::f32) {
    return static_cast<const float*>(w)[i];
  } else if constexpr (W == WeightType::bf16) {
    uint32_t u = static_cast<uint32_t>(static_cast<const uint16_t*>(w)[i]) << 16;
    return _mm_cvtss_f32(_mm_castsi128_ps(_mm_cvtsi32_si128(static_cast<int>(u))));
  } else {
    return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<const uint16_t*>(w)[i])));
  }
}

// 8 rows of 8 floats, transposed in registers: r[i][j] -> r[j][i]
inline void panel_transpose8(__m256 r[8]) {
  __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
  r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
  r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
  r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
  r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
  r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
  r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
  r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

// floats of scratch x needs on the panel path
template <class Panel>
size_t panel_packed_size(int M, int K) {
  return static_cast<size_t>((M + Panel::kPR - 1) / Panel::kPR) * K * Panel::kPR;
}

// x (M,K) -> [tile of kPR rows][k][row], zero-padded rows. A memory-bound copy (4.75 MB for M = 290, K = 4096, a
// few percent of the GEMM on one thread), so large ones are split over the pool by row tiles. (The arch file includes
// threadpool.h; linear() calls this on its own thread before its parallel_range, never from a pool task.)
template <class Panel>
void panel_pack_x(float* packed, const float* x, int M, int K) {
  constexpr int kPR = Panel::kPR;
  const int tiles = (M + kPR - 1) / kPR;
  const size_t tile_floats = static_cast<size_t>(K) * kPR;
  auto pack_tiles = [&](int t0, int t1) {
    for (int tile = t0; tile < t1; tile++) {
      float* dst = packed + tile * tile_floats;
      for (int k = 0; k < K; k++) {
        for (int i = 0; i < kPR; i++) {
          const int m = tile * kPR + i;
          *dst++ = m < M ? x[static_cast<size_t>(m) * K + k] : 0.0f;
        }
      }
    }
  };
  const bool small = static_cast<size_t>(M) * K < (size_t{1} << 18);  // under 1 MB: waking the pool costs more
  parallel_range(tiles, 1, small ? tiles + 1 : 0, pack_tiles);
}

#ifndef SQAP_PANEL_PACK_PREFETCH
#define SQAP_PANEL_PACK_PREFETCH 1
#endif

// One panel: dst[k - k0][j] = w[n + j, k] as f32 for j < kPN (rows at or past n1 are zero), k0 <= k < k1; in
// groups of 8 weight rows transposed 8 k at a time.
template <class Panel, WeightType W>
void panel_pack_weights(float* dst, const void* w, int K, int n, int n1, int k0, int k1) {
  constexpr int kPN = Panel::kPN;
  // weight rows that exist in the group of 8 starting at row `first` (0 to 8)
  auto rows_from = [n1](int first) { return n1 - first < 8 ? (n1 - first > 0 ? n1 - first : 0) : 8; };
  for (int group = 0; group < kPN / 8; group++) {
    const int ng = n + 8 * group;
    const int rows = rows_from(ng);
    float* d = dst + 8 * group;
    int k = k0;
    // rows of the next group, fetched into L2 while this one is transposed: each row is a short run (kPKC weights)
    // that the hardware prefetcher would otherwise start cold
    const int next_rows = rows_from(ng + 8);
    constexpr int kBytes = W == WeightType::f32 ? 4 : 2;
    if (rows == 8) {
      for (; k + 8 <= k1; k += 8) {
        if (SQAP_PANEL_PACK_PREFETCH && ((k - k0) * kBytes) % 64 == 0) {
          for (int i = 0; i < next_rows; i++) {
            _mm_prefetch(static_cast<const char*>(w) + (static_cast<size_t>(ng + 8 + i) * K + k) * kBytes, _MM_HINT_T1);
          }
        }
        __m256 r[8];
        for (int i = 0; i < 8; i++) r[i] = widen8<W>(w, static_cast<size_t>(ng + i) * K + k);
        panel_transpose8(r);
        for (int t = 0; t < 8; t++) _mm256_storeu_ps(d + static_cast<size_t>(k - k0 + t) * kPN, r[t]);
      }
    }
    for (; k < k1; k++) {
      float* row = d + static_cast<size_t>(k - k0) * kPN;
      for (int i = 0; i < 8; i++) row[i] = i < rows ? widen1<W>(w, static_cast<size_t>(ng + i) * K + k) : 0.0f;
    }
  }
}

// out (M,N) += x · w[n0:n1]ᵀ for output columns [n0, n1): for each K block and each group of kPNB panels of the
// thread's columns, pack the weights, then run every x tile past each panel. xs is x packed by panel_pack_x.
template <class Panel, WeightType W>
void panel_linear_columns(float* out, const float* xs, const void* w, int M, int K, int N, int n0, int n1) {
  constexpr int kPR = Panel::kPR, kPN = Panel::kPN, kPKC = Panel::kPKC, kPNB = Panel::kPNB;
  thread_local std::vector<float> storage;
  const size_t panel_floats = static_cast<size_t>(kPKC) * kPN;
  if (storage.size() < kPNB * panel_floats + 16) storage.resize(kPNB * panel_floats + 16);
  float* panels = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(storage.data()) + 63) & ~uintptr_t{63});
  const int tiles = (M + kPR - 1) / kPR;
  const size_t tile_stride = static_cast<size_t>(K) * kPR;
  for (int k0 = 0; k0 < K; k0 += kPKC) {
    const int k1 = k0 + kPKC < K ? k0 + kPKC : K;
    const int kc = k1 - k0;
    for (int nb = n0; nb < n1; nb += kPNB * kPN) {
      const int nb1 = nb + kPNB * kPN < n1 ? nb + kPNB * kPN : n1;
      int count = 0;
      for (int n = nb; n < nb1; n += kPN, count++) {
        panel_pack_weights<Panel, W>(panels + count * panel_floats, w, K, n, nb1, k0, k1);
      }
      for (int p = 0; p < count; p++) {
        const int n = nb + p * kPN;
        const int cols = nb1 - n < kPN ? nb1 - n : kPN;
        const float* bp = panels + p * panel_floats;
        for (int t = 0; t < tiles; t++) {
          const int rows = M - t * kPR < kPR ? M - t * kPR : kPR;
          Panel::kernel(out + static_cast<size_t>(t) * kPR * N + n, N, rows, cols,
                        xs + t * tile_stride + static_cast<size_t>(k0) * kPR, bp, kc);
        }
      }
    }
  }
}
