// The N-API surface of the backward kernels (grad_kernels.h), added to the addon's exports by binding.cc's Init
// through register_grad(). Same rules as binding.cc: every JavaScript argument is checked (type, integer size,
// exact array length, index ranges) and a TypeError/RangeError names the op and the argument before any raw pointer
// reaches a kernel. Outputs are preallocated Float32Arrays from src/tensor/backends/native-grad.ts.
#include <napi.h>

#include <cmath>
#include <string>

#include "grad_kernels.h"

namespace sqap {

namespace {

[[noreturn]] void fail(const Napi::Env& env, const char* op, const std::string& message) {
  throw Napi::TypeError::New(env, std::string(op) + ": " + message);
}

void expect_count(const Napi::CallbackInfo& info, size_t count, const char* op) {
  if (info.Length() != count) {
    fail(info.Env(), op, "expected " + std::to_string(count) + " arguments, got " + std::to_string(info.Length()));
  }
}

int size_arg(const Napi::CallbackInfo& info, size_t index, const char* op, const char* name) {
  if (!info[index].IsNumber()) fail(info.Env(), op, std::string(name) + " must be a number");
  const double value = info[index].As<Napi::Number>().DoubleValue();
  if (!(value >= 0 && value <= 2147483647.0) || std::floor(value) != value) {
    fail(info.Env(), op, std::string(name) + " must be a non-negative integer below 2^31");
  }
  return static_cast<int>(value);
}

double number_arg(const Napi::CallbackInfo& info, size_t index, const char* op, const char* name) {
  if (!info[index].IsNumber()) fail(info.Env(), op, std::string(name) + " must be a number");
  const double value = info[index].As<Napi::Number>().DoubleValue();
  if (!std::isfinite(value)) fail(info.Env(), op, std::string(name) + " must be finite");
  return value;
}

bool bool_arg(const Napi::CallbackInfo& info, size_t index, const char* op, const char* name) {
  if (!info[index].IsBoolean()) fail(info.Env(), op, std::string(name) + " must be a boolean");
  return info[index].As<Napi::Boolean>().Value();
}

// A typed array of `type` with exactly `length` elements (any length when length is SIZE_MAX), as its data pointer
// with the view's byte offset applied; *actual receives its length.
template <typename T>
T* typed_arg(const Napi::CallbackInfo& info, size_t index, napi_typedarray_type type, const char* op,
             const char* name, size_t length, size_t* actual = nullptr) {
  napi_typedarray_type actual_type;
  size_t actual_length = 0;
  void* data = nullptr;
  Napi::Value value = info[index];
  if (!value.IsTypedArray() ||
      napi_get_typedarray_info(info.Env(), value, &actual_type, &actual_length, &data, nullptr, nullptr) != napi_ok ||
      actual_type != type) {
    fail(info.Env(), op, std::string(name) + (type == napi_int32_array ? " must be an Int32Array" : " must be a Float32Array"));
  }
  if (length != SIZE_MAX && actual_length != length) {
    fail(info.Env(), op, std::string(name) + " has " + std::to_string(actual_length) + " elements, expected " +
                             std::to_string(length));
  }
  if (actual != nullptr) *actual = actual_length;
  return static_cast<T*>(data);
}

float* f32(const Napi::CallbackInfo& info, size_t index, const char* op, const char* name, size_t length) {
  return typed_arg<float>(info, index, napi_float32_array, op, name, length);
}

float* f32_or_null(const Napi::CallbackInfo& info, size_t index, const char* op, const char* name, size_t length) {
  return info[index].IsNull() ? nullptr : f32(info, index, op, name, length);
}

// Int32Array ids, each in [0, limit)
const int32_t* ids_arg(const Napi::CallbackInfo& info, size_t index, const char* op, const char* name, int limit,
                       size_t* count) {
  const int32_t* ids = typed_arg<int32_t>(info, index, napi_int32_array, op, name, SIZE_MAX, count);
  for (size_t i = 0; i < *count; i++) {
    if (ids[i] < 0 || ids[i] >= limit) {
      throw Napi::RangeError::New(info.Env(), std::string(op) + ": " + name + "[" + std::to_string(i) + "] = " +
                                                  std::to_string(ids[i]) + " is outside [0, " + std::to_string(limit) + ")");
    }
  }
  return ids;
}

size_t mul(size_t a, size_t b) { return a * b; }

// linearBackward(dx|null, dw, db|null, dy, x, w, M, K, N)
Napi::Value LinearBackward(const Napi::CallbackInfo& info) {
  const char* op = "linearBackward";
  expect_count(info, 9, op);
  const int M = size_arg(info, 6, op, "M"), K = size_arg(info, 7, op, "K"), N = size_arg(info, 8, op, "N");
  float* dx = f32_or_null(info, 0, op, "dx", mul(M, K));
  float* dw = f32(info, 1, op, "dw", mul(N, K));
  float* db = f32_or_null(info, 2, op, "db", N);
  linear_backward(dx, dw, db, f32(info, 3, op, "dy", mul(M, N)), f32(info, 4, op, "x", mul(M, K)),
                  f32(info, 5, op, "w", mul(N, K)), M, K, N);
  return info.Env().Undefined();
}

// embeddingBackward(dtable, dy, ids, V, D)
Napi::Value EmbeddingBackward(const Napi::CallbackInfo& info) {
  const char* op = "embeddingBackward";
  expect_count(info, 5, op);
  const int V = size_arg(info, 3, op, "V"), D = size_arg(info, 4, op, "D");
  size_t T = 0;
  const int32_t* ids = ids_arg(info, 2, op, "ids", V, &T);
  embedding_backward(f32(info, 0, op, "dtable", mul(V, D)), f32(info, 1, op, "dy", mul(T, D)), ids,
                     static_cast<int>(T), V, D);
  return info.Env().Undefined();
}

// layerNormBackward(dx, dweight, dbias, dy, x, weight, M, D, eps)
Napi::Value LayerNormBackward(const Napi::CallbackInfo& info) {
  const char* op = "layerNormBackward";
  expect_count(info, 9, op);
  const int M = size_arg(info, 6, op, "M"), D = size_arg(info, 7, op, "D");
  const double eps = number_arg(info, 8, op, "eps");
  layer_norm_backward(f32(info, 0, op, "dx", mul(M, D)), f32(info, 1, op, "dweight", D), f32(info, 2, op, "dbias", D),
                      f32(info, 3, op, "dy", mul(M, D)), f32(info, 4, op, "x", mul(M, D)),
                      f32(info, 5, op, "weight", D), M, D, static_cast<float>(eps));
  return info.Env().Undefined();
}

// rmsNormBackward(dx, dweight, dy, x, weight, M, D, eps)
Napi::Value RmsNormBackward(const Napi::CallbackInfo& info) {
  const char* op = "rmsNormBackward";
  expect_count(info, 8, op);
  const int M = size_arg(info, 5, op, "M"), D = size_arg(info, 6, op, "D");
  const double eps = number_arg(info, 7, op, "eps");
  rms_norm_backward(f32(info, 0, op, "dx", mul(M, D)), f32(info, 1, op, "dweight", D), f32(info, 2, op, "dy", mul(M, D)),
                    f32(info, 3, op, "x", mul(M, D)), f32(info, 4, op, "weight", D), M, D, static_cast<float>(eps));
  return info.Env().Undefined();
}

// geluBackward(dx, dy, x)
Napi::Value GeluBackward(const Napi::CallbackInfo& info) {
  const char* op = "geluBackward";
  expect_count(info, 3, op);
  size_t n = 0;
  const float* x = typed_arg<float>(info, 2, napi_float32_array, op, "x", SIZE_MAX, &n);
  gelu_backward(f32(info, 0, op, "dx", n), f32(info, 1, op, "dy", n), x, n);
  return info.Env().Undefined();
}

// siluMulBackward(dgate, dup, dy, gate, up)
Napi::Value SiluMulBackward(const Napi::CallbackInfo& info) {
  const char* op = "siluMulBackward";
  expect_count(info, 5, op);
  size_t n = 0;
  const float* gate = typed_arg<float>(info, 3, napi_float32_array, op, "gate", SIZE_MAX, &n);
  silu_mul_backward(f32(info, 0, op, "dgate", n), f32(info, 1, op, "dup", n), f32(info, 2, op, "dy", n), gate,
                    f32(info, 4, op, "up", n), n);
  return info.Env().Undefined();
}

// scaleChannelsBackward(dx, dscale, dy, x, scale, M, D)
Napi::Value ScaleChannelsBackward(const Napi::CallbackInfo& info) {
  const char* op = "scaleChannelsBackward";
  expect_count(info, 7, op);
  const int M = size_arg(info, 5, op, "M"), D = size_arg(info, 6, op, "D");
  scale_channels_backward(f32(info, 0, op, "dx", mul(M, D)), f32(info, 1, op, "dscale", D),
                          f32(info, 2, op, "dy", mul(M, D)), f32(info, 3, op, "x", mul(M, D)),
                          f32(info, 4, op, "scale", D), M, D);
  return info.Env().Undefined();
}

// ropeBackward(dx, dy, positions, T, H, Dh, theta)
Napi::Value RopeBackward(const Napi::CallbackInfo& info) {
  const char* op = "ropeBackward";
  expect_count(info, 7, op);
  const int T = size_arg(info, 3, op, "T"), H = size_arg(info, 4, op, "H"), Dh = size_arg(info, 5, op, "Dh");
  const double theta = number_arg(info, 6, op, "theta");
  if (Dh % 2 != 0) fail(info.Env(), op, "Dh must be even");
  const size_t n = mul(mul(T, H), Dh);
  rope_backward(f32(info, 0, op, "dx", n), f32(info, 1, op, "dy", n),
                typed_arg<int32_t>(info, 2, napi_int32_array, op, "positions", T), T, H, Dh, theta);
  return info.Env().Undefined();
}

// attentionBackward(dq, dk, dv, dout, q, k, v, T, S, Hq, Hkv, Dh, causal)
Napi::Value AttentionBackward(const Napi::CallbackInfo& info) {
  const char* op = "attentionBackward";
  expect_count(info, 13, op);
  const int T = size_arg(info, 7, op, "T"), S = size_arg(info, 8, op, "S"), Hq = size_arg(info, 9, op, "Hq"),
            Hkv = size_arg(info, 10, op, "Hkv"), Dh = size_arg(info, 11, op, "Dh");
  const bool causal = bool_arg(info, 12, op, "causal");
  if (Hkv == 0 || Hq % Hkv != 0) fail(info.Env(), op, "Hq must be a multiple of Hkv");
  if (T > S || T == 0) fail(info.Env(), op, "need 0 < T <= S");
  const size_t nq = mul(mul(T, Hq), Dh), nkv = mul(mul(S, Hkv), Dh);
  attention_backward(f32(info, 0, op, "dq", nq), f32(info, 1, op, "dk", nkv), f32(info, 2, op, "dv", nkv),
                     f32(info, 3, op, "dout", nq), f32(info, 4, op, "q", nq), f32(info, 5, op, "k", nkv),
                     f32(info, 6, op, "v", nkv), T, S, Hq, Hkv, Dh, causal);
  return info.Env().Undefined();
}

// crossEntropy(dlogits, logits, labels, T, V, divisor) -> loss
Napi::Value CrossEntropy(const Napi::CallbackInfo& info) {
  const char* op = "crossEntropy";
  expect_count(info, 6, op);
  const int T = size_arg(info, 3, op, "T"), V = size_arg(info, 4, op, "V");
  const double divisor = number_arg(info, 5, op, "divisor");
  if (!(divisor > 0)) fail(info.Env(), op, "divisor must be positive");
  size_t count = 0;
  const int32_t* labels = ids_arg(info, 2, op, "labels", V, &count);
  if (count != static_cast<size_t>(T)) fail(info.Env(), op, "labels must have T elements");
  const double loss = cross_entropy(f32(info, 0, op, "dlogits", mul(T, V)), f32(info, 1, op, "logits", mul(T, V)),
                                    labels, T, V, divisor);
  return Napi::Number::New(info.Env(), loss);
}

// adamwUpdate(p, g, m, v, beta1, beta2, eps, decay, stepSize, sqrtCorrection2)
Napi::Value AdamwUpdate(const Napi::CallbackInfo& info) {
  const char* op = "adamwUpdate";
  expect_count(info, 10, op);
  size_t n = 0;
  float* p = typed_arg<float>(info, 0, napi_float32_array, op, "p", SIZE_MAX, &n);
  if (n > 2147483647u) fail(info.Env(), op, "p has more than 2^31 elements");
  const float* g = f32(info, 1, op, "g", n);
  float* m = f32(info, 2, op, "m", n);
  float* v = f32(info, 3, op, "v", n);
  adamw_update(p, g, m, v, n, number_arg(info, 4, op, "beta1"), number_arg(info, 5, op, "beta2"),
               number_arg(info, 6, op, "eps"), number_arg(info, 7, op, "decay"), number_arg(info, 8, op, "stepSize"),
               number_arg(info, 9, op, "sqrtCorrection2"));
  return info.Env().Undefined();
}

// sumOfSquares(x) -> Σ x²
Napi::Value SumOfSquares(const Napi::CallbackInfo& info) {
  const char* op = "sumOfSquares";
  expect_count(info, 1, op);
  size_t n = 0;
  const float* x = typed_arg<float>(info, 0, napi_float32_array, op, "x", SIZE_MAX, &n);
  return Napi::Number::New(info.Env(), sum_of_squares(x, n));
}

}  // namespace

void register_grad(Napi::Env env, Napi::Object exports) {
  exports.Set("linearBackward", Napi::Function::New(env, LinearBackward));
  exports.Set("embeddingBackward", Napi::Function::New(env, EmbeddingBackward));
  exports.Set("layerNormBackward", Napi::Function::New(env, LayerNormBackward));
  exports.Set("rmsNormBackward", Napi::Function::New(env, RmsNormBackward));
  exports.Set("geluBackward", Napi::Function::New(env, GeluBackward));
  exports.Set("siluMulBackward", Napi::Function::New(env, SiluMulBackward));
  exports.Set("scaleChannelsBackward", Napi::Function::New(env, ScaleChannelsBackward));
  exports.Set("ropeBackward", Napi::Function::New(env, RopeBackward));
  exports.Set("attentionBackward", Napi::Function::New(env, AttentionBackward));
  exports.Set("crossEntropy", Napi::Function::New(env, CrossEntropy));
  exports.Set("adamwUpdate", Napi::Function::New(env, AdamwUpdate));
  exports.Set("sumOfSquares", Napi::Function::New(env, SumOfSquares));
}

}  // namespace sqap
