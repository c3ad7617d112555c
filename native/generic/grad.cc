// Backward kernels for training (grad_kernels.h). The GEMMs of linear_backward run on the forward linear() over
// transposed operands (its packing, register tiling and threading, every ISA path); the rest are threaded loops.
// Reductions over rows (weight gradients of norms and LayerScale, db) are split over columns so no two threads
// write the same output; attention backward runs in two passes so dk/dv need no atomics.
#include <algorithm>
#include <cmath>
#include <vector>

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

// 32×32 blocks so both the rows read and the rows written stay in cache; threads over row blocks of the output.
void transpose(float* out, const float* in, int R, int C) {
  constexpr int kBlock = 32;
  parallel_range(C, kBlock, min_parallel_rows(R, C), [&](int c0, int c1) {
    for (int cb = c0; cb < c1; cb += kBlock) {
      const int ce = std::min(c1, cb + kBlock);
      for (int rb = 0; rb < R; rb += kBlock) {
        const int re = std::min(R, rb + kBlock);
        for (int c = cb; c < ce; c++) {
          float* out_row = out + static_cast<size_t>(c) * R;
          for (int r = rb; r < re; r++) out_row[r] = in[static_cast<size_t>(r) * C + c];
        }
      }
    }
  });
}

void linear_backward(float* dx, float* dw, float* db, const float* dy, const float* x, const float* w, int M, int K,
                     int N) {
  if (dx != nullptr) {
    // dx (M,K) = dy (M,N) · w (N,K) = linear(dy, wᵀ) with wᵀ (K,N) as the weight
    std::vector<float> wt(static_cast<size_t>(K) * N);
    transpose(wt.data(), w, N, K);
    linear(dx, dy, wt.data(), WeightType::f32, nullptr, WeightType::f32, M, N, K);
  }
  {
    // dw (N,K) = dyᵀ (N,M) · x (M,K) = linear(dyᵀ, xᵀ) with xᵀ (K,M) as the weight
    std::vector<float> dyt(static_cast<size_t>(N) * M);
    std::vector<float> xt(static_cast<size_t>(K) * M);
    transpose(dyt.data(), dy, M, N);
    transpose(xt.data(), x, M, K);
    linear(dw, dyt.data(), xt.data(), WeightType::f32, nullptr, WeightType::f32, N, M, K);
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

// Pass 1, over (query head, block of queries): recompute P, then dP = dO·vᵀ, dS = P·(dP - Σ P·dP)·scale, dq = dS·k;
// P and dS are kept (Hq,T,S). Pass 2, over (kv head, block of keys): dv = Σ Pᵀ·dO, dk = Σ dSᵀ·q over the group.
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                        const float* v, int T, int S, int Hq, int Hkv, int Dh, bool causal) {
  const KernelTable& table = kernels();
  const int group = Hq / Hkv;
  const float scale = 1.0f / std::sqrt(static_cast<float>(Dh));
  const size_t q_stride = static_cast<size_t>(Hq) * Dh;
  const size_t kv_stride = static_cast<size_t>(Hkv) * Dh;
  std::vector<float> probs(static_cast<size_t>(Hq) * T * S, 0.0f);
  std::vector<float> dscores(static_cast<size_t>(Hq) * T * S, 0.0f);
  auto visible_keys = [&](int t) { return causal ? std::min(S, S - T + t + 1) : S; };
  constexpr int kBlock = 8;
  const int query_blocks = (T + kBlock - 1) / kBlock;
  parallel_for(Hq * query_blocks, [&](int task) {
    const int h = task / query_blocks;
    const int t0 = (task % query_blocks) * kBlock;
    const int t1 = std::min(T, t0 + kBlock);
    const size_t kv_off = static_cast<size_t>(h / group) * Dh;
    for (int t = t0; t < t1; t++) {
      const int visible = visible_keys(t);
      float* p = probs.data() + (static_cast<size_t>(h) * T + t) * S;
      float* ds = dscores.data() + (static_cast<size_t>(h) * T + t) * S;
      const float* q_row = q + t * q_stride + static_cast<size_t>(h) * Dh;
      const float* do_row = dout + t * q_stride + static_cast<size_t>(h) * Dh;
      float max_score = -INFINITY;
      for (int j = 0; j < visible; j++) {
        p[j] = table.dot(q_row, k + j * kv_stride + kv_off, Dh) * scale;
        max_score = std::max(max_score, p[j]);
      }
      double sum = 0.0;
      for (int j = 0; j < visible; j++) {
        p[j] = std::exp(p[j] - max_score);
        sum += p[j];
      }
      const float inv_sum = static_cast<float>(1.0 / sum);
      double weighted = 0.0;
      for (int j = 0; j < visible; j++) {
        p[j] *= inv_sum;
        ds[j] = table.dot(do_row, v + j * kv_stride + kv_off, Dh);
        weighted += static_cast<double>(p[j]) * ds[j];
      }
      float* dq_row = dq + t * q_stride + static_cast<size_t>(h) * Dh;
      std::fill(dq_row, dq_row + Dh, 0.0f);
      for (int j = 0; j < visible; j++) {
        ds[j] = p[j] * (ds[j] - static_cast<float>(weighted)) * scale;
        table.axpy(dq_row, ds[j], k + j * kv_stride + kv_off, Dh);
      }
    }
  });
  const int key_blocks = (S + kBlock - 1) / kBlock;
  parallel_for(Hkv * key_blocks, [&](int task) {
    const int kvh = task / key_blocks;
    const int s0 = (task % key_blocks) * kBlock;
    const int s1 = std::min(S, s0 + kBlock);
    const size_t kv_off = static_cast<size_t>(kvh) * Dh;
    for (int s = s0; s < s1; s++) {
      float* dk_row = dk + s * kv_stride + kv_off;
      float* dv_row = dv + s * kv_stride + kv_off;
      std::fill(dk_row, dk_row + Dh, 0.0f);
      std::fill(dv_row, dv_row + Dh, 0.0f);
      // query t sees key s when s < visible_keys(t), i.e. t >= s - (S - T) for causal
      const int first = causal ? std::max(0, s - (S - T)) : 0;
      for (int h = kvh * group; h < (kvh + 1) * group; h++) {
        for (int t = first; t < T; t++) {
          const size_t at = (static_cast<size_t>(h) * T + t) * S + s;
          const size_t row = t * q_stride + static_cast<size_t>(h) * Dh;
          table.axpy(dv_row, probs[at], dout + row, Dh);
          table.axpy(dk_row, dscores[at], q + row, Dh);
        }
      }
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

}  // namespace sqap
