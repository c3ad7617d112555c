// Standalone check and timing of the kernels without Node: every ISA path this CPU runs against the generic path
// (linear with f32/bf16/f16 weights, attention, gelu, silu_mul), then linear GFLOP/s on OpenVLA-7B shapes per path. It exists to
// test the AVX-512 path on machines that have AVX-512 but no Node toolchain. Build (from the repo root):
//   g++ -std=c++17 -O3 -pthread -Inative native/tools/selftest.cc native/dispatch.cc native/threadpool.cc \
//       native/generic/*.cc native/arch/*/*.cc -o build/sqap_selftest
// Run: build/sqap_selftest [--quick]. Exit status 1 when a comparison fails.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <utility>
#include <random>
#include <vector>

#include "kernels.h"

using namespace sqap;

namespace {

uint16_t to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return static_cast<uint16_t>((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}

// f32 -> f16 for values well inside the normal range (the test draws from [-1, 1]).
uint16_t to_f16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  uint32_t sign = (u >> 16) & 0x8000;
  int exponent = static_cast<int>((u >> 23) & 0xff) - 127 + 15;
  if (exponent <= 0) return static_cast<uint16_t>(sign);
  uint32_t mantissa = u & 0x7fffff;
  uint32_t half = sign | (exponent << 10) | (mantissa >> 13);
  uint32_t rest = mantissa & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (half & 1))) half++;
  return static_cast<uint16_t>(half);
}

struct Weights {
  std::vector<float> f32;
  std::vector<uint16_t> bits;
  const void* data(WeightType type) const {
    return type == WeightType::f32 ? static_cast<const void*>(f32.data()) : static_cast<const void*>(bits.data());
  }
};

Weights make_weights(std::mt19937& rng, size_t n, WeightType type) {
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  Weights w;
  w.f32.resize(n);
  for (auto& v : w.f32) v = uniform(rng);
  if (type != WeightType::f32) {
    w.bits.resize(n);
    for (size_t i = 0; i < n; i++) w.bits[i] = type == WeightType::bf16 ? to_bf16(w.f32[i]) : to_f16(w.f32[i]);
  }
  return w;
}

std::vector<float> uniform_vector(std::mt19937& rng, size_t n) {
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = uniform(rng);
  return v;
}

// max over elements of |a - b| / (atol + rtol |b|); <= 1 passes
double worst_ratio(const std::vector<float>& a, const std::vector<float>& b, double atol, double rtol) {
  double worst = 0;
  for (size_t i = 0; i < a.size(); i++) {
    double ratio = std::fabs(a[i] - b[i]) / (atol + rtol * std::fabs(b[i]));
    if (!(ratio <= worst)) worst = std::isnan(ratio) ? INFINITY : ratio;
  }
  return worst;
}

const char* type_name(WeightType t) { return t == WeightType::f32 ? "f32" : t == WeightType::bf16 ? "bf16" : "f16"; }

int check_isa(Isa isa) {
  int failures = 0;
  std::mt19937 rng(1234);
  const int shapes[][3] = {{1, 1, 1},   {1, 7, 5},    {3, 33, 67},  {17, 130, 67}, {7, 1037, 19},
                           {1, 1037, 131}, {290, 64, 35}, {13, 515, 9}, {6, 16, 4},
                           {8, 9, 17},  {64, 300, 33}, {100, 1000, 50}, {290, 600, 200}, {31, 257, 129}};
  for (WeightType type : {WeightType::f32, WeightType::bf16, WeightType::f16}) {
    for (const auto& s : shapes) {
      const int M = s[0], K = s[1], N = s[2];
      std::vector<float> x = uniform_vector(rng, static_cast<size_t>(M) * K);
      Weights w = make_weights(rng, static_cast<size_t>(N) * K, type);
      Weights bias = make_weights(rng, N, type);
      std::vector<float> want(static_cast<size_t>(M) * N), got(want.size());
      set_isa(Isa::generic);
      linear(want.data(), x.data(), w.data(type), type, bias.data(type), type, M, K, N);
      set_isa(isa);
      linear(got.data(), x.data(), w.data(type), type, bias.data(type), type, M, K, N);
      double ratio = worst_ratio(got, want, 2e-5, 2e-5);
      if (ratio > 1) {
        std::printf("FAIL %s linear %s M=%d K=%d N=%d: worst error %.2fx tolerance\n", isa_name(isa), type_name(type), M,
                    K, N, ratio);
        failures++;
      }
    }
  }
  const int attention_shapes[][5] = {{1, 1, 1, 1, 1}, {5, 5, 4, 4, 7}, {1, 19, 8, 2, 33}, {6, 23, 6, 3, 16}, {13, 13, 4, 1, 65}};
  for (const auto& s : attention_shapes) {
    const int T = s[0], S = s[1], Hq = s[2], Hkv = s[3], Dh = s[4];
    for (bool causal : {false, true}) {
      std::vector<float> q = uniform_vector(rng, static_cast<size_t>(T) * Hq * Dh);
      std::vector<float> k = uniform_vector(rng, static_cast<size_t>(S) * Hkv * Dh);
      std::vector<float> v = uniform_vector(rng, static_cast<size_t>(S) * Hkv * Dh);
      std::vector<float> want(q.size()), got(q.size()), want_p(static_cast<size_t>(Hq) * T * S), got_p(want_p.size());
      set_isa(Isa::generic);
      attention(want.data(), want_p.data(), q.data(), k.data(), v.data(), T, S, Hq, Hkv, Dh, causal);
      set_isa(isa);
      attention(got.data(), got_p.data(), q.data(), k.data(), v.data(), T, S, Hq, Hkv, Dh, causal);
      double ratio = std::max(worst_ratio(got, want, 2e-6, 2e-5), worst_ratio(got_p, want_p, 1e-6, 2e-5));
      if (ratio > 1) {
        std::printf("FAIL %s attention T=%d S=%d Hq=%d Hkv=%d Dh=%d causal=%d: %.2fx tolerance\n", isa_name(isa), T, S,
                    Hq, Hkv, Dh, causal, ratio);
        failures++;
      }
    }
  }
  // activations: the SIMD paths approximate erf/exp (arch/avx2/activations.cc), so the bound is both paths' error
  for (size_t n : {size_t{1}, size_t{7}, size_t{33}, size_t{70001}}) {
    std::vector<float> x = uniform_vector(rng, n), up = uniform_vector(rng, n);
    for (auto& value : x) value *= 8.0f;
    std::vector<float> want(n), got(n), want_silu(n), got_silu(n);
    set_isa(Isa::generic);
    gelu(want.data(), x.data(), n);
    silu_mul(want_silu.data(), x.data(), up.data(), n);
    set_isa(isa);
    gelu(got.data(), x.data(), n);
    silu_mul(got_silu.data(), x.data(), up.data(), n);
    double ratio = std::max(worst_ratio(got, want, 6e-7, 4e-7), worst_ratio(got_silu, want_silu, 2e-7, 2e-6));
    if (ratio > 1) {
      std::printf("FAIL %s gelu/silu_mul n=%zu: %.2fx tolerance\n", isa_name(isa), n, ratio);
      failures++;
    }
  }
  std::printf("%s: %s\n", isa_name(isa), failures == 0 ? "all comparisons with generic pass" : "FAILED");
  return failures;
}

double cpu_seconds() {
  timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

// Median GFLOP/s over wall time, and over process CPU time (all threads; what a loaded machine cannot steal).
std::pair<double, double> linear_gflops(int M, int K, int N, WeightType type, int reps) {
  std::mt19937 rng(7);
  std::vector<float> x = uniform_vector(rng, static_cast<size_t>(M) * K);
  Weights w = make_weights(rng, static_cast<size_t>(N) * K, type);
  std::vector<float> out(static_cast<size_t>(M) * N);
  linear(out.data(), x.data(), w.data(type), type, nullptr, type, M, K, N);
  std::vector<double> times, cpu_times;
  for (int r = 0; r < reps; r++) {
    auto start = std::chrono::steady_clock::now();
    double cpu_start = cpu_seconds();
    linear(out.data(), x.data(), w.data(type), type, nullptr, type, M, K, N);
    cpu_times.push_back(cpu_seconds() - cpu_start);
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::sort(times.begin(), times.end());
  std::sort(cpu_times.begin(), cpu_times.end());
  const double flops = 2.0 * M * K * N;
  return {flops / times[times.size() / 2] / 1e9, flops / cpu_times[cpu_times.size() / 2] / 1e9};
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  std::printf("best isa %s, %d threads\n", isa_name(best_isa()), thread_count());
  int failures = 0;
  for (Isa isa : {Isa::generic, Isa::avx2, Isa::avx512}) {
    if (isa_supported(isa)) {
      failures += check_isa(isa);
    } else {
      std::printf("%s: not supported by this CPU, skipped\n", isa_name(isa));
    }
  }
  std::printf("\nlinear GFLOP/s (median; per wall second, and per CPU second of all threads)\n");
  std::printf("%-8s %-5s %4s %6s %6s %9s %9s\n", "isa", "w", "M", "K", "N", "wall", "cpu");
  const int shapes[][2] = {{4096, 4096}, {4096, 11008}, {11008, 4096}};
  for (Isa isa : {Isa::avx2, Isa::avx512}) {
    if (!isa_supported(isa)) continue;
    set_isa(isa);
    for (WeightType type : {WeightType::f32, WeightType::bf16}) {
      for (const auto& s : shapes) {
        for (int M : {1, 290}) {
          if (quick && (s[1] != 4096 || s[0] != 4096)) continue;
          auto [wall, cpu] = linear_gflops(M, s[0], s[1], type, M == 1 ? 10 : 3);
          std::printf("%-8s %-5s %4d %6d %6d %9.1f %9.1f\n", isa_name(isa), type_name(type), M, s[0], s[1], wall, cpu);
        }
      }
    }
  }
  return failures == 0 ? 0 : 1;
}
