// The AVX-512 register tile's epilogue, shared by the f32/bf16 panel kernel (kernels.cc) and the bf16-dot kernel
// (bf16dot.cc). Include it INSIDE `namespace sqap { namespace { ... } }` of those files, after their target pragma
// (which must include avx512f), so it is compiled for that ISA and stays file-local.

// out[i, j] += c[i][j / 16][j % 16] for i < rows (<= MR), j < cols (<= 32): whole vectors when the tile is full,
// through a scratch tile at the edges. Always inlined with constant indices only: a runtime row index on c[i] makes
// the compiler keep the accumulators in memory, not in registers.
template <int MR>
__attribute__((always_inline)) inline void add_tile32(float* out, int N, int rows, int cols, const __m512 (&c)[MR][2]) {
  if (cols == 32 && rows == MR) {
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++) {
      float* o = out + static_cast<size_t>(i) * N;
      _mm512_storeu_ps(o, _mm512_add_ps(_mm512_loadu_ps(o), c[i][0]));
      _mm512_storeu_ps(o + 16, _mm512_add_ps(_mm512_loadu_ps(o + 16), c[i][1]));
    }
    return;
  }
  alignas(64) float tile[MR][32];
#pragma GCC unroll 12
  for (int i = 0; i < MR; i++) {
    _mm512_store_ps(tile[i], c[i][0]);
    _mm512_store_ps(tile[i] + 16, c[i][1]);
  }
  for (int i = 0; i < rows; i++) {
    float* o = out + static_cast<size_t>(i) * N;
    for (int j = 0; j < cols; j++) o[j] += tile[i][j];
  }
}
