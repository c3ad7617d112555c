// Grouped-query attention driver. Work is split over (query head, block of queries); the inner products and the
// weighted sum of values go through the ISA table (dot, axpy).
#include <algorithm>
#include <cmath>
#include <vector>

#include "../kernel_table.h"
#include "../threadpool.h"

namespace sqap {

// q (T,Hq,Dh), k (S,Hkv,Dh), v (S,Hkv,Dh) -> out (T,Hq·Dh), probs (Hq,T,S) when not null
void attention(float* out, float* probs, const float* q, const float* k, const float* v, int T, int S, int Hq,
               int Hkv, int Dh, bool causal) {
  const KernelTable& table = kernels();
  const int group = Hq / Hkv;
  const float scale = 1.0f / std::sqrt(static_cast<float>(Dh));
  constexpr int kQueriesPerTask = 8;
  const int query_blocks = (T + kQueriesPerTask - 1) / kQueriesPerTask;
  const size_t q_stride = static_cast<size_t>(Hq) * Dh;   // between tokens of q and out
  const size_t kv_stride = static_cast<size_t>(Hkv) * Dh;  // between tokens of k and v

  parallel_for(Hq * query_blocks, [&](int task) {
    const int h = task / query_blocks;
    const int t0 = (task % query_blocks) * kQueriesPerTask;
    const int t1 = std::min(T, t0 + kQueriesPerTask);
    const int kv_head = h / group;
    std::vector<float> scratch(probs != nullptr ? 0 : S);
    for (int t = t0; t < t1; t++) {
      // Keys 0 .. visible-1 are attended; the queries are the last T of the S keys.
      const int visible = causal ? std::min(S, S - T + t + 1) : S;
      float* p = probs != nullptr ? probs + (static_cast<size_t>(h) * T + t) * S : scratch.data();
      const float* q_row = q + t * q_stride + static_cast<size_t>(h) * Dh;
      float max_score = -INFINITY;
      for (int j = 0; j < visible; j++) {
        p[j] = table.dot(q_row, k + j * kv_stride + static_cast<size_t>(kv_head) * Dh, Dh) * scale;
        max_score = std::max(max_score, p[j]);
      }
      double sum = 0.0;
      for (int j = 0; j < visible; j++) {
        p[j] = std::exp(p[j] - max_score);
        sum += p[j];
      }
      const float inv_sum = static_cast<float>(1.0 / sum);
      float* out_row = out + t * q_stride + static_cast<size_t>(h) * Dh;
      std::fill(out_row, out_row + Dh, 0.0f);
      for (int j = 0; j < visible; j++) {
        p[j] *= inv_sum;
        table.axpy(out_row, p[j], v + j * kv_stride + static_cast<size_t>(kv_head) * Dh, Dh);
      }
      if (probs != nullptr) std::fill(p + visible, p + S, 0.0f);
    }
  });
}

}  // namespace sqap
