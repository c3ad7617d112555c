// Training-mode forward and backward of one timm ViT as OpenVLA uses it (DINOv2-reg4 with LayerScale and register
// tokens, or SigLIP): patch embedding, position embeddings, the first depth-1 pre-norm blocks, prefix tokens dropped
// (src/models/vit.ts penultimatePatches). A batch of B images is packed into [B·L, D] rows (L = prefix + patches);
// attention runs per image. The forward keeps what backward needs; backward releases each block's activations as
// soon as it has used them.
import type { Backend } from '../tensor/backend.js';
import type { GradBackend } from '../tensor/grad-backend.js';
import { Tensor } from '../tensor/tensor.js';
import { im2col, splitQkv, type VitConfig } from '../models/vit.js';
import type { Gradients } from './gradients.js';
import type { ParamStore } from './params.js';
import { mergeQkv, segmentedAttention, segmentedAttentionBackward, uniformSegments, type Segment } from './segments.js';
import { allocF32 } from '../tensor/arena.js';

/** timm's ViT LayerNorm eps (as src/models/vit.ts) */
const LAYER_NORM_EPS = 1e-6;

type T = Tensor<'f32'>;

interface BlockSaved {
  x: T; // block input [N,D]
  h: T; // norm1(x)
  q: T; // [N,H,Dh]
  k: T;
  v: T;
  attn: T; // attention output [N,D]
  a?: T; // proj output before LayerScale (only kept when ls1 exists)
  x2: T; // after the attention residual
  m: T; // norm2(x2)
  f1: T; // fc1 output (gelu input)
  g: T; // gelu(f1)
  f2?: T; // fc2 output before LayerScale (only when ls2 exists)
}

export interface VitSaved {
  images: number;
  patches: T; // im2col rows [B·nPatches, 3·P·P]
  segments: Segment[]; // one per image
  blocks: (BlockSaved | undefined)[];
}

export class VitTrainer {
  /** `prefix` names the ViT's parameters, e.g. 'vision_backbone.featurizer.' */
  constructor(
    readonly prefix: string,
    readonly config: VitConfig,
    readonly params: ParamStore,
  ) {}

  private p(name: string): T {
    return this.params.get(this.prefix + name);
  }

  private has(name: string): boolean {
    return this.params.has(this.prefix + name);
  }

  /** LayerScale parameter name (timm: ls1.gamma; OpenVLA's HF checkpoints: ls1.scale_factor), or undefined */
  private layerScale(block: number, which: 1 | 2): string | undefined {
    for (const suffix of ['scale_factor', 'gamma']) {
      const name = `blocks.${block}.ls${which}.${suffix}`;
      if (this.has(name)) return name;
    }
    return undefined;
  }

  get prefixTokens(): number {
    return (this.config.classToken ? 1 : 0) + this.config.registers;
  }

  get patchesPerImage(): number {
    return (this.config.imageSize / this.config.patchSize) ** 2;
  }

  /** Parameter names the training forward reads (the last block and the final norm are unused, as in OpenVLA). */
  usedParameters(): string[] {
    const names = ['patch_embed.proj.weight', 'patch_embed.proj.bias', 'pos_embed'];
    if (this.config.classToken) names.push('cls_token');
    if (this.config.registers) names.push('reg_token');
    for (let i = 0; i < this.config.depth - 1; i++) {
      for (const n of ['norm1', 'attn.qkv', 'attn.proj', 'norm2', 'mlp.fc1', 'mlp.fc2']) names.push(`blocks.${i}.${n}.weight`, `blocks.${i}.${n}.bias`);
      for (const which of [1, 2] as const) {
        const ls = this.layerScale(i, which);
        if (ls) names.push(ls);
      }
    }
    return names.map((n) => this.prefix + n);
  }

  /** pixels: B images [3, H, W] each -> patch features [B·nPatches, D] and what backward needs */
  forward(bk: Backend, pixels: Float32Array[]): { features: T; saved: VitSaved } {
    const { imageSize, patchSize, width, depth } = this.config;
    const images = pixels.length;
    const nPatches = this.patchesPerImage;
    const nPrefix = this.prefixTokens;
    const tokens = nPrefix + nPatches;
    const cols = 3 * patchSize * patchSize;
    const patches = allocF32(images * nPatches * cols);
    pixels.forEach((px, b) => {
      if (px.length !== 3 * imageSize * imageSize) throw new Error(`ViT expects 3x${imageSize}x${imageSize} pixels, got ${px.length} values`);
      patches.set(im2col(px, 3, imageSize, patchSize).data, b * nPatches * cols);
    });
    const patchRows = Tensor.f32([images * nPatches, cols], patches);
    const w = this.p('patch_embed.proj.weight');
    const embedded = bk.linear(patchRows, w.reshape([width, cols]), this.p('patch_embed.proj.bias'));
    const pos = this.p('pos_embed').data;
    const posOnPatches = pos.length === nPatches * width;
    const prefixRows = this.prefixRows();
    const x0 = allocF32(images * tokens * width);
    for (let b = 0; b < images; b++) {
      const base = b * tokens * width;
      x0.set(prefixRows, base);
      x0.set(embedded.data.subarray(b * nPatches * width, (b + 1) * nPatches * width), base + nPrefix * width);
      const posStart = posOnPatches ? base + nPrefix * width : base;
      for (let i = 0; i < pos.length; i++) x0[posStart + i] += pos[i];
    }
    const segments = uniformSegments(images, tokens);
    let x = Tensor.f32([images * tokens, width], x0);
    const blocks: BlockSaved[] = [];
    for (let i = 0; i < depth - 1; i++) {
      const { out, saved } = this.blockForward(bk, x, i, segments);
      blocks.push(saved);
      x = out;
    }
    const features = allocF32(images * nPatches * width);
    for (let b = 0; b < images; b++) features.set(x.data.subarray((b * tokens + nPrefix) * width, (b + 1) * tokens * width), b * nPatches * width);
    return { features: Tensor.f32([images * nPatches, width], features), saved: { images, patches: patchRows, segments, blocks } };
  }

  /** cls then register tokens [nPrefix·D] */
  private prefixRows(): Float32Array {
    const parts: Float32Array[] = [];
    if (this.config.classToken) parts.push(this.p('cls_token').data);
    if (this.config.registers) parts.push(this.p('reg_token').data);
    const out = allocF32(parts.reduce((a, p) => a + p.length, 0));
    let offset = 0;
    for (const p of parts) {
      out.set(p, offset);
      offset += p.length;
    }
    return out;
  }

  private blockForward(bk: Backend, x: T, i: number, segments: Segment[]): { out: T; saved: BlockSaved } {
    const { width, heads } = this.config;
    const b = `blocks.${i}.`;
    const rows = x.shape[0];
    const h = bk.layerNorm(x, this.p(`${b}norm1.weight`), this.p(`${b}norm1.bias`), LAYER_NORM_EPS);
    const [q, k, v] = splitQkv(bk.linear(h, this.p(`${b}attn.qkv.weight`), this.p(`${b}attn.qkv.bias`)), rows, heads, width / heads);
    const attn = segmentedAttention(bk, q, k, v, segments, false);
    const a = bk.linear(attn, this.p(`${b}attn.proj.weight`), this.p(`${b}attn.proj.bias`));
    const ls1 = this.layerScale(i, 1);
    const x2 = bk.add(x, ls1 ? bk.scaleChannels(a, this.p(ls1)) : a);
    const m = bk.layerNorm(x2, this.p(`${b}norm2.weight`), this.p(`${b}norm2.bias`), LAYER_NORM_EPS);
    const f1 = bk.linear(m, this.p(`${b}mlp.fc1.weight`), this.p(`${b}mlp.fc1.bias`));
    const g = bk.gelu(f1);
    const f2 = bk.linear(g, this.p(`${b}mlp.fc2.weight`), this.p(`${b}mlp.fc2.bias`));
    const ls2 = this.layerScale(i, 2);
    const out = bk.add(x2, ls2 ? bk.scaleChannels(f2, this.p(ls2)) : f2);
    return { out, saved: { x, h, q, k, v, attn, a: ls1 ? a : undefined, x2, m, f1, g, f2: ls2 ? f2 : undefined } };
  }

  /** dFeatures [B·nPatches, D] -> parameter gradients into `grads`; `saved` is consumed (its blocks released) */
  backward(gk: GradBackend, dFeatures: T, saved: VitSaved, grads: Gradients): void {
    const { width, patchSize } = this.config;
    const { images } = saved;
    const nPatches = this.patchesPerImage;
    const nPrefix = this.prefixTokens;
    const tokens = nPrefix + nPatches;
    const dx0 = allocF32(images * tokens * width);
    for (let b = 0; b < images; b++) dx0.set(dFeatures.data.subarray(b * nPatches * width, (b + 1) * nPatches * width), (b * tokens + nPrefix) * width);
    let dx = Tensor.f32([images * tokens, width], dx0);
    for (let i = saved.blocks.length - 1; i >= 0; i--) {
      const block = saved.blocks[i]!;
      saved.blocks[i] = undefined;
      dx = this.blockBackward(gk, dx, block, i, saved.segments, grads);
    }
    // position embeddings, prefix tokens, patch embedding
    const posSize = this.p('pos_embed').size;
    const posOnPatches = posSize === nPatches * width;
    const dPos = allocF32(posSize);
    const dPrefix = allocF32(nPrefix * width);
    const dEmbedded = allocF32(images * nPatches * width);
    for (let b = 0; b < images; b++) {
      const base = b * tokens * width;
      const posStart = posOnPatches ? base + nPrefix * width : base;
      for (let j = 0; j < posSize; j++) dPos[j] += dx.data[posStart + j];
      for (let j = 0; j < nPrefix * width; j++) dPrefix[j] += dx.data[base + j];
      dEmbedded.set(dx.data.subarray(base + nPrefix * width, base + tokens * width), b * nPatches * width);
    }
    grads.add(this.prefix + 'pos_embed', Tensor.f32(this.p('pos_embed').shape, dPos));
    let offset = 0;
    if (this.config.classToken) {
      grads.add(this.prefix + 'cls_token', Tensor.f32(this.p('cls_token').shape, dPrefix.slice(0, width)));
      offset = width;
    }
    if (this.config.registers) grads.add(this.prefix + 'reg_token', Tensor.f32(this.p('reg_token').shape, dPrefix.slice(offset)));
    const w = this.p('patch_embed.proj.weight');
    const cols = 3 * patchSize * patchSize;
    const pe = gk.linearBackward(Tensor.f32([images * nPatches, width], dEmbedded), saved.patches, w.reshape([width, cols]), { dx: false, bias: true });
    grads.add(this.prefix + 'patch_embed.proj.weight', pe.dw.reshape(w.shape));
    grads.add(this.prefix + 'patch_embed.proj.bias', pe.db!);
  }

  private blockBackward(gk: GradBackend, dOut: T, s: BlockSaved, i: number, segments: Segment[], grads: Gradients): T {
    const b = `blocks.${i}.`;
    const name = (n: string) => this.prefix + b + n;
    // MLP branch: out = x2 + ls2 · fc2(gelu(fc1(norm2(x2))))
    let dF2 = dOut;
    const ls2 = this.layerScale(i, 2);
    if (ls2) {
      const r = gk.scaleChannelsBackward(dOut, s.f2!, this.p(ls2));
      grads.add(this.prefix + ls2, r.dScale);
      dF2 = r.dx;
    }
    const fc2 = gk.linearBackward(dF2, s.g, this.p(`${b}mlp.fc2.weight`), { dx: true, bias: true });
    grads.add(name('mlp.fc2.weight'), fc2.dw);
    grads.add(name('mlp.fc2.bias'), fc2.db!);
    const dF1 = gk.geluBackward(fc2.dx!, s.f1);
    const fc1 = gk.linearBackward(dF1, s.m, this.p(`${b}mlp.fc1.weight`), { dx: true, bias: true });
    grads.add(name('mlp.fc1.weight'), fc1.dw);
    grads.add(name('mlp.fc1.bias'), fc1.db!);
    const n2 = gk.layerNormBackward(fc1.dx!, s.x2, this.p(`${b}norm2.weight`), LAYER_NORM_EPS);
    grads.add(name('norm2.weight'), n2.dWeight);
    grads.add(name('norm2.bias'), n2.dBias);
    const dX2 = addInPlace(n2.dx, dOut);
    // attention branch: x2 = x + ls1 · proj(attention(qkv(norm1(x))))
    let dA = dX2;
    const ls1 = this.layerScale(i, 1);
    if (ls1) {
      const r = gk.scaleChannelsBackward(dX2, s.a!, this.p(ls1));
      grads.add(this.prefix + ls1, r.dScale);
      dA = r.dx;
    }
    const proj = gk.linearBackward(dA, s.attn, this.p(`${b}attn.proj.weight`), { dx: true, bias: true });
    grads.add(name('attn.proj.weight'), proj.dw);
    grads.add(name('attn.proj.bias'), proj.db!);
    const { dq, dk, dv } = segmentedAttentionBackward(gk, proj.dx!, s.q, s.k, s.v, segments, false);
    const qkv = gk.linearBackward(mergeQkv(dq, dk, dv), s.h, this.p(`${b}attn.qkv.weight`), { dx: true, bias: true });
    grads.add(name('attn.qkv.weight'), qkv.dw);
    grads.add(name('attn.qkv.bias'), qkv.db!);
    const n1 = gk.layerNormBackward(qkv.dx!, s.x, this.p(`${b}norm1.weight`), LAYER_NORM_EPS);
    grads.add(name('norm1.weight'), n1.dWeight);
    grads.add(name('norm1.bias'), n1.dBias);
    return addInPlace(n1.dx, dX2);
  }
}

/** a += b for a fresh gradient tensor `a` the caller owns; returns a */
export function addInPlace(a: T, b: T): T {
  for (let i = 0; i < a.size; i++) a.data[i] += b.data[i];
  return a;
}
