// Element types the runtime stores. Activations are always f32; weights may stay in their checkpoint dtype
// (bf16/f16) and kernels convert inside the inner loop, so a BF16 model never needs a float32 copy.

// f64 exists for reference data (fixtures store actions in float64), never for model weights.
export type DType = 'f32' | 'f64' | 'bf16' | 'f16' | 'i8' | 'u8' | 'i32' | 'i64';

export type TypedArrayFor<D extends DType> = D extends 'f32'
  ? Float32Array
  : D extends 'f64'
    ? Float64Array
    : D extends 'bf16' | 'f16'
    ? Uint16Array
    : D extends 'i8'
      ? Int8Array
      : D extends 'u8'
        ? Uint8Array
        : D extends 'i32'
          ? Int32Array
          : D extends 'i64'
            ? BigInt64Array
            : never;

export type AnyTypedArray = Float32Array | Float64Array | Uint16Array | Int8Array | Uint8Array | Int32Array | BigInt64Array;

export const BYTES_PER_ELEMENT: Record<DType, number> = {
  f32: 4,
  f64: 8,
  bf16: 2,
  f16: 2,
  i8: 1,
  u8: 1,
  i32: 4,
  i64: 8,
};

export function allocate<D extends DType>(dtype: D, length: number): TypedArrayFor<D> {
  switch (dtype) {
    case 'f32':
      return new Float32Array(length) as TypedArrayFor<D>;
    case 'f64':
      return new Float64Array(length) as TypedArrayFor<D>;
    case 'bf16':
    case 'f16':
      return new Uint16Array(length) as TypedArrayFor<D>;
    case 'i8':
      return new Int8Array(length) as TypedArrayFor<D>;
    case 'u8':
      return new Uint8Array(length) as TypedArrayFor<D>;
    case 'i32':
      return new Int32Array(length) as TypedArrayFor<D>;
    case 'i64':
      return new BigInt64Array(length) as TypedArrayFor<D>;
  }
  throw new Error(`unknown dtype ${String(dtype)}`);
}

/** View `bytes` (which must be aligned for the element size) as the typed array of `dtype`. */
export function viewBytes<D extends DType>(dtype: D, buffer: ArrayBufferLike, byteOffset: number, length: number): TypedArrayFor<D> {
  switch (dtype) {
    case 'f32':
      return new Float32Array(buffer, byteOffset, length) as TypedArrayFor<D>;
    case 'f64':
      return new Float64Array(buffer, byteOffset, length) as TypedArrayFor<D>;
    case 'bf16':
    case 'f16':
      return new Uint16Array(buffer, byteOffset, length) as TypedArrayFor<D>;
    case 'i8':
      return new Int8Array(buffer, byteOffset, length) as TypedArrayFor<D>;
    case 'u8':
      return new Uint8Array(buffer, byteOffset, length) as TypedArrayFor<D>;
    case 'i32':
      return new Int32Array(buffer, byteOffset, length) as TypedArrayFor<D>;
    case 'i64':
      return new BigInt64Array(buffer, byteOffset, length) as TypedArrayFor<D>;
  }
  throw new Error(`unknown dtype ${String(dtype)}`);
}

const scratch = new ArrayBuffer(4);
const scratchF32 = new Float32Array(scratch);
const scratchU32 = new Uint32Array(scratch);

/** bf16 bits -> f32 value (exact: bf16 is the top half of an f32). */
export function bf16ToF32(bits: number): number {
  scratchU32[0] = bits << 16;
  return scratchF32[0];
}

/** f32 value -> bf16 bits, round-to-nearest-even (as torch does); NaN stays NaN. */
export function f32ToBf16(value: number): number {
  scratchF32[0] = value;
  const u = scratchU32[0];
  if ((u & 0x7fffffff) > 0x7f800000) return ((u >>> 16) | 0x40) & 0xffff;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

/**
 * f32 -> bf16 bits as the bf16 dot-product path rounds activations (native/kernels.h round_to_bf16, AVX512-BF16's
 * vcvtne2ps2bf16): denormals flushed to signed zero first, then round to nearest even; NaN stays NaN.
 */
export function activationToBf16(value: number): number {
  scratchF32[0] = value;
  if ((scratchU32[0] & 0x7f800000) === 0) scratchU32[0] &= 0x80000000;
  return f32ToBf16(scratchF32[0]);
}

/** IEEE half bits -> f32 value. */
export function f16ToF32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >>> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa ? NaN : sign * Infinity;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

/** f32 value -> IEEE half bits, round-to-nearest-even. */
export function f32ToF16(value: number): number {
  scratchF32[0] = value;
  const x = scratchU32[0];
  const sign = (x >>> 16) & 0x8000;
  const absBits = x & 0x7fffffff;
  if (absBits >= 0x7f800000) return sign | 0x7c00 | (absBits > 0x7f800000 ? 0x200 : 0);
  if (absBits >= 0x477ff000) return sign | 0x7c00; // rounds to >= 65520 -> inf
  if (absBits < 0x38800000) {
    // subnormal half (or zero): value / 2^-24 rounded to nearest even
    scratchU32[0] = absBits;
    const scaled = scratchF32[0] * 2 ** 24;
    let r = Math.round(scaled);
    if (Math.abs(scaled - Math.trunc(scaled)) === 0.5 && r % 2 === 1) r -= 1;
    return sign | r;
  }
  const exponent = ((absBits >>> 23) - 127 + 15) << 10;
  const mantissa = absBits & 0x7fffff;
  let half = exponent | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && half & 1)) half += 1;
  return sign | half;
}

/** Element i of a float-valued array of any float dtype, as a JS number. */
export function floatAt(dtype: DType, data: AnyTypedArray, i: number): number {
  switch (dtype) {
    case 'f32':
      return (data as Float32Array)[i];
    case 'f64':
      return (data as Float64Array)[i];
    case 'bf16':
      return bf16ToF32((data as Uint16Array)[i]);
    case 'f16':
      return f16ToF32((data as Uint16Array)[i]);
    case 'i64':
      return Number((data as BigInt64Array)[i]);
    default:
      return (data as Int8Array | Uint8Array | Int32Array)[i];
  }
}
