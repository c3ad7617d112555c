// Training-mode forward and backward of the Llama decoder (teacher forcing, no KV cache): RMSNorm, q/k/v, RoPE,
// causal grouped-query attention, o_proj, SwiGLU MLP, final norm and lm_head, as src/models/llama.ts computes them.
// Sequences are packed into [N, D] rows with per-row positions; attention runs per sequence. Logits are computed
// only for the rows the loss reads. Backward releases each layer's activations as soon as it has used them.
import type { Backend } from '../tensor/backend.js';
import type { GradBackend } from '../tensor/grad-backend.js';
import { Tensor } from '../tensor/tensor.js';
import type { LlamaConfig } from '../models/llama.js';
import type { Gradients } from './gradients.js';
import type { ParamStore } from './params.js';
import { segmentedAttention, segmentedAttentionBackward, type Segment } from './segments.js';
import { addInPlace } from './vit-train.js';
import { allocF32 } from '../tensor/arena.js';

type T = Tensor<'f32'>;

interface LayerSaved {
  x: T; // layer input [N,D]
  h: T; // input_layernorm(x)
  q: T; // after RoPE [N,Hq,Dh]
  k: T; // after RoPE [N,Hkv,Dh]
  v: T; // [N,Hkv,Dh]
  attn: T; // attention output [N,Hq·Dh]
  x2: T; // after the attention residual
  m: T; // post_attention_layernorm(x2)
  gate: T; // [N,F]
  up: T; // [N,F]
  act: T; // silu(gate)·up
}

export interface LlamaSaved {
  segments: Segment[];
  positions: Int32Array;
  layers: (LayerSaved | undefined)[];
  rows: Int32Array; // the rows logits were computed for
  xRows: T; // final residual stream at those rows [R,D]
  normed: T; // model.norm(xRows)
  tokens: number;
}

const P = 'language_model.';

export class LlamaTrainer {
  /** lm_head's parameter: its own, or the embedding table when tied */
  readonly lmHeadName: string;

  constructor(
    readonly config: LlamaConfig,
    readonly params: ParamStore,
  ) {
    this.lmHeadName = params.has(`${P}lm_head.weight`) ? `${P}lm_head.weight` : `${P}model.embed_tokens.weight`;
  }

  private p(name: string): T {
    return this.params.get(P + name);
  }

  usedParameters(): string[] {
    const names = [`${P}model.embed_tokens.weight`, `${P}model.norm.weight`];
    for (let i = 0; i < this.config.layers; i++) {
      for (const n of ['input_layernorm', 'self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'post_attention_layernorm', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj']) {
        names.push(`${P}model.layers.${i}.${n}.weight`);
      }
    }
    if (!names.includes(this.lmHeadName)) names.push(this.lmHeadName);
    return names;
  }

  /** ids [T] -> [T,D] token embeddings */
  embed(bk: Backend, ids: Int32Array): T {
    return bk.embedding(this.p('model.embed_tokens.weight'), ids);
  }

  /** the gradient of embed(ids): dEmbeds [T,D] -> embed_tokens */
  embedBackward(gk: GradBackend, dEmbeds: T, ids: Int32Array, grads: Gradients): void {
    const table = this.p('model.embed_tokens.weight');
    grads.add(`${P}model.embed_tokens.weight`, gk.embeddingBackward(dEmbeds, ids, table.shape[0]));
  }

  /**
   * embeds [N,D] packed sequences (`segments`, with `positions` [N] per row) -> logits [R,V] at `rows` (R row indices
   * of the packed matrix) and what backward needs.
   */
  forward(bk: Backend, embeds: T, segments: Segment[], positions: Int32Array, rows: Int32Array): { logits: T; saved: LlamaSaved } {
    const { heads, kvHeads, headDim, rmsNormEps, ropeTheta, hidden } = this.config;
    const tokens = embeds.shape[0];
    let x = embeds;
    const layers: LayerSaved[] = [];
    for (let i = 0; i < this.config.layers; i++) {
      const l = `model.layers.${i}.`;
      const h = bk.rmsNorm(x, this.p(`${l}input_layernorm.weight`), rmsNormEps);
      const q = bk.rope(bk.linear(h, this.p(`${l}self_attn.q_proj.weight`)).reshape([tokens, heads, headDim]), positions, ropeTheta);
      const k = bk.rope(bk.linear(h, this.p(`${l}self_attn.k_proj.weight`)).reshape([tokens, kvHeads, headDim]), positions, ropeTheta);
      const v = bk.linear(h, this.p(`${l}self_attn.v_proj.weight`)).reshape([tokens, kvHeads, headDim]);
      const attn = segmentedAttention(bk, q, k, v, segments, true);
      const x2 = bk.add(x, bk.linear(attn, this.p(`${l}self_attn.o_proj.weight`)));
      const m = bk.rmsNorm(x2, this.p(`${l}post_attention_layernorm.weight`), rmsNormEps);
      const gate = bk.linear(m, this.p(`${l}mlp.gate_proj.weight`));
      const up = bk.linear(m, this.p(`${l}mlp.up_proj.weight`));
      const act = bk.siluMul(gate, up);
      layers.push({ x, h, q, k, v, attn, x2, m, gate, up, act });
      x = bk.add(x2, bk.linear(act, this.p(`${l}mlp.down_proj.weight`)));
    }
    const xRows = gatherRows(x, rows, hidden);
    const normed = bk.rmsNorm(xRows, this.p('model.norm.weight'), rmsNormEps);
    const logits = bk.linear(normed, this.params.get(this.lmHeadName));
    return { logits, saved: { segments, positions, layers, rows, xRows, normed, tokens } };
  }

  /**
   * dLogits [R,V] -> dEmbeds [N,D]; parameter gradients into `grads`; `saved` is consumed. `dNormed` [R,D], when given,
   * is a further gradient on the final-norm output at the loss rows (a readout besides lm_head, e.g. aux-query.ts).
   */
  backward(gk: GradBackend, dLogits: T, saved: LlamaSaved, grads: Gradients, dNormed?: T): T {
    const { rmsNormEps, ropeTheta, hidden } = this.config;
    const head = gk.linearBackward(dLogits, saved.normed, this.params.get(this.lmHeadName), { dx: true, bias: false });
    grads.add(this.lmHeadName, head.dw);
    if (dNormed) addInPlace(head.dx!, dNormed);
    const norm = gk.rmsNormBackward(head.dx!, saved.xRows, this.p('model.norm.weight'), rmsNormEps);
    grads.add(`${P}model.norm.weight`, norm.dWeight);
    let dx = Tensor.f32([saved.tokens, hidden], allocF32(saved.tokens * hidden));
    saved.rows.forEach((row, r) => {
      for (let d = 0; d < hidden; d++) dx.data[row * hidden + d] += norm.dx.data[r * hidden + d];
    });
    for (let i = saved.layers.length - 1; i >= 0; i--) {
      const s = saved.layers[i]!;
      saved.layers[i] = undefined;
      const l = `model.layers.${i}.`;
      const name = (n: string) => `${P}${l}${n}.weight`;
      // MLP: out = x2 + down(silu(gate(m))·up(m)), m = post_attention_layernorm(x2)
      const down = gk.linearBackward(dx, s.act, this.p(`${l}mlp.down_proj.weight`), { dx: true, bias: false });
      grads.add(name('mlp.down_proj'), down.dw);
      const { dGate, dUp } = gk.siluMulBackward(down.dx!, s.gate, s.up);
      const gate = gk.linearBackward(dGate, s.m, this.p(`${l}mlp.gate_proj.weight`), { dx: true, bias: false });
      grads.add(name('mlp.gate_proj'), gate.dw);
      const up = gk.linearBackward(dUp, s.m, this.p(`${l}mlp.up_proj.weight`), { dx: true, bias: false });
      grads.add(name('mlp.up_proj'), up.dw);
      const post = gk.rmsNormBackward(addInPlace(gate.dx!, up.dx!), s.x2, this.p(`${l}post_attention_layernorm.weight`), rmsNormEps);
      grads.add(name('post_attention_layernorm'), post.dWeight);
      const dX2 = addInPlace(post.dx, dx);
      // attention: x2 = x + o(attention(rope(q(h)), rope(k(h)), v(h))), h = input_layernorm(x)
      const o = gk.linearBackward(dX2, s.attn, this.p(`${l}self_attn.o_proj.weight`), { dx: true, bias: false });
      grads.add(name('self_attn.o_proj'), o.dw);
      const { dq, dk, dv } = segmentedAttentionBackward(gk, o.dx!, s.q, s.k, s.v, saved.segments, true);
      const dqPre = gk.ropeBackward(dq, saved.positions, ropeTheta);
      const dkPre = gk.ropeBackward(dk, saved.positions, ropeTheta);
      const rows = dq.shape[0];
      const qProj = gk.linearBackward(dqPre.reshape([rows, -1]), s.h, this.p(`${l}self_attn.q_proj.weight`), { dx: true, bias: false });
      grads.add(name('self_attn.q_proj'), qProj.dw);
      const kProj = gk.linearBackward(dkPre.reshape([rows, -1]), s.h, this.p(`${l}self_attn.k_proj.weight`), { dx: true, bias: false });
      grads.add(name('self_attn.k_proj'), kProj.dw);
      const vProj = gk.linearBackward(dv.reshape([rows, -1]), s.h, this.p(`${l}self_attn.v_proj.weight`), { dx: true, bias: false });
      grads.add(name('self_attn.v_proj'), vProj.dw);
      const dh = addInPlace(addInPlace(qProj.dx!, kProj.dx!), vProj.dx!);
      const input = gk.rmsNormBackward(dh, s.x, this.p(`${l}input_layernorm.weight`), rmsNormEps);
      grads.add(name('input_layernorm'), input.dWeight);
      dx = addInPlace(input.dx, dX2);
    }
    return dx;
  }
}

/** x [N,D] rows `rows` -> [R,D] (a copy) */
function gatherRows(x: T, rows: Int32Array, width: number): T {
  const out = allocF32(rows.length * width);
  rows.forEach((row, r) => out.set(x.data.subarray(row * width, (row + 1) * width), r * width));
  return Tensor.f32([rows.length, width], out);
}
