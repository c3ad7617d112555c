// Backward kernels for training (native/generic/grad.cc), the C++ side of src/tensor/backends/native-grad.ts. Same
// conventions as kernels.h: f32 row-major contiguous arrays, sizes in elements, every output fully written, no
// aliasing. Weights are f32 master copies in training, so there are no weight type codes here.
#pragma once

#include <cstddef>
#include <cstdint>

namespace sqap {

// out (C,R) = in (R,C)ᵀ
void transpose(float* out, const float* in, int R, int C);

// y = x · wᵀ + b with dy (M,N), x (M,K), w (N,K): dx = dy · w (M,K) when dx is not null, dw = dyᵀ · x (N,K),
// db = column sums of dy (N) when db is not null. Both products run on the forward linear kernel over transposed
// operands, so backward GEMMs reach the forward's throughput.
void linear_backward(float* dx, float* dw, float* db, const float* dy, const float* x, const float* w, int M, int K,
                     int N);

// dtable (V,D) = rows of dy (T,D) scatter-added at ids (T); the caller checks 0 <= ids[t] < V
void embedding_backward(float* dtable, const float* dy, const int32_t* ids, int T, int V, int D);

// LayerNorm backward: dy, x (M,D), weight (D) -> dx (M,D), dweight (D), dbias (D)
void layer_norm_backward(float* dx, float* dweight, float* dbias, const float* dy, const float* x, const float* weight,
                         int M, int D, float eps);

// RMSNorm backward: dy, x (M,D), weight (D) -> dx (M,D), dweight (D)
void rms_norm_backward(float* dx, float* dweight, const float* dy, const float* x, const float* weight, int M, int D,
                       float eps);

// dx (n) = dy · (Φ(x) + x·φ(x)) for the exact GELU
void gelu_backward(float* dx, const float* dy, const float* x, size_t n);

// y = silu(gate) · up: dgate, dup (n)
void silu_mul_backward(float* dgate, float* dup, const float* dy, const float* gate, const float* up, size_t n);

// y = x · scale: dx (M,D) = dy · scale, dscale (D) = column sums of dy · x
void scale_channels_backward(float* dx, float* dscale, const float* dy, const float* x, const float* scale, int M,
                             int D);

// dx (T,H,Dh) = dy rotated back by each pair's RoPE angle (as rope's f32 angle math)
void rope_backward(float* dx, const float* dy, const int32_t* positions, int T, int H, int Dh, double theta);

// Attention backward (probabilities recomputed): dout (T,Hq·Dh), q (T,Hq,Dh), k, v (S,Hkv,Dh) -> dq (T,Hq,Dh),
// dk, dv (S,Hkv,Dh); causal as attention()
void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                        const float* v, int T, int S, int Hq, int Hkv, int Dh, bool causal);

// Softmax cross-entropy: logits (T,V), labels (T) -> dlogits (T,V) = (softmax - onehot) / divisor; returns the
// summed loss / divisor. The caller checks 0 <= labels[t] < V.
double cross_entropy(float* dlogits, const float* logits, const int32_t* labels, int T, int V, double divisor);

// One AdamW update in place (torch.optim.AdamW), double arithmetic and float storage in the order of ref-grad.ts so
// both backends give identical bits: m ← β1·m + (1-β1)·g; v ← β2·v + (1-β2)·g·g;
// p ← p·decay - step_size·m / (√v / sqrt_correction2 + eps). p, g, m, v (n).
void adamw_update(float* p, const float* g, float* m, float* v, size_t n, double beta1, double beta2, double eps,
                  double decay, double step_size, double sqrt_correction2);

// Σ x² in double, in index order (x (n))
double sum_of_squares(const float* x, size_t n);

}  // namespace sqap
