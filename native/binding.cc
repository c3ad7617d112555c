// The N-API surface of sqap_native, and the only file that knows N-API. Each function checks its JavaScript
// arguments (types, integer sizes, array lengths, ranges) and throws a TypeError/RangeError naming the op and the
// argument, then forwards raw pointers and sizes to kernels.h. Outputs are preallocated Float32Arrays from the
// caller (native.ts), so memory ownership stays in JavaScript.
//
// Weight arguments come as (array, type code) pairs: 0 = f32 (Float32Array), 1 = bf16, 2 = f16 (Uint16Array of
// raw bits), matching WeightType.
#include <napi.h>

#include <cmath>
#include <string>

#include "kernels.h"

namespace sqap {
void register_grad(Napi::Env env, Napi::Object exports);  // grad_binding.cc: the backward kernels
}

namespace {

using sqap::WeightType;

[[noreturn]] void type_error(const Napi::Env& env, const std::string& message) {
  throw Napi::TypeError::New(env, message);
}

[[noreturn]] void range_error(const Napi::Env& env, const std::string& message) {
  throw Napi::RangeError::New(env, message);
}

std::string where(const char* op, const char* name) { return std::string(op) + ": " + name; }

void expect_count(const Napi::CallbackInfo& info, size_t count, const char* op) {
  if (info.Length() != count) {
    type_error(info.Env(), std::string(op) + ": expected " + std::to_string(count) + " arguments, got " +
                               std::to_string(info.Length()));
  }
}

// A non-negative integer that fits in int32 (sizes are element counts).
int size_arg(const Napi::CallbackInfo& info, size_t index, const char* op, const char* name) {
  if (!info[index].IsNumber()) type_error(info.Env(), where(op, name) + " must be a number");
  double value = info[index].As<Napi::Number>().DoubleValue();
  if (!(value >= 0 && value <= 2147483647.0) || std::floor(value) != value) {
    type_error(info.Env(), where(op, name) + " must be a non-negative integer below 2^31, got " +
                               std::to_string(value));
  }
  return static_cast<int>(value);
}

double number_arg(const Napi::CallbackInfo& info, size_t index, const char* op, const char* name) {
  if (!info[index].IsNumber()) type_error(info.Env(), where(op, name) + " must be a number");
  double value = info[index].As<Napi::Number>().DoubleValue();
  if (!std::isfinite(value)) type_error(info.Env(), where(op, name) + " must be finite");
  return value;
}

bool bool_arg(const Napi::CallbackInfo& info, size_t index, const char* op, const char* name) {
  if (!info[index].IsBoolean()) type_error(info.Env(), where(op, name) + " must be a boolean");
  return info[index].As<Napi::Boolean>().Value();
}

// A typed array of the given element type with exactly `length` elements; returns its data pointer.
// napi_get_typedarray_info gives the pointer with the view's byte offset applied, for ArrayBuffer and
// SharedArrayBuffer backing stores alike (tensors are often views into a larger checkpoint buffer).
template <typename T>
T* typed_arg(const Napi::CallbackInfo& info, size_t index, napi_typedarray_type type, const char* type_name,
             const char* op, const char* name, size_t length) {
  Napi::Value value = info[index];
  napi_typedarray_type actual_type;
  size_t actual_length = 0;
  void* data = nullptr;
  if (!value.IsTypedArray() ||
      napi_get_typedarray_info(info.Env(), value, &actual_type, &actual_length, &data, nullptr, nullptr) != napi_ok ||
      actual_type != type) {
    type_error(info.Env(), where(op, name) + " must be a " + type_name);
  }
  if (actual_length != length) {
    type_error(info.Env(), where(op, name) + " has " + std::to_string(actual_length) + " elements, expected " +
                               std::to_string(length));
  }
  return static_cast<T*>(data);
}

float* f32_arg(const Napi::CallbackInfo& info, size_t index, const char* op, const char* name, size_t length) {
  return typed_arg<float>(info, index, napi_float32_array, "Float32Array", op, name, length);
}

WeightType weight_type_arg(const Napi::CallbackInfo& info, size_t index, const char* op, const char* name) {
  int code = size_arg(info, index, op, name);
  if (code > 2) type_error(info.Env(), where(op, name) + " must be 0 (f32), 1 (bf16) or 2 (f16)");
  return static_cast<WeightType>(code);
}

// A weight array: Float32Array for f32, Uint16Array of bits for bf16/f16, with `length` elements.
const void* weight_arg(const Napi::CallbackInfo& info, size_t index, WeightType type, const char* op,
                       const char* name, size_t length) {
  if (type == WeightType::f32) return f32_arg(info, index, op, name, length);
  return typed_arg<uint16_t>(info, index, napi_uint16_array, "Uint16Array (bf16/f16 bits)", op, name, length);
}

size_t product(size_t a, size_t b) { return a * b; }

// linear(out, x, w, wType, bias|null, biasType, M, K, N)
Napi::Value Linear(const Napi::CallbackInfo& info) {
  const char* op = "linear";
  expect_count(info, 9, op);
  const int M = size_arg(info, 6, op, "M"), K = size_arg(info, 7, op, "K"), N = size_arg(info, 8, op, "N");
  const WeightType w_type = weight_type_arg(info, 3, op, "wType");
  const WeightType bias_type = weight_type_arg(info, 5, op, "biasType");
  float* out = f32_arg(info, 0, op, "out", product(M, N));
  const float* x = f32_arg(info, 1, op, "x", product(M, K));
  const void* w = weight_arg(info, 2, w_type, op, "w", product(N, K));
  const void* bias = info[4].IsNull() ? nullptr : weight_arg(info, 4, bias_type, op, "bias", N);
  sqap::linear(out, x, w, w_type, bias, bias_type, M, K, N);
  return info.Env().Undefined();
}

// embedding(out, table, tableType, ids, V, D)
Napi::Value Embedding(const Napi::CallbackInfo& info) {
  const char* op = "embedding";
  expect_count(info, 6, op);
  const int V = size_arg(info, 4, op, "V"), D = size_arg(info, 5, op, "D");
  const WeightType table_type = weight_type_arg(info, 2, op, "tableType");
  Napi::Value ids_value = info[3];
  if (!ids_value.IsTypedArray() || ids_value.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
    type_error(info.Env(), where(op, "ids") + " must be an Int32Array");
  }
  const size_t T = ids_value.As<Napi::TypedArray>().ElementLength();
  const int32_t* ids = typed_arg<int32_t>(info, 3, napi_int32_array, "Int32Array", op, "ids", T);
  float* out = f32_arg(info, 0, op, "out", product(T, D));
  const void* table = weight_arg(info, 1, table_type, op, "table", product(V, D));
  for (size_t t = 0; t < T; t++) {
    if (ids[t] < 0 || ids[t] >= V) {
      range_error(info.Env(), where(op, "ids") + "[" + std::to_string(t) + "] = " + std::to_string(ids[t]) +
                                  " is outside the table's " + std::to_string(V) + " rows");
    }
  }
  sqap::embedding(out, table, table_type, ids, static_cast<int>(T), D);
  return info.Env().Undefined();
}

// layerNorm(out, x, weight, weightType, bias, biasType, M, D, eps)
Napi::Value LayerNorm(const Napi::CallbackInfo& info) {
  const char* op = "layerNorm";
  expect_count(info, 9, op);
  const int M = size_arg(info, 6, op, "M"), D = size_arg(info, 7, op, "D");
  const double eps = number_arg(info, 8, op, "eps");
  const WeightType weight_type = weight_type_arg(info, 3, op, "weightType");
  const WeightType bias_type = weight_type_arg(info, 5, op, "biasType");
  float* out = f32_arg(info, 0, op, "out", product(M, D));
  const float* x = f32_arg(info, 1, op, "x", product(M, D));
  const void* weight = weight_arg(info, 2, weight_type, op, "weight", D);
  const void* bias = weight_arg(info, 4, bias_type, op, "bias", D);
  sqap::layer_norm(out, x, weight, weight_type, bias, bias_type, M, D, static_cast<float>(eps));
  return info.Env().Undefined();
}

// rmsNorm(out, x, weight, weightType, M, D, eps)
Napi::Value RmsNorm(const Napi::CallbackInfo& info) {
  const char* op = "rmsNorm";
  expect_count(info, 7, op);
  const int M = size_arg(info, 4, op, "M"), D = size_arg(info, 5, op, "D");
  const double eps = number_arg(info, 6, op, "eps");
  const WeightType weight_type = weight_type_arg(info, 3, op, "weightType");
  float* out = f32_arg(info, 0, op, "out", product(M, D));
  const float* x = f32_arg(info, 1, op, "x", product(M, D));
  const void* weight = weight_arg(info, 2, weight_type, op, "weight", D);
  sqap::rms_norm(out, x, weight, weight_type, M, D, static_cast<float>(eps));
  return info.Env().Undefined();
}

// Length of argument `index`, which must be a Float32Array.
size_t f32_length(const Napi::CallbackInfo& info, size_t index, const char* op, const char* name) {
  Napi::Value value = info[index];
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    type_error(info.Env(), where(op, name) + " must be a Float32Array");
  }
  return value.As<Napi::TypedArray>().ElementLength();
}

// gelu(out, x)
Napi::Value Gelu(const Napi::CallbackInfo& info) {
  const char* op = "gelu";
  expect_count(info, 2, op);
  const size_t n = f32_length(info, 1, op, "x");
  const float* x = f32_arg(info, 1, op, "x", n);
  float* out = f32_arg(info, 0, op, "out", n);
  sqap::gelu(out, x, n);
  return info.Env().Undefined();
}

// siluMul(out, gate, up)
Napi::Value SiluMul(const Napi::CallbackInfo& info) {
  const char* op = "siluMul";
  expect_count(info, 3, op);
  const size_t n = f32_length(info, 1, op, "gate");
  const float* gate = f32_arg(info, 1, op, "gate", n);
  const float* up = f32_arg(info, 2, op, "up", n);
  float* out = f32_arg(info, 0, op, "out", n);
  sqap::silu_mul(out, gate, up, n);
  return info.Env().Undefined();
}

// add(out, a, b)
Napi::Value Add(const Napi::CallbackInfo& info) {
  const char* op = "add";
  expect_count(info, 3, op);
  const size_t n = f32_length(info, 1, op, "a");
  const float* a = f32_arg(info, 1, op, "a", n);
  const float* b = f32_arg(info, 2, op, "b", n);
  float* out = f32_arg(info, 0, op, "out", n);
  sqap::add(out, a, b, n);
  return info.Env().Undefined();
}

// scaleChannels(out, x, scale, scaleType, M, D)
Napi::Value ScaleChannels(const Napi::CallbackInfo& info) {
  const char* op = "scaleChannels";
  expect_count(info, 6, op);
  const int M = size_arg(info, 4, op, "M"), D = size_arg(info, 5, op, "D");
  const WeightType scale_type = weight_type_arg(info, 3, op, "scaleType");
  float* out = f32_arg(info, 0, op, "out", product(M, D));
  const float* x = f32_arg(info, 1, op, "x", product(M, D));
  const void* scale = weight_arg(info, 2, scale_type, op, "scale", D);
  sqap::scale_channels(out, x, scale, scale_type, M, D);
  return info.Env().Undefined();
}

// rope(out, x, positions, T, H, Dh, theta)
Napi::Value Rope(const Napi::CallbackInfo& info) {
  const char* op = "rope";
  expect_count(info, 7, op);
  const int T = size_arg(info, 3, op, "T"), H = size_arg(info, 4, op, "H"), Dh = size_arg(info, 5, op, "Dh");
  const double theta = number_arg(info, 6, op, "theta");
  if (Dh % 2 != 0) type_error(info.Env(), where(op, "Dh") + " must be even, got " + std::to_string(Dh));
  if (!(theta > 0)) type_error(info.Env(), where(op, "theta") + " must be positive");
  float* out = f32_arg(info, 0, op, "out", product(product(T, H), Dh));
  const float* x = f32_arg(info, 1, op, "x", product(product(T, H), Dh));
  const int32_t* positions = typed_arg<int32_t>(info, 2, napi_int32_array, "Int32Array", op, "positions", T);
  sqap::rope(out, x, positions, T, H, Dh, theta);
  return info.Env().Undefined();
}

// attention(out, probs|null, q, k, v, T, S, Hq, Hkv, Dh, causal)
Napi::Value Attention(const Napi::CallbackInfo& info) {
  const char* op = "attention";
  expect_count(info, 11, op);
  const int T = size_arg(info, 5, op, "T"), S = size_arg(info, 6, op, "S");
  const int Hq = size_arg(info, 7, op, "Hq"), Hkv = size_arg(info, 8, op, "Hkv"), Dh = size_arg(info, 9, op, "Dh");
  const bool causal = bool_arg(info, 10, op, "causal");
  if (Hkv == 0 || Hq % Hkv != 0) {
    type_error(info.Env(), where(op, "Hq") + " (" + std::to_string(Hq) + ") must be a multiple of Hkv (" +
                               std::to_string(Hkv) + ")");
  }
  if (S == 0 && T > 0) type_error(info.Env(), std::string(op) + ": there must be at least one key");
  if (causal && T > S) {
    type_error(info.Env(), std::string(op) + ": causal attention needs T <= S (queries are the last T keys), got T=" +
                               std::to_string(T) + " S=" + std::to_string(S));
  }
  float* out = f32_arg(info, 0, op, "out", product(T, product(Hq, Dh)));
  float* probs = info[1].IsNull() ? nullptr : f32_arg(info, 1, op, "probs", product(Hq, product(T, S)));
  const float* q = f32_arg(info, 2, op, "q", product(T, product(Hq, Dh)));
  const float* k = f32_arg(info, 3, op, "k", product(S, product(Hkv, Dh)));
  const float* v = f32_arg(info, 4, op, "v", product(S, product(Hkv, Dh)));
  sqap::attention(out, probs, q, k, v, T, S, Hq, Hkv, Dh, causal);
  return info.Env().Undefined();
}

// attentionScores(keyTotals|null, queryProbs|null, rows, q, k, T, S, Hq, Hkv, Dh, causal)
Napi::Value AttentionScores(const Napi::CallbackInfo& info) {
  const char* op = "attentionScores";
  expect_count(info, 11, op);
  const int T = size_arg(info, 5, op, "T"), S = size_arg(info, 6, op, "S");
  const int Hq = size_arg(info, 7, op, "Hq"), Hkv = size_arg(info, 8, op, "Hkv"), Dh = size_arg(info, 9, op, "Dh");
  const bool causal = bool_arg(info, 10, op, "causal");
  if (Hkv == 0 || Hq % Hkv != 0) type_error(info.Env(), where(op, "Hq") + " must be a multiple of Hkv");
  if (S == 0 || T > S) type_error(info.Env(), std::string(op) + ": needs 1 <= T <= S");
  if (!info[2].IsTypedArray()) type_error(info.Env(), where(op, "rows") + " must be an Int32Array");
  const int R = static_cast<int>(info[2].As<Napi::TypedArray>().ElementLength());
  const int32_t* rows = typed_arg<int32_t>(info, 2, napi_int32_array, "Int32Array", op, "rows", R);
  for (int r = 0; r < R; r++) {
    if (rows[r] < 0 || rows[r] >= T || (r > 0 && rows[r] <= rows[r - 1])) {
      range_error(info.Env(), where(op, "rows") + " must be ascending query indices below T");
    }
  }
  float* totals = info[0].IsNull() ? nullptr : f32_arg(info, 0, op, "keyTotals", S);
  float* probs = info[1].IsNull() ? nullptr : f32_arg(info, 1, op, "queryProbs", product(Hq, product(R, S)));
  const float* q = f32_arg(info, 3, op, "q", product(T, product(Hq, Dh)));
  const float* k = f32_arg(info, 4, op, "k", product(S, product(Hkv, Dh)));
  sqap::attention_scores(totals, probs, rows, R, q, k, T, S, Hq, Hkv, Dh, causal);
  return info.Env().Undefined();
}

// setIsa(name): force an instruction-set path ('generic' | 'avx2' | 'avx512'); throws if this CPU lacks it.
Napi::Value SetIsa(const Napi::CallbackInfo& info) {
  expect_count(info, 1, "setIsa");
  if (!info[0].IsString()) type_error(info.Env(), "setIsa: name must be a string");
  std::string name = info[0].As<Napi::String>().Utf8Value();
  sqap::Isa isa;
  if (!sqap::isa_from_name(name.c_str(), &isa)) {
    type_error(info.Env(), "setIsa: unknown ISA '" + name + "' (expected generic, avx2 or avx512)");
  }
  if (!sqap::set_isa(isa)) range_error(info.Env(), "setIsa: this CPU does not support " + name);
  return info.Env().Undefined();
}

// info() -> { isa, requestedIsa (string|null), supportedIsas: string[], threads }
Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object result = Napi::Object::New(env);
  result.Set("isa", sqap::isa_name(sqap::current_isa()));
  const int requested = sqap::requested_isa();
  result.Set("requestedIsa", requested < 0 ? env.Null()
                                           : Napi::String::New(env, sqap::isa_name(static_cast<sqap::Isa>(requested))));
  Napi::Array supported = Napi::Array::New(env);
  uint32_t count = 0;
  for (sqap::Isa isa : {sqap::Isa::generic, sqap::Isa::avx2, sqap::Isa::avx512}) {
    if (sqap::isa_supported(isa)) supported.Set(count++, sqap::isa_name(isa));
  }
  result.Set("supportedIsas", supported);
  result.Set("threads", sqap::thread_count());
  return result;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("linear", Napi::Function::New(env, Linear));
  exports.Set("embedding", Napi::Function::New(env, Embedding));
  exports.Set("layerNorm", Napi::Function::New(env, LayerNorm));
  exports.Set("rmsNorm", Napi::Function::New(env, RmsNorm));
  exports.Set("gelu", Napi::Function::New(env, Gelu));
  exports.Set("siluMul", Napi::Function::New(env, SiluMul));
  exports.Set("add", Napi::Function::New(env, Add));
  exports.Set("scaleChannels", Napi::Function::New(env, ScaleChannels));
  exports.Set("rope", Napi::Function::New(env, Rope));
  exports.Set("attention", Napi::Function::New(env, Attention));
  exports.Set("attentionScores", Napi::Function::New(env, AttentionScores));
  exports.Set("setIsa", Napi::Function::New(env, SetIsa));
  exports.Set("info", Napi::Function::New(env, Info));
  sqap::register_grad(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(sqap_native, Init)
