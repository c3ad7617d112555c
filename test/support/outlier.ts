// A copy of a checkpoint with activation outliers, as real LLMs' "massive activations" produce them: a few channels
// of every post_attention_layernorm weight multiplied by ~25, so the MLP inputs carry a few channels far larger
// than the rest. (The input_layernorm is left alone: scaling q/k inputs of this random tiny model sharpens every
// attention softmax so much that all quantized variants, rotated or not, lose the argmax.)
import fs from 'node:fs';
import nodePath from 'node:path';
import { Checkpoint } from '../../src/io/checkpoint.js';
import { writeSafetensors } from '../../src/io/safetensors.js';
import { Tensor } from '../../src/tensor/tensor.js';

export const OUTLIER_CHANNELS = [5, 40];
export const OUTLIER_FACTOR = 25;

export function writeOutlierCheckpoint(fromDir: string, toDir: string, channels = OUTLIER_CHANNELS, factor = OUTLIER_FACTOR): void {
  fs.mkdirSync(toDir, { recursive: true });
  const checkpoint = Checkpoint.open(fromDir);
  const tensors: Record<string, Tensor> = {};
  for (const name of checkpoint.keys()) {
    const t = checkpoint.read(name);
    if (/post_attention_layernorm\.weight$/.test(name)) {
      const data = Float32Array.from(t.toF32());
      for (const c of channels) data[c] *= factor;
      tensors[name] = Tensor.f32(t.shape, data);
    } else {
      tensors[name] = t;
    }
  }
  checkpoint.close();
  writeSafetensors(nodePath.join(toDir, 'model.safetensors'), tensors, { format: 'pt' });
  for (const f of fs.readdirSync(fromDir)) if (f.endsWith('.json') && f !== 'expected.json') fs.copyFileSync(nodePath.join(fromDir, f), nodePath.join(toDir, f));
}
