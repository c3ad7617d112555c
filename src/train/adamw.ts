// AdamW with decoupled weight decay, as torch.optim.AdamW computes it, on f32 master weights (updated in place).
// Gradient clipping is Gradients.globalNorm + scale. Moments are f32 and allocated on a parameter's first gradient;
// `state` (step count, m, v by name) is what a resumable checkpoint saves, so a resumed run continues exactly. The
// update runs on the gradients' backward backend (native when they came from it); both give identical bits.
import type { Tensor } from '../tensor/tensor.js';
import type { Gradients } from './gradients.js';
import type { ParamStore } from './params.js';

export interface AdamWOptions {
  lr: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
  /** which parameters decay (default: all, as torch does for one param group) */
  decays?: (name: string, param: Tensor<'f32'>) => boolean;
}

export interface AdamWState {
  /** completed updates (the bias corrections use it) */
  step: number;
  m: Map<string, Float32Array>;
  v: Map<string, Float32Array>;
}

export class AdamW {
  readonly state: AdamWState = { step: 0, m: new Map(), v: new Map() };

  constructor(readonly options: AdamWOptions) {}

  /**
   * One update at rate `lr` (default options.lr): p ← p − lr·λ·p (decoupled decay), then p ← p − lr·m̂/(√v̂ + ε).
   * Parameters without a gradient (unused by the forward, as each ViT's last block is) are untouched, as in torch.
   */
  step(params: ParamStore, grads: Gradients, lr = this.options.lr): void {
    const [b1, b2] = this.options.betas ?? [0.9, 0.999];
    const eps = this.options.eps ?? 1e-8;
    const weightDecay = this.options.weightDecay ?? 0.01;
    const s = this.state;
    s.step++;
    const stepSize = lr / (1 - b1 ** s.step);
    const sqrtCorrection2 = Math.sqrt(1 - b2 ** s.step);
    for (const [name, g] of grads.entries()) {
      const p = params.get(name);
      if (g.length !== p.size) throw new Error(`AdamW: gradient of ${name} has ${g.length} values, parameter ${p.size}`);
      let m = s.m.get(name);
      let v = s.v.get(name);
      if (!m || !v) {
        m = new Float32Array(p.size);
        v = new Float32Array(p.size);
        s.m.set(name, m);
        s.v.set(name, v);
      }
      const decay = weightDecay > 0 && (this.options.decays?.(name, p) ?? true) ? 1 - lr * weightDecay : 1;
      grads.kernels.adamwUpdate(p.data, g, m, v, { beta1: b1, beta2: b2, eps, decay, stepSize, sqrtCorrection2 });
    }
  }
}
