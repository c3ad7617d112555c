// Integer attention (contract A1–A6): int32 QKᵀ on per-(token, head) codes, an f64 softmax with exp_portable,
// probabilities · V scales quantized to u8, int32 PV. Threads split the query heads. Compiled with
// -ffp-contract=off, so every f64 step rounds exactly as the ref backend's.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "../kernel_table.h"
#include "../kernels.h"
#include "../threadpool.h"

namespace sqap {

// e^x for x <= 0 from +, -, ·, floor and 2^n only (ref-int.ts expPortable: same operations, same order; the SIMD
// version in arch/avx2/int.cc too)
double exp_portable(double x) {
  if (x < -700) return 0.0;
  const double n = std::floor(x * kExpLog2e + 0.5);
  const double r = x - n * kExpLn2Hi - n * kExpLn2Lo;
  double p = kExpTaylor[0];
  for (int i = 1; i < kExpTaylorTerms; i++) p = p * r + kExpTaylor[i];
  return std::ldexp(p, static_cast<int>(n));
}

void exp_shift_generic(double* e, int n, double mx) {
  for (int i = 0; i < n; i++) e[i] = exp_portable(e[i] - mx);
}

int32_t dot_i8_generic(const int8_t* a, const int8_t* b, int n) {
  int32_t dot = 0;
  for (int d = 0; d < n; d++) dot += static_cast<int32_t>(a[d]) * b[d];
  return dot;
}

void axpy_i8_generic(int32_t* acc, int32_t p, const int8_t* v, int n) {
  for (int d = 0; d < n; d++) acc[d] += p * v[d];
}

void attention_int(float* out, float* probs, const int8_t* q, const float* q_scales, const int8_t* k,
                   const float* k_scales, const int8_t* v, const float* v_scales, int T, int S, int Hq, int Hkv, int Dh,
                   bool causal) {
  const int group = Hq / Hkv;
  const double inv_sqrt = 1.0 / std::sqrt(static_cast<double>(Dh));
  const KernelTable& table = kernels();  // the int8 inner products; exact, so every path gives the same int32
  parallel_for(Hq, [&](int h) {
    const int kv = h / group;
    std::vector<double> e(S);
    std::vector<int32_t> pc(S);
    std::vector<int32_t> acc(Dh);
    for (int t = 0; t < T; t++) {
      const int visible = causal ? S - T + t + 1 : S;
      const size_t q_row = static_cast<size_t>(t) * Hq + h;
      const int8_t* qv = q + q_row * Dh;
      double mx = -INFINITY;
      for (int s = 0; s < visible; s++) {  // A1, A2
        const size_t k_row = static_cast<size_t>(s) * Hkv + kv;
        const int8_t* kr = k + k_row * Dh;
        const int32_t dot = table.dot_i8(qv, kr, Dh);
        e[s] = dot * (static_cast<double>(q_scales[q_row]) * k_scales[k_row]) * inv_sqrt;
        if (e[s] > mx) mx = e[s];
      }
      double total = 0;  // A3
      table.exp_shift(e.data(), visible, mx);
      for (int s = 0; s < visible; s++) total += e[s];
      double pmax = 0;  // A4
      for (int s = 0; s < visible; s++) {
        const double p = e[s] / total;
        if (probs != nullptr) probs[(static_cast<size_t>(h) * T + t) * S + s] = static_cast<float>(p);
        e[s] = p * v_scales[static_cast<size_t>(s) * Hkv + kv];
        if (e[s] > pmax) pmax = e[s];
      }
      if (probs != nullptr)
        for (int s = visible; s < S; s++) probs[(static_cast<size_t>(h) * T + t) * S + s] = 0.0f;
      float* o = out + q_row * Dh;
      if (pmax == 0) {
        std::fill(o, o + Dh, 0.0f);
        continue;
      }
      const double sp = pmax / 255;
      for (int s = 0; s < visible; s++) pc[s] = static_cast<int32_t>(std::min(255.0, std::nearbyint(e[s] / sp)));
      std::fill(acc.begin(), acc.end(), 0);  // A5
      for (int s = 0; s < visible; s++) {
        const int8_t* vr = v + (static_cast<size_t>(s) * Hkv + kv) * Dh;
        table.axpy_i8(acc.data(), pc[s], vr, Dh);
      }
      for (int d = 0; d < Dh; d++) o[d] = static_cast<float>(acc[d] * sp);  // A6
    }
  });
}

}  // namespace sqap
