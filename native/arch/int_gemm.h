// The integer GEMM micro-kernel and column driver shared by the SIMD paths (AVX2 maddubs, AVX-VNNI, AVX512-VNNI).
// Include it INSIDE `namespace sqap { namespace { ... } }` of an arch file, after its target pragma, so every
// instantiation is compiled for that file's ISA and stays file-local (no cross-ISA merging by the linker).
//
// The ISA supplies `struct Ops` with:
//   V, VF                 integer and float vector types; kLanes = 32-bit lanes per vector (8 or 16)
//   kBiasI8               the bias of i8 weight bytes the dot leaves in the accumulator (128 for vpdpbusd, 0 when
//                         the dot undoes it itself)
//   zero(), load(p)       integer vector ops; bcast4(p) broadcasts the 4 bytes at p to every 32-bit lane
//   dot_i8(acc, w, x)     acc + Σ over each lane's 4 bytes of w·x (w: biased i8 bytes, x: s8 codes)
//   dot_u4(acc, w, x)     same with w: u8 nibble values 0..15 (biased by 8)
//   low4(v), high4(v)     the low / high nibble of every byte as a byte
//   sub(a, b), set1(i), store(p, v), loadi(p)    int32 lane ops
//   tof(v), fzero(), fload(p), fstore(p, v), fmul(a, b), fadd(a, b), fset1(f)   float lane ops (no FMA: the
//                         epilogue must round the product and the sum separately, contract L2)
// Layout and arithmetic: native/kernels.h (packed layout) and docs/quantization.md (L1–L3).

// bytes ahead of each weight stream the one-row int4 loop prefetches (a compile-time knob for sweeps)
#ifndef SQAP_INT4_GEMV_PREFETCH
#define SQAP_INT4_GEMV_PREFETCH 1024
#endif

// The hot loop: acc (MR × NV vectors, in registers) over `steps` 64-byte weight lines of one group, stored to
// accbuf [MR][NV·kLanes] at the end. A function of its own so the accumulators never live in memory inside the loop.
template <class Ops, bool I4, int MR, int NV>
inline void int_group(const uint8_t* const* wp, const int8_t* const* xr, int steps, int32_t* accbuf) {
  using V = typename Ops::V;
  constexpr int L = Ops::kLanes;
  V acc[MR][NV];
  for (int i = 0; i < MR; i++)
    for (int j = 0; j < NV; j++) acc[i][j] = Ops::zero();
  const uint8_t* w0 = wp[0];
  ptrdiff_t woff[NV];
  for (int j = 0; j < NV; j++) woff[j] = wp[j] - w0;
  const int8_t* x0 = xr[0];
  ptrdiff_t xoff[MR];
  for (int i = 0; i < MR; i++) xoff[i] = xr[i] - x0;
  if constexpr (I4 && MR == 1) {
    // One row (a decode step): memory-bound, so the loop must keep enough weight lines in flight. Separate
    // accumulators for the low and high nibbles halve each dependency chain, and every stream prefetches
    // SQAP_INT4_GEMV_PREFETCH bytes ahead. Integer sums, so the split leaves the result bit-identical.
    V hi[NV];
    for (int j = 0; j < NV; j++) hi[j] = Ops::zero();
    for (int st = 0; st < steps; st++, w0 += 64, x0 += 8) {
      V raw[NV];
      for (int j = 0; j < NV; j++) {
        _mm_prefetch(reinterpret_cast<const char*>(w0 + woff[j] + SQAP_INT4_GEMV_PREFETCH), _MM_HINT_T0);
        raw[j] = Ops::load(w0 + woff[j]);
      }
      const V xl = Ops::bcast4(x0);
      const V xh = Ops::bcast4(x0 + 4);
      for (int j = 0; j < NV; j++) {
        acc[0][j] = Ops::dot_u4(acc[0][j], Ops::low4(raw[j]), xl);
        hi[j] = Ops::dot_u4(hi[j], Ops::high4(raw[j]), xh);
      }
    }
    for (int j = 0; j < NV; j++) Ops::store(accbuf + j * L, Ops::add(acc[0][j], hi[j]));
    return;
  }
  for (int st = 0; st < steps; st++, w0 += 64, x0 += I4 ? 8 : 4) {
    if constexpr (!I4) {
      V w[NV];
      for (int j = 0; j < NV; j++) w[j] = Ops::load(w0 + woff[j]);
      for (int i = 0; i < MR; i++) {
        const V xb = Ops::bcast4(x0 + xoff[i]);
        for (int j = 0; j < NV; j++) acc[i][j] = Ops::dot_i8(acc[i][j], w[j], xb);
      }
    } else {
      V w[NV];
      for (int j = 0; j < NV; j++) w[j] = Ops::low4(Ops::load(w0 + woff[j]));
      for (int i = 0; i < MR; i++) {
        const V xb = Ops::bcast4(x0 + xoff[i]);
        for (int j = 0; j < NV; j++) acc[i][j] = Ops::dot_u4(acc[i][j], w[j], xb);
      }
      for (int j = 0; j < NV; j++) w[j] = Ops::high4(Ops::load(w0 + woff[j]));
      for (int i = 0; i < MR; i++) {
        const V xb = Ops::bcast4(x0 + xoff[i] + 4);
        for (int j = 0; j < NV; j++) acc[i][j] = Ops::dot_u4(acc[i][j], w[j], xb);
      }
    }
  }
  for (int i = 0; i < MR; i++)
    for (int j = 0; j < NV; j++) Ops::store(accbuf + (i * NV + j) * L, acc[i][j]);
}

template <class Ops, bool I4, int MR, int NV>
void int_tile(const IntGemmArgs& a, int m0, int col0) {
  using V = typename Ops::V;
  using VF = typename Ops::VF;
  constexpr int L = Ops::kLanes;
  constexpr int kStep = I4 ? 8 : 4;  // padded columns per 64-byte line
  const size_t block_bytes = static_cast<size_t>(a.Kp) * (I4 ? 8 : 16);
  const uint8_t* wp[NV];
  const float* sp[NV];
  for (int j = 0; j < NV; j++) {
    const int c = col0 + j * L;
    wp[j] = a.w + static_cast<size_t>(c / 16) * block_bytes + (c % 16) * 4;
    sp[j] = a.w_scales + static_cast<size_t>(c / 16) * a.G * 16 + (c % 16);
  }
  const int8_t* xr[MR];
  const int32_t bias = I4 ? 8 : Ops::kBiasI8;
  alignas(64) float s[MR][NV * L];
  alignas(64) int32_t accbuf[MR * NV * L];
  const int steps = a.Gp / kStep;
  for (int g = 0; g < a.G; g++) {
    const uint8_t* wg[NV];
    for (int j = 0; j < NV; j++) wg[j] = wp[j] + static_cast<size_t>(g) * steps * 64;
    for (int i = 0; i < MR; i++) xr[i] = a.x + static_cast<size_t>(m0 + i) * a.x_stride + static_cast<size_t>(g) * a.Gp;
    int_group<Ops, I4, MR, NV>(wg, xr, steps, accbuf);
    // L2: s = f32(s + f32(f32(acc) · wscale)), group by group
    for (int i = 0; i < MR; i++) {
      const int m = m0 + i;
      const V correction = Ops::set1(bias * a.rsum[static_cast<size_t>(m) * a.G + g]);
      for (int j = 0; j < NV; j++) {
        const V exact = Ops::sub(Ops::loadi(accbuf + (i * NV + j) * L), correction);
        if (a.acc != nullptr) {
          Ops::store(accbuf + (i * NV + j) * L, exact);
          for (int l = 0; l < L; l++) {
            const int n = col0 + j * L + l;
            if (n < a.N) a.acc[(static_cast<size_t>(m) * a.N + n) * a.G + g] = accbuf[(i * NV + j) * L + l];
          }
        }
        const VF p = Ops::fmul(Ops::tof(exact), Ops::fload(sp[j] + static_cast<size_t>(g) * 16));
        const VF prev = g == 0 ? Ops::fzero() : Ops::fload(&s[i][j * L]);
        Ops::fstore(&s[i][j * L], Ops::fadd(prev, p));
      }
    }
  }
  // L2 (· x scale) and L3 (+ bias), then the columns that exist
  for (int i = 0; i < MR; i++) {
    const int m = m0 + i;
    const VF sx = Ops::fset1(a.x_scales[m]);
    float* out = a.out + static_cast<size_t>(m) * a.N;
    for (int j = 0; j < NV; j++) {
      VF y = Ops::fmul(Ops::fload(&s[i][j * L]), sx);
      const int c = col0 + j * L;
      if (a.bias != nullptr && c + L <= a.N) y = Ops::fadd(y, Ops::fload(a.bias + c));
      Ops::fstore(&s[i][j * L], y);
      for (int l = 0; l < L && c + l < a.N; l++) {
        float v = s[i][j * L + l];
        if (a.bias != nullptr && c + L > a.N) v = v + a.bias[c + l];
        out[c + l] = v;
      }
    }
  }
}

// Rows m0 .. m0+rows-1 (rows <= MR) against NV vectors of columns from col0: the M tail picks a smaller tile.
template <class Ops, bool I4, int MR, int NV>
void int_rows(const IntGemmArgs& a, int m0, int rows, int col0) {
  if constexpr (MR > 1) {
    if (rows < MR) return int_rows<Ops, I4, MR - 1, NV>(a, m0, rows, col0);
  }
  int_tile<Ops, I4, MR, NV>(a, m0, col0);
}

// Columns of the 16-row weight blocks [b0, b1): panels of NV vectors (the block count need not divide), all rows.
template <class Ops, bool I4, int MR, int NV>
void int_columns(const IntGemmArgs& a, int b0, int b1) {
  constexpr int L = Ops::kLanes;
  constexpr int kPanel = NV * L;       // columns per full panel (a multiple of 16)
  constexpr int kBlockVectors = 16 / L;  // vectors per 16-row block
  int c = b0 * 16;
  const int c1 = b1 * 16;
  for (; c + kPanel <= c1; c += kPanel)
    for (int m = 0; m < a.M; m += MR) int_rows<Ops, I4, MR, NV>(a, m, a.M - m < MR ? a.M - m : MR, c);
  for (; c < c1; c += 16)
    for (int m = 0; m < a.M; m += MR) int_rows<Ops, I4, MR, kBlockVectors>(a, m, a.M - m < MR ? a.M - m : MR, c);
}
