// Elementwise and gather ops: gelu, silu_mul, add, scale_channels, rope, embedding. Memory-bound; large inputs are
// split across threads in contiguous chunks.
#include <cmath>
#include <cstring>

#include "../kernel_table.h"
#include "../threadpool.h"
#include "convert.h"

namespace sqap {

namespace {

constexpr int kMinParallelElements = 1 << 16;

// Runs fn(begin, end) over [0, n) in chunks, threaded when n is large.
template <typename Fn>
void for_chunks(size_t n, Fn fn) {
  constexpr size_t kChunk = 1 << 14;
  if (n < static_cast<size_t>(kMinParallelElements)) {
    fn(size_t{0}, n);
    return;
  }
  const int chunks = static_cast<int>((n + kChunk - 1) / kChunk);
  parallel_for(chunks, [&](int c) {
    const size_t begin = static_cast<size_t>(c) * kChunk;
    fn(begin, begin + kChunk < n ? begin + kChunk : n);
  });
}

}  // namespace

// The scalar activations of the generic table (libm's erff/expf, within 1 ulp).
void gelu_generic(float* out, const float* x, size_t n) {
  for (size_t i = 0; i < n; i++) out[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * 0.70710678118654752f));
}

void silu_mul_generic(float* out, const float* gate, const float* up, size_t n) {
  for (size_t i = 0; i < n; i++) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

// out (n) = 0.5·x·(1 + erf(x/√2)), the erf (not tanh) GELU, through the ISA table
void gelu(float* out, const float* x, size_t n) {
  const KernelTable& table = kernels();
  for_chunks(n, [&](size_t begin, size_t end) { table.gelu(out + begin, x + begin, end - begin); });
}

// out (n) = gate / (1 + exp(-gate)) · up, through the ISA table
void silu_mul(float* out, const float* gate, const float* up, size_t n) {
  const KernelTable& table = kernels();
  for_chunks(n, [&](size_t begin, size_t end) { table.silu_mul(out + begin, gate + begin, up + begin, end - begin); });
}

// out (n) = a + b
void add(float* out, const float* a, const float* b, size_t n) {
  for_chunks(n, [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; i++) out[i] = a[i] + b[i];
  });
}

// out (M,D) = x (M,D) * scale (D)
void scale_channels(float* out, const float* x, const void* scale, WeightType scale_type, int M, int D) {
  const int min_parallel = static_cast<size_t>(M) * D < kMinParallelElements ? M + 1 : 2;
  parallel_range(M, 1, min_parallel, [&](int m0, int m1) {
    for (int m = m0; m < m1; m++) {
      const size_t row = static_cast<size_t>(m) * D;
      for (int d = 0; d < D; d++) out[row + d] = x[row + d] * weight_at(scale, scale_type, d);
    }
  });
}

// x (T,H,Dh), positions (T) -> out (T,H,Dh). Angles as transformers' Llama rotary embedding: inv_freq and
// position · inv_freq rounded to f32, then cos and sin rounded to f32; the rotation itself in double, rounded once.
void rope(float* out, const float* x, const int32_t* positions, int T, int H, int Dh, double theta) {
  const int half = Dh / 2;
  const int min_parallel = static_cast<size_t>(T) * H * Dh < kMinParallelElements ? T + 1 : 2;
  parallel_range(T, 1, min_parallel, [&](int t0, int t1) {
    for (int t = t0; t < t1; t++) {
      for (int i = 0; i < half; i++) {
        const float inv_freq = static_cast<float>(1.0 / std::pow(theta, static_cast<double>(2 * i) / Dh));
        const float angle = static_cast<float>(positions[t]) * inv_freq;
        const double c = static_cast<float>(std::cos(static_cast<double>(angle)));
        const double s = static_cast<float>(std::sin(static_cast<double>(angle)));
        for (int h = 0; h < H; h++) {
          const size_t base = (static_cast<size_t>(t) * H + h) * Dh;
          const double first = x[base + i];
          const double second = x[base + i + half];
          out[base + i] = static_cast<float>(first * c - second * s);
          out[base + i + half] = static_cast<float>(second * c + first * s);
        }
      }
    }
  });
}

// table (V,D), ids (T) -> out (T,D); ids already range-checked by the caller
void embedding(float* out, const void* table, WeightType table_type, const int32_t* ids, int T, int D) {
  for (int t = 0; t < T; t++) {
    const size_t src = static_cast<size_t>(ids[t]) * D;
    float* out_row = out + static_cast<size_t>(t) * D;
    if (table_type == WeightType::f32) {
      std::memcpy(out_row, static_cast<const float*>(table) + src, sizeof(float) * D);
    } else {
      for (int d = 0; d < D; d++) out_row[d] = weight_at(table, table_type, src + d);
    }
  }
}

}  // namespace sqap
