// Plain C++ API of the native kernels. Nothing here knows about N-API: binding.cc checks JavaScript arguments and
// forwards raw pointers and sizes to these functions. All activations are f32, row-major and contiguous; weights may
// be f32, bf16 or f16 and are converted inside the kernels (a bf16 weight is never copied to f32).
//
// Every function writes its whole output and never reads it first, so `out` may hold garbage on entry. Pointers must
// not alias unless a comment says so. Sizes are element counts.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sqap {

// Weight formats: the codes of WEIGHT_FORMATS in src/tensor/formats.ts (one table; formats.test.ts checks that the
// addon reports the same codes). f32/bf16/f16 are float arrays; i8/i4 are QuantizedWeight codes (docs/quantization.md).
enum class WeightType : int { f32 = 0, bf16 = 1, f16 = 2, i8 = 3, i4 = 4 };

// Instruction-set paths, from the portable one to the widest. dispatch.cc picks one at load time. VNNI is its own
// feature: avxvnni = AVX2 + AVX-VNNI (VEX vpdpbusd, e.g. Alder Lake without AVX-512), avx512 = F/BW/VL without
// VNNI (integer GEMM on the AVX2 maddubs kernel), avx512vnni = AVX-512 + AVX512-VNNI.
enum class Isa : int { generic = 0, avx2 = 1, avxvnni = 2, avx512 = 3, avx512vnni = 4 };

const char* isa_name(Isa isa);
bool isa_from_name(const char* name, Isa* isa);  // false for an unknown name
bool isa_supported(Isa isa);                      // does this CPU (and OS) run that path?
Isa best_isa();
Isa current_isa();
bool set_isa(Isa isa);                            // false (and no change) when the CPU lacks it
// The ISA that SQAP_NATIVE_ISA asked for, or -1 when unset/unknown; the path chosen is current_isa().
int requested_isa();
int thread_count();

// out (M,N) = x (M,K) · w (N,K)ᵀ + bias (N); bias may be null
void linear(float* out, const float* x, const void* w, WeightType w_type, const void* bias, WeightType bias_type,
            int M, int K, int N);

// Prepacked float weights, for inference (a weight that never changes): w (N,K) f32 or bf16 rearranged once into
// panels of kPrepackRows weight rows, so the GEMM reads each panel as it is instead of transposing it on every call
// (the panel path of `linear` spends about a fifth of its time doing that). Panel p holds rows 32p .. 32p+31 (rows
// at or past N are zero), K consecutive groups of 32 values, one per k:
//   f32:  packed[(p·K + k)·32 + j]      = w[32p + j, k]                      for j < 32
//   bf16: packed[(p·K + k)·32 + 2i]     = w[32p + i, k],
//         packed[(p·K + k)·32 + 2i + 1] = w[32p + 16 + i, k]                for i < 16
// (bf16: one 32-bit lane holds rows i and 16 + i, so a shift and a mask widen a panel's k-row to two f32 vectors,
// exactly). The layout is the same on every path; paths without a prepacked kernel (prepacked_fast() false) run a
// scalar one on it, correct but slow, so callers prepack only when prepacked_fast().
constexpr int kPrepackRows = 32;
size_t prepacked_elements(int N, int K);  // ceil(N / 32) · 32 · K
void prepack_weight(void* dst, const void* w, WeightType w_type, int N, int K);  // w_type f32 or bf16
bool prepacked_fast();
// out (M,N) = x (M,K) · w (N,K)ᵀ + bias (N) with w prepacked (w_type: the type it was packed from)
void linear_prepacked(float* out, const float* x, const void* packed, WeightType w_type, const void* bias,
                      WeightType bias_type, int M, int K, int N);

// Prepacked bf16 weights for bf16 dot products (the "bf16-dot" layout), for inference on CPUs with AVX512-BF16:
// x is rounded to bf16 (round to nearest even, as PyTorch's bf16 inference rounds its activations) and each pair of
// products is summed by the dot-product instruction, twice the f32 FMA's rate:
//   out[m, n] = bias[n] + Σ_k bf16(x[m, k]) · w[n, k], products exact, f32 sums in an unspecified order.
// Panel p holds rows 32p .. 32p+31 (zero at or past N) for Q = ceil(K / 2) pairs of k (k = K zero when K is odd):
//   packed[((p·Q + q)·32 + j)·2 + e] = w[32p + j, 2q + e]                   for j < 32, e < 2
// so one 128-byte pair-row is two 512-bit vectors whose 32-bit lane j holds (w[n, 2q], w[n, 2q + 1]).
// prepacked_dot_fast() is false where the instruction (or a compiler for it) is missing: a portable scalar kernel
// then runs the same arithmetic (in k order), correct but slow, so callers prepack this way only when it is true.
size_t prepacked_dot_elements(int N, int K);  // ceil(N / 32) · 32 · 2 · ceil(K / 2)
void prepack_weight_dot(uint16_t* dst, const uint16_t* w, int N, int K);  // w bf16 bits (N,K)
bool prepacked_dot_fast();
// out (M,N) = bf16(x) (M,K) · w (N,K)ᵀ + bias (N), w in the bf16-dot layout
void linear_prepacked_dot(float* out, const float* x, const uint16_t* packed, const void* bias, WeightType bias_type,
                          int M, int K, int N);
// f32 -> bf16 bits, round to nearest even; NaN stays NaN; denormals are flushed to zero first (as the vector
// conversion instruction does), so the portable and the AVX512-BF16 kernels round x the same way
uint16_t round_to_bf16(float v);

// out (T,D) = rows ids (T) of table (V,D); the caller checks 0 <= ids[t] < V
void embedding(float* out, const void* table, WeightType table_type, const int32_t* ids, int T, int D);

// out (M,D) = (x - mean) / sqrt(var + eps) * weight (D) + bias (D), per row of x (M,D)
void layer_norm(float* out, const float* x, const void* weight, WeightType weight_type, const void* bias,
                WeightType bias_type, int M, int D, float eps);

// out (M,D) = x / sqrt(mean(x²) + eps) * weight (D), per row of x (M,D); like transformers, x / rms is rounded to
// f32 before the weight multiply
void rms_norm(float* out, const float* x, const void* weight, WeightType weight_type, int M, int D, float eps);

// out (n) = 0.5·x·(1 + erf(x/√2)), x (n)
void gelu(float* out, const float* x, size_t n);

// out (n) = silu(gate) · up = gate / (1 + exp(-gate)) · up; gate (n), up (n)
void silu_mul(float* out, const float* gate, const float* up, size_t n);

// out (n) = a (n) + b (n)
void add(float* out, const float* a, const float* b, size_t n);

// out (M,D) = x (M,D) * scale (D) broadcast over rows
void scale_channels(float* out, const float* x, const void* scale, WeightType scale_type, int M, int D);

// Llama rotate_half RoPE: x (T,H,Dh), positions (T) -> out (T,H,Dh); Dh even. Pair i is (i, i + Dh/2) with
// angle positions[t] · theta^(-2i/Dh).
void rope(float* out, const float* x, const int32_t* positions, int T, int H, int Dh, double theta);

// Grouped-query scaled dot-product attention, scale 1/√Dh.
// q (T,Hq,Dh), k (S,Hkv,Dh), v (S,Hkv,Dh) -> out (T,Hq·Dh) and, when probs is not null, probs (Hq,T,S).
// Query head h reads kv head h / (Hq/Hkv). Causal: query t sees keys 0 .. S-T+t (the queries are the last T keys).
void attention(float* out, float* probs, const float* q, const float* k, const float* v, int T, int S, int Hq,
               int Hkv, int Dh, bool causal);

// ---- integer path: the arithmetic of docs/quantization.md ("Kernel contract"), bit-identical to the ref backend ----

// The kernel layout of an integer weight (ISA-independent, built once per weight by pack_int_weight):
//   K is cut into G groups of `group` columns, each padded with zero codes to Gp = round_up(group, 8); Kp = G·Gp.
//   N is padded to Np = round_up(N, 16). Bytes: for each block b of 16 output rows, for each step of 4 (i8) or
//   8 (i4) padded columns, 16 lanes (row b·16 + lane) × 4 bytes:
//     i8: byte i = code[k + i] + 128 (biased to u8)
//     i4: byte i = (code[k + i] + 8) | (code[k + 4 + i] + 8) << 4 (biased nibbles)
//   so one 64-byte line holds 16 rows × 4 (i8) or 8 (i4) columns, the operand order of vpdpbusd.
//   Scales: [Np/16][G][16] f32 (padding 0).
struct IntWeightLayout {
  int N, K, group, G, Gp, Kp, Np;
  size_t bytes;   // packed codes
  size_t scales;  // packed scale count
};
IntWeightLayout int_weight_layout(WeightType type, int N, int K, int group);

// codes: i8 Int8Array [N·K] or i4 Uint8Array [N·ceil(K/2)] (QuantizedWeight.codes); scales [N, K/group]
void pack_int_weight(uint8_t* packed, float* packed_scales, const void* codes, const float* scales, WeightType type,
                     int N, int K, int group);

// pack_int_weight over the canonical arrays themselves, when the two layouts have the same size (N % 16 == 0 and
// group % 8 == 0, e.g. every Llama-2-7B linear): codes become the packed bytes, scales the packed scales, with one
// 16-row block of scratch per thread. Returns false (and changes nothing) when the sizes differ.
bool pack_int_weight_in_place(void* codes, float* scales, WeightType type, int N, int K, int group);

// The inverse of pack_int_weight: the packed layout -> codes (i8 [N·K] or nibble-packed i4 [N·ceil(K/2)]) and
// scales [N, K/group], exactly as they were packed (native.ts rebuilds them when a packed weight is saved or read
// by another backend, since the packed copy is the only one it keeps).
void unpack_int_weight(void* codes, float* scales, const uint8_t* packed, const float* packed_scales, WeightType type,
                       int N, int K, int group);

// Contract Q1–Q5. x (M,K) -> codes (M,K), scales (M). norm_weight may be null (no weight) and is used only when
// has_norm; had_block 0 = no Hadamard; clip in (0, 1].
void quantize_activations(int8_t* codes, float* scales, const float* x, int M, int K, int bits, bool has_norm,
                          const void* norm_weight, WeightType norm_type, double eps, int had_block, float clip);

// Contract L1–L3. x codes (M,K) + scales (M), packed weight (see above) -> out (M,N) + bias (N, may be null);
// acc, when not null, receives the int32 accumulators (M,N,G).
void linear_int(float* out, int32_t* acc, const int8_t* x_codes, const float* x_scales, const uint8_t* w_packed,
                const float* w_scales, WeightType w_type, int M, int K, int N, int group, const void* bias,
                WeightType bias_type);

// W4A16/W8A16: out (M,N) = x (M,K) · dequant(w)ᵀ + bias, w as QuantizedWeight codes (row-major) + scales (N, K/group).
void linear_dequant(float* out, const float* x, const void* codes, const float* scales, WeightType w_type, int group,
                    const void* bias, WeightType bias_type, int M, int K, int N);

// Contract Q2 on every row: out (M,K) = x (M,K) · blockdiag(H_block) / √block; block a power of two dividing K.
void fwht(float* out, const float* x, int M, int K, int block);

// Contract A1–A6. q codes (T,Hq,Dh) + scales (T·Hq); k, v codes (S,Hkv,Dh) + scales (S·Hkv) -> out (T,Hq·Dh) and
// probs (Hq,T,S) when not null.
void attention_int(float* out, float* probs, const int8_t* q, const float* q_scales, const int8_t* k,
                   const float* k_scales, const int8_t* v, const float* v_scales, int T, int S, int Hq, int Hkv, int Dh,
                   bool causal);

// Benchmarks: read `bytes` of data on every pool thread (XOR of 64-bit words) and return the XOR, so nothing is elided.
uint64_t stream_read(const uint8_t* data, size_t bytes);
// Strict padded standard base64 (generic/base64.cc): src (n ASCII bytes) -> dst (exactly its decoded size,
// n/4*3 minus the padding); false when src is not strict base64 or dst_bytes is not that size.
bool base64_decode_strict(uint8_t* dst, size_t dst_bytes, const uint8_t* src, size_t n);
// Token-pruning scores of the same attention (generic/attention_scores.cc): q (T,Hq,Dh), k (S,Hkv,Dh), rows (R)
// ascending query indices -> query_probs (Hq,R,S) and key_totals (S) (sum over heads and queries), each skipped
// when null.
void attention_scores(float* key_totals, float* query_probs, const int32_t* rows, int R, const float* q,
                      const float* k, int T, int S, int Hq, int Hkv, int Dh, bool causal);

}  // namespace sqap
