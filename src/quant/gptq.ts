// GPTQ (Frantar et al. 2022): quantize a weight matrix column by column and push each column's rounding error
// onto the not-yet-quantized columns, weighted by the inverse Hessian of the layer's reconstruction loss
// ||X·Wᵀ - X·Ŵᵀ||², H = 2·XᵀX / n over the layer's calibration inputs X (in the rotated basis when `had` is on).
// Scales are fixed up front from the original weights (static groups), so act-order (columns by decreasing H_ii)
// never changes which scale a column uses, and the codes share the RTN layout (rtn.ts).
import { effectiveGroupSize, maxCode, quantizeValue, weightScales, type QuantizedCodes, type WeightQuantSpec } from './rtn.js';

/** Running XᵀX of one linear's inputs (float64). */
export class HessianAccumulator {
  readonly xtx: Float64Array;
  samples = 0;

  constructor(readonly cols: number) {
    this.xtx = new Float64Array(cols * cols);
  }

  /** x [M, K] rows added */
  add(x: Float32Array): void {
    const k = this.cols;
    const rows = x.length / k;
    for (let m = 0; m < rows; m++) {
      const base = m * k;
      for (let i = 0; i < k; i++) {
        const xi = x[base + i];
        if (xi === 0) continue;
        const row = i * k;
        for (let j = i; j < k; j++) this.xtx[row + j] += xi * x[base + j];
      }
    }
    this.samples += rows;
  }

  /** H = 2·XᵀX / n, symmetric [K, K] */
  hessian(): Float64Array {
    const k = this.cols;
    const h = new Float64Array(k * k);
    const factor = this.samples > 0 ? 2 / this.samples : 0;
    for (let i = 0; i < k; i++) {
      for (let j = i; j < k; j++) h[i * k + j] = h[j * k + i] = this.xtx[i * k + j] * factor;
    }
    return h;
  }
}

export interface GptqOptions {
  /** dampening added to the diagonal, as a fraction of its mean (GPTQ's percdamp); default 0.01 */
  damp?: number;
  /** quantize columns in order of decreasing Hessian diagonal; default false */
  actOrder?: boolean;
}

/** w [N,K] (row-major), H [K,K] -> codes and scales in the RTN layout. */
export function quantizeGptq(w: ArrayLike<number>, rows: number, cols: number, hessian: Float64Array, spec: WeightQuantSpec, options: GptqOptions = {}): QuantizedCodes {
  const k = cols;
  const group = effectiveGroupSize(cols, spec.groupSize);
  const groups = cols / group;
  const scales = weightScales(w, rows, cols, spec);
  const qmax = maxCode(spec.bits);
  const h = Float64Array.from(hessian);
  const work = Float64Array.from(w as ArrayLike<number>);
  // Dead inputs (never non-zero in calibration): any code works; GPTQ zeroes them and sets H_ii = 1.
  for (let i = 0; i < k; i++) {
    if (h[i * k + i] === 0) {
      h[i * k + i] = 1;
      for (let r = 0; r < rows; r++) work[r * k + i] = 0;
    }
  }
  const order = Array.from({ length: k }, (_, i) => i);
  if (options.actOrder) order.sort((a, b) => h[b * k + b] - h[a * k + a] || a - b);
  // Permute H into quantization order.
  const hp = new Float64Array(k * k);
  for (let i = 0; i < k; i++) for (let j = 0; j < k; j++) hp[i * k + j] = h[order[i] * k + order[j]];
  let meanDiag = 0;
  for (let i = 0; i < k; i++) meanDiag += hp[i * k + i];
  const damp = (options.damp ?? 0.01) * (meanDiag / k);
  for (let i = 0; i < k; i++) hp[i * k + i] += damp;
  const u = upperCholeskyOfInverse(hp, k);
  const codes = new Int8Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const row = new Float64Array(k);
    for (let i = 0; i < k; i++) row[i] = work[r * k + order[i]];
    for (let i = 0; i < k; i++) {
      const col = order[i];
      const scale = scales[r * groups + Math.floor(col / group)];
      const code = quantizeValue(row[i], scale, qmax);
      codes[r * k + col] = code;
      const err = (row[i] - code * scale) / u[i * k + i];
      if (err === 0) continue;
      for (let j = i + 1; j < k; j++) row[j] -= err * u[i * k + j];
    }
  }
  return { rows, cols, bits: spec.bits, groupSize: group, codes, scales };
}

/** Upper-triangular U with Uᵀ·U = A⁻¹ for symmetric positive definite A [k,k] (what GPTQ propagates errors with). */
export function upperCholeskyOfInverse(a: Float64Array, k: number): Float64Array {
  const inverse = invertSpd(a, k);
  // A⁻¹ = L·Lᵀ (lower Cholesky); U = Lᵀ satisfies Uᵀ·U = A⁻¹.
  const l = cholesky(inverse, k);
  const u = new Float64Array(k * k);
  for (let i = 0; i < k; i++) for (let j = i; j < k; j++) u[i * k + j] = l[j * k + i];
  return u;
}

/** Lower Cholesky factor L of SPD A (A = L·Lᵀ). */
export function cholesky(a: Float64Array, k: number): Float64Array {
  const l = new Float64Array(k * k);
  for (let i = 0; i < k; i++) {
    for (let j = 0; j <= i; j++) {
      let sum = a[i * k + j];
      for (let p = 0; p < j; p++) sum -= l[i * k + p] * l[j * k + p];
      if (i === j) {
        if (!(sum > 0)) throw new Error(`gptq: Hessian is not positive definite at column ${i} (increase dampening)`);
        l[i * k + i] = Math.sqrt(sum);
      } else {
        l[i * k + j] = sum / l[j * k + j];
      }
    }
  }
  return l;
}

/** A⁻¹ for SPD A via its Cholesky factor. */
export function invertSpd(a: Float64Array, k: number): Float64Array {
  const l = cholesky(a, k);
  // L⁻¹ (lower), then A⁻¹ = L⁻ᵀ·L⁻¹.
  const li = new Float64Array(k * k);
  for (let i = 0; i < k; i++) {
    li[i * k + i] = 1 / l[i * k + i];
    for (let j = 0; j < i; j++) {
      let sum = 0;
      for (let p = j; p < i; p++) sum -= l[i * k + p] * li[p * k + j];
      li[i * k + j] = sum / l[i * k + i];
    }
  }
  const out = new Float64Array(k * k);
  for (let i = 0; i < k; i++) {
    for (let j = 0; j <= i; j++) {
      let sum = 0;
      for (let p = i; p < k; p++) sum += li[p * k + i] * li[p * k + j];
      out[i * k + j] = out[j * k + i] = sum;
    }
  }
  return out;
}
