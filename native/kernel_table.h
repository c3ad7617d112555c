// The per-ISA kernels: one table per instruction-set path, filled in by native/generic and native/arch/<isa>.
// dispatch.cc owns the one pointer to the table in use; the op drivers (threading, blocking over rows/heads) are
// ISA-independent and call through it. Internal header: binding.cc never includes it.
#pragma once

#include "kernels.h"

namespace sqap {

// linear is split in two so the driver can repack x once and then run the column ranges on several threads:
//   floats = linear_packed_size(M, K)       scratch x should be repacked into (0: the kernel reads x as it is)
//   linear_pack(packed, x, M, K)            x (M,K) -> the ISA's tile layout (only called when floats > 0)
//   linear_columns(out, xs, w, ..., n0, n1) out (M,N) += x (M,K) · w (N,K)ᵀ for output columns [n0, n1), where xs
//                                           is `packed` or x. The driver initialises out (bias or zero).
typedef size_t (*LinearPackedSizeFn)(int M, int K);
typedef void (*LinearPackFn)(float* packed, const float* x, int M, int K);
typedef void (*LinearColumnsFn)(float* out, const float* xs, const void* w, WeightType w_type, int M, int K, int N,
                                int n0, int n1);

// sum_i a[i] · b[i], a (n), b (n)
typedef float (*DotFn)(const float* a, const float* b, int n);

// y (n) += alpha · x (n)
typedef void (*AxpyFn)(float* y, float alpha, const float* x, int n);

// out (n) = 0.5·x·(1 + erf(x/√2)), x (n)
typedef void (*GeluFn)(float* out, const float* x, size_t n);

// out (n) = silu(gate) · up; gate (n), up (n)
typedef void (*SiluMulFn)(float* out, const float* gate, const float* up, size_t n);

// Integer GEMM (contract L1–L3) over the packed layout of kernels.h, for the output columns of 16-row weight blocks
// [b0, b1). x is repacked by the driver (generic/int_linear.cc) with the weight's group padding: codes [M][Kp] and
// the per-group code sums rsum [M][G] that undo the weights' +128/+8 bias (acc = Σ x·(w + bias) - bias·Σ x).
struct IntGemmArgs {
  float* out;              // (M,N)
  int32_t* acc;            // (M,N,G) or null
  const int8_t* x;         // (M,Kp) padded codes, rows x_stride bytes apart
  const int32_t* rsum;     // (M,G)
  const float* x_scales;   // (M)
  const uint8_t* w;        // packed weight
  const float* w_scales;   // (Np/16, G, 16)
  const float* bias;       // (N) f32 or null
  bool i4;
  int M, N, G, Gp, Kp;
  int x_stride;            // Kp + 64: rows a multiple of 4 KiB apart would all fall in one L1 set
};
typedef void (*IntGemmFn)(const IntGemmArgs& args, int b0, int b1);

// Contract Q3–Q5 on one row h (K): amax (times clip when clip != 1), scale = amax / qmax, codes = clamp(RNE(h /
// scale), ±qmax); returns the scale. Every operation is exact or correctly rounded, so all versions agree bit for bit.
typedef float (*QuantizeRowFn)(int8_t* codes, const float* h, int K, float qmax, float clip);

// Contract W1's dequantization of row n of a QuantizedWeight: out (K) = f32(code · scale) for codes (i8 [N·K] or
// nibble-packed i4 [N·ceil(K/2)], row-major) and scales (N, K/group). One correctly rounded product per element, so
// every version agrees bit for bit.
typedef void (*DequantRowFn)(float* out, const void* codes, const float* scales, WeightType type, int K, int group,
                             int n);

// Integer attention's inner products (contract A2, A5), exact in any order: int32 sum of a[i]·b[i] over n int8
// pairs; and acc (n) += p · v (n) for p in [0, 255] and int8 v (|p·v| <= 32640 fits int16).
typedef int32_t (*DotI8Fn)(const int8_t* a, const int8_t* b, int n);
typedef void (*AxpyI8Fn)(int32_t* acc, int32_t p, const int8_t* v, int n);
// Contract A3's exponentials: e[i] = exp_portable(e[i] - mx) for i < n (the same operations in the same order in
// every version, no FMA, so every version agrees bit for bit; the sum stays with the caller, in order).
typedef void (*ExpShiftFn)(double* e, int n, double mx);
constexpr double kExpLn2Hi = 6.93147180369123816490e-1;
constexpr double kExpLn2Lo = 1.90821492927058770002e-10;
constexpr double kExpLog2e = 1.4426950408889634;
// Horner coefficients of exp_portable's Taylor polynomial, highest order first: 1/13!, 1/12!, ..., 1/1!, 1/0!
constexpr int kExpTaylorTerms = 14;
constexpr double kExpTaylor[kExpTaylorTerms] = {1.0 / 6227020800, 1.0 / 479001600, 1.0 / 39916800, 1.0 / 3628800,
                                                1.0 / 362880,     1.0 / 40320,     1.0 / 5040,     1.0 / 720,
                                                1.0 / 120,        1.0 / 24,        1.0 / 6,        1.0 / 2,
                                                1.0,              1.0};

// Prepacked float weights (kernels.h prepack_weight): x is repacked into x_size(M, K) floats with pack_x (0: read
// as it is), then columns(out, xs, packed, w_type, M, K, N, p0, p1) adds x · wᵀ for the columns of panels [p0, p1).
typedef void (*PrepackedColumnsFn)(float* out, const float* xs, const void* packed, WeightType w_type, int M, int K,
                                   int N, int p0, int p1);
struct PrepackedKernels {
  LinearPackedSizeFn x_size;
  LinearPackFn pack_x;
  PrepackedColumnsFn columns;
};

// Prepacked bf16-dot weights (kernels.h linear_prepacked_dot): x is rounded and packed into x_size(M, K) 32-bit bf16
// pairs by pack_x ([tile of 12 rows][q][row], pair (x[m, 2q], x[m, 2q + 1]) low half first, zero rows and k past
// the ends), then columns(out, xs, packed, M, K, N, p0, p1) adds bf16(x) · wᵀ for the columns of panels [p0, p1).
typedef size_t (*DotPackedSizeFn)(int M, int K);
typedef void (*DotPackXFn)(uint32_t* xs, const float* x, int M, int K);
typedef void (*DotColumnsFn)(float* out, const uint32_t* xs, const uint16_t* packed, int M, int K, int N, int p0,
                             int p1);
struct PrepackedDotKernels {
  DotPackedSizeFn x_size;
  DotPackXFn pack_x;
  DotColumnsFn columns;
};
constexpr int kDotTileRows = 12;  // rows of x per tile of the packed x (the register tile's height)
// arch/avx512/bf16dot.cc (AVX512-BF16); null where the compiler cannot build it. Used only when the current table is
// an AVX-512 one and the CPU has AVX512-BF16 (dispatch.cc, prepacked_dot_kernels).
extern const PrepackedDotKernels* const kAvx512Bf16DotKernels;
const PrepackedDotKernels* prepacked_dot_kernels();

// One query row of float attention on keys laid out transposed: kt [Dh][S] (key s of dimension d at kt[d·S + s]),
// v rows v_stride floats apart. p (visible) = softmax over s < visible of scale · q·k_s (the probabilities, written),
// out (Dh) = Σ_s p_s · v_s. q (Dh).
typedef void (*AttentionRowFn)(float* out, float* p, const float* q, const float* kt, int S, const float* v,
                               size_t v_stride, int visible, int Dh, float scale);

struct KernelTable {
  Isa isa;
  LinearPackedSizeFn linear_packed_size;
  LinearPackFn linear_pack;
  LinearColumnsFn linear_columns;
  DotFn dot;
  AxpyFn axpy;
  GeluFn gelu;
  SiluMulFn silu_mul;
  IntGemmFn int_gemm;
  QuantizeRowFn quantize_row;
  DequantRowFn dequant_row;
  DotI8Fn dot_i8;
  AxpyI8Fn axpy_i8;
  ExpShiftFn exp_shift;
  const PrepackedKernels* prepacked;  // null: the path has no prepacked kernel (the scalar one runs)
  AttentionRowFn attention_row;       // null: attention runs on dot/axpy over k as stored
};

// The portable kernels, also used to fill the SIMD tables on compilers/architectures that cannot build them.
size_t linear_packed_size_generic(int M, int K);
void linear_pack_generic(float* packed, const float* x, int M, int K);
void linear_columns_generic(float* out, const float* x, const void* w, WeightType w_type, int M, int K, int N, int n0,
                            int n1);
float dot_generic(const float* a, const float* b, int n);
void axpy_generic(float* y, float alpha, const float* x, int n);
void gelu_generic(float* out, const float* x, size_t n);
void silu_mul_generic(float* out, const float* gate, const float* up, size_t n);

// arch/avx2/activations.cc (x86-64 GCC/Clang only); the AVX-512 table uses them too.
void gelu_avx2(float* out, const float* x, size_t n);
void silu_mul_avx2(float* out, const float* gate, const float* up, size_t n);

// The integer GEMMs: generic/int_linear.cc (scalar), arch/avx2/int.cc (maddubs/madd), arch/avxvnni/int.cc
// (VEX vpdpbusd on ymm), arch/avx512/int.cc (vpdpbusd on zmm). Without compiler support they alias the generic one.
void int_gemm_generic(const IntGemmArgs& args, int b0, int b1);
void int_gemm_avx2(const IntGemmArgs& args, int b0, int b1);
void int_gemm_avxvnni(const IntGemmArgs& args, int b0, int b1);
void int_gemm_avx512vnni(const IntGemmArgs& args, int b0, int b1);
float quantize_row_generic(int8_t* codes, const float* h, int K, float qmax, float clip);
float quantize_row_avx2(int8_t* codes, const float* h, int K, float qmax, float clip);    // arch/avx2/int.cc
float quantize_row_avx512(int8_t* codes, const float* h, int K, float qmax, float clip);  // arch/avx512/int.cc
void dequant_row_generic(float* out, const void* codes, const float* scales, WeightType type, int K, int group, int n);
void dequant_row_avx2(float* out, const void* codes, const float* scales, WeightType type, int K, int group,
                      int n);  // arch/avx2/int.cc; the AVX-512 tables use it too

int32_t dot_i8_generic(const int8_t* a, const int8_t* b, int n);  // generic/int_attention.cc
void axpy_i8_generic(int32_t* acc, int32_t p, const int8_t* v, int n);
double exp_portable(double x);  // generic/int_attention.cc: e^x for x <= 0 (contract A3)
void exp_shift_generic(double* e, int n, double mx);
void exp_shift_avx2(double* e, int n, double mx);  // arch/avx2/int.cc; the AVX-512 tables use it too
int32_t dot_i8_avx2(const int8_t* a, const int8_t* b, int n);  // arch/avx2/int.cc; the AVX-512 tables use them too
void axpy_i8_avx2(int32_t* acc, int32_t p, const int8_t* v, int n);

// The softmax numerators of one query row, shared by attention (dot/axpy path) and attention_scores: p[j] =
// exp(scale·q·k_j - max) for j < visible, keys k_head + j·kv_stride (dot through the current table), summed in f64;
// returns 1 / sum (the caller normalizes).
float attention_exp_scores(float* p, const float* q_row, const float* k_head, size_t kv_stride, int visible, int Dh,
                           float scale);

extern const KernelTable kGenericKernels;
extern const KernelTable kAvx2Kernels;        // defined even when the compiler lacks AVX2: then it aliases generic
extern const KernelTable kAvxVnniKernels;     // the AVX2 table with the AVX-VNNI integer GEMM
extern const KernelTable kAvx512Kernels;      // likewise for AVX-512 (integer GEMM: the AVX2 one)
extern const KernelTable kAvx512VnniKernels;  // the AVX-512 table with the AVX512-VNNI integer GEMM

const KernelTable& kernels();  // the table chosen by dispatch.cc

}  // namespace sqap
