// OpenVLA's "fused-gelu-mlp" projector: fc1 -> GELU -> fc2 -> GELU -> fc3, vision features to LLM width.
import type { Backend, LinearWeight, PrepackOptions, WeightTensor } from '../tensor/backend.js';
import { isFloatTensor } from '../tensor/formats.js';
import type { Tensor } from '../tensor/tensor.js';
import { UserError } from '../errors.js';
import { readWeight, type TensorSource } from './weights.js';

export class Projector {
  constructor(
    /** weight (as stored, or prepacked for inference), bias */
    readonly layers: [LinearWeight, WeightTensor][],
    readonly backend: Backend,
  ) {}

  static load(source: TensorSource, backend: Backend): Projector {
    if (!source.has('fc3.weight')) {
      throw new UserError(`${source.description}: only the fused GELU-MLP projector (fc1, fc2, fc3) is supported`);
    }
    const layers = ['fc1', 'fc2', 'fc3'].map((name): [WeightTensor, WeightTensor] => [
      readWeight(source, `${name}.weight`),
      readWeight(source, `${name}.bias`),
    ]);
    return new Projector(layers, backend);
  }

  /** The same projector with its weights prepacked (Backend.prepack; inference only, as VisionTransformer.prepacked). */
  prepacked(options?: PrepackOptions): Projector {
    return new Projector(this.layers.map(([w, b]) => [isFloatTensor(w) ? this.backend.prepack(w, options) : w, b]), this.backend);
  }

  get inputWidth(): number {
    return this.layers[0][0].shape[1];
  }

  get outputWidth(): number {
    return this.layers[2][0].shape[0];
  }

  /** patches [N, Dv] -> [N, D] */
  forward(patches: Tensor<'f32'>): Tensor<'f32'> {
    const bk = this.backend;
    let x = patches;
    this.layers.forEach(([w, b], i) => {
      x = bk.linear(x, w, b);
      if (i < this.layers.length - 1) x = bk.gelu(x);
    });
    return x;
  }
}
