// Token-pruning scores of one attention layer, without materializing the [Hq, T, S] probabilities: the probability
// rows of a few queries, and the probability each key receives summed over heads and queries (FastV). Recomputes
// the softmax from q and k with the same dot kernel as attention.cc; costs one extra QKᵀ of one layer (well under
// 1% of that layer's linears at OpenVLA sizes). Kept apart from attention.cc so that file can change freely.
#include <algorithm>
#include <cmath>
#include <vector>

#include "../kernel_table.h"
#include "../threadpool.h"

namespace sqap {

// q (T,Hq,Dh), k (S,Hkv,Dh); rows (R) ascending query indices -> query_probs (Hq,R,S) when not null,
// key_totals (S) when not null. Heads run in parallel; per-head totals are summed in head order (deterministic).
void attention_scores(float* key_totals, float* query_probs, const int32_t* rows, int R, const float* q,
                      const float* k, int T, int S, int Hq, int Hkv, int Dh, bool causal) {
  const int group = Hq / Hkv;
  const float scale = 1.0f / std::sqrt(static_cast<float>(Dh));
  const size_t q_stride = static_cast<size_t>(Hq) * Dh;
  const size_t kv_stride = static_cast<size_t>(Hkv) * Dh;
  std::vector<int> row_of(T, -1);
  for (int r = 0; r < R; r++) row_of[rows[r]] = r;
  std::vector<double> head_totals(key_totals != nullptr ? static_cast<size_t>(Hq) * S : 0, 0.0);
  if (query_probs != nullptr) std::fill(query_probs, query_probs + static_cast<size_t>(Hq) * R * S, 0.0f);

  parallel_for(Hq, [&](int h) {
    const int kv_head = h / group;
    std::vector<float> p(S);
    double* totals = key_totals != nullptr ? head_totals.data() + static_cast<size_t>(h) * S : nullptr;
    for (int t = 0; t < T; t++) {
      if (totals == nullptr && row_of[t] < 0) continue;
      const int visible = causal ? std::min(S, S - T + t + 1) : S;
      const float inv_sum = attention_exp_scores(p.data(), q + t * q_stride + static_cast<size_t>(h) * Dh,
                                                 k + static_cast<size_t>(kv_head) * Dh, kv_stride, visible, Dh, scale);
      float* row_out = row_of[t] >= 0 && query_probs != nullptr
                           ? query_probs + (static_cast<size_t>(h) * R + row_of[t]) * S
                           : nullptr;
      for (int j = 0; j < visible; j++) {
        const float prob = p[j] * inv_sum;
        if (totals != nullptr) totals[j] += prob;
        if (row_out != nullptr) row_out[j] = prob;
      }
    }
  });
  if (key_totals != nullptr) {
    for (int j = 0; j < S; j++) {
      double sum = 0.0;
      for (int h = 0; h < Hq; h++) sum += head_totals[static_cast<size_t>(h) * S + j];
      key_totals[j] = static_cast<float>(sum);
    }
  }
}

}  // namespace sqap
