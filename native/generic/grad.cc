// Backward kernels for training (grad_kernels.h). The GEMMs of linear_backward run on the forward linear() over
// transposed operands (its packing, register tiling and threading, every ISA path); the rest are threaded loops.
// Reductions over rows (weight gradients of norms and LayerScale, db) are split over columns so no two threads
// write the same output; attention backward runs one task per kv head so dk/dv have one writer.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

#if defined(__SSE2__)
#include <xmmintrin.h>
#endif

#include "../grad_kernels.h"
#include "../kernel_table.h"
#include "../kernels.h"
#include "../threadpool.h"

namespace sqap {

namespace {

constexpr int kMinParallelElements = 1 << 15;  // below this an elementwise/norm op runs on the calling thread
constexpr double kInvSqrt2 = 0.70710678118654752440;
constexpr double kInvSqrt2Pi = 0.39894228040143267794;

int min_parallel_rows(int rows, size_t row_elements) {
  return static_cast<size_t>(rows) * row_elements < kMinParallelElements ? rows + 1 : 2;
}

int min_parallel_elements(size_t n) { return n < kMinParallelElements ? static_cast<int>(n) + 1 : 2; }

// Column sums (Σ_rows a[r, c] (· b[r, c] when b is not null)) into out (C), threads over column blocks of 64.
void column_sums(float* out, const float* a, const float* b, int R, int C) {
  parallel_range(C, 64, min_parallel_rows(R, C), [&](int c0, int c1) {
    std::vector<double> acc(c1 - c0, 0.0);
    for (int r = 0; r < R; r++) {
      const float* a_row = a + static_cast<size_t>(r) * C;
      const float* b_row = b != nullptr ? b + static_cast<size_t>(r) * C : nullptr;
      if (b_row != nullptr) {
        for (int c = c0; c < c1; c++) acc[c - c0] += static_cast<double>(a_row[c]) * b_row[c];
      } else {
        for (int c = c0; c < c1; c++) acc[c - c0] += a_row[c];
      }
    }
    for (int c = c0; c < c1; c++) out[c] = static_cast<float>(acc[c - c0]);
  });
}

}  // namespace

// 32×32 blocks so both the rows read and the rows written stay in cache, transposed 4×4 at a time in SSE registers
// where the compiler targets x86-64 (3-5x the scalar loop on a 792×256 matrix); threads over blocks of input rows,
// so each writes its own columns of the output.
void transpose(float* out, const float* in, int R, int C) {
  constexpr int kBlock = 32;
  parallel_range(R, kBlock, min_parallel_rows(R, C), [&](int r0, int r1) {
    for (int rb = r0; rb < r1; rb += kBlock) {
      const int re = std::min(r1, rb + kBlock);
      for (int cb = 0; cb < C; cb += kBlock) {
        const int ce = std::min(C, cb + kBlock);
        int r = rb;
#if defined(__SSE2__)
        for (; r + 4 <= re; r += 4) {
          int c = cb;
          for (; c + 4 <= ce; c += 4) {
            __m128 a = _mm_loadu_ps(in + static_cast<size_t>(r) * C + c);
            __m128 b = _mm_loadu_ps(in + static_cast<size_t>(r + 1) * C + c);
            __m128 d = _mm_loadu_ps(in + static_cast<size_t>(r + 2) * C + c);
            __m128 e = _mm_loadu_ps(in + static_cast<size_t>(r + 3) * C + c);
            _MM_TRANSPOSE4_PS(a, b, d, e);
            _mm_storeu_ps(out + static_cast<size_t>(c) * R + r, a);
            _mm_storeu_ps(out + static_cast<size_t>(c + 1) * R + r, b);
            _mm_storeu_ps(out + static_cast<size_t>(c + 2) * R + r, d);
            _mm_storeu_ps(out + static_cast<size_t>(c + 3) * R + r, e);
          }
          for (; c < ce; c++) {
            for (int i = 0; i < 4; i++) out[static_cast<size_t>(c) * R + r + i] = in[static_cast<size_t>(r + i) * C + c];
          }
        }
#endif
        for (; r < re; r++) {
          for (int c = cb; c < ce; c++) out[static_cast<size_t>(c) * R + r] = in[static_cast<size_t>(r) * C + c];
        }
      }
    }
  });
}

// scratch of n floats, not zero-filled (every element is written before it is read)
std::unique_ptr<float[]> scratch_floats(size_t n) { return std::unique_ptr<float[]>(new float[n]); }

void linear_backward(float* dx, float* dw, float* db, const float* dy, const float* x, const float* w, int M, int K,
                     int N) {
  if (dx != nullptr) {
    // dx (M,K) = dy (M,N) · w (N,K) = linear(dy, wᵀ) with wᵀ (K,N) as the weight (a weight-sized transpose)
    auto wt = scratch_floats(static_cast<size_t>(K) * N);
    transpose(wt.get(), w, N, K);
    linear(dx, dy, wt.get(), WeightType::f32, nullptr, WeightType::f32, M, N, K);
  }
  {
    // dw (N,K) = dyᵀ (N,M) · x (M,K) = linear(dyᵀ, xᵀ) with xᵀ (K,M) as the weight
    auto dyt = scratch_floats(static_cast<size_t>(N) * M);
    auto xt = scratch_floats(static_cast<size_t>(K) * M);
    transpose(dyt.get(), dy, M, N);
    transpose(xt.get(), x, M, K);
    linear(dw, dyt.get(), xt.get(), WeightType::f32, nullptr, WeightType::f32, N, M, K);
  }
  if (db != nullptr) column_sums(db, dy, nullptr, M, N);
}

void embedding_backward(float* dtable, const float* dy, const int32_t* ids, int T, int V, int D) {
  std::fill(dtable, dtable + static_cast<size_t>(V) * D, 0.0f);
  for (int t = 0; t < T; t++) {
    float* row = dtable + static_cast<size_t>(ids[t]) * D;
    const float* g = dy + static_cast<size_t>(t) * D;
    for (int d = 0; d < D; d++) row[d] += g[d];
  }
}

void layer_norm_backward(float* dx, float* dweight, float* dbias, const float* dy, const float* x, const float* weight,
                         int M, int D, float eps) {
  std::vector<float> xhat(static_cast<size_t>(M) * D);
  parallel_range(M, 1, min_parallel_rows(M, D), [&](int m0, int m1) {
    for (int m = m0; m < m1; m++) {
      const float* x_row = x + static_cast<size_t>(m) * D;
      const float* g = dy + static_cast<size_t>(m) * D;
      float* h = xhat.data() + static_cast<size_t>(m) * D;
      double sum = 0.0;
      for (int d = 0; d < D; d++) sum += x_row[d];
      const double mean = sum / D;
      double squares = 0.0;
      for (int d = 0; d < D; d++) squares += (x_row[d] - mean) * (x_row[d] - mean);
      const double inv = 1.0 / std::sqrt(squares / D + eps);
      double mean_g = 0.0, mean_gh = 0.0;
      for (int d = 0; d < D; d++) {
        h[d] = static_cast<float>((x_row[d] - mean) * inv);
        const double gw = static_cast<double>(g[d]) * weight[d];
        mean_g += gw;
        mean_gh += gw * h[d];
      }
      mean_g /= D;
      mean_gh /= D;
      float* dx_row = dx + static_cast<size_t>(m) * D;
      for (int d = 0; d < D; d++) {
        dx_row[d] = static_cast<float>(inv * (static_cast<double>(g[d]) * weight[d] - mean_g - h[d] * mean_gh));
      }
    }
  });
  column_sums(dweight, dy, xhat.data(), M, D);
  column_sums(dbias, dy, nullptr, M, D);
}

void rms_norm_backward(float* dx, float* dweight, const float* dy, const float* x, const float* weight, int M, int D,
                       float eps) {
  std::vector<float> normalized(static_cast<size_t>(M) * D);
  parallel_range(M, 1, min_parallel_rows(M, D), [&](int m0, int m1) {
    for (int m = m0; m < m1; m++) {
      const float* x_row = x + static_cast<size_t>(m) * D;
      const float* g = dy + static_cast<size_t>(m) * D;
      float* n = normalized.data() + static_cast<size_t>(m) * D;
      double squares = 0.0;
      for (int d = 0; d < D; d++) squares += static_cast<double>(x_row[d]) * x_row[d];
      const double inv = 1.0 / std::sqrt(squares / D + eps);
      double mean_gn = 0.0;
      for (int d = 0; d < D; d++) {
        n[d] = static_cast<float>(x_row[d] * inv);
        mean_gn += static_cast<double>(g[d]) * weight[d] * n[d];
      }
      mean_gn /= D;
      float* dx_row = dx + static_cast<size_t>(m) * D;
      for (int d = 0; d < D; d++) {
        dx_row[d] = static_cast<float>(inv * (static_cast<double>(g[d]) * weight[d] - n[d] * mean_gn));
      }
    }
  });
  column_sums(dweight, dy, normalized.data(), M, D);
}

// Φ(x) + x·φ(x) with one exp: e = exp(-x²/2) is φ's factor and, for erf(|x|/√2) by Abramowitz–Stegun 7.1.26
// (|error| < 1.5e-7, as the forward's SIMD gelu), e^{-z²} with z = |x|/√2.
void gelu_backward(float* dx, const float* dy, const float* x, size_t n) {
  parallel_range(static_cast<int>(n), 16, min_parallel_elements(n), [&](int i0, int i1) {
    for (int i = i0; i < i1; i++) {
      const float v = x[i];
      const float e = std::exp(-0.5f * v * v);
      const float z = std::fabs(v) * static_cast<float>(kInvSqrt2);
      const float t = 1.0f / (1.0f + 0.3275911f * z);
      const float poly = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f + t * (-1.453152027f + t * 1.061405429f))));
      const float erf_abs = 1.0f - poly * e;
      const float cdf = 0.5f * (1.0f + (v < 0 ? -erf_abs : erf_abs));
      dx[i] = dy[i] * (cdf + v * static_cast<float>(kInvSqrt2Pi) * e);
    }
  });
}

void silu_mul_backward(float* dgate, float* dup, const float* dy, const float* gate, const float* up, size_t n) {
  parallel_range(static_cast<int>(n), 16, min_parallel_elements(n), [&](int i0, int i1) {
    for (int i = i0; i < i1; i++) {
      const float g = gate[i];
      const float sigmoid = 1.0f / (1.0f + std::exp(-g));
      dup[i] = dy[i] * g * sigmoid;
      dgate[i] = dy[i] * up[i] * sigmoid * (1.0f + g * (1.0f - sigmoid));
    }
  });
}

void scale_channels_backward(float* dx, float* dscale, const float* dy, const float* x, const float* scale, int M,
                             int D) {
  parallel_range(M, 1, min_parallel_rows(M, D), [&](int m0, int m1) {
    for (int m = m0; m < m1; m++) {
      const size_t base = static_cast<size_t>(m) * D;
      for (int d = 0; d < D; d++) dx[base + d] = dy[base + d] * scale[d];
    }
  });
  column_sums(dscale, dy, x, M, D);
}

void rope_backward(float* dx, const float* dy, const int32_t* positions, int T, int H, int Dh, double theta) {
  const int half = Dh / 2;
  std::vector<float> inv_freq(half);
  for (int i = 0; i < half; i++) inv_freq[i] = static_cast<float>(1.0 / std::pow(theta, (2.0 * i) / Dh));
  parallel_range(T, 1, min_parallel_rows(T, static_cast<size_t>(H) * Dh), [&](int t0, int t1) {
    for (int t = t0; t < t1; t++) {
      for (int i = 0; i < half; i++) {
        const float angle = static_cast<float>(positions[t]) * inv_freq[i];
        const float c = static_cast<float>(std::cos(static_cast<double>(angle)));
        const float s = static_cast<float>(std::sin(static_cast<double>(angle)));
        for (int h = 0; h < H; h++) {
          const size_t base = (static_cast<size_t>(t) * H + h) * Dh;
          const float a = dy[base + i];
          const float b = dy[base + i + half];
          dx[base + i] = a * c + b * s;
          dx[base + i + half] = b * c - a * s;
        }
      }
    }
  });
}

namespace {

// out (M,N) = x (M,K) · w (N,K)ᵀ on the ISA's linear kernel, on the calling thread (for use inside a pool task).
void gemm_inline(const KernelTable& table, float* out, const float* x, const float* w, int M, int K, int N,
                 std::vector<float>& scratch) {
  std::fill(out, out + static_cast<size_t>(M) * N, 0.0f);
  const size_t packed_floats = table.linear_packed_size(M, K);
  const float* xs = x;
  if (packed_floats > 0) {
    scratch.resize(packed_floats + 16);
    float* packed = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(scratch.data()) + 63) & ~uintptr_t{63});
    table.linear_pack(packed, x, M, K);
    xs = packed;
  }
  table.linear_columns(out, xs, w, WeightType::f32, M, K, N, 0, N);
}

// rows (R,C) -> (C,R)
void transpose_inline(float* out, const float* in, int R, int C) {
  for (int r = 0; r < R; r++)
    for (int c = 0; c < C; c++) out[static_cast<size_t>(c) * R + r] = in[static_cast<size_t>(r) * C + c];
}

}  // namespace

// One pool task per kv head (so dk/dv have one writer); for each query head of its group, as small GEMMs on the
// ISA's linear kernel: P = softmax(Q·Kᵀ·scale) (masked), dP = dO·Vᵀ, dS = P·(dP - Σ P·dP)·scale, dQ = dS·K,
// dK += dSᵀ·Q, dV += Pᵀ·dO, with each head's q, k, v, dO gathered into contiguous (rows, Dh) matrices.
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                        const float* v, int T, int S, int Hq, int Hkv, int Dh, bool causal) {
  const KernelTable& table = kernels();
  const int group = Hq / Hkv;
  const float scale = 1.0f / std::sqrt(static_cast<float>(Dh));
  const size_t q_stride = static_cast<size_t>(Hq) * Dh;
  const size_t kv_stride = static_cast<size_t>(Hkv) * Dh;
  const size_t ts = static_cast<size_t>(T) * S;
  parallel_for(Hkv, [&](int kvh) {
    std::vector<float> kh(static_cast<size_t>(S) * Dh), vh(kh.size()), kht(kh.size());
    std::vector<float> qh(static_cast<size_t>(T) * Dh), doh(qh.size()), qht(qh.size()), doht(qh.size()), dqh(qh.size());
    std::vector<float> p(ts), dp(ts), pt(ts), dst(ts), dkh(kh.size()), dvh(kh.size()), scratch;
    std::vector<float> dk_acc(kh.size(), 0.0f), dv_acc(kh.size(), 0.0f);
    for (int s = 0; s < S; s++) {
      std::copy_n(k + s * kv_stride + static_cast<size_t>(kvh) * Dh, Dh, kh.data() + static_cast<size_t>(s) * Dh);
      std::copy_n(v + s * kv_stride + static_cast<size_t>(kvh) * Dh, Dh, vh.data() + static_cast<size_t>(s) * Dh);
    }
    transpose_inline(kht.data(), kh.data(), S, Dh);
    for (int h = kvh * group; h < (kvh + 1) * group; h++) {
      for (int t = 0; t < T; t++) {
        std::copy_n(q + t * q_stride + static_cast<size_t>(h) * Dh, Dh, qh.data() + static_cast<size_t>(t) * Dh);
        std::copy_n(dout + t * q_stride + static_cast<size_t>(h) * Dh, Dh, doh.data() + static_cast<size_t>(t) * Dh);
      }
      gemm_inline(table, p.data(), qh.data(), kh.data(), T, Dh, S, scratch);
      gemm_inline(table, dp.data(), doh.data(), vh.data(), T, Dh, S, scratch);
      for (int t = 0; t < T; t++) {
        const int visible = causal ? std::min(S, S - T + t + 1) : S;
        float* p_row = p.data() + static_cast<size_t>(t) * S;
        float* dp_row = dp.data() + static_cast<size_t>(t) * S;
        float max_score = -INFINITY;
        for (int j = 0; j < visible; j++) max_score = std::max(max_score, p_row[j] * scale);
        double sum = 0.0;
        for (int j = 0; j < visible; j++) {
          p_row[j] = std::exp(p_row[j] * scale - max_score);
          sum += p_row[j];
        }
        const float inv_sum = static_cast<float>(1.0 / sum);
        double weighted = 0.0;
        for (int j = 0; j < visible; j++) {
          p_row[j] *= inv_sum;
          weighted += static_cast<double>(p_row[j]) * dp_row[j];
        }
        for (int j = 0; j < visible; j++) dp_row[j] = p_row[j] * (dp_row[j] - static_cast<float>(weighted)) * scale;
        for (int j = visible; j < S; j++) p_row[j] = dp_row[j] = 0.0f;
      }
      // dp now holds dS (T,S); p holds P (T,S)
      gemm_inline(table, dqh.data(), dp.data(), kht.data(), T, S, Dh, scratch);
      for (int t = 0; t < T; t++) std::copy_n(dqh.data() + static_cast<size_t>(t) * Dh, Dh, dq + t * q_stride + static_cast<size_t>(h) * Dh);
      transpose_inline(dst.data(), dp.data(), T, S);
      transpose_inline(qht.data(), qh.data(), T, Dh);
      gemm_inline(table, dkh.data(), dst.data(), qht.data(), S, T, Dh, scratch);
      transpose_inline(pt.data(), p.data(), T, S);
      transpose_inline(doht.data(), doh.data(), T, Dh);
      gemm_inline(table, dvh.data(), pt.data(), doht.data(), S, T, Dh, scratch);
      for (size_t i = 0; i < dk_acc.size(); i++) {
        dk_acc[i] += dkh[i];
        dv_acc[i] += dvh[i];
      }
    }
    for (int s = 0; s < S; s++) {
      std::copy_n(dk_acc.data() + static_cast<size_t>(s) * Dh, Dh, dk + s * kv_stride + static_cast<size_t>(kvh) * Dh);
      std::copy_n(dv_acc.data() + static_cast<size_t>(s) * Dh, Dh, dv + s * kv_stride + static_cast<size_t>(kvh) * Dh);
    }
  });
}

double cross_entropy(float* dlogits, const float* logits, const int32_t* labels, int T, int V, double divisor) {
  std::vector<double> losses(T, 0.0);
  parallel_range(T, 1, min_parallel_rows(T, V), [&](int t0, int t1) {
    for (int t = t0; t < t1; t++) {
      const float* z = logits + static_cast<size_t>(t) * V;
      float* g = dlogits + static_cast<size_t>(t) * V;
      float max_z = -INFINITY;
      for (int j = 0; j < V; j++) max_z = std::max(max_z, z[j]);
      double total = 0.0;
      for (int j = 0; j < V; j++) total += std::exp(static_cast<double>(z[j]) - max_z);
      losses[t] = std::log(total) + max_z - z[labels[t]];
      for (int j = 0; j < V; j++) {
        const double p = std::exp(static_cast<double>(z[j]) - max_z) / total;
        g[j] = static_cast<float>((p - (j == labels[t] ? 1.0 : 0.0)) / divisor);
      }
    }
  });
  double loss = 0.0;
  for (int t = 0; t < T; t++) loss += losses[t];
  return loss / divisor;
}

// Element-independent, so threads split the range; each element's arithmetic is the ref's, in double (no FMA
// contraction under -std=c++17), so the result does not depend on the thread count or the backend.
void adamw_update(float* p, const float* g, float* m, float* v, size_t n, double beta1, double beta2, double eps,
                  double decay, double step_size, double sqrt_correction2) {
  parallel_range(static_cast<int>(n), 16, min_parallel_elements(n), [&](int i0, int i1) {
    for (int i = i0; i < i1; i++) {
      const double gi = g[i];
      m[i] = static_cast<float>(beta1 * m[i] + (1 - beta1) * gi);
      v[i] = static_cast<float>(beta2 * v[i] + (1 - beta2) * gi * gi);
      p[i] = static_cast<float>(p[i] * decay - (step_size * m[i]) / (std::sqrt(static_cast<double>(v[i])) / sqrt_correction2 + eps));
    }
  });
}

double sum_of_squares(const float* x, size_t n) {
  double sum = 0.0;
  for (size_t i = 0; i < n; i++) sum += static_cast<double>(x[i]) * x[i];
  return sum;
}

}  // namespace sqap
