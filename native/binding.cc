// The N-API surface of sqap_native, and the only file that knows N-API. Each function checks its JavaScript
// arguments (types, integer sizes, array lengths, ranges) and throws a TypeError/RangeError naming the op and the
// argument, then forwards raw pointers and sizes to kernels.h. Outputs are preallocated Float32Arrays from the
// caller (native.ts), so memory ownership stays in JavaScript.
//
// Weight arguments come as (array, type code) pairs with the codes of WEIGHT_FORMATS (src/tensor/formats.ts) =
// WeightType: 0 = f32 (Float32Array), 1 = bf16, 2 = f16 (Uint16Array of raw bits) for float weights; integer weights
// (3 = i8, 4 = i4) come as codes + scales to the integer ops only.
#include <napi.h>

#include <cmath>
#include <map>
#include <mutex>
#include <cstdlib>
#include <string>

#if defined(__GLIBC__)
#include <malloc.h>
#endif
#ifndef _WIN32
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

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

// A float weight format code (f32, bf16, f16).
WeightType weight_type_arg(const Napi::CallbackInfo& info, size_t index, const char* op, const char* name) {
  int code = size_arg(info, index, op, name);
  if (code > static_cast<int>(WeightType::f16)) type_error(info.Env(), where(op, name) + " must be 0 (f32), 1 (bf16) or 2 (f16)");
  return static_cast<WeightType>(code);
}

// An integer weight format code (i8, i4).
WeightType int_type_arg(const Napi::CallbackInfo& info, size_t index, const char* op, const char* name) {
  int code = size_arg(info, index, op, name);
  if (code != static_cast<int>(WeightType::i8) && code != static_cast<int>(WeightType::i4)) {
    type_error(info.Env(), where(op, name) + " must be 3 (i8) or 4 (i4)");
  }
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

// f32 (float) or bf16 (uint16 bits): the types a weight may be prepacked from
WeightType prepack_type_arg(const Napi::CallbackInfo& info, size_t index, const char* op) {
  const WeightType type = weight_type_arg(info, index, op, "wType");
  if (type != WeightType::f32 && type != WeightType::bf16) type_error(info.Env(), where(op, "wType") + " must be f32 or bf16");
  return type;
}

// prepackWeight(dst, w, wType, N, K): dst (Float32Array for f32, Uint16Array for bf16) of prepackedElements(N, K)
Napi::Value PrepackWeight(const Napi::CallbackInfo& info) {
  const char* op = "prepackWeight";
  expect_count(info, 5, op);
  const int N = size_arg(info, 3, op, "N"), K = size_arg(info, 4, op, "K");
  const WeightType w_type = prepack_type_arg(info, 2, op);
  const void* w = weight_arg(info, 1, w_type, op, "w", product(N, K));
  void* dst = const_cast<void*>(weight_arg(info, 0, w_type, op, "dst", sqap::prepacked_elements(N, K)));
  sqap::prepack_weight(dst, w, w_type, N, K);
  return info.Env().Undefined();
}

// linearPrepacked(out, x, packed, wType, bias|null, biasType, M, K, N)
Napi::Value LinearPrepacked(const Napi::CallbackInfo& info) {
  const char* op = "linearPrepacked";
  expect_count(info, 9, op);
  const int M = size_arg(info, 6, op, "M"), K = size_arg(info, 7, op, "K"), N = size_arg(info, 8, op, "N");
  const WeightType w_type = prepack_type_arg(info, 3, op);
  const WeightType bias_type = weight_type_arg(info, 5, op, "biasType");
  float* out = f32_arg(info, 0, op, "out", product(M, N));
  const float* x = f32_arg(info, 1, op, "x", product(M, K));
  const void* packed = weight_arg(info, 2, w_type, op, "packed", sqap::prepacked_elements(N, K));
  const void* bias = info[4].IsNull() ? nullptr : weight_arg(info, 4, bias_type, op, "bias", N);
  sqap::linear_prepacked(out, x, packed, w_type, bias, bias_type, M, K, N);
  return info.Env().Undefined();
}

// prepackWeightDot(dst, w, N, K): w bf16 bits (N,K) -> dst (Uint16Array of prepackedDotElements(N, K)), the bf16-dot
// layout (kernels.h)
Napi::Value PrepackWeightDot(const Napi::CallbackInfo& info) {
  const char* op = "prepackWeightDot";
  expect_count(info, 4, op);
  const int N = size_arg(info, 2, op, "N"), K = size_arg(info, 3, op, "K");
  const void* w = weight_arg(info, 1, WeightType::bf16, op, "w", product(N, K));
  void* dst = const_cast<void*>(weight_arg(info, 0, WeightType::bf16, op, "dst", sqap::prepacked_dot_elements(N, K)));
  sqap::prepack_weight_dot(static_cast<uint16_t*>(dst), static_cast<const uint16_t*>(w), N, K);
  return info.Env().Undefined();
}

// linearPrepackedDot(out, x, packed, bias|null, biasType, M, K, N)
Napi::Value LinearPrepackedDot(const Napi::CallbackInfo& info) {
  const char* op = "linearPrepackedDot";
  expect_count(info, 8, op);
  const int M = size_arg(info, 5, op, "M"), K = size_arg(info, 6, op, "K"), N = size_arg(info, 7, op, "N");
  const WeightType bias_type = weight_type_arg(info, 4, op, "biasType");
  float* out = f32_arg(info, 0, op, "out", product(M, N));
  const float* x = f32_arg(info, 1, op, "x", product(M, K));
  const void* packed = weight_arg(info, 2, WeightType::bf16, op, "packed", sqap::prepacked_dot_elements(N, K));
  const void* bias = info[3].IsNull() ? nullptr : weight_arg(info, 3, bias_type, op, "bias", N);
  sqap::linear_prepacked_dot(out, x, static_cast<const uint16_t*>(packed), bias, bias_type, M, K, N);
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

// ---- integer ops (docs/quantization.md, Kernel contract) ----

// K and the group size of an integer weight: the group must divide K (checked in TypeScript first, as a UserError).
sqap::IntWeightLayout layout_args(const Napi::CallbackInfo& info, WeightType type, int N, int K, int group,
                                  const char* op) {
  if (group <= 0 || K % group != 0) {
    type_error(info.Env(), std::string(op) + ": group size " + std::to_string(group) + " does not divide K = " +
                               std::to_string(K));
  }
  return sqap::int_weight_layout(type, N, K, group);
}

const int8_t* i8_arg(const Napi::CallbackInfo& info, size_t index, const char* op, const char* name, size_t length) {
  return typed_arg<int8_t>(info, index, napi_int8_array, "Int8Array", op, name, length);
}

const void* int_codes_arg(const Napi::CallbackInfo& info, size_t index, WeightType type, int N, int K,
                          const char* op) {
  if (type == WeightType::i8) return i8_arg(info, index, op, "codes", product(N, K));
  return typed_arg<uint8_t>(info, index, napi_uint8_array, "Uint8Array", op, "codes", product(N, (K + 1) / 2));
}

// intWeightLayout(type, N, K, group) -> { bytes, scales }: sizes of the packed weight
Napi::Value IntWeightLayout(const Napi::CallbackInfo& info) {
  const char* op = "intWeightLayout";
  expect_count(info, 4, op);
  const WeightType type = int_type_arg(info, 0, op, "type");
  const int N = size_arg(info, 1, op, "N"), K = size_arg(info, 2, op, "K"), group = size_arg(info, 3, op, "group");
  const sqap::IntWeightLayout l = layout_args(info, type, N, K, group, op);
  Napi::Object result = Napi::Object::New(info.Env());
  result.Set("bytes", static_cast<double>(l.bytes));
  result.Set("scales", static_cast<double>(l.scales));
  return result;
}

// packIntWeight(packed, packedScales, codes, scales, type, N, K, group)
Napi::Value PackIntWeight(const Napi::CallbackInfo& info) {
  const char* op = "packIntWeight";
  expect_count(info, 8, op);
  const WeightType type = int_type_arg(info, 4, op, "type");
  const int N = size_arg(info, 5, op, "N"), K = size_arg(info, 6, op, "K"), group = size_arg(info, 7, op, "group");
  const sqap::IntWeightLayout l = layout_args(info, type, N, K, group, op);
  uint8_t* packed = typed_arg<uint8_t>(info, 0, napi_uint8_array, "Uint8Array", op, "packed", l.bytes);
  float* packed_scales = f32_arg(info, 1, op, "packedScales", l.scales);
  const void* codes = int_codes_arg(info, 2, type, N, K, op);
  const float* scales = f32_arg(info, 3, op, "scales", product(N, K / group));
  sqap::pack_int_weight(packed, packed_scales, codes, scales, type, N, K, group);
  return info.Env().Undefined();
}

// packIntWeightInPlace(codes, scales, type, N, K, group) -> boolean: packIntWeight over the arrays themselves when
// the layouts have the same size (intWeightLayout bytes/scales equal the arrays' lengths); false = not done
Napi::Value PackIntWeightInPlace(const Napi::CallbackInfo& info) {
  const char* op = "packIntWeightInPlace";
  expect_count(info, 6, op);
  const WeightType type = int_type_arg(info, 2, op, "type");
  const int N = size_arg(info, 3, op, "N"), K = size_arg(info, 4, op, "K"), group = size_arg(info, 5, op, "group");
  layout_args(info, type, N, K, group, op);
  void* codes = const_cast<void*>(int_codes_arg(info, 0, type, N, K, op));
  float* scales = f32_arg(info, 1, op, "scales", product(N, K / group));
  return Napi::Boolean::New(info.Env(), sqap::pack_int_weight_in_place(codes, scales, type, N, K, group));
}

// unpackIntWeight(codes, scales, packed, packedScales, type, N, K, group): the inverse of packIntWeight
Napi::Value UnpackIntWeight(const Napi::CallbackInfo& info) {
  const char* op = "unpackIntWeight";
  expect_count(info, 8, op);
  const WeightType type = int_type_arg(info, 4, op, "type");
  const int N = size_arg(info, 5, op, "N"), K = size_arg(info, 6, op, "K"), group = size_arg(info, 7, op, "group");
  const sqap::IntWeightLayout l = layout_args(info, type, N, K, group, op);
  void* codes = const_cast<void*>(int_codes_arg(info, 0, type, N, K, op));
  float* scales = f32_arg(info, 1, op, "scales", product(N, K / group));
  const uint8_t* packed = typed_arg<uint8_t>(info, 2, napi_uint8_array, "Uint8Array", op, "packed", l.bytes);
  const float* packed_scales = f32_arg(info, 3, op, "packedScales", l.scales);
  sqap::unpack_int_weight(codes, scales, packed, packed_scales, type, N, K, group);
  return info.Env().Undefined();
}

// mapFile(fd, offset, length) -> ArrayBuffer | null: bytes [offset, offset + length) of an open file (a Node fd) as
// an ArrayBuffer over a private (copy-on-write) memory mapping, unmapped when the buffer is garbage-collected. Pages
// are read from the file when first touched and count as resident only then. null when the range is not inside the
// file (the caller then reads, and reports the problem) or mapping is not available (Windows).
struct Mapping {
  void* base;
  size_t span;
};

// The live mappings of mapFile (base -> span), so releaseMappedPages can tell a file-backed weight from heap memory.
std::mutex mappings_mutex;
std::map<uintptr_t, size_t> live_mappings;

Napi::Value MapFile(const Napi::CallbackInfo& info) {
  const char* op = "mapFile";
  expect_count(info, 3, op);
  const double fd_number = number_arg(info, 0, op, "fd");
  const double offset = number_arg(info, 1, op, "offset"), length = number_arg(info, 2, op, "length");
  if (!(fd_number >= 0 && fd_number < 2147483647.0 && std::floor(fd_number) == fd_number)) range_error(info.Env(), where(op, "fd") + " must be a file descriptor");
  if (!(offset >= 0 && length > 0 && std::floor(offset) == offset && std::floor(length) == length && offset + length <= 9007199254740991.0)) {
    range_error(info.Env(), where(op, "offset/length") + " must be integers, offset >= 0 and length > 0");
  }
#ifdef _WIN32
  return info.Env().Null();
#else
  const int fd = static_cast<int>(fd_number);
  struct stat st;
  const size_t begin = static_cast<size_t>(offset), bytes = static_cast<size_t>(length);
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || begin + bytes > static_cast<size_t>(st.st_size)) return info.Env().Null();
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t start = begin / page * page;
  const size_t span = begin - start + bytes;
  void* base = mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, static_cast<off_t>(start));
  if (base == MAP_FAILED) return info.Env().Null();
  auto* mapping = new Mapping{base, span};
  {
    std::lock_guard<std::mutex> lock(mappings_mutex);
    live_mappings[reinterpret_cast<uintptr_t>(base)] = span;
  }
  Napi::Env env = info.Env();
  Napi::MemoryManagement::AdjustExternalMemory(env, static_cast<int64_t>(span));
  return Napi::ArrayBuffer::New(env, static_cast<char*>(base) + (begin - start), bytes,
                                [](Napi::Env finalizeEnv, void*, Mapping* m) {
                                  {
                                    std::lock_guard<std::mutex> lock(mappings_mutex);
                                    live_mappings.erase(reinterpret_cast<uintptr_t>(m->base));
                                  }
                                  munmap(m->base, m->span);
                                  Napi::MemoryManagement::AdjustExternalMemory(finalizeEnv, -static_cast<int64_t>(m->span));
                                  delete m;
                                },
                                mapping);
#endif
}

// releaseMappedPages(view) -> boolean: when the typed array lies inside a live mapFile mapping, drop its whole pages
// from this process's resident set (madvise MADV_DONTNEED) and return true; otherwise (heap memory) do nothing and
// return false. The mapping is private and the weights in it are never written, so a later read of those pages
// faults them back in from the file unchanged: this only gives back memory a caller no longer reads (a weight whose
// prepacked copy replaced it, while the garbage collector has not yet unmapped it).
Napi::Value ReleaseMappedPages(const Napi::CallbackInfo& info) {
  const char* op = "releaseMappedPages";
  expect_count(info, 1, op);
  if (!info[0].IsTypedArray()) type_error(info.Env(), where(op, "view") + " must be a typed array");
  Napi::TypedArray view = info[0].As<Napi::TypedArray>();
  const uintptr_t begin = reinterpret_cast<uintptr_t>(static_cast<char*>(view.ArrayBuffer().Data()) + view.ByteOffset());
  const uintptr_t end = begin + view.ByteLength();
#ifdef _WIN32
  return Napi::Boolean::New(info.Env(), false);
#else
  {
    std::lock_guard<std::mutex> lock(mappings_mutex);
    auto it = live_mappings.upper_bound(begin);
    if (it == live_mappings.begin()) return Napi::Boolean::New(info.Env(), false);
    --it;
    if (end > it->first + it->second) return Napi::Boolean::New(info.Env(), false);
  }
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t first = (begin + page - 1) / page * page, last = end / page * page;
  if (last > first) madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
  return Napi::Boolean::New(info.Env(), true);
#endif
}

// quantizeActivations(codes, scales, x, M, K, bits, hasNorm, normWeight|null, normType, eps, hadBlock, clip)
Napi::Value QuantizeActivations(const Napi::CallbackInfo& info) {
  const char* op = "quantizeActivations";
  expect_count(info, 12, op);
  const int M = size_arg(info, 3, op, "M"), K = size_arg(info, 4, op, "K"), bits = size_arg(info, 5, op, "bits");
  if (bits != 4 && bits != 8) type_error(info.Env(), where(op, "bits") + " must be 4 or 8");
  const bool has_norm = bool_arg(info, 6, op, "hasNorm");
  const WeightType norm_type = weight_type_arg(info, 8, op, "normType");
  const double eps = number_arg(info, 9, op, "eps");
  const int had = size_arg(info, 10, op, "hadBlock");
  if (had != 0 && ((had & (had - 1)) != 0 || K % had != 0)) {
    type_error(info.Env(), where(op, "hadBlock") + " must be a power of two dividing K");
  }
  const double clip = number_arg(info, 11, op, "clip");
  if (!(clip > 0 && clip <= 1)) type_error(info.Env(), where(op, "clip") + " must be in (0, 1]");
  int8_t* codes = typed_arg<int8_t>(info, 0, napi_int8_array, "Int8Array", op, "codes", product(M, K));
  float* scales = f32_arg(info, 1, op, "scales", M);
  const float* x = f32_arg(info, 2, op, "x", product(M, K));
  const void* norm = info[7].IsNull() ? nullptr : weight_arg(info, 7, norm_type, op, "normWeight", K);
  sqap::quantize_activations(codes, scales, x, M, K, bits, has_norm, norm, norm_type, eps, had,
                             static_cast<float>(clip));
  return info.Env().Undefined();
}

// linearInt(out, acc|null, xCodes, xScales, wPacked, wScales, wType, M, K, N, group, bias|null, biasType)
Napi::Value LinearInt(const Napi::CallbackInfo& info) {
  const char* op = "linearInt";
  expect_count(info, 13, op);
  const WeightType w_type = int_type_arg(info, 6, op, "wType");
  const int M = size_arg(info, 7, op, "M"), K = size_arg(info, 8, op, "K"), N = size_arg(info, 9, op, "N");
  const int group = size_arg(info, 10, op, "group");
  const sqap::IntWeightLayout l = layout_args(info, w_type, N, K, group, op);
  const WeightType bias_type = weight_type_arg(info, 12, op, "biasType");
  float* out = f32_arg(info, 0, op, "out", product(M, N));
  int32_t* acc = info[1].IsNull() ? nullptr
                                  : typed_arg<int32_t>(info, 1, napi_int32_array, "Int32Array", op, "acc",
                                                       product(product(M, N), l.G));
  const int8_t* x = i8_arg(info, 2, op, "xCodes", product(M, K));
  for (size_t i = 0; i < product(M, K); i++) {
    if (x[i] == -128) range_error(info.Env(), where(op, "xCodes") + " contains -128 (activation codes are symmetric)");
  }
  const float* x_scales = f32_arg(info, 3, op, "xScales", M);
  const uint8_t* w = typed_arg<uint8_t>(info, 4, napi_uint8_array, "Uint8Array", op, "wPacked", l.bytes);
  const float* w_scales = f32_arg(info, 5, op, "wScales", l.scales);
  const void* bias = info[11].IsNull() ? nullptr : weight_arg(info, 11, bias_type, op, "bias", N);
  sqap::linear_int(out, acc, x, x_scales, w, w_scales, w_type, M, K, N, group, bias, bias_type);
  return info.Env().Undefined();
}

// linearDequant(out, x, codes, scales, wType, group, bias|null, biasType, M, K, N)
Napi::Value LinearDequant(const Napi::CallbackInfo& info) {
  const char* op = "linearDequant";
  expect_count(info, 11, op);
  const WeightType w_type = int_type_arg(info, 4, op, "wType");
  const int M = size_arg(info, 8, op, "M"), K = size_arg(info, 9, op, "K"), N = size_arg(info, 10, op, "N");
  const int group = size_arg(info, 5, op, "group");
  layout_args(info, w_type, N, K, group, op);
  const WeightType bias_type = weight_type_arg(info, 7, op, "biasType");
  float* out = f32_arg(info, 0, op, "out", product(M, N));
  const float* x = f32_arg(info, 1, op, "x", product(M, K));
  const void* codes = int_codes_arg(info, 2, w_type, N, K, op);
  const float* scales = f32_arg(info, 3, op, "scales", product(N, K / group));
  const void* bias = info[6].IsNull() ? nullptr : weight_arg(info, 6, bias_type, op, "bias", N);
  sqap::linear_dequant(out, x, codes, scales, w_type, group, bias, bias_type, M, K, N);
  return info.Env().Undefined();
}

// fwht(out, x, M, K, block)
Napi::Value Fwht(const Napi::CallbackInfo& info) {
  const char* op = "fwht";
  expect_count(info, 5, op);
  const int M = size_arg(info, 2, op, "M"), K = size_arg(info, 3, op, "K"), block = size_arg(info, 4, op, "block");
  if (block == 0 || (block & (block - 1)) != 0 || K % block != 0) {
    type_error(info.Env(), where(op, "block") + " must be a power of two dividing K");
  }
  float* out = f32_arg(info, 0, op, "out", product(M, K));
  const float* x = f32_arg(info, 1, op, "x", product(M, K));
  sqap::fwht(out, x, M, K, block);
  return info.Env().Undefined();
}

// attentionInt(out, probs|null, q, qScales, k, kScales, v, vScales, T, S, Hq, Hkv, Dh, causal)
Napi::Value AttentionInt(const Napi::CallbackInfo& info) {
  const char* op = "attentionInt";
  expect_count(info, 14, op);
  const int T = size_arg(info, 8, op, "T"), S = size_arg(info, 9, op, "S");
  const int Hq = size_arg(info, 10, op, "Hq"), Hkv = size_arg(info, 11, op, "Hkv"), Dh = size_arg(info, 12, op, "Dh");
  const bool causal = bool_arg(info, 13, op, "causal");
  if (Hkv == 0 || Hq % Hkv != 0) type_error(info.Env(), where(op, "Hq") + " must be a multiple of Hkv");
  if (T > S) type_error(info.Env(), std::string(op) + ": needs T <= S (queries are the last T keys)");
  float* out = f32_arg(info, 0, op, "out", product(T, product(Hq, Dh)));
  float* probs = info[1].IsNull() ? nullptr : f32_arg(info, 1, op, "probs", product(Hq, product(T, S)));
  const int8_t* q = i8_arg(info, 2, op, "q", product(T, product(Hq, Dh)));
  const float* qs = f32_arg(info, 3, op, "qScales", product(T, Hq));
  const int8_t* k = i8_arg(info, 4, op, "k", product(S, product(Hkv, Dh)));
  const float* ks = f32_arg(info, 5, op, "kScales", product(S, Hkv));
  const int8_t* v = i8_arg(info, 6, op, "v", product(S, product(Hkv, Dh)));
  const float* vs = f32_arg(info, 7, op, "vScales", product(S, Hkv));
  sqap::attention_int(out, probs, q, qs, k, ks, v, vs, T, S, Hq, Hkv, Dh, causal);
  return info.Env().Undefined();
}

// streamRead(buffer: Uint8Array) -> number (XOR of its 64-bit words): the memory-bandwidth probe of bench/gemm.ts
Napi::Value StreamRead(const Napi::CallbackInfo& info) {
  expect_count(info, 1, "streamRead");
  Napi::Value value = info[0];
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    type_error(info.Env(), "streamRead: buffer must be a Uint8Array");
  }
  const size_t n = value.As<Napi::TypedArray>().ElementLength();
  const uint8_t* data = typed_arg<uint8_t>(info, 0, napi_uint8_array, "Uint8Array", "streamRead", "buffer", n);
  return Napi::Number::New(info.Env(), static_cast<double>(sqap::stream_read(data, n) & 0xFFFFFFFF));
}

// base64Decode(dst: Uint8Array, src: Uint8Array) -> boolean: src, strict padded standard base64, decoded into dst,
// which must be exactly its decoded size (generic/base64.cc); false (dst then undefined) for anything else
Napi::Value Base64Decode(const Napi::CallbackInfo& info) {
  const char* op = "base64Decode";
  expect_count(info, 2, op);
  for (int i = 0; i < 2; i++) {
    if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
      type_error(info.Env(), std::string(op) + (i == 0 ? ": dst" : ": src") + " must be a Uint8Array");
    }
  }
  const size_t dst_bytes = info[0].As<Napi::TypedArray>().ElementLength();
  const size_t n = info[1].As<Napi::TypedArray>().ElementLength();
  uint8_t* dst = typed_arg<uint8_t>(info, 0, napi_uint8_array, "Uint8Array", op, "dst", dst_bytes);
  const uint8_t* src = typed_arg<uint8_t>(info, 1, napi_uint8_array, "Uint8Array", op, "src", n);
  return Napi::Boolean::New(info.Env(), sqap::base64_decode_strict(dst, dst_bytes, src, n));
}

// weightTypes() -> { f32: 0, bf16: 1, f16: 2, i8: 3, i4: 4 } (formats.test.ts checks WEIGHT_FORMATS against it)
Napi::Value WeightTypes(const Napi::CallbackInfo& info) {
  Napi::Object result = Napi::Object::New(info.Env());
  result.Set("f32", static_cast<int>(WeightType::f32));
  result.Set("bf16", static_cast<int>(WeightType::bf16));
  result.Set("f16", static_cast<int>(WeightType::f16));
  result.Set("i8", static_cast<int>(WeightType::i8));
  result.Set("i4", static_cast<int>(WeightType::i4));
  return result;
}

// setIsa(name): force an instruction-set path (generic, avx2, avxvnni, avx512, avx512vnni); throws if the CPU lacks it.
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
    type_error(info.Env(), "setIsa: unknown ISA '" + name + "' (expected generic, avx2, avxvnni, avx512 or avx512vnni)");
  }
  if (!sqap::set_isa(isa)) range_error(info.Env(), "setIsa: this CPU does not support " + name);
  return info.Env().Undefined();
}

// info() -> { isa, requestedIsa (string|null), supportedIsas: string[], threads, prepackedFast, prepackedDotFast }
Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object result = Napi::Object::New(env);
  result.Set("isa", sqap::isa_name(sqap::current_isa()));
  const int requested = sqap::requested_isa();
  result.Set("requestedIsa", requested < 0 ? env.Null()
                                           : Napi::String::New(env, sqap::isa_name(static_cast<sqap::Isa>(requested))));
  Napi::Array supported = Napi::Array::New(env);
  uint32_t count = 0;
  for (sqap::Isa isa : {sqap::Isa::generic, sqap::Isa::avx2, sqap::Isa::avxvnni, sqap::Isa::avx512,
                        sqap::Isa::avx512vnni}) {
    if (sqap::isa_supported(isa)) supported.Set(count++, sqap::isa_name(isa));
  }
  result.Set("supportedIsas", supported);
  result.Set("threads", sqap::thread_count());
  result.Set("prepackedFast", sqap::prepacked_fast());
  result.Set("prepackedDotFast", sqap::prepacked_dot_fast());
  return result;
}

// Large buffers (every op's output array, activations of a 7B prefill: megabytes each) are allocated and freed on
// every op. From a fresh mapping each one costs a page fault per 4 KiB on first write; on this VM that was half of a
// W4A8 prefill (8 Llama-2-7B layers, 282 tokens: 2.52-2.81 s with a 1 MiB threshold, 1.32-1.36 s with 32 MiB; perf put
// 16% of all samples in page faults, most of them in the GEMM's first writes of its output). So buffers up to 32 MiB
// (a 7B prefill's largest activation is 282 x 11008 f32 = 12.4 MB) come from the heap, where freed ones are reused;
// the cost is their resident slack, +0.07 GiB on that run (+90 MB measured on a 7B step when glibc's own dynamic
// threshold did the same). Larger ones keep their own mapping, returned when freed. An explicit
// MALLOC_MMAP_THRESHOLD_ in the environment wins: 1048576 trades that speed for the lower resident size, and is what
// a W4 OpenVLA-7B needs to stay within 5 GiB (4.93 GiB peak against 5.01 GiB by default; docs/quantization.md).
void fix_mmap_threshold() {
#if defined(__GLIBC__)
  if (std::getenv("MALLOC_MMAP_THRESHOLD_") == nullptr) mallopt(M_MMAP_THRESHOLD, 32 << 20);
#endif
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  fix_mmap_threshold();
  exports.Set("linear", Napi::Function::New(env, Linear));
  exports.Set("prepackWeight", Napi::Function::New(env, PrepackWeight));
  exports.Set("linearPrepacked", Napi::Function::New(env, LinearPrepacked));
  exports.Set("prepackWeightDot", Napi::Function::New(env, PrepackWeightDot));
  exports.Set("linearPrepackedDot", Napi::Function::New(env, LinearPrepackedDot));
  exports.Set("releaseMappedPages", Napi::Function::New(env, ReleaseMappedPages));
  exports.Set("embedding", Napi::Function::New(env, Embedding));
  exports.Set("layerNorm", Napi::Function::New(env, LayerNorm));
  exports.Set("rmsNorm", Napi::Function::New(env, RmsNorm));
  exports.Set("gelu", Napi::Function::New(env, Gelu));
  exports.Set("siluMul", Napi::Function::New(env, SiluMul));
  exports.Set("add", Napi::Function::New(env, Add));
  exports.Set("scaleChannels", Napi::Function::New(env, ScaleChannels));
  exports.Set("rope", Napi::Function::New(env, Rope));
  exports.Set("attention", Napi::Function::New(env, Attention));
  exports.Set("intWeightLayout", Napi::Function::New(env, IntWeightLayout));
  exports.Set("packIntWeight", Napi::Function::New(env, PackIntWeight));
  exports.Set("unpackIntWeight", Napi::Function::New(env, UnpackIntWeight));
  exports.Set("packIntWeightInPlace", Napi::Function::New(env, PackIntWeightInPlace));
  exports.Set("quantizeActivations", Napi::Function::New(env, QuantizeActivations));
  exports.Set("linearInt", Napi::Function::New(env, LinearInt));
  exports.Set("linearDequant", Napi::Function::New(env, LinearDequant));
  exports.Set("fwht", Napi::Function::New(env, Fwht));
  exports.Set("attentionInt", Napi::Function::New(env, AttentionInt));
  exports.Set("weightTypes", Napi::Function::New(env, WeightTypes));
  exports.Set("streamRead", Napi::Function::New(env, StreamRead));
  exports.Set("base64Decode", Napi::Function::New(env, Base64Decode));
  exports.Set("mapFile", Napi::Function::New(env, MapFile));
  exports.Set("attentionScores", Napi::Function::New(env, AttentionScores));
  exports.Set("setIsa", Napi::Function::New(env, SetIsa));
  exports.Set("info", Napi::Function::New(env, Info));
  sqap::register_grad(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(sqap_native, Init)
