// Per-row activation quantization (contract Q1–Q5: RMSNorm, block Hadamard, clip, scale, RNE codes) and the
// Walsh–Hadamard transform. Scalar C++ whose every float operation is one the contract names, compiled with
// -ffp-contract=off (binding.gyp), so the codes are bit-identical to the ref backend's.
#include <cmath>
#include <cstdint>
#include <vector>

#include "../kernel_table.h"
#include "../threadpool.h"
#include "convert.h"

namespace sqap {

namespace {

// Q2 on v[0 .. B): butterflies by stride 1, 2, 4, ..., then · f32(1/√B)
void fwht_block(float* v, int B) {
  for (int len = 1; len < B; len <<= 1) {
    for (int i = 0; i < B; i += 2 * len) {
      for (int j = i; j < i + len; j++) {
        const float a = v[j], b = v[j + len];
        v[j] = a + b;
        v[j + len] = a - b;
      }
    }
  }
  const float s = static_cast<float>(1.0 / std::sqrt(static_cast<double>(B)));
  for (int j = 0; j < B; j++) v[j] = v[j] * s;
}

}  // namespace

float quantize_row_generic(int8_t* codes, const float* h, int K, float qmax, float clip) {
  float amax = 0.0f;  // Q3
  for (int k = 0; k < K; k++) amax = std::fmax(amax, std::fabs(h[k]));
  if (clip != 1.0f) amax = amax * clip;
  const float scale = amax / qmax;  // Q4
  if (scale == 0.0f) {
    for (int k = 0; k < K; k++) codes[k] = 0;
    return scale;
  }
  for (int k = 0; k < K; k++) {  // Q5: nearbyint rounds half to even in the default rounding mode
    const float q = std::nearbyint(h[k] / scale);
    codes[k] = static_cast<int8_t>(q > qmax ? qmax : (q < -qmax ? -qmax : q));
  }
  return scale;
}

void fwht(float* out, const float* x, int M, int K, int block) {
  parallel_range(M, 1, static_cast<double>(M) * K < 65536 ? M + 1 : 0, [&](int m0, int m1) {
    for (int m = m0; m < m1; m++) {
      float* row = out + static_cast<size_t>(m) * K;
      for (int k = 0; k < K; k++) row[k] = x[static_cast<size_t>(m) * K + k];
      for (int o = 0; o < K; o += block) fwht_block(row + o, block);
    }
  });
}

void quantize_activations(int8_t* codes, float* scales, const float* x, int M, int K, int bits, bool has_norm,
                          const void* norm_weight, WeightType norm_type, double eps, int had_block, float clip) {
  const float qmax = bits == 8 ? 127.0f : 7.0f;
  const KernelTable& table = kernels();
  parallel_range(M, 1, static_cast<double>(M) * K < 65536 ? M + 1 : 0, [&](int m0, int m1) {
    std::vector<float> h(K);
    for (int m = m0; m < m1; m++) {
      const float* row = x + static_cast<size_t>(m) * K;
      if (has_norm) {  // Q1
        double ss = 0;
        for (int k = 0; k < K; k++) ss += static_cast<double>(row[k]) * row[k];
        const double inv = 1.0 / std::sqrt(ss / K + eps);
        for (int k = 0; k < K; k++) {
          const float t = static_cast<float>(row[k] * inv);
          h[k] = norm_weight != nullptr ? t * weight_at(norm_weight, norm_type, k) : t;
        }
      } else {
        for (int k = 0; k < K; k++) h[k] = row[k];
      }
      if (had_block > 0)  // Q2
        for (int o = 0; o < K; o += had_block) fwht_block(h.data() + o, had_block);
      scales[m] = table.quantize_row(codes + static_cast<size_t>(m) * K, h.data(), K, qmax, clip);  // Q3–Q5
    }
  });
}

}  // namespace sqap
