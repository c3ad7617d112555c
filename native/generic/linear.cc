// linear: the threaded driver (ISA-independent) and the portable scalar column kernel.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "../kernel_table.h"
#include "../threadpool.h"
#include "convert.h"

namespace sqap {

namespace {

template <WeightType W>
inline float load_weight(const void* w, size_t i) {
  if constexpr (W == WeightType::f32) return static_cast<const float*>(w)[i];
  if constexpr (W == WeightType::bf16) return bf16_to_f32(static_cast<const uint16_t*>(w)[i]);
  if constexpr (W == WeightType::f16) return f16_to_f32(static_cast<const uint16_t*>(w)[i]);
  return 0.0f;
}

// out (M,N) += x (M,K) · w (N,K)ᵀ for columns [n0, n1); f32 accumulation in k order.
template <WeightType W>
void linear_columns_scalar(float* out, const float* x, const void* w, int M, int K, int N, int n0, int n1) {
  for (int n = n0; n < n1; n++) {
    const size_t w_row = static_cast<size_t>(n) * K;
    for (int m = 0; m < M; m++) {
      const float* x_row = x + static_cast<size_t>(m) * K;
      float sum = 0.0f;
      for (int k = 0; k < K; k++) sum += x_row[k] * load_weight<W>(w, w_row + k);
      out[static_cast<size_t>(m) * N + n] += sum;
    }
  }
}

// Element (n, k) of a prepacked weight (kernels.h, "Prepacked float weights").
template <WeightType W>
inline float prepacked_at(const void* packed, int K, int n, int k) {
  const size_t base = (static_cast<size_t>(n / kPrepackRows) * K + k) * kPrepackRows;
  const int j = n % kPrepackRows;
  if constexpr (W == WeightType::f32) return static_cast<const float*>(packed)[base + j];
  const int half = kPrepackRows / 2;
  return bf16_to_f32(static_cast<const uint16_t*>(packed)[base + (j < half ? 2 * j : 2 * (j - half) + 1)]);
}

// out (M,N) += x (M,K) · wᵀ for the columns of panels [p0, p1), w prepacked; f32 accumulation in k order (as
// linear_columns_scalar).
template <WeightType W>
void prepacked_columns_scalar(float* out, const float* x, const void* packed, int M, int K, int N, int p0, int p1) {
  const int n1 = std::min(N, p1 * kPrepackRows);
  for (int n = p0 * kPrepackRows; n < n1; n++) {
    for (int m = 0; m < M; m++) {
      const float* x_row = x + static_cast<size_t>(m) * K;
      float sum = 0.0f;
      for (int k = 0; k < K; k++) sum += x_row[k] * prepacked_at<W>(packed, K, n, k);
      out[static_cast<size_t>(m) * N + n] += sum;
    }
  }
}

// out (M,N) += bf16(x) (M,K) · wᵀ for the columns of panels [p0, p1), w in the bf16-dot layout; products exact in
// f32 (8-bit significands), summed in k order.
void prepacked_dot_columns_scalar(float* out, const float* x, const uint16_t* packed, int M, int K, int N, int p0,
                                  int p1) {
  const int Q = (K + 1) / 2;
  const int n1 = std::min(N, p1 * kPrepackRows);
  for (int n = p0 * kPrepackRows; n < n1; n++) {
    const size_t panel = static_cast<size_t>(n / kPrepackRows) * Q;
    const int j = n % kPrepackRows;
    for (int m = 0; m < M; m++) {
      const float* x_row = x + static_cast<size_t>(m) * K;
      float sum = 0.0f;
      for (int k = 0; k < K; k++) {
        const float w = bf16_to_f32(packed[((panel + k / 2) * kPrepackRows + j) * 2 + k % 2]);
        sum += bf16_to_f32(round_to_bf16(x_row[k])) * w;
      }
      out[static_cast<size_t>(m) * N + n] += sum;
    }
  }
}

// out[m, n] = bias[n] (0 without a bias) for m < M and n0 <= n < n1: the start every linear driver's columns add to
void fill_bias_columns(float* out, const void* bias, WeightType bias_type, int M, int N, int n0, int n1) {
  for (int m = 0; m < M; m++) {
    float* out_row = out + static_cast<size_t>(m) * N;
    for (int n = n0; n < n1; n++) out_row[n] = bias != nullptr ? weight_at(bias, bias_type, n) : 0.0f;
  }
}

}  // namespace

// The scalar kernel reads x as it is.
size_t linear_packed_size_generic(int M, int K) { return 0; }
void linear_pack_generic(float* packed, const float* x, int M, int K) {}

void linear_columns_generic(float* out, const float* x, const void* w, WeightType w_type, int M, int K, int N,
                            int n0, int n1) {
  switch (w_type) {
    case WeightType::f32:
      return linear_columns_scalar<WeightType::f32>(out, x, w, M, K, N, n0, n1);
    case WeightType::bf16:
      return linear_columns_scalar<WeightType::bf16>(out, x, w, M, K, N, n0, n1);
    case WeightType::f16:
      return linear_columns_scalar<WeightType::f16>(out, x, w, M, K, N, n0, n1);
    case WeightType::i8:
    case WeightType::i4:
      return;  // integer weights go through linear_int / linear_dequant
  }
}

float dot_generic(const float* a, const float* b, int n) {
  float sum = 0.0f;
  for (int i = 0; i < n; i++) sum += a[i] * b[i];
  return sum;
}

void axpy_generic(float* y, float alpha, const float* x, int n) {
  for (int i = 0; i < n; i++) y[i] += alpha * x[i];
}

const KernelTable kGenericKernels = {Isa::generic, linear_packed_size_generic, linear_pack_generic,
                                     linear_columns_generic, dot_generic, axpy_generic, gelu_generic,
                                     silu_mul_generic, int_gemm_generic, quantize_row_generic,
                                     dequant_row_generic, dot_i8_generic, axpy_i8_generic,
                                     exp_shift_generic, nullptr, nullptr};

// x is repacked once into the ISA's tile layout (activations only: weights are read in place, whatever their dtype),
// then threads split the output columns N, each streaming its own rows of w, the dominant memory traffic.
// Column chunks are multiples of 16 so SIMD kernels rarely hit their column remainder.
void linear(float* out, const float* x, const void* w, WeightType w_type, const void* bias, WeightType bias_type,
            int M, int K, int N) {
  const KernelTable& table = kernels();
  const size_t packed_floats = table.linear_packed_size(M, K);
  // 64-byte aligned so no vector load of the packed tiles straddles a cache line
  // per-thread scratch kept between calls: a fresh multi-megabyte vector per call costs a page fault per 4 KiB
  thread_local std::vector<float> storage;
  if (packed_floats > 0 && storage.size() < packed_floats + 16) storage.resize(packed_floats + 16);
  float* packed = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(storage.data()) + 63) & ~uintptr_t{63});
  if (packed_floats > 0) table.linear_pack(packed, x, M, K);
  const float* xs = packed_floats > 0 ? packed : x;
  const double flops = 2.0 * M * K * N;
  const int min_parallel = flops < 2e5 ? N + 1 : 0;  // tiny products are not worth waking the pool
  parallel_range(N, 16, min_parallel, [&](int n0, int n1) {
    fill_bias_columns(out, bias, bias_type, M, N, n0, n1);
    table.linear_columns(out, xs, w, w_type, M, K, N, n0, n1);
  });
}

size_t prepacked_elements(int N, int K) {
  return static_cast<size_t>((N + kPrepackRows - 1) / kPrepackRows) * kPrepackRows * K;
}

// One pass over w, row by row (reads stay sequential; each panel's writes are 32 values apart). Panels are
// independent, so they are split over the pool.
void prepack_weight(void* dst, const void* w, WeightType w_type, int N, int K) {
  const int panels = (N + kPrepackRows - 1) / kPrepackRows;
  const int half = kPrepackRows / 2;
  parallel_range(panels, 1, 0, [&](int p0, int p1) {
    for (int p = p0; p < p1; p++) {
      for (int j = 0; j < kPrepackRows; j++) {
        const int n = p * kPrepackRows + j;
        const size_t base = static_cast<size_t>(p) * K * kPrepackRows;
        if (w_type == WeightType::f32) {
          float* d = static_cast<float*>(dst) + base + j;
          const float* row = static_cast<const float*>(w) + static_cast<size_t>(n) * K;
          for (int k = 0; k < K; k++) d[static_cast<size_t>(k) * kPrepackRows] = n < N ? row[k] : 0.0f;
        } else {
          uint16_t* d = static_cast<uint16_t*>(dst) + base + (j < half ? 2 * j : 2 * (j - half) + 1);
          const uint16_t* row = static_cast<const uint16_t*>(w) + static_cast<size_t>(n) * K;
          for (int k = 0; k < K; k++) d[static_cast<size_t>(k) * kPrepackRows] = n < N ? row[k] : 0;
        }
      }
    }
  });
}

bool prepacked_fast() { return kernels().prepacked != nullptr; }

// As linear(), over whole panels: threads split the panels, each streaming its own.
void linear_prepacked(float* out, const float* x, const void* packed, WeightType w_type, const void* bias,
                      WeightType bias_type, int M, int K, int N) {
  const KernelTable& table = kernels();
  const PrepackedKernels* kernel = table.prepacked;
  const size_t packed_floats = kernel != nullptr ? kernel->x_size(M, K) : 0;
  thread_local std::vector<float> storage;
  if (packed_floats > 0 && storage.size() < packed_floats + 16) storage.resize(packed_floats + 16);
  float* xs_storage = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(storage.data()) + 63) & ~uintptr_t{63});
  if (packed_floats > 0) kernel->pack_x(xs_storage, x, M, K);
  const float* xs = packed_floats > 0 ? xs_storage : x;
  const int panels = (N + kPrepackRows - 1) / kPrepackRows;
  const double flops = 2.0 * M * K * N;
  parallel_range(panels, 1, flops < 2e5 ? panels + 1 : 0, [&](int p0, int p1) {
    const int n0 = p0 * kPrepackRows, n1 = std::min(N, p1 * kPrepackRows);
    fill_bias_columns(out, bias, bias_type, M, N, n0, n1);
    if (kernel != nullptr) return kernel->columns(out, xs, packed, w_type, M, K, N, p0, p1);
    if (w_type == WeightType::f32) return prepacked_columns_scalar<WeightType::f32>(out, xs, packed, M, K, N, p0, p1);
    prepacked_columns_scalar<WeightType::bf16>(out, xs, packed, M, K, N, p0, p1);
  });
}

}  // namespace sqap

namespace sqap {

uint16_t round_to_bf16(float v) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  if ((u & 0x7F800000u) == 0) u &= 0x80000000u;                      // denormal (or zero) -> signed zero
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((u >> 16) | 0x0040u);  // NaN stays (quiet) NaN
  u += 0x7FFFu + ((u >> 16) & 1u);                                      // round to nearest, ties to even
  return static_cast<uint16_t>(u >> 16);
}

size_t prepacked_dot_elements(int N, int K) {
  return static_cast<size_t>((N + kPrepackRows - 1) / kPrepackRows) * kPrepackRows * 2 * ((K + 1) / 2);
}

// One pass over w, row by row; panels split over the pool.
void prepack_weight_dot(uint16_t* dst, const uint16_t* w, int N, int K) {
  const int panels = (N + kPrepackRows - 1) / kPrepackRows;
  const int Q = (K + 1) / 2;
  parallel_range(panels, 1, 0, [&](int p0, int p1) {
    for (int p = p0; p < p1; p++) {
      for (int j = 0; j < kPrepackRows; j++) {
        const int n = p * kPrepackRows + j;
        const uint16_t* row = w + static_cast<size_t>(n) * K;
        uint16_t* d = dst + (static_cast<size_t>(p) * Q * kPrepackRows + j) * 2;
        for (int k = 0; k < 2 * Q; k++) {
          d[static_cast<size_t>(k / 2) * kPrepackRows * 2 + k % 2] = n < N && k < K ? row[k] : 0;
        }
      }
    }
  });
}

bool prepacked_dot_fast() { return prepacked_dot_kernels() != nullptr; }

// As linear_prepacked: x rounded and packed once (fast path), threads split the panels.
void linear_prepacked_dot(float* out, const float* x, const uint16_t* packed, const void* bias, WeightType bias_type,
                          int M, int K, int N) {
  const PrepackedDotKernels* kernel = prepacked_dot_kernels();
  const size_t packed_pairs = kernel != nullptr ? kernel->x_size(M, K) : 0;
  thread_local std::vector<uint32_t> storage;
  if (packed_pairs > 0 && storage.size() < packed_pairs + 16) storage.resize(packed_pairs + 16);
  uint32_t* xs = reinterpret_cast<uint32_t*>((reinterpret_cast<uintptr_t>(storage.data()) + 63) & ~uintptr_t{63});
  if (packed_pairs > 0) kernel->pack_x(xs, x, M, K);
  const int panels = (N + kPrepackRows - 1) / kPrepackRows;
  const double flops = 2.0 * M * K * N;
  parallel_range(panels, 1, flops < 2e5 ? panels + 1 : 0, [&](int p0, int p1) {
    const int n0 = p0 * kPrepackRows, n1 = std::min(N, p1 * kPrepackRows);
    fill_bias_columns(out, bias, bias_type, M, N, n0, n1);
    if (kernel != nullptr) return kernel->columns(out, xs, packed, M, K, N, p0, p1);
    prepacked_dot_columns_scalar(out, x, packed, M, K, N, p0, p1);
  });
}

}  // namespace sqap
