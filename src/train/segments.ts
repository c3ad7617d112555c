// A training batch is packed: the token rows of every image (or sequence) are stacked into one matrix so each linear
// is one large GEMM, while attention stays within each segment (one image's tokens, one sequence's tokens).
import type { Backend } from '../tensor/backend.js';
import type { AttentionGrads, GradBackend } from '../tensor/grad-backend.js';
import { Tensor } from '../tensor/tensor.js';
import { allocF32 } from '../tensor/arena.js';

/** rows [start, start + length) of the packed matrix */
export interface Segment {
  start: number;
  length: number;
}

/** Equal segments of `length` rows each. */
export function uniformSegments(count: number, length: number): Segment[] {
  return Array.from({ length: count }, (_, i) => ({ start: i * length, length }));
}

/** q [N,Hq,Dh], k/v [N,Hkv,Dh] packed -> out [N,Hq*Dh], attention within each segment */
export function segmentedAttention(bk: Backend, q: Tensor<'f32'>, k: Tensor<'f32'>, v: Tensor<'f32'>, segments: Segment[], causal: boolean): Tensor<'f32'> {
  if (segments.length === 1) return bk.attention(q, k, v, { causal }).out;
  const width = q.shape[1] * q.shape[2];
  const out = allocF32(q.shape[0] * width);
  for (const { start, length } of segments) {
    const end = start + length;
    const part = bk.attention(q.rows(start, end), k.rows(start, end), v.rows(start, end), { causal }).out;
    out.set(part.data, start * width);
  }
  return Tensor.f32([q.shape[0], width], out);
}

/** dOut [N,Hq*Dh] and the packed q, k, v -> dq, dk, dv packed like them */
export function segmentedAttentionBackward(gk: GradBackend, dOut: Tensor<'f32'>, q: Tensor<'f32'>, k: Tensor<'f32'>, v: Tensor<'f32'>, segments: Segment[], causal: boolean): AttentionGrads {
  if (segments.length === 1) return gk.attentionBackward(dOut, q, k, v, { causal });
  const dq = Tensor.f32(q.shape, allocF32(q.size));
  const dk = Tensor.f32(k.shape, allocF32(k.size));
  const dv = Tensor.f32(v.shape, allocF32(v.size));
  const qRow = q.shape[1] * q.shape[2];
  const kRow = k.shape[1] * k.shape[2];
  for (const { start, length } of segments) {
    const end = start + length;
    const g = gk.attentionBackward(dOut.rows(start, end), q.rows(start, end), k.rows(start, end), v.rows(start, end), { causal });
    dq.data.set(g.dq.data, start * qRow);
    dk.data.set(g.dk.data, start * kRow);
    dv.data.set(g.dv.data, start * kRow);
  }
  return { dq, dk, dv };
}

/** dq, dk, dv [N,H,Dh] -> dqkv [N,3·H·Dh] in the fused qkv layout (3, heads, headDim) per row */
export function mergeQkv(dq: Tensor<'f32'>, dk: Tensor<'f32'>, dv: Tensor<'f32'>): Tensor<'f32'> {
  const rows = dq.shape[0];
  const width = dq.size / rows;
  const out = allocF32(rows * 3 * width);
  [dq, dk, dv].forEach((part, p) => {
    for (let t = 0; t < rows; t++) out.set(part.data.subarray(t * width, (t + 1) * width), t * 3 * width + p * width);
  });
  return Tensor.f32([rows, 3 * width], out);
}

/** Σ of tensors of one shape (fresh) */
export function sum(parts: Tensor<'f32'>[]): Tensor<'f32'> {
  const out = Float32Array.from(parts[0].data);
  for (const p of parts.slice(1)) for (let i = 0; i < out.length; i++) out[i] += p.data[i];
  return Tensor.f32(parts[0].shape, out);
}
