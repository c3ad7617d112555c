// Grouped-query attention driver. Work is split over (query head, block of queries); the inner products and the
// weighted sum of values go through the ISA table (dot, axpy).
#include <algorithm>
#include <cmath>
#include <vector>

#include "../kernel_table.h"
#include "../threadpool.h"

namespace sqap {

float attention_exp_scores(float* p, const float* q_row, const float* k_head, size_t kv_stride, int visible, int Dh,
                           float scale) {
  const KernelTable& table = kernels();
  float max_score = -INFINITY;
  for (int j = 0; j < visible; j++) {
    p[j] = table.dot(q_row, k_head + j * kv_stride, Dh) * scale;
    max_score = std::max(max_score, p[j]);
  }
  double sum = 0.0;
  for (int j = 0; j < visible; j++) {
    p[j] = std::exp(p[j] - max_score);
    sum += p[j];
  }
  return static_cast<float>(1.0 / sum);
}

// q (T,Hq,Dh), k (S,Hkv,Dh), v (S,Hkv,Dh) -> out (T,Hq·Dh), probs (Hq,T,S) when not null
void attention(float* out, float* probs, const float* q, const float* k, const float* v, int T, int S, int Hq,
               int Hkv, int Dh, bool causal) {
  const KernelTable& table = kernels();
  const int group = Hq / Hkv;
  const float scale = 1.0f / std::sqrt(static_cast<float>(Dh));
  constexpr int kQueriesPerTask = 8;
  constexpr int kMinRowKernelQueries = 4;
  const int query_blocks = (T + kQueriesPerTask - 1) / kQueriesPerTask;
  const size_t q_stride = static_cast<size_t>(Hq) * Dh;   // between tokens of q and out
  const size_t kv_stride = static_cast<size_t>(Hkv) * Dh;  // between tokens of k and v

  // row(h, kv_head, t, visible, p) for every query row, the pool splitting (query head, block of queries); p is the
  // row's probabilities (in probs, or per-task scratch), zeroed past `visible` after it. Keys 0 .. visible-1 are
  // attended; the queries are the last T of the S keys.
  auto for_each_row = [&](const auto& row) {
    parallel_for(Hq * query_blocks, [&](int task) {
      const int h = task / query_blocks;
      const int t0 = (task % query_blocks) * kQueriesPerTask;
      const int t1 = std::min(T, t0 + kQueriesPerTask);
      std::vector<float> scratch(probs != nullptr ? 0 : S);
      for (int t = t0; t < t1; t++) {
        const int visible = causal ? std::min(S, S - T + t + 1) : S;
        float* p = probs != nullptr ? probs + (static_cast<size_t>(h) * T + t) * S : scratch.data();
        row(h, h / group, t, visible, p);
        if (probs != nullptr) std::fill(p + visible, p + S, 0.0f);
      }
    });
  };

  // With a row kernel (and more than a few queries, so transposing the keys pays for itself) each kv head's keys
  // are transposed once to [Dh][S], and every query row's scores, softmax and weighted sum run in the kernel.
  if (table.attention_row != nullptr && T >= kMinRowKernelQueries) {
    thread_local std::vector<float> transposed;
    const size_t head_floats = static_cast<size_t>(Dh) * S;
    if (transposed.size() < head_floats * Hkv) transposed.resize(head_floats * Hkv);
    float* kt = transposed.data();
    parallel_for(Hkv, [&](int g) {
      float* dst = kt + g * head_floats;
      for (int s = 0; s < S; s++) {
        const float* row = k + s * kv_stride + static_cast<size_t>(g) * Dh;
        for (int d = 0; d < Dh; d++) dst[static_cast<size_t>(d) * S + s] = row[d];
      }
    });
    for_each_row([&](int h, int kv_head, int t, int visible, float* p) {
      table.attention_row(out + t * q_stride + static_cast<size_t>(h) * Dh, p, q + t * q_stride + static_cast<size_t>(h) * Dh,
                          kt + kv_head * head_floats, S, v + static_cast<size_t>(kv_head) * Dh, kv_stride, visible, Dh, scale);
    });
    return;
  }
  for_each_row([&](int h, int kv_head, int t, int visible, float* p) {
    const float inv_sum = attention_exp_scores(p, q + t * q_stride + static_cast<size_t>(h) * Dh,
                                               k + static_cast<size_t>(kv_head) * Dh, kv_stride, visible, Dh, scale);
    float* out_row = out + t * q_stride + static_cast<size_t>(h) * Dh;
    std::fill(out_row, out_row + Dh, 0.0f);
    for (int j = 0; j < visible; j++) {
      p[j] *= inv_sum;
      table.axpy(out_row, p[j], v + j * kv_stride + static_cast<size_t>(kv_head) * Dh, Dh);
    }
  });
}

}  // namespace sqap
