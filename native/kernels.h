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

enum class WeightType : int { f32 = 0, bf16 = 1, f16 = 2 };

// Instruction-set paths, from the portable one to the widest. dispatch.cc picks one at load time.
enum class Isa : int { generic = 0, avx2 = 1, avx512 = 2 };

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

// Token-pruning scores of the same attention (generic/attention_scores.cc): q (T,Hq,Dh), k (S,Hkv,Dh), rows (R)
// ascending query indices -> query_probs (Hq,R,S) and key_totals (S) (sum over heads and queries), each skipped
// when null.
void attention_scores(float* key_totals, float* query_probs, const int32_t* rows, int R, const float* q,
                      const float* k, int T, int S, int Hq, int Hkv, int Dh, bool causal);

}  // namespace sqap
