// Integer linear: the weight packer, the threaded driver (ISA-independent), the portable scalar GEMM, and the
// weight-only (dequantizing) linear. Arithmetic: docs/quantization.md, Kernel contract, L1–L3; layout: kernels.h.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "../kernel_table.h"
#include "../threadpool.h"
#include "convert.h"

namespace sqap {

namespace {

int round_up(int v, int to) { return (v + to - 1) / to * to; }

// signed code of QuantizedWeight element (n, k) in its row-major form
inline int code_at(const void* codes, WeightType type, int K, int n, int k) {
  if (type == WeightType::i8) return static_cast<const int8_t*>(codes)[static_cast<size_t>(n) * K + k];
  const uint8_t byte = static_cast<const uint8_t*>(codes)[static_cast<size_t>(n) * ((K + 1) / 2) + k / 2];
  const int nibble = (k & 1) ? byte >> 4 : byte & 15;
  return nibble >= 8 ? nibble - 16 : nibble;
}

// signed code of packed element (n, padded column kp)
inline int packed_code(const IntGemmArgs& a, int n, int kp) {
  const int b = n / 16, lane = n % 16;
  if (!a.i4) {
    const uint8_t byte = a.w[static_cast<size_t>(b) * a.Kp * 16 + (static_cast<size_t>(kp / 4) * 16 + lane) * 4 + kp % 4];
    return static_cast<int>(byte) - 128;
  }
  const int within = kp % 8;
  const uint8_t byte = a.w[static_cast<size_t>(b) * a.Kp * 8 + (static_cast<size_t>(kp / 8) * 16 + lane) * 4 + within % 4];
  return (within < 4 ? byte & 15 : byte >> 4) - 8;
}

}  // namespace

// Row n of a QuantizedWeight as f32 (contract W2: f32(code · scale)), group by group, in loops the compiler vectorises.
void dequant_row_generic(float* out, const void* codes, const float* scales, WeightType type, int K, int group, int n) {
  const int G = K / group;
  if (type == WeightType::i8) {
    const int8_t* row = static_cast<const int8_t*>(codes) + static_cast<size_t>(n) * K;
    for (int g = 0; g < G; g++) {
      const float s = scales[static_cast<size_t>(n) * G + g];
      for (int k = g * group; k < (g + 1) * group; k++) out[k] = static_cast<float>(row[k]) * s;
    }
    return;
  }
  // the two signed codes of every byte value, low nibble first
  static const auto kPairs = [] {
    struct Table {
      float v[256][2];
    } t{};
    for (int b = 0; b < 256; b++) {
      t.v[b][0] = static_cast<float>((b & 15) >= 8 ? (b & 15) - 16 : (b & 15));
      t.v[b][1] = static_cast<float>((b >> 4) >= 8 ? (b >> 4) - 16 : (b >> 4));
    }
    return t;
  }();
  const uint8_t* row = static_cast<const uint8_t*>(codes) + static_cast<size_t>(n) * ((K + 1) / 2);
  for (int k = 0; k + 1 < K; k += 2) {
    const float* pair = kPairs.v[row[k / 2]];
    out[k] = pair[0];
    out[k + 1] = pair[1];
  }
  if (K % 2) out[K - 1] = static_cast<float>(static_cast<int8_t>(static_cast<uint8_t>(row[K / 2] << 4)) >> 4);
  for (int g = 0; g < G; g++) {
    const float s = scales[static_cast<size_t>(n) * G + g];
    for (int k = g * group; k < (g + 1) * group; k++) out[k] = out[k] * s;
  }
}

IntWeightLayout int_weight_layout(WeightType type, int N, int K, int group) {
  IntWeightLayout l;
  l.N = N;
  l.K = K;
  l.group = group;
  l.G = group > 0 ? K / group : 0;
  l.Gp = round_up(group, 8);
  l.Kp = l.G * l.Gp;
  l.Np = round_up(N, 16);
  l.bytes = static_cast<size_t>(l.Np) * l.Kp * (type == WeightType::i4 ? 1 : 2) / 2;
  l.scales = static_cast<size_t>(l.Np) * l.G;
  return l;
}

namespace {

// Block b (weight rows 16b .. 16b+15) of the packed layout, from canonical codes/scales whose first row is weight row
// `row0` (0 for a whole weight; 16b when they hold just this block's rows).
void pack_block(uint8_t* block, float* block_scales, const void* codes, const float* scales, int row0, WeightType type,
                int N, int K, int group, const IntWeightLayout& l, int b) {
  const bool i4 = type == WeightType::i4;
  for (int lane = 0; lane < 16; lane++) {
    const int n = b * 16 + lane;
    for (int kp = 0; kp < l.Kp; kp++) {
      const int g = kp / l.Gp, within = kp % l.Gp;
      const int code = n < N && within < group ? code_at(codes, type, K, n - row0, g * group + within) : 0;
      if (!i4) {
        block[(static_cast<size_t>(kp / 4) * 16 + lane) * 4 + kp % 4] = static_cast<uint8_t>(code + 128);
      } else {
        uint8_t& byte = block[(static_cast<size_t>(kp / 8) * 16 + lane) * 4 + (kp % 8) % 4];
        if (kp % 8 < 4) byte = static_cast<uint8_t>((byte & 0xF0) | (code + 8));
        else byte = static_cast<uint8_t>((byte & 0x0F) | ((code + 8) << 4));
      }
    }
    for (int g = 0; g < l.G; g++) {
      block_scales[static_cast<size_t>(g) * 16 + lane] = n < N ? scales[static_cast<size_t>(n - row0) * l.G + g] : 0.0f;
    }
  }
}

}  // namespace

void pack_int_weight(uint8_t* packed, float* packed_scales, const void* codes, const float* scales, WeightType type,
                     int N, int K, int group) {
  const IntWeightLayout l = int_weight_layout(type, N, K, group);
  const size_t block_bytes = static_cast<size_t>(l.Kp) * (type == WeightType::i4 ? 8 : 16);
  parallel_range(l.Np / 16, 1, 64, [&](int b0, int b1) {
    for (int b = b0; b < b1; b++) {
      pack_block(packed + static_cast<size_t>(b) * block_bytes, packed_scales + static_cast<size_t>(b) * l.G * 16, codes,
                 scales, 0, type, N, K, group, l, b);
    }
  });
}

bool pack_int_weight_in_place(void* codes, float* scales, WeightType type, int N, int K, int group) {
  const IntWeightLayout l = int_weight_layout(type, N, K, group);
  if (l.Np != N || l.Gp != group) return false;  // the layouts differ in size
  // Kp = K and Np = N: 16 canonical rows are exactly the bytes of one packed block, and their scales one block's
  const size_t block_bytes = static_cast<size_t>(K) * (type == WeightType::i4 ? 8 : 16);
  const size_t block_scales = static_cast<size_t>(l.G) * 16;
  parallel_range(N / 16, 1, 64, [&](int b0, int b1) {
    std::vector<uint8_t> rows(block_bytes);
    std::vector<float> row_scales(block_scales);
    for (int b = b0; b < b1; b++) {
      uint8_t* block = static_cast<uint8_t*>(codes) + static_cast<size_t>(b) * block_bytes;
      float* s = scales + static_cast<size_t>(b) * block_scales;
      std::memcpy(rows.data(), block, block_bytes);
      std::memcpy(row_scales.data(), s, block_scales * sizeof(float));
      pack_block(block, s, rows.data(), row_scales.data(), b * 16, type, N, K, group, l, b);
    }
  });
  return true;
}

void unpack_int_weight(void* codes, float* scales, const uint8_t* packed, const float* packed_scales, WeightType type,
                       int N, int K, int group) {
  const IntWeightLayout l = int_weight_layout(type, N, K, group);
  const bool i4 = type == WeightType::i4;
  const size_t block_bytes = static_cast<size_t>(l.Kp) * (i4 ? 8 : 16);
  const size_t row_bytes = static_cast<size_t>(K + 1) / 2;
  parallel_range(N, 16, 64, [&](int n0, int n1) {
    for (int n = n0; n < n1; n++) {
      const uint8_t* block = packed + static_cast<size_t>(n / 16) * block_bytes;
      const int lane = n % 16;
      for (int k = 0; k < K; k++) {
        const int kp = (k / group) * l.Gp + k % group;
        if (!i4) {
          const uint8_t byte = block[(static_cast<size_t>(kp / 4) * 16 + lane) * 4 + kp % 4];
          static_cast<int8_t*>(codes)[static_cast<size_t>(n) * K + k] = static_cast<int8_t>(static_cast<int>(byte) - 128);
        } else {
          const uint8_t byte = block[(static_cast<size_t>(kp / 8) * 16 + lane) * 4 + (kp % 8) % 4];
          const int code = (kp % 8 < 4 ? byte & 15 : byte >> 4) - 8;
          uint8_t& out = static_cast<uint8_t*>(codes)[static_cast<size_t>(n) * row_bytes + k / 2];
          if (k % 2 == 0) out = static_cast<uint8_t>(code & 15);
          else out = static_cast<uint8_t>(out | ((code & 15) << 4));
        }
      }
      for (int g = 0; g < l.G; g++) {
        scales[static_cast<size_t>(n) * l.G + g] = packed_scales[(static_cast<size_t>(n / 16) * l.G + g) * 16 + lane];
      }
    }
  });
}

// L1–L3 in plain integer and float arithmetic, on the same packed operands as the SIMD kernels.
void int_gemm_generic(const IntGemmArgs& a, int b0, int b1) {
  const int n1 = std::min(b1 * 16, a.N);
  for (int n = b0 * 16; n < n1; n++) {
    for (int m = 0; m < a.M; m++) {
      const int8_t* x = a.x + static_cast<size_t>(m) * a.x_stride;
      float s = 0.0f;
      for (int g = 0; g < a.G; g++) {
        int32_t acc = 0;
        for (int kp = g * a.Gp; kp < (g + 1) * a.Gp; kp++) acc += static_cast<int32_t>(x[kp]) * packed_code(a, n, kp);
        if (a.acc != nullptr) a.acc[(static_cast<size_t>(m) * a.N + n) * a.G + g] = acc;
        const float p = static_cast<float>(acc) * a.w_scales[(static_cast<size_t>(n / 16) * a.G + g) * 16 + n % 16];
        s = s + p;
      }
      float y = s * a.x_scales[m];
      if (a.bias != nullptr) y = y + a.bias[n];
      a.out[static_cast<size_t>(m) * a.N + n] = y;
    }
  }
}

void linear_int(float* out, int32_t* acc, const int8_t* x_codes, const float* x_scales, const uint8_t* w_packed,
                const float* w_scales, WeightType w_type, int M, int K, int N, int group, const void* bias,
                WeightType bias_type) {
  const IntWeightLayout l = int_weight_layout(w_type, N, K, group);
  // x with the weight's group padding, and its per-group sums (they undo the weight bias)
  const int x_stride = l.Kp + 64;
  // per-thread scratch kept between calls: a fresh multi-megabyte vector per call costs a page fault per 4 KiB
  thread_local std::vector<int8_t> x;
  thread_local std::vector<int32_t> rsum;
  x.assign(static_cast<size_t>(M) * x_stride + 64, 0);
  rsum.resize(static_cast<size_t>(M) * l.G);
  for (int m = 0; m < M; m++) {
    for (int g = 0; g < l.G; g++) {
      const int8_t* src = x_codes + static_cast<size_t>(m) * K + static_cast<size_t>(g) * group;
      std::memcpy(x.data() + static_cast<size_t>(m) * x_stride + static_cast<size_t>(g) * l.Gp, src, group);
      int32_t sum = 0;
      for (int k = 0; k < group; k++) sum += src[k];
      rsum[static_cast<size_t>(m) * l.G + g] = sum;
    }
  }
  std::vector<float> bias_f32;
  if (bias != nullptr) {
    bias_f32.resize(N);
    for (int n = 0; n < N; n++) bias_f32[n] = weight_at(bias, bias_type, n);
  }
  IntGemmArgs args{out,  acc, x.data(), rsum.data(), x_scales, w_packed, w_scales,
                   bias != nullptr ? bias_f32.data() : nullptr, w_type == WeightType::i4, M, N, l.G, l.Gp, l.Kp, x_stride};
  const KernelTable& table = kernels();
  const double ops = 2.0 * M * l.Kp * N;
  parallel_range(l.Np / 16, 4, ops < 4e5 ? l.Np + 1 : 0, [&](int b0, int b1) { table.int_gemm(args, b0, b1); });
}

// Weight-only: each thread dequantizes blocks of 16 weight rows into f32 (contract W2) and runs the f32 column
// kernel of the current ISA on them.
void linear_dequant(float* out, const float* x, const void* codes, const float* scales, WeightType w_type, int group,
                    const void* bias, WeightType bias_type, int M, int K, int N) {
  const KernelTable& table = kernels();
  const size_t packed_floats = table.linear_packed_size(M, K);
  thread_local std::vector<float> storage;  // reused between calls (see linear_int)
  if (storage.size() < packed_floats + 16) storage.resize(packed_floats + 16);
  float* packed = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(storage.data()) + 63) & ~uintptr_t{63});
  if (packed_floats > 0) table.linear_pack(packed, x, M, K);
  const float* xs = packed_floats > 0 ? packed : x;
  constexpr int kRows = 16;
  parallel_range(N, kRows, static_cast<double>(M) * K * N < 1e5 ? N + 1 : 0, [&](int n0, int n1) {
    thread_local std::vector<float> w;
    if (w.size() < static_cast<size_t>(kRows) * K) w.resize(static_cast<size_t>(kRows) * K);
    for (int nb = n0; nb < n1; nb += kRows) {
      const int rows = std::min(kRows, n1 - nb);
      for (int r = 0; r < rows; r++) table.dequant_row(w.data() + static_cast<size_t>(r) * K, codes, scales, w_type, K, group, nb + r);
      for (int m = 0; m < M; m++) {
        for (int r = 0; r < rows; r++) {
          out[static_cast<size_t>(m) * N + nb + r] = bias != nullptr ? weight_at(bias, bias_type, nb + r) : 0.0f;
        }
      }
      // the column kernel indexes w by output column: shift out so column nb is column 0 of this block
      table.linear_columns(out + nb, xs, w.data(), WeightType::f32, M, K, N, 0, rows);
    }
  });
}

}  // namespace sqap
