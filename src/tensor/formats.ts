// Weight formats: ONE table for every way a linear weight can be stored, float or integer. The native addon's
// WeightType enum (native/kernels.h) uses the same codes; test/tensor/formats.test.ts checks they agree.
//
// Float formats hold a Tensor (data.length === size). Integer formats hold a QuantizedWeight: int8 codes, or int4
// codes nibble-packed two per byte, plus symmetric f32 scales per output channel or per group of K. docs/
// quantization.md ("Kernel contract") writes the arithmetic out step by step.
import { UserError } from '../errors.js';
import { floatAt, type AnyTypedArray } from './dtype.js';
import type { Tensor } from './tensor.js';

export type FloatFormatName = 'f32' | 'bf16' | 'f16';
export type IntFormatName = 'i8' | 'i4';
export type WeightFormatName = FloatFormatName | IntFormatName;

export interface WeightFormat {
  readonly name: WeightFormatName;
  /** the code the native addon takes for this format (WeightType in native/kernels.h) */
  readonly code: number;
  /** bits per stored element */
  readonly bits: number;
  /** integer formats: the largest code magnitude the reference quantizer produces (symmetric, 2^(bits-1) - 1) */
  readonly qmax: number;
  /** bytes one row of K elements takes (int4 rounds up to whole bytes) */
  bytesPerRow(K: number): number;
}

export const WEIGHT_FORMATS: Readonly<Record<WeightFormatName, WeightFormat>> = Object.freeze({
  f32: { name: 'f32', code: 0, bits: 32, qmax: 0, bytesPerRow: (K: number) => 4 * K },
  bf16: { name: 'bf16', code: 1, bits: 16, qmax: 0, bytesPerRow: (K: number) => 2 * K },
  f16: { name: 'f16', code: 2, bits: 16, qmax: 0, bytesPerRow: (K: number) => 2 * K },
  i8: { name: 'i8', code: 3, bits: 8, qmax: 127, bytesPerRow: (K: number) => K },
  i4: { name: 'i4', code: 4, bits: 4, qmax: 7, bytesPerRow: (K: number) => Math.ceil(K / 2) },
});

/**
 * A quantized linear weight w [N,K] (PyTorch nn.Linear layout), symmetric: w[n,k] ≈ code[n,k] · scales[n, k / groupSize].
 * - i8: `codes` is an Int8Array [N*K], row-major; any int8 value (the RTN quantizer gives [-127, 127]).
 * - i4: `codes` is a Uint8Array [N * ceil(K/2)]: row n starts at byte n·ceil(K/2); element k is the low nibble of
 *   byte k/2 when k is even, the high nibble when odd, as a two's-complement nibble in [-8, 7] (RTN gives [-7, 7]).
 * - `groupSize` divides K; groupSize === K means one scale per output channel. `scales` is [N, K/groupSize].
 * Not a Tensor: packed int4 cannot keep Tensor's data.length === size. Backends may cache a repacked copy (the
 * native backend packs it into its kernel layout on first use); never mutate codes or scales after the first use.
 */
export interface QuantizedWeight {
  readonly kind: 'quantized';
  readonly format: IntFormatName;
  readonly shape: readonly [number, number];
  readonly groupSize: number;
  readonly codes: Int8Array | Uint8Array;
  readonly scales: Float32Array;
}

export type FloatWeight = Tensor<'f32'> | Tensor<'bf16'> | Tensor<'f16'>;

export function isQuantizedWeight(w: unknown): w is QuantizedWeight {
  return typeof w === 'object' && w !== null && (w as { kind?: unknown }).kind === 'quantized';
}

/** Round half to even (the rounding of every quantizer here; IEEE's default, torch.round's). */
export function roundHalfEven(v: number): number {
  const r = Math.round(v); // rounds halves up
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function checkGroup(K: number, groupSize: number): void {
  if (!Number.isInteger(groupSize) || groupSize <= 0 || K % groupSize !== 0) {
    throw new UserError(`group size ${groupSize} does not divide the weight's input width ${K}`);
  }
}

/** Build a QuantizedWeight from its parts, checking every length (a mis-shaped scale is a user-visible error). */
export function makeQuantizedWeight(
  format: IntFormatName,
  shape: readonly [number, number],
  groupSize: number,
  codes: Int8Array | Uint8Array,
  scales: Float32Array,
): QuantizedWeight {
  const [N, K] = shape;
  checkGroup(K, groupSize);
  const expectedCodes = N * WEIGHT_FORMATS[format].bytesPerRow(K);
  if (format === 'i8' && !(codes instanceof Int8Array)) throw new UserError('i8 weight codes must be an Int8Array');
  if (format === 'i4' && !(codes instanceof Uint8Array)) throw new UserError('i4 weight codes must be a Uint8Array');
  if (codes.length !== expectedCodes) {
    throw new UserError(`${format} weight [${N},${K}] needs ${expectedCodes} code bytes, got ${codes.length}`);
  }
  if (scales.length !== (N * K) / groupSize) {
    throw new UserError(`${format} weight [${N},${K}] with group size ${groupSize} needs ${(N * K) / groupSize} scales, got ${scales.length}`);
  }
  return { kind: 'quantized', format, shape: [N, K], groupSize, codes, scales };
}

/** code of element (n, k), as a signed integer */
export function codeAt(w: QuantizedWeight, n: number, k: number): number {
  const K = w.shape[1];
  if (w.format === 'i8') return (w.codes as Int8Array)[n * K + k];
  const byte = w.codes[n * Math.ceil(K / 2) + (k >> 1)];
  const nibble = k & 1 ? byte >> 4 : byte & 15;
  return nibble >= 8 ? nibble - 16 : nibble;
}

/** scale of element (n, k) */
export function scaleAt(w: QuantizedWeight, n: number, k: number): number {
  const groups = w.shape[1] / w.groupSize;
  return w.scales[n * groups + Math.floor(k / w.groupSize)];
}

/**
 * Reference round-to-nearest quantizer (RTN). For each row n and group g of `groupSize` columns:
 *   amax = max |w[n,k]| over the group (f32);  scale = f32(amax / qmax);
 *   code = clamp(roundHalfEven(f32(w / scale)), -qmax, qmax), or 0 when scale is 0.
 * w [N,K] (f32/bf16/f16, or a Float32Array with an explicit shape) -> QuantizedWeight
 */
export function quantizeWeight(w: FloatWeight, format: IntFormatName, groupSize?: number): QuantizedWeight {
  if (w.shape.length !== 2) throw new UserError(`only 2-D weights can be quantized, got [${w.shape.join(',')}]`);
  const [N, K] = w.shape as [number, number];
  const group = groupSize ?? K;
  checkGroup(K, group);
  const { qmax } = WEIGHT_FORMATS[format];
  const groups = K / group;
  const scales = new Float32Array(N * groups);
  const rowBytes = WEIGHT_FORMATS[format].bytesPerRow(K);
  const codes = format === 'i8' ? new Int8Array(N * K) : new Uint8Array(N * rowBytes);
  const data = w.data as AnyTypedArray;
  const values = new Float32Array(K);
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) values[k] = floatAt(w.dtype, data, n * K + k);
    for (let g = 0; g < groups; g++) {
      let amax = 0;
      for (let k = g * group; k < (g + 1) * group; k++) amax = Math.max(amax, Math.abs(values[k]));
      const scale = Math.fround(amax / qmax);
      scales[n * groups + g] = scale;
      for (let k = g * group; k < (g + 1) * group; k++) {
        const q = scale === 0 ? 0 : Math.min(qmax, Math.max(-qmax, roundHalfEven(Math.fround(values[k] / scale))));
        if (format === 'i8') codes[n * K + k] = q;
        else codes[n * rowBytes + (k >> 1)] |= (q & 15) << (k & 1 ? 4 : 0);
      }
    }
  }
  return makeQuantizedWeight(format, [N, K], group, codes, scales);
}

/** Reference dequantizer: w[n,k] = f32(code · scale) -> Float32Array [N*K] (what W4A16/W8A16 multiply by). */
export function dequantizeWeight(w: QuantizedWeight): Float32Array {
  const [N, K] = w.shape;
  const out = new Float32Array(N * K);
  for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) out[n * K + k] = codeAt(w, n, k) * scaleAt(w, n, k);
  return out;
}

/** Bytes the weight occupies (codes + scales): what a quantized checkpoint stores for it. */
export function quantizedWeightBytes(w: QuantizedWeight): number {
  return w.codes.byteLength + w.scales.byteLength;
}

/** The format of a float tensor weight (throws for dtypes that are not weight formats). */
export function floatFormat(dtype: string): WeightFormat {
  if (dtype !== 'f32' && dtype !== 'bf16' && dtype !== 'f16') throw new Error(`weights must be f32, bf16 or f16, got ${dtype}`);
  return WEIGHT_FORMATS[dtype];
}
