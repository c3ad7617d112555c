// The trainable OpenVLA: float32 master parameters by Hugging Face name, and one behaviour-cloning step's forward
// and backward (both ViTs, the fused-GELU projector, the patches inserted after BOS, the Llama decoder, the
// cross-entropy on the target tokens). `trainingStep` is the whole API the training loop needs:
//
//   const model = TrainableOpenVla.load(dir, getBackend('native'), getGradBackend('native'));
//   const { loss, grads } = trainingStep(model, batch);   // grads: Gradients by parameter name
//   optimizer.step(model.params, grads);                   // AdamW (adamw.ts) updates model.params in place
import nodePath from 'node:path';
import fs from 'node:fs';
import type { Backend } from '../tensor/backend.js';
import type { GradBackend } from '../tensor/grad-backend.js';
import { Tensor } from '../tensor/tensor.js';
import { UserError } from '../errors.js';
import { Checkpoint } from '../io/checkpoint.js';
import { readJsonFile } from '../io/json.js';
import { loadLlama } from '../models/llama.js';
import { parseOpenVlaConfig, type OpenVlaConfig } from '../models/openvla.js';
import { loadVit } from '../models/vit.js';
import { checkpointSource, scoped, type TensorSource } from '../models/weights.js';
import { Gradients } from './gradients.js';
import { LlamaTrainer } from './llama-train.js';
import { ParamStore } from './params.js';
import type { Segment } from './segments.js';
import { softCrossEntropy, type SoftLabels } from './soft-labels.js';
import { VitTrainer } from './vit-train.js';
import { allocF32 } from '../tensor/arena.js';

const BACKBONE_PREFIXES = ['vision_backbone.featurizer.', 'vision_backbone.fused_featurizer.'];
const PROJECTOR_LAYERS = ['projector.fc1', 'projector.fc2', 'projector.fc3'];

/** One behaviour-cloning example. */
export interface TrainSample {
  /** pixel values [3·backbones, H, W] as the checkpoint's processor makes them (DINOv2 channels, then SigLIP's) */
  pixelValues: Float32Array;
  /** prompt ids then the target ids it is teacher-forced on, BOS first (the visual tokens go right after BOS) */
  inputIds: Int32Array;
  /**
   * labels of the sequence's last targets.length positions: OpenVLA's are the 7 action tokens and </s>, read from
   * the logits at the last prompt position .. the last action position
   */
  targets: Int32Array;
}

export class TrainableOpenVla {
  constructor(
    readonly config: OpenVlaConfig,
    readonly params: ParamStore,
    readonly vits: VitTrainer[],
    readonly llm: LlamaTrainer,
    readonly backend: Backend,
    readonly grad: GradBackend,
  ) {}

  /** f32 master copies of `source`'s tensors (HF OpenVLA names), sizes from shapes as OpenVla.load reads them */
  static fromSource(source: TensorSource, config: OpenVlaConfig, backend: Backend, grad: GradBackend): TrainableOpenVla {
    const params = ParamStore.fromSource(source);
    const view = params.asSource(source.description);
    const vits = config.timmModelIds.map((_, i) => {
      const prefix = BACKBONE_PREFIXES[i];
      return new VitTrainer(prefix, loadVit(scoped(view, prefix), config.vitHeads[i]).config, params);
    });
    const llm = new LlamaTrainer(loadLlama(scoped(view, 'language_model'), config.textConfig).config, params);
    return new TrainableOpenVla(config, params, vits, llm, backend, grad);
  }

  /** a checkpoint directory in the OpenVLA HF layout (config.json + safetensors) */
  static load(dir: string, backend: Backend, grad: GradBackend): TrainableOpenVla {
    if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new UserError(`model directory not found: ${dir}`);
    const configPath = nodePath.join(dir, 'config.json');
    const config = parseOpenVlaConfig(readJsonFile(configPath, 'model config'), configPath);
    const checkpoint = Checkpoint.open(dir);
    try {
      return TrainableOpenVla.fromSource(checkpointSource(checkpoint), config, backend, grad);
    } finally {
      checkpoint.close();
    }
  }

  /** names of the parameters a training step reads (and so gets gradients for); the others stay as loaded */
  usedParameters(): string[] {
    const names = this.vits.flatMap((v) => v.usedParameters());
    for (const layer of PROJECTOR_LAYERS) names.push(`${layer}.weight`, `${layer}.bias`);
    return [...names, ...this.llm.usedParameters()];
  }
}

/**
 * A loss on the ViTs' patch features [B·P, C] (both backbones concatenated per patch) besides the action loss, e.g.
 * the auxiliary state readout (aux-vision.ts): returns its value and its gradient with respect to the features.
 */
export type FeatureLoss = (features: Tensor<'f32'>, images: number) => { loss: number; dFeatures: Tensor<'f32'> };

/**
 * A loss on the decoder's final-norm output at the loss rows, normed [R, D] (each sample's targets.length rows, in
 * batch order), besides lm_head's: returns its value and its gradient dNormed [R, D] (aux-query.ts).
 */
export type RowLoss = (normed: Tensor<'f32'>) => { loss: number; dNormed: Tensor<'f32'> };

/** The ViTs' patch features [B·P, C] of a batch of pixel values, and what backward needs. */
export function visionForward(model: TrainableOpenVla, pixelValues: Float32Array[]) {
  const vitOut = model.vits.map((vit, k) => {
    const pixels = pixelValues.map((px) => {
      const plane = px.length / (3 * model.vits.length);
      return px.subarray(k * 3 * plane, (k + 1) * 3 * plane);
    });
    return vit.forward(model.backend, pixels);
  });
  const widths = vitOut.map((o) => o.features.shape[1]);
  return { vitOut, widths, features: concatColumns(vitOut.map((o) => o.features)) };
}

/**
 * A vision-only step: the ViTs' forward, `featureLoss` on their features, their backward (projector and decoder
 * untouched). pixelValues: B images as TrainSample.pixelValues.
 */
export function visionStep(model: TrainableOpenVla, pixelValues: Float32Array[], featureLoss: FeatureLoss, grads = new Gradients(model.grad)): { loss: number; grads: Gradients } {
  if (pixelValues.length === 0) throw new Error('visionStep: empty batch');
  const { vitOut, widths, features } = visionForward(model, pixelValues);
  const { loss, dFeatures } = featureLoss(features, pixelValues.length);
  const parts = splitColumns(dFeatures, widths);
  model.vits.forEach((vit, k) => vit.backward(model.grad, parts[k], vitOut[k].saved, grads));
  return { loss, grads };
}

/**
 * Forward and backward of one batch. The loss is the cross-entropy summed over every target of the batch, divided by
 * `divisor` (default: the batch's target count, i.e. the mean, as OpenVLA computes it). Gradients are added into
 * `options.grads` when given, so micro-batches of one step accumulate (pass the whole step's target count as the
 * divisor); activations are released as backward uses them. `logits` [targets, V] are the rows the loss read, in
 * batch order.
 */
export function trainingStep(
  model: TrainableOpenVla,
  batch: TrainSample[],
  options: { grads?: Gradients; divisor?: number; featureLoss?: FeatureLoss; rowLoss?: RowLoss; softLabels?: SoftLabels } = {},
): { loss: number; nll: number; featureLoss?: number; rowLoss?: number; grads: Gradients; targets: number; logits: Tensor<'f32'> } {
  if (batch.length === 0) throw new Error('trainingStep: empty batch');
  const bk = model.backend;
  const gk = model.grad;
  const grads = options.grads ?? new Gradients(gk);
  const hidden = model.llm.config.hidden;

  // vision: each backbone over its 3 channels of every image, features concatenated on the channel axis
  const { vitOut, widths, features } = visionForward(model, batch.map((s) => s.pixelValues));
  const extra = options.featureLoss?.(features, batch.length);
  const nPatches = features.shape[0] / batch.length;

  // projector fc1 -> gelu -> fc2 -> gelu -> fc3
  const p = (name: string) => model.params.get(name);
  const f1 = bk.linear(features, p('projector.fc1.weight'), p('projector.fc1.bias'));
  const g1 = bk.gelu(f1);
  const f2 = bk.linear(g1, p('projector.fc2.weight'), p('projector.fc2.bias'));
  const g2 = bk.gelu(f2);
  const projected = bk.linear(g2, p('projector.fc3.weight'), p('projector.fc3.bias'));

  // sequences [BOS, patches, ids 1..] packed, positions restarting per sequence, loss rows at each sequence's end
  const ids = Int32Array.from(batch.flatMap((s) => Array.from(s.inputIds)));
  const textEmbeds = model.llm.embed(bk, ids);
  const totalRows = ids.length + batch.length * nPatches;
  const embeds = allocF32(totalRows * hidden);
  const positions = new Int32Array(totalRows);
  const segments: Segment[] = [];
  const lossRows: number[] = [];
  const labels: number[] = [];
  let row = 0;
  let idRow = 0;
  batch.forEach((s, b) => {
    const length = s.inputIds.length + nPatches;
    if (s.inputIds.length < 1 || s.targets.length < 1 || s.targets.length > length) {
      throw new UserError(`training sample ${b}: ${s.inputIds.length} input ids cannot carry ${s.targets.length} targets`);
    }
    const textRow = (i: number) => textEmbeds.data.subarray((idRow + i) * hidden, (idRow + i + 1) * hidden);
    embeds.set(textRow(0), row * hidden);
    embeds.set(projected.data.subarray(b * nPatches * hidden, (b + 1) * nPatches * hidden), (row + 1) * hidden);
    for (let i = 1; i < s.inputIds.length; i++) embeds.set(textRow(i), (row + nPatches + i) * hidden);
    for (let t = 0; t < length; t++) positions[row + t] = t;
    segments.push({ start: row, length });
    for (let t = length - s.targets.length; t < length; t++) lossRows.push(row + t);
    labels.push(...s.targets);
    row += length;
    idRow += s.inputIds.length;
  });

  const { logits, saved } = model.llm.forward(bk, Tensor.f32([totalRows, hidden], embeds), segments, positions, Int32Array.from(lossRows));
  const divisor = options.divisor ?? labels.length;
  let loss: number;
  let nll: number;
  let dLogits: Tensor<'f32'>;
  if (options.softLabels && options.softLabels.sigma > 0) {
    const soft = softCrossEntropy(logits.data, logits.shape[1], Int32Array.from(labels), divisor, options.softLabels);
    ({ loss, nll } = soft);
    dLogits = Tensor.f32(logits.shape, soft.dLogits);
  } else {
    ({ loss, dLogits } = gk.crossEntropy(logits, Int32Array.from(labels), divisor));
    nll = loss;
  }
  const rows = options.rowLoss?.(saved.normed);
  const dEmbeds = model.llm.backward(gk, dLogits, saved, grads, rows?.dNormed);

  // split the sequence gradient back into token embeddings and projected patches
  const dText = allocF32(ids.length * hidden);
  const dProjected = allocF32(batch.length * nPatches * hidden);
  row = 0;
  idRow = 0;
  batch.forEach((s, b) => {
    dText.set(dEmbeds.data.subarray(row * hidden, (row + 1) * hidden), idRow * hidden);
    dProjected.set(dEmbeds.data.subarray((row + 1) * hidden, (row + 1 + nPatches) * hidden), b * nPatches * hidden);
    const rest = s.inputIds.length - 1;
    dText.set(dEmbeds.data.subarray((row + 1 + nPatches) * hidden, (row + 1 + nPatches + rest) * hidden), (idRow + 1) * hidden);
    row += s.inputIds.length + nPatches;
    idRow += s.inputIds.length;
  });
  model.llm.embedBackward(gk, Tensor.f32([ids.length, hidden], dText), ids, grads);

  const fc3 = gk.linearBackward(Tensor.f32(projected.shape, dProjected), g2, p('projector.fc3.weight'), { dx: true, bias: true });
  grads.add('projector.fc3.weight', fc3.dw);
  grads.add('projector.fc3.bias', fc3.db!);
  const fc2 = gk.linearBackward(gk.geluBackward(fc3.dx!, f2), g1, p('projector.fc2.weight'), { dx: true, bias: true });
  grads.add('projector.fc2.weight', fc2.dw);
  grads.add('projector.fc2.bias', fc2.db!);
  const fc1 = gk.linearBackward(gk.geluBackward(fc2.dx!, f1), features, p('projector.fc1.weight'), { dx: true, bias: true });
  grads.add('projector.fc1.weight', fc1.dw);
  grads.add('projector.fc1.bias', fc1.db!);

  const dAll = fc1.dx!;
  if (extra) for (let i = 0; i < dAll.size; i++) dAll.data[i] += extra.dFeatures.data[i];
  const dFeatures = splitColumns(dAll, widths);
  model.vits.forEach((vit, k) => vit.backward(gk, dFeatures[k], vitOut[k].saved, grads));
  return { loss, nll, ...(extra ? { featureLoss: extra.loss } : {}), ...(rows ? { rowLoss: rows.loss } : {}), grads, targets: labels.length, logits };
}

/** [N, Ai] parts -> [N, ΣAi] */
function concatColumns(parts: Tensor<'f32'>[]): Tensor<'f32'> {
  if (parts.length === 1) return parts[0];
  const rows = parts[0].shape[0];
  const total = parts.reduce((a, p) => a + p.shape[1], 0);
  const out = allocF32(rows * total);
  for (let r = 0; r < rows; r++) {
    let col = 0;
    for (const p of parts) {
      const w = p.shape[1];
      out.set(p.data.subarray(r * w, (r + 1) * w), r * total + col);
      col += w;
    }
  }
  return Tensor.f32([rows, total], out);
}

/** [N, ΣAi] -> [N, Ai] parts */
function splitColumns(x: Tensor<'f32'>, widths: number[]): Tensor<'f32'>[] {
  const rows = x.shape[0];
  const total = x.shape[1];
  let col = 0;
  return widths.map((w) => {
    const out = allocF32(rows * w);
    for (let r = 0; r < rows; r++) out.set(x.data.subarray(r * total + col, r * total + col + w), r * w);
    col += w;
    return Tensor.f32([rows, w], out);
  });
}
