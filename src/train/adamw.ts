// AdamW with decoupled weight decay, as torch.optim.AdamW computes it (one step per call):
//   p ← p·(1 - lr·wd);  m ← β1·m + (1-β1)·g;  v ← β2·v + (1-β2)·g²;
//   p ← p - lr/(1-β1ᵗ) · m / (√v/√(1-β2ᵗ) + eps)
// Parameters are float32 master weights updated in place; the moments are float32 as torch keeps them.
import type { Gradients } from './gradients.js';
import type { ParamStore } from './params.js';

export interface AdamWOptions {
  lr: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
  /** parameters that get no weight decay (default: none, as torch.optim.AdamW over one parameter group) */
  noDecay?: (name: string) => boolean;
}

/** The optimizer state, by parameter name: what a resumable checkpoint must save. */
export interface AdamWState {
  step: number;
  m: Map<string, Float32Array>;
  v: Map<string, Float32Array>;
}

export class AdamW {
  readonly betas: [number, number];
  readonly eps: number;
  readonly weightDecay: number;
  lr: number;
  state: AdamWState = { step: 0, m: new Map(), v: new Map() };

  constructor(readonly options: AdamWOptions) {
    this.lr = options.lr;
    this.betas = options.betas ?? [0.9, 0.999];
    this.eps = options.eps ?? 1e-8;
    this.weightDecay = options.weightDecay ?? 0.01;
  }

  /** One step over every parameter that has a gradient (the others are untouched); `lr` overrides this.lr. */
  step(params: ParamStore, grads: Gradients, lr = this.lr): void {
    const [beta1, beta2] = this.betas;
    const t = ++this.state.step;
    const biasCorrection1 = 1 - beta1 ** t;
    const biasCorrection2Sqrt = Math.sqrt(1 - beta2 ** t);
    const stepSize = lr / biasCorrection1;
    for (const [name, g] of grads.entries()) {
      const p = params.get(name).data;
      if (p.length !== g.length) throw new Error(`AdamW: gradient of ${name} has ${g.length} elements, parameter ${p.length}`);
      let m = this.state.m.get(name);
      let v = this.state.v.get(name);
      if (!m || !v) {
        m = new Float32Array(p.length);
        v = new Float32Array(p.length);
        this.state.m.set(name, m);
        this.state.v.set(name, v);
      }
      const decay = this.options.noDecay?.(name) ? 1 : 1 - lr * this.weightDecay;
      for (let i = 0; i < p.length; i++) {
        m[i] = beta1 * m[i] + (1 - beta1) * g[i];
        v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i];
        p[i] = p[i] * decay - (stepSize * m[i]) / (Math.sqrt(v[i]) / biasCorrection2Sqrt + this.eps);
      }
    }
  }
}
