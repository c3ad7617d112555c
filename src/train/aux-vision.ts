// Auxiliary vision targets: a linear readout from the two ViTs' patch features to the scene's privileged state (the
// end effector's position and opening, every object's and fixture's position), trained by mean squared error.
//
// Why: OpenVLA never trains its vision backbones from nothing; it starts from DINOv2 and SigLIP, which already
// know where things are. Trained from scratch on the 8 action targets alone, our mini ViTs get a weak, noisy
// signal (a 256-way cross-entropy on actions, two of whose dimensions are unpredictable corrections) and every
// action-only run answered one constant action after 10-28 k samples (docs/training.md). A dense regression of
// where the gripper and the objects are is the cheapest stand-in for that pretraining: it needs nothing a
// recording does not already hold (`sim record` writes the positions as privileged ground truth), it costs one
// small GEMM on top of the ViTs, and the head is dropped from the checkpoint, which keeps the OpenVLA layout.
// `train --vision-steps N` trains the ViTs on it alone for the first N steps; `--aux-weight W` keeps it beside the
// behaviour-cloning loss afterwards (so the action loss's early noise does not wash the features out).
//
// Head: y = W·flatten(features) + b (`grid`, W [K, P·C]) or y = W·mean(features) + b (`mean`, W [K, C]), features
// [P, C] per image (P patches, C = both ViTs' widths); see AuxPool for what each asks of the features. Targets are standardized per dimension over the training recording.
import { UserError } from '../errors.js';
import { mulberry32, standardNormal } from '../random.js';
import type { Backend } from '../tensor/backend.js';
import type { GradBackend } from '../tensor/grad-backend.js';
import { Tensor } from '../tensor/tensor.js';
import { allocF32 } from '../tensor/arena.js';
import type { Gradients } from './gradients.js';
import type { ParamStore } from './params.js';

export const AUX_PREFIX = 'aux_vision_head.';
export const AUX_WEIGHT = `${AUX_PREFIX}weight`;
export const AUX_BIAS = `${AUX_PREFIX}bias`;

/** What the head predicts: one name per target dimension, with the standardization. */
export interface AuxSpec {
  /** e.g. 'ee.x', 'gripper_opening', 'red_cube.z', 'plate.y' */
  names: string[];
  mean: number[];
  std: number[];
}

/** The privileged state of one episode as a recording stores it. */
export interface AuxEpisode {
  /** [T, 7]: ee xyz, ee rpy, gripper opening */
  proprio: number[][];
  objectPositions?: Record<string, number[][]>;
  fixturePositions?: Record<string, number[]>;
}

/** Target names of one episode: the end effector, then its objects' and fixtures' coordinates. */
function episodeNames(e: AuxEpisode): string[] {
  const names = ['ee.x', 'ee.y', 'ee.z', 'gripper_opening'];
  for (const o of Object.keys(e.objectPositions ?? {}).sort()) names.push(`${o}.x`, `${o}.y`, `${o}.z`);
  for (const f of Object.keys(e.fixturePositions ?? {}).sort()) names.push(`${f}.x`, `${f}.y`);
  return names;
}

/** Raw (unstandardized) values of one step; NaN where the episode lacks the target. */
export function rawTargets(e: AuxEpisode, step: number, names: string[]): Float64Array {
  const out = new Float64Array(names.length).fill(NaN);
  const p = e.proprio[step];
  names.forEach((name, k) => {
    const dot = name.lastIndexOf('.');
    const [thing, axis] = dot < 0 ? [name, ''] : [name.slice(0, dot), name.slice(dot + 1)];
    const a = 'xyz'.indexOf(axis);
    if (name === 'gripper_opening') out[k] = p[6];
    else if (thing === 'ee') out[k] = p[a];
    else if (e.objectPositions?.[thing]) out[k] = e.objectPositions[thing][step][a];
    else if (e.fixturePositions?.[thing]) out[k] = e.fixturePositions[thing][a];
  });
  return out;
}

/** The spec over a recording's episodes (every step of each); throws when the recording has no object positions. */
export function buildAuxSpec(episodes: AuxEpisode[]): AuxSpec {
  if (!episodes.some((e) => e.objectPositions)) {
    throw new UserError('the recording has no object positions (recorded before they were written); record it again with `sim record` to train with auxiliary vision targets');
  }
  const names = [...new Set(episodes.flatMap(episodeNames))].sort((a, b) => order(a) - order(b) || (a < b ? -1 : 1));
  const sum = new Float64Array(names.length);
  const sq = new Float64Array(names.length);
  const count = new Float64Array(names.length);
  for (const e of episodes) {
    for (let t = 0; t < e.proprio.length; t++) {
      const v = rawTargets(e, t, names);
      v.forEach((x, k) => {
        if (Number.isNaN(x)) return;
        sum[k] += x;
        sq[k] += x * x;
        count[k]++;
      });
    }
  }
  const mean = names.map((_, k) => sum[k] / Math.max(1, count[k]));
  const std = names.map((_, k) => Math.max(1e-3, Math.sqrt(Math.max(0, sq[k] / Math.max(1, count[k]) - mean[k] ** 2))));
  return { names, mean, std };
}

/** end effector first, then the rest by name */
function order(name: string): number {
  return name.startsWith('ee.') || name === 'gripper_opening' ? 0 : 1;
}

/** Standardized targets [K] and mask [K] (1 where the step has the target) of one step. */
export function auxTargets(spec: AuxSpec, e: AuxEpisode, step: number): { values: Float32Array; mask: Float32Array } {
  const raw = rawTargets(e, step, spec.names);
  const values = new Float32Array(raw.length);
  const mask = new Float32Array(raw.length);
  raw.forEach((x, k) => {
    if (Number.isNaN(x)) return;
    values[k] = (x - spec.mean[k]) / spec.std[k];
    mask[k] = 1;
  });
  return { values, mask };
}

/** Adds a freshly initialized head `prefix`{weight [K, inputs], bias [K]} to `params` (seeded; output std ≈ 0.3). */
export function addAuxHead(params: ParamStore, targets: number, inputs: number, seed: number, prefix = AUX_PREFIX): void {
  let h = 0; // the vision head keeps the seed it always had; other heads draw their own
  if (prefix !== AUX_PREFIX) for (const c of prefix) h = (Math.imul(h, 31) + c.charCodeAt(0)) >>> 0;
  const rng = mulberry32((seed ^ 0x5eed_a11c ^ h) >>> 0);
  const w = Tensor.zeros([targets, inputs]);
  const std = 0.3 / Math.sqrt(inputs);
  for (let i = 0; i < w.size; i++) w.data[i] = std * standardNormal(rng);
  params.tensors.set(`${prefix}weight`, w);
  params.tensors.set(`${prefix}bias`, Tensor.zeros([targets]));
}

/**
 * A linear readout's mean-squared-error loss and its gradient: x [N, inputs] (rows), head `prefix`{weight [K, inputs],
 * bias [K]}, targets / mask [N·K] -> loss = weight · Σ mask·(y − t)² / Σ mask (mse: the same without the weight),
 * dX [N, inputs]; the head's gradients go into `grads`.
 */
export function readoutLoss(
  bk: Backend,
  gk: GradBackend,
  params: ParamStore,
  prefix: string,
  x: Tensor<'f32'>,
  targets: Float32Array,
  mask: Float32Array,
  weight: number,
  grads: Gradients,
): { loss: number; mse: number; dX: Tensor<'f32'> } {
  const w = params.get(`${prefix}weight`);
  const [k, inputs] = w.shape;
  const rows = x.shape[0];
  if (x.shape[1] !== inputs) throw new Error(`${prefix} head reads ${inputs} inputs per row, got ${x.shape[1]}`);
  if (targets.length !== rows * k || mask.length !== rows * k) throw new Error(`${prefix} head: ${rows}·${k} targets expected, got ${targets.length}`);
  const y = bk.linear(x, w, params.get(`${prefix}bias`));
  let count = 0;
  for (let i = 0; i < mask.length; i++) count += mask[i];
  const scale = weight / Math.max(1, count);
  let loss = 0;
  const dy = allocF32(rows * k);
  for (let i = 0; i < dy.length; i++) {
    const e = (y.data[i] - targets[i]) * mask[i];
    loss += e * e;
    dy[i] = 2 * e * scale;
  }
  const g = gk.linearBackward(Tensor.f32([rows, k], dy), x, w, { dx: true, bias: true });
  grads.add(`${prefix}weight`, g.dw);
  grads.add(`${prefix}bias`, g.db!);
  return { loss: loss * scale, mse: loss / Math.max(1, count), dX: g.dx! };
}

/**
 * How the vision head reads an image's patch features [P, C]:
 * - `grid`: flattened, W [K, P·C]: a weight per patch and channel, so a position can be read as a weighted sum over
 *   the grid; the features only need to say what is in each patch;
 * - `mean`: averaged over the patches, W [K, C]: the features must themselves say where things are (content times
 *   position), in a form an average keeps. That is the form the decoder can use: at initialization its attention is
 *   close to uniform, so the prompt's last row receives about the average of the patches' values, and a state that
 *   is linear in the average is one linear map away from that row. With `grid` the ViTs learned the scene (readout
 *   MSE 0.13) and the decoder still could not read it (docs/training.md).
 */
export type AuxPool = 'grid' | 'mean';
export const AUX_POOLS: readonly AuxPool[] = ['grid', 'mean'];

/** The head's input width for P patches of C channels. */
export function auxInputs(pool: AuxPool, patches: number, channels: number): number {
  return pool === 'grid' ? patches * channels : channels;
}

/**
 * The auxiliary vision loss on a batch's patch features: features [B·P, C] (both ViTs concatenated per patch), read
 * as [B, P·C] (`grid`) or averaged to [B, C] (`mean`), targets / mask [B·K] -> as readoutLoss, with dFeatures [B·P, C].
 */
export function auxLoss(
  bk: Backend,
  gk: GradBackend,
  params: ParamStore,
  features: Tensor<'f32'>,
  images: number,
  targets: Float32Array,
  mask: Float32Array,
  weight: number,
  grads: Gradients,
  pool: AuxPool = 'grid',
): { loss: number; mse: number; dFeatures: Tensor<'f32'> } {
  const inputs = params.get(AUX_WEIGHT).shape[1];
  const [rows, channels] = features.shape;
  const patches = rows / images;
  if (auxInputs(pool, patches, channels) !== inputs) throw new Error(`aux head (${pool}) reads ${inputs} inputs per image, got ${patches} patches of ${channels}`);
  if (pool === 'grid') {
    const r = readoutLoss(bk, gk, params, AUX_PREFIX, Tensor.f32([images, inputs], features.data), targets, mask, weight, grads);
    return { loss: r.loss, mse: r.mse, dFeatures: Tensor.f32(features.shape, r.dX.data) };
  }
  const pooled = allocF32(images * channels);
  for (let b = 0; b < images; b++) {
    const out = pooled.subarray(b * channels, (b + 1) * channels);
    for (let p = 0; p < patches; p++) {
      const row = features.data.subarray((b * patches + p) * channels, (b * patches + p + 1) * channels);
      for (let c = 0; c < channels; c++) out[c] += row[c];
    }
    for (let c = 0; c < channels; c++) out[c] /= patches;
  }
  const r = readoutLoss(bk, gk, params, AUX_PREFIX, Tensor.f32([images, channels], pooled), targets, mask, weight, grads);
  const dFeatures = allocF32(features.size);
  for (let b = 0; b < images; b++) {
    const d = r.dX.data.subarray(b * channels, (b + 1) * channels);
    for (let p = 0; p < patches; p++) {
      const row = dFeatures.subarray((b * patches + p) * channels, (b * patches + p + 1) * channels);
      for (let c = 0; c < channels; c++) row[c] = d[c] / patches;
    }
  }
  return { loss: r.loss, mse: r.mse, dFeatures: Tensor.f32(features.shape, dFeatures) };
}
