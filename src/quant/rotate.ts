// QuaRot-style rotations of a Llama decoder, computed once at load in float64 and stored as float32.
//
// With x the residual stream and Q = diag(s)·H the seeded randomized Hadamard of the hidden width (hadamard.ts):
//   1. RMSNorm weights are folded into the linears that read the normalized stream (input_layernorm into q/k/v,
//      post_attention_layernorm into gate/up): W ← W·diag(g); the norms then carry weight 1.
//   2. The decoder runs on x·Q. Readers (q, k, v, gate, up): W ← W·Q. Writers (o, down): W ← Qᵀ·W. RMSNorm
//      commutes with Q (it only reads ‖x‖). The rotation is applied online at the decoder's input and undone
//      before the final norm (one FWHT per token each), so the embedding table, the projector and lm_head stay
//      exactly as stored (bf16 in a real checkpoint) and an OpenVLA prefix, which mixes token embeddings and
//      projected patches, needs no change.
//   3. Per-head rotation of V/O: v_proj's output per head ← ·H_dh (rows of W_v per head: H·W_v), o_proj's input
//      per head ← ·H_dh (W_o ← W_o·(I ⊗ H_dh)). Attention is linear in V, so the head outputs arrive rotated
//      and o_proj undoes it.
//   4. Online Hadamard before down_proj: u ← u·H_F (one block FWHT per token) and W_down ← W_down·H_F.
//   5. Q and K are rotated per head after RoPE, q ← q·H_dh, k ← k·H_dh (online): q·kᵀ is unchanged and the
//      quantized attention scores lose their outliers.
// In exact arithmetic the rotated decoder computes the base function; test/quant/rotate.test.ts checks it on
// every fixture.
import type { WeightTensor } from '../tensor/backend.js';
import { isQuantizedWeight, weightRowF32 } from '../tensor/formats.js';
import { Tensor } from '../tensor/tensor.js';
import { LLAMA_LINEARS, type LlamaConfig, type LlamaLayer, type LlamaLinearName } from '../models/llama.js';
import { hadamardRows, randomSigns, rotateRows, type RandomizedHadamard } from './hadamard.js';

/** Seed of the residual rotation's random signs unless a checkpoint records another. */
export const DEFAULT_ROTATION_SEED = 0x5eed;

/** What the forward pass needs to know of a rotated decoder (the online parts). */
export interface LlamaRotation {
  seed: number;
  /** Q = diag(signs)·H over the hidden width */
  residual: RandomizedHadamard;
}

export function makeRotation(hidden: number, seed = DEFAULT_ROTATION_SEED): LlamaRotation {
  return { seed, residual: { width: hidden, signs: randomSigns(hidden, seed) } };
}

/**
 * One linear of a layer, rotated (float32). `norm` is the RMSNorm weight that precedes it (input_layernorm for
 * q/k/v, post_attention_layernorm for gate/up; unused for o/down). Each linear is rotated on its own, so a
 * checkpoint can be rotated and quantized tensor by tensor at load.
 */
export function rotateLinear(site: LlamaLinearName, w: WeightTensor, headDim: number, rotation: LlamaRotation, norm?: WeightTensor): Tensor<'f32'> {
  const q = rotation.residual;
  const [rows, cols] = w.shape;
  if (site === 'o' || site === 'down') {
    // o: input per head ← ·H_dh; down: input ← ·H_F (F = cols); then the writer rotation Qᵀ·W on the output side.
    const data = weightF64(w, 0);
    hadamardRows(data, site === 'o' ? headDim : cols);
    return toF32(w.shape, transposeApply(data, rows, cols, (t) => rotateRows(t, q)));
  }
  if (!norm) throw new Error(`rotate: ${site} needs the RMSNorm weight that precedes it`);
  const data = weightF64(w, 0, norm.toF32());
  rotateRows(data, q);
  // v: output rows grouped per KV head; each column's per-head segment ← H_dh·segment, i.e. W ← (I ⊗ H_dh)·W.
  if (site === 'v') return toF32(w.shape, transposeApply(data, rows, cols, (t) => hadamardRows(t, headDim)));
  return toF32(w.shape, data);
}

/** A rotated layer: every linear as float32, norms all ones. The layer's linears must be float (not yet quantized). */
export function rotateLayer(floatLayer: LlamaLayer, config: LlamaConfig, rotation: LlamaRotation): LlamaLayer {
  const layer = floatLinears(floatLayer);
  const normOf = (site: LlamaLinearName) => (site === 'gate' || site === 'up' ? layer.postAttentionNorm : site === 'o' || site === 'down' ? undefined : layer.inputNorm);
  const ones = onesNorm(config.hidden);
  const rotated = Object.fromEntries(LLAMA_LINEARS.map((site) => [site, rotateLinear(site, layer[site], config.headDim, rotation, normOf(site))]));
  return { ...(rotated as Record<LlamaLinearName, Tensor<'f32'>>), inputNorm: ones, postAttentionNorm: ones };
}

/** The RMSNorm weight of a rotated decoder (folded into the linears). */
export function onesNorm(hidden: number): Tensor<'f32'> {
  return Tensor.f32([hidden], new Float32Array(hidden).fill(1));
}

/** The layer with its linears typed as float tensors (throws on a quantized one: rotate before quantizing). */
export function floatLinears(layer: LlamaLayer): Record<keyof LlamaLayer, WeightTensor> {
  for (const [name, w] of Object.entries(layer)) {
    if (isQuantizedWeight(w)) throw new Error(`rotate: ${name} is already quantized; rotations apply to float weights`);
  }
  return layer as Record<keyof LlamaLayer, WeightTensor>;
}

// Float64 working copies live in two reused buffers: a fresh 360 MB array per linear (down_proj at 7B widths) costs
// ~90k page faults, which dominated quantize-at-load. Loads are synchronous, so the buffers are dropped once control
// returns to the event loop, after the last linear: nothing stays resident for the model's lifetime.
let scratchBuffers: Float64Array[] = [];
let releaseScheduled = false;

function scratchF64(slot: 0 | 1, length: number): Float64Array {
  if (!scratchBuffers[slot] || scratchBuffers[slot].length < length) scratchBuffers[slot] = new Float64Array(length);
  if (!releaseScheduled) {
    releaseScheduled = true;
    setImmediate(() => {
      scratchBuffers = [];
      releaseScheduled = false;
    });
  }
  return scratchBuffers[slot].subarray(0, length);
}

/** w [N,K] (· diag(g) when given) as float64, in scratch buffer `slot`; converted a row at a time */
function weightF64(w: WeightTensor, slot: 0 | 1, g?: Float32Array): Float64Array {
  const [rows, cols] = w.shape;
  const out = scratchF64(slot, rows * cols);
  const row = new Float32Array(cols);
  for (let r = 0; r < rows; r++) {
    const values = weightRowF32(w, r, row);
    const start = r * cols;
    if (g) for (let c = 0; c < cols; c++) out[start + c] = values[c] * g[c];
    else for (let c = 0; c < cols; c++) out[start + c] = values[c];
  }
  return out;
}

/** Side of the tiles the transposes below walk (32 × 32 float64 = 8 KB each side, in L1). */
const TRANSPOSE_TILE = 32;

/** dst [cols, rows] = src [rows, cols]ᵀ, tile by tile (a plain double loop misses the cache on every write). */
function transposeInto(dst: Float64Array, src: Float64Array, rows: number, cols: number): void {
  for (let r0 = 0; r0 < rows; r0 += TRANSPOSE_TILE) {
    const r1 = Math.min(rows, r0 + TRANSPOSE_TILE);
    for (let c0 = 0; c0 < cols; c0 += TRANSPOSE_TILE) {
      const c1 = Math.min(cols, c0 + TRANSPOSE_TILE);
      for (let r = r0; r < r1; r++) for (let c = c0; c < c1; c++) dst[c * rows + r] = src[r * cols + c];
    }
  }
}

/** data [rows, cols]: transpose, apply `f` to the rows of the transpose (columns of data), transpose back into data. */
function transposeApply(data: Float64Array, rows: number, cols: number, f: (t: Float64Array) => void): Float64Array {
  const t = scratchF64(1, data.length);
  transposeInto(t, data, rows, cols);
  f(t);
  // back into `data`: one float64 copy of a 7B linear is 360 MB, and quantize-at-load transforms them one at a time
  transposeInto(data, t, cols, rows);
  return data;
}

function toF32(shape: readonly number[], data: Float64Array): Tensor<'f32'> {
  return Tensor.f32(shape, new Float32Array(data));
}
