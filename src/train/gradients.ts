// Parameter gradients of one training step, by Hugging Face tensor name, accumulated in float32. A parameter used
// twice (a tied lm_head, or micro-batches accumulated into one step) gets the sum. `kernels` is the backward backend
// that made them; the gradient norm and the optimizer update run on it.
import type { GradBackend } from '../tensor/grad-backend.js';
import { refGradBackend } from '../tensor/backends/ref-grad.js';
import { allocF32 } from '../tensor/arena.js';
import type { Tensor } from '../tensor/tensor.js';

export class Gradients {
  private readonly byName = new Map<string, Float32Array>();

  constructor(readonly kernels: GradBackend = refGradBackend) {}

  /** grads[name] += g (g is copied the first time, so the caller's tensor is never aliased; inside a training step's
   * arena the copy is the arena's, valid until the step ends) */
  add(name: string, g: Tensor<'f32'>): void {
    const current = this.byName.get(name);
    if (!current) {
      const copy = allocF32(g.size);
      copy.set(g.data);
      this.byName.set(name, copy);
      return;
    }
    if (current.length !== g.size) throw new Error(`gradient of ${name}: ${g.size} elements, expected ${current.length}`);
    for (let i = 0; i < current.length; i++) current[i] += g.data[i];
  }

  get(name: string): Float32Array | undefined {
    return this.byName.get(name);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  names(): string[] {
    return [...this.byName.keys()];
  }

  entries(): IterableIterator<[string, Float32Array]> {
    return this.byName.entries();
  }

  /** √(Σ g²) over every gradient (for clipping), in float64 */
  globalNorm(): number {
    let sum = 0;
    for (const g of this.byName.values()) sum += this.kernels.sumOfSquares(g);
    return Math.sqrt(sum);
  }

  /** every gradient *= factor (clipping) */
  scale(factor: number): void {
    for (const g of this.byName.values()) for (let i = 0; i < g.length; i++) g[i] *= factor;
  }
}
