// layer_norm and rms_norm: one row at a time, rows split across threads. Row statistics are summed in double so
// long rows (D = 4096) keep f32 accuracy whatever the magnitude of the mean.
#include <cmath>

#include "../kernels.h"
#include "../threadpool.h"
#include "convert.h"

namespace sqap {

namespace {
constexpr int kMinParallelElements = 1 << 15;  // below this a norm runs on the calling thread
}

// out (M,D) = (x - mean) / sqrt(var + eps) * weight (D) + bias (D); biased variance as torch.nn.LayerNorm
void layer_norm(float* out, const float* x, const void* weight, WeightType weight_type, const void* bias,
                WeightType bias_type, int M, int D, float eps) {
  const int min_parallel = static_cast<size_t>(M) * D < kMinParallelElements ? M + 1 : 2;
  parallel_range(M, 1, min_parallel, [&](int m0, int m1) {
    for (int m = m0; m < m1; m++) {
      const float* x_row = x + static_cast<size_t>(m) * D;
      float* out_row = out + static_cast<size_t>(m) * D;
      double sum = 0.0;
      for (int d = 0; d < D; d++) sum += x_row[d];
      const double mean = D > 0 ? sum / D : 0.0;
      double squares = 0.0;
      for (int d = 0; d < D; d++) {
        const double centered = x_row[d] - mean;
        squares += centered * centered;
      }
      const double variance = D > 0 ? squares / D : 0.0;
      const double inv_std = 1.0 / std::sqrt(variance + eps);
      for (int d = 0; d < D; d++) {
        const double normalized = (x_row[d] - mean) * inv_std;
        out_row[d] = static_cast<float>(normalized * weight_at(weight, weight_type, d) +
                                        weight_at(bias, bias_type, d));
      }
    }
  });
}

// out (M,D) = x / sqrt(mean(x²) + eps) * weight (D); x / rms is rounded to f32 before the weight multiply, as
// transformers' LlamaRMSNorm does (it casts back to the input dtype first)
void rms_norm(float* out, const float* x, const void* weight, WeightType weight_type, int M, int D, float eps) {
  const int min_parallel = static_cast<size_t>(M) * D < kMinParallelElements ? M + 1 : 2;
  parallel_range(M, 1, min_parallel, [&](int m0, int m1) {
    for (int m = m0; m < m1; m++) {
      const float* x_row = x + static_cast<size_t>(m) * D;
      float* out_row = out + static_cast<size_t>(m) * D;
      double squares = 0.0;
      for (int d = 0; d < D; d++) squares += static_cast<double>(x_row[d]) * x_row[d];
      const double mean_square = D > 0 ? squares / D : 0.0;
      const double inv_rms = 1.0 / std::sqrt(mean_square + eps);
      for (int d = 0; d < D; d++) {
        const float normalized = static_cast<float>(x_row[d] * inv_rms);
        out_row[d] = static_cast<float>(static_cast<double>(normalized) * weight_at(weight, weight_type, d));
      }
    }
  });
}

}  // namespace sqap
