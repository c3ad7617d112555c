// Hadamard rotations for any width.
//
// Which matrix: for a width n we use the block-diagonal matrix I_(n/b) ⊗ H_b, where b is the largest power of two
// that divides n and H_b is the Sylvester (Walsh–Hadamard) matrix of order b scaled by 1/√b, so it is orthogonal
// and symmetric. Powers of two (Llama hidden 4096, head dim 64/128) get one full Hadamard; Llama-2's 11008 =
// 2^8·43 gets 43 blocks of 256; head dims 24 = 8·3, 40 = 8·5, 80 = 16·5 get blocks of 8, 8, 16. A block
// Hadamard spreads an outlier over b channels rather than n (QuaRot uses H_172 ⊗ H_64 for 11008), which is enough
// for 256-wide blocks and keeps one transform, the fast Walsh–Hadamard transform, for every width.
//
// The residual stream is rotated by a *randomized* Hadamard Q = diag(s)·H with seeded random signs s (QuaRot):
// x·Q = (x ⊙ s)·H and x·Qᵀ = (x·H) ⊙ s (H is symmetric).
//
// This file holds the float64 offline transforms (weights are rotated once, at load) and the explicit matrices the
// tests compare against; online transforms in the forward pass go through Backend.fwht.
import { mulberry32 } from '../random.js';

/** Largest power of two dividing `width` (the block order of its Hadamard). */
export function hadamardBlockSize(width: number): number {
  if (!Number.isInteger(width) || width < 1) throw new Error(`hadamard: width must be a positive integer, got ${width}`);
  return width & -width;
}

/**
 * In place, every length-`width` row of `data` -> row·H (block-diagonal normalized Walsh–Hadamard).
 * data [rows, width] (float64 for offline weight math, or float32).
 */
export function hadamardRows(data: Float64Array | Float32Array, width: number): void {
  const block = hadamardBlockSize(width);
  const norm = 1 / Math.sqrt(block);
  for (let start = 0; start < data.length; start += block) {
    for (let half = 1; half < block; half *= 2) {
      for (let i = start; i < start + block; i += 2 * half) {
        for (let j = i; j < i + half; j++) {
          const a = data[j];
          const b = data[j + half];
          data[j] = a + b;
          data[j + half] = a - b;
        }
      }
    }
    for (let i = start; i < start + block; i++) data[i] *= norm;
  }
}

/** The explicit n×n matrix I ⊗ H_b (normalized), row-major: for tests and documentation. */
export function hadamardMatrix(width: number): Float64Array {
  const block = hadamardBlockSize(width);
  const out = new Float64Array(width * width);
  const norm = 1 / Math.sqrt(block);
  for (let r = 0; r < width; r++) {
    for (let c = 0; c < width; c++) {
      if (Math.floor(r / block) !== Math.floor(c / block)) continue;
      // Sylvester: H[i][j] = (-1)^popcount(i & j)
      out[r * width + c] = (popcount((r % block) & (c % block)) % 2 === 0 ? 1 : -1) * norm;
    }
  }
  return out;
}

function popcount(v: number): number {
  let n = 0;
  for (let x = v; x; x &= x - 1) n++;
  return n;
}

/** Seeded random signs (±1) of a randomized Hadamard Q = diag(signs)·H. */
export function randomSigns(width: number, seed: number): Float32Array {
  const uniform = mulberry32(seed);
  return Float32Array.from({ length: width }, () => (uniform() < 0.5 ? -1 : 1));
}

/** A randomized Hadamard rotation Q = diag(signs)·H of one width. */
export interface RandomizedHadamard {
  width: number;
  /** [width] of ±1 */
  signs: Float32Array;
}

/** In place, rows of data [rows, width] -> row·Q = (row ⊙ s)·H */
export function rotateRows(data: Float64Array, q: RandomizedHadamard): void {
  for (let start = 0; start < data.length; start += q.width) {
    for (let j = 0; j < q.width; j++) data[start + j] *= q.signs[j];
  }
  hadamardRows(data, q.width);
}

/** In place, rows of data [rows, width] -> row·Qᵀ = (row·H) ⊙ s */
export function rotateRowsInverse(data: Float64Array, q: RandomizedHadamard): void {
  hadamardRows(data, q.width);
  for (let start = 0; start < data.length; start += q.width) {
    for (let j = 0; j < q.width; j++) data[start + j] *= q.signs[j];
  }
}
