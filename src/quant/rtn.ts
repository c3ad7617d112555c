// Round-to-nearest weight quantization: symmetric, per output channel or per group of `groupSize` input channels.
// scale = max|w| / qmax (qmax = 2^(bits-1) - 1: 7 for int4, 127 for int8), code = roundHalfEven(w / scale)
// clamped to [-qmax, qmax]; w ≈ code · scale. (docs/quantization.md, "weights".)
import { UserError } from '../errors.js';
import { makeQuantizedWeight, roundHalfEven, type QuantizedWeight } from '../tensor/formats.js';

export interface WeightQuantSpec {
  bits: 4 | 8;
  /** input channels per scale; 0 = one scale per output channel (the whole row) */
  groupSize: number;
}

/** Integer codes and scales of one weight matrix w [N,K]. */
export interface QuantizedCodes {
  rows: number;
  cols: number;
  bits: 4 | 8;
  groupSize: number;
  /** [N, K], each in [-qmax, qmax] */
  codes: Int8Array;
  /** [N, K / groupSize] (groupSize = K when per channel) */
  scales: Float32Array;
}

export function maxCode(bits: number): number {
  return 2 ** (bits - 1) - 1;
}


/** Group size actually used for K input channels (0 -> K); a group size that does not divide K is a user error. */
export function effectiveGroupSize(cols: number, groupSize: number, where = 'weight'): number {
  if (groupSize === 0) return cols;
  if (!Number.isInteger(groupSize) || groupSize < 1 || cols % groupSize !== 0) {
    throw new UserError(`${where}: group size ${groupSize} does not divide the ${cols} input channels (choose a divisor of ${cols}, or 0 for per-channel scales)`);
  }
  return groupSize;
}

/** Scale of one group of values: max|v| / qmax, as float32 (0 for an all-zero group). */
export function groupScale(values: ArrayLike<number>, start: number, end: number, bits: number): number {
  let max = 0;
  for (let i = start; i < end; i++) max = Math.max(max, Math.abs(Math.fround(values[i])));
  return Math.fround(max / maxCode(bits));
}

/** code of w under scale (0 when scale is 0); the division is rounded to f32 as in src/tensor/formats.ts */
export function quantizeValue(w: number, scale: number, qmax: number): number {
  if (scale === 0) return 0;
  const q = roundHalfEven(Math.fround(w / scale));
  return q > qmax ? qmax : q < -qmax ? -qmax : q;
}

/** Scales of w [N,K] for `spec` (one per row and group). */
export function weightScales(w: ArrayLike<number>, rows: number, cols: number, spec: WeightQuantSpec): Float32Array {
  const group = effectiveGroupSize(cols, spec.groupSize);
  const groups = cols / group;
  const scales = new Float32Array(rows * groups);
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < groups; g++) scales[r * groups + g] = groupScale(w, r * cols + g * group, r * cols + (g + 1) * group, spec.bits);
  }
  return scales;
}

/** RTN: w [N,K] -> codes and scales. */
export function quantizeRtn(w: ArrayLike<number>, rows: number, cols: number, spec: WeightQuantSpec): QuantizedCodes {
  const group = effectiveGroupSize(cols, spec.groupSize);
  const groups = cols / group;
  const scales = weightScales(w, rows, cols, spec);
  const qmax = maxCode(spec.bits);
  const codes = new Int8Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) codes[r * cols + c] = quantizeValue(w[r * cols + c], scales[r * groups + Math.floor(c / group)], qmax);
  }
  return { rows, cols, bits: spec.bits, groupSize: group, codes, scales };
}

/** codes · scales -> w [N,K] (float64, for error measurements and tests) */
export function dequantizeCodes(q: QuantizedCodes): Float64Array {
  const out = new Float64Array(q.rows * q.cols);
  const groups = q.cols / q.groupSize;
  for (let r = 0; r < q.rows; r++) {
    for (let c = 0; c < q.cols; c++) out[r * q.cols + c] = q.codes[r * q.cols + c] * q.scales[r * groups + Math.floor(c / q.groupSize)];
  }
  return out;
}

/**
 * codes and scales -> the QuantizedWeight type the backends multiply by (int4 nibble-packed, see formats.ts).
 * `owned`: q.scales is referenced nowhere else (the codes are always copied), so a backend may pack in place.
 */
export function toQuantizedWeight(q: QuantizedCodes, options: { owned?: boolean } = {}): QuantizedWeight {
  if (q.bits === 8) return makeQuantizedWeight('i8', [q.rows, q.cols], q.groupSize, Int8Array.from(q.codes), q.scales, options);
  const rowBytes = Math.ceil(q.cols / 2);
  const packed = new Uint8Array(q.rows * rowBytes);
  for (let r = 0; r < q.rows; r++) {
    for (let c = 0; c < q.cols; c++) packed[r * rowBytes + (c >> 1)] |= (q.codes[r * q.cols + c] & 15) << (c & 1 ? 4 : 0);
  }
  return makeQuantizedWeight('i4', [q.rows, q.cols], q.groupSize, packed, q.scales, options);
}
