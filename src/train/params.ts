// Trainable parameters: float32 master copies of every float tensor of a checkpoint, by Hugging Face name. AdamW
// updates them in place; model code reads them by name, so a checkpoint written from them has the layout it was
// loaded from.
import { UserError } from '../errors.js';
import type { TensorSource } from '../models/weights.js';
import { Tensor } from '../tensor/tensor.js';

export class ParamStore {
  constructor(readonly tensors: Map<string, Tensor<'f32'>>) {}

  /** f32 copies of every float tensor of `source` (bf16/f16 widened exactly); integer tensors are skipped */
  static fromSource(source: TensorSource): ParamStore {
    const tensors = new Map<string, Tensor<'f32'>>();
    for (const name of source.keys()) {
      const t = source.read(name);
      if (t.dtype !== 'f32' && t.dtype !== 'bf16' && t.dtype !== 'f16') continue;
      tensors.set(name, Tensor.f32(t.shape, Float32Array.from(t.toF32())));
    }
    return new ParamStore(tensors);
  }

  get(name: string): Tensor<'f32'> {
    const t = this.tensors.get(name);
    if (!t) throw new UserError(`the model has no parameter '${name}'`);
    return t;
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  /** the parameters as a TensorSource (the same tensors, not copies), for the model loaders and checkpoint writers */
  asSource(description = 'trainable parameters'): TensorSource {
    return {
      description,
      keys: () => [...this.tensors.keys()],
      has: (name) => this.tensors.has(name),
      read: (name) => this.get(name),
    };
  }
}
