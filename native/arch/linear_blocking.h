// The cache blocking of the f32/bf16/f16 linear, shared by the AVX2 and AVX-512 paths (each used to carry its own
// copy). Include it INSIDE `namespace sqap { namespace { ... } }` of an arch file, after its target pragma, so the
// instantiations are compiled for that ISA and stay file-local.
//
// `Tile` supplies the register tile and the cache blocks: kMR rows of packed x, kNR weight rows per micro-kernel,
// kLanes floats per vector, kKC (K block: a packed x tile of kMR × kKC floats stays in L1), kNB (weight rows per
// column block: kNB × kKC weights stay in L2 while they meet every x tile), kRowNR (weight rows per GEMV step), and
//   template <int NR> static void packed(out, N, rows, xp, w, K, n, k0, k1)   out[i, n+j] += x[i, k0:k1]·w[n+j, k0:k1]
//   template <int NR> static void row(out, x, w, K, n, k0, k1)                GEMV: out[n+j] += x[k0:k1]·w[n+j, k0:k1]
// The packed x layout is [tile of kMR rows][chunk of kLanes k][row][lane], zero-padded (README "linear, briefly").

// floats of scratch x needs on the blocked path
template <class Tile>
size_t blocked_packed_size(int M, int K) {
  return static_cast<size_t>((M + Tile::kMR - 1) / Tile::kMR) * ((K + Tile::kLanes - 1) / Tile::kLanes) * Tile::kMR * Tile::kLanes;
}

// x (M,K) -> [tile of kMR rows][chunk of kLanes k][row][lane], zero-padded in rows and K
template <class Tile>
void blocked_pack_x(float* packed, const float* x, int M, int K) {
  constexpr int kMR = Tile::kMR, kLanes = Tile::kLanes;
  const int chunks = (K + kLanes - 1) / kLanes;
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

template <class Tile>
void blocked_linear_columns(float* out, const float* xs, const void* w, int M, int K, int N, int n0, int n1) {
  if (M == 1) {
    // GEMV is memory-bound: stream whole weight rows, kRowNR per x load; nothing to pack or block
    int n = n0;
    for (; n + Tile::kRowNR <= n1; n += Tile::kRowNR) Tile::template row<Tile::kRowNR>(out, xs, w, K, n, 0, K);
    for (; n < n1; n++) Tile::template row<1>(out, xs, w, K, n, 0, K);
    return;
  }
  constexpr int kMR = Tile::kMR, kNR = Tile::kNR, kLanes = Tile::kLanes;
  const size_t tile_floats = static_cast<size_t>((K + kLanes - 1) / kLanes) * kMR * kLanes;
  for (int k0 = 0; k0 < K; k0 += Tile::kKC) {
    const int k1 = k0 + Tile::kKC < K ? k0 + Tile::kKC : K;
    for (int nb0 = n0; nb0 < n1; nb0 += Tile::kNB) {
      const int nb1 = nb0 + Tile::kNB < n1 ? nb0 + Tile::kNB : n1;
      // columns [nb0, nb1) against every packed row tile, for K block [k0, k1)
      const float* xp = xs + static_cast<size_t>(k0 / kLanes) * kMR * kLanes;
      for (int m = 0; m < M; m += kMR, xp += tile_floats) {
        const int rows = M - m < kMR ? M - m : kMR;
        float* out_tile = out + static_cast<size_t>(m) * N;
        int n = nb0;
        for (; n + kNR <= nb1; n += kNR) Tile::template packed<kNR>(out_tile, N, rows, xp, w, K, n, k0, k1);
        for (; n < nb1; n++) Tile::template packed<1>(out_tile, N, rows, xp, w, K, n, k0, k1);
      }
    }
  }
}
