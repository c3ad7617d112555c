// Our linear variants on one (M, K, N) shape, for bench/gemm.ts and bench/peers/gemm.ts: each case prepares its
// operands once (weights quantized, packed by a warm-up call) and returns a function that runs one product the way
// the model runs it. Integer cases include the per-token activation quantization (as ORT's dynamic ops include
// theirs). Also the memory-bandwidth probe.
import type { Backend } from '../src/tensor/backend.js';
import { nativeStreamRead } from '../src/tensor/backends/native.js';
import { f32ToBf16 } from '../src/tensor/dtype.js';
import { quantizeWeight, quantizedWeightBytes, type QuantizedWeight } from '../src/tensor/formats.js';
import { Tensor } from '../src/tensor/tensor.js';

// f32-pre / bf16-pre: the same weights prepacked (Backend.prepack), as the model's vision towers and projector hold
// them at inference; the plain cases are what training and the decoder's float linears run. bf16-dot: bf16 weights
// prepacked for bf16 dot products with x rounded to bf16 (Backend.prepack bf16Activations, what the vision towers
// run by default on a CPU with AVX512-BF16; elsewhere it is bf16-pre).
export type CaseName = 'f32' | 'f32-pre' | 'bf16' | 'bf16-pre' | 'bf16-dot' | 'w8a8' | 'w4a8' | 'w4a8-g128' | 'w4a16';
export const CASES: readonly CaseName[] = ['f32', 'f32-pre', 'bf16', 'bf16-pre', 'bf16-dot', 'w8a8', 'w4a8', 'w4a8-g128', 'w4a16'];

export interface LinearCase {
  name: CaseName;
  /** bytes of weights (and scales) one call reads */
  weightBytes: number;
  run: () => void;
}

/** Deterministic weights in [-0.025, 0.025], f32 [N,K] */
export function benchWeights(n: number, k: number, seed: number): Float32Array {
  let state = seed >>> 0;
  const out = new Float32Array(n * k);
  for (let i = 0; i < out.length; i++) out[i] = ((state = (state * 1664525 + 1013904223) >>> 0) / 2 ** 32 - 0.5) * 0.05;
  return out;
}

export function benchActivations(m: number, k: number): Tensor<'f32'> {
  return Tensor.f32([m, k], Float32Array.from({ length: m * k }, (_, i) => Math.sin(i)));
}

/** One case; `w` is f32 [N,K] row-major. */
export function makeCase(backend: Backend, name: CaseName, x: Tensor<'f32'>, w: Float32Array, n: number, k: number): LinearCase {
  const wf = Tensor.f32([n, k], w);
  if (name === 'f32' || name === 'f32-pre') {
    const weight = name === 'f32' ? wf : backend.prepack(wf);
    return { name, weightBytes: 4 * n * k, run: () => backend.linear(x, weight) };
  }
  if (name === 'bf16' || name === 'bf16-pre' || name === 'bf16-dot') {
    const wb = new Tensor('bf16', [n, k], Uint16Array.from(w, (v) => f32ToBf16(v)));
    const weight = name === 'bf16' ? wb : backend.prepack(wb, { bf16Activations: name === 'bf16-dot' });
    return { name, weightBytes: 2 * n * k, run: () => backend.linear(x, weight) };
  }
  const q: QuantizedWeight =
    name === 'w8a8' ? quantizeWeight(wf, 'i8') : name === 'w4a8-g128' ? quantizeWeight(wf, 'i4', 128) : quantizeWeight(wf, 'i4');
  const weightBytes = quantizedWeightBytes(q);
  if (name === 'w4a16') return { name, weightBytes, run: () => backend.linear(x, q) };
  return { name, weightBytes, run: () => backend.linearInt(backend.quantizeActivations(x, { bits: 8 }), q) };
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/**
 * Runs every function `reps` times, interleaved (a, b, c, a, b, c, ...) after one warm-up each, so a shared
 * machine's load falls on all of them alike; returns each one's median seconds.
 */
export function timeInterleaved(fns: Array<() => void>, reps: number): number[] {
  for (const f of fns) f();
  const times = fns.map(() => [] as number[]);
  for (let r = 0; r < reps; r++) {
    fns.forEach((f, i) => {
      const start = performance.now();
      f();
      times[i].push((performance.now() - start) / 1e3);
    });
  }
  return times.map(median);
}

/** Memory bandwidth in bytes/s: the median of `reps` streaming reads of a buffer larger than the caches (256 MiB). */
export function measureBandwidth(reps = 5, bytes = 256 * 2 ** 20): number {
  const buffer = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i += 4096) buffer[i] = i & 255; // touch every page
  const [seconds] = timeInterleaved([() => nativeStreamRead(buffer)], reps);
  return bytes / seconds;
}
