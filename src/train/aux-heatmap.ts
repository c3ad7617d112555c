// Auxiliary heatmap targets: for every entity of the scene (the end effector, the point on the table below it, each
// object, each fixture), a distribution over the patch grid saying which patches it lies in, read from the ViTs'
// per-patch features by one linear map and a softmax over the patches, trained by cross-entropy against a Gaussian
// around the entity's projected pixel (`train --heatmap-weight W`). Training-only (`aux_*`, dropped from the
// checkpoint).
//
// Why: the state readouts (aux-vision.ts) ask for world coordinates from a pooled or flattened image, a global
// regression the ViTs learned slowly (run 12-05 f: readout MSE 0.25-0.31 of the variance after 1,600 steps, 5-8 cm),
// while the experts' commands hinge on centimetres. A heatmap is local (is the red cube in this patch, and where in
// it): each patch gets its own dense target, which a patch embedding and a few attention blocks learn fast, and its
// softmax over the patches is the very operation the decoder's attention performs: a decoder row whose query
// matches the "red cube" direction of the keys attends to the cube's patches with these weights, and the values
// carry the position (the ViTs' sine-cosine position embeddings, in the residual stream). A Gaussian target spread
// over neighbouring patches puts the sub-patch position into the weights: the target's centroid is the pixel.
//
// Head: logits [P, E] = features [P, C] · Wᵀ + b per image (W [E, C]); q[:, e] = softmax over the P patches; loss =
// weight · mean over (image, present entity) of −Σ_p t[p, e] log q[p, e]. An entity outside the (cropped) image or
// absent from the scene is masked out.
import { mulberry32, standardNormal } from '../random.js';
import type { Backend } from '../tensor/backend.js';
import type { GradBackend } from '../tensor/grad-backend.js';
import { Tensor } from '../tensor/tensor.js';
import { allocF32 } from '../tensor/arena.js';
import { projectToPixel, type PinholeCamera } from '../prune/robot.js';
import type { AuxEpisode } from './aux-vision.js';
import type { CropBox } from './augment.js';
import type { Gradients } from './gradients.js';
import type { ParamStore } from './params.js';

export const HEATMAP_PREFIX = 'aux_heatmap_head.';
export const HEATMAP_WEIGHT = `${HEATMAP_PREFIX}weight`;
export const HEATMAP_BIAS = `${HEATMAP_PREFIX}bias`;
/** std-dev of the target Gaussian, in patches: half a patch puts ~40% on the nearest patch and spreads the rest */
export const HEATMAP_SIGMA = 0.5;

/** The entities, in a fixed order: 'ee', 'ee_ground', then the recording's objects and fixtures by name. */
export interface HeatmapSpec {
  entities: string[];
}

export function buildHeatmapSpec(episodes: AuxEpisode[]): HeatmapSpec {
  const objects = new Set<string>();
  const fixtures = new Set<string>();
  for (const e of episodes) {
    for (const o of Object.keys(e.objectPositions ?? {})) objects.add(o);
    for (const f of Object.keys(e.fixturePositions ?? {})) fixtures.add(f);
  }
  return { entities: ['ee', 'ee_ground', ...[...objects].sort(), ...[...fixtures].sort()] };
}

/** World position of each entity at `step` (null where the episode lacks it). */
function entityPositions(spec: HeatmapSpec, e: AuxEpisode, step: number): (number[] | null)[] {
  const p = e.proprio[step];
  return spec.entities.map((name) => {
    if (name === 'ee') return [p[0], p[1], p[2]];
    if (name === 'ee_ground') return [p[0], p[1], 0];
    const o = e.objectPositions?.[name];
    if (o) return o[step];
    const f = e.fixturePositions?.[name];
    return f ? [f[0], f[1], f[2] ?? 0] : null;
  });
}

/**
 * Target distributions and mask of one image: values [P·E] (patch-major: values[p·E + e]), mask [E]. `crop` is the
 * part of the recorded frame the model sees (the whole frame without augmentation); the grid is `side` × `side`
 * patches over it, row-major. t[p, e] ∝ exp(−|centre_p − pixel_e|² / 2σ²) in patch units; an entity whose pixel
 * falls outside the crop is masked.
 */
export function heatmapTargets(
  spec: HeatmapSpec,
  e: AuxEpisode,
  step: number,
  camera: PinholeCamera,
  crop: CropBox,
  side: number,
  sigma = HEATMAP_SIGMA,
): { values: Float32Array; mask: Float32Array } {
  const E = spec.entities.length;
  const P = side * side;
  const values = new Float32Array(P * E);
  const mask = new Float32Array(E);
  entityPositions(spec, e, step).forEach((position, k) => {
    if (!position) return;
    const pixel = projectToPixel(camera, position);
    if (!pixel) return;
    const gu = ((pixel[0] - crop.x0) / crop.width) * side; // patch units over the crop
    const gv = ((pixel[1] - crop.y0) / crop.height) * side;
    if (!(gu >= 0 && gu < side && gv >= 0 && gv < side)) return;
    let sum = 0;
    for (let r = 0; r < side; r++) {
      for (let c = 0; c < side; c++) {
        const d2 = (c + 0.5 - gu) ** 2 + (r + 0.5 - gv) ** 2;
        const t = Math.exp(-d2 / (2 * sigma * sigma));
        values[(r * side + c) * E + k] = t;
        sum += t;
      }
    }
    for (let p = 0; p < P; p++) values[p * E + k] /= sum;
    mask[k] = 1;
  });
  return { values, mask };
}

/** Adds a freshly initialized head {weight [E, channels], bias [E]} (seeded). */
export function addHeatmapHead(params: ParamStore, entities: number, channels: number, seed: number): void {
  const rng = mulberry32((seed ^ 0x4ea7_3a9) >>> 0);
  const w = Tensor.zeros([entities, channels]);
  const std = 0.3 / Math.sqrt(channels);
  for (let i = 0; i < w.size; i++) w.data[i] = std * standardNormal(rng);
  params.tensors.set(HEATMAP_WEIGHT, w);
  params.tensors.set(HEATMAP_BIAS, Tensor.zeros([entities]));
}

/**
 * The heatmap loss on a batch's patch features [B·P, C] (both ViTs concatenated per patch), targets [B·P·E] (per
 * image as heatmapTargets), mask [B·E] -> loss (weighted), ce (the unweighted mean cross-entropy, nats),
 * dFeatures [B·P, C]; the head's gradients go into `grads`.
 */
export function heatmapLoss(
  bk: Backend,
  gk: GradBackend,
  params: ParamStore,
  features: Tensor<'f32'>,
  images: number,
  targets: Float32Array,
  mask: Float32Array,
  weight: number,
  grads: Gradients,
): { loss: number; ce: number; dFeatures: Tensor<'f32'> } {
  const w = params.get(HEATMAP_WEIGHT);
  const E = w.shape[0];
  const rows = features.shape[0];
  const P = rows / images;
  if (!Number.isInteger(P) || targets.length !== rows * E || mask.length !== images * E) {
    throw new Error(`heatmap head: ${images} images of ${P} patches and ${E} entities do not match ${targets.length} targets / ${mask.length} mask entries`);
  }
  const logits = bk.linear(features, w, params.get(HEATMAP_BIAS)); // [B·P, E]
  let count = 0;
  for (let i = 0; i < mask.length; i++) count += mask[i];
  const scale = weight / Math.max(1, count);
  const dLogits = allocF32(rows * E);
  let ce = 0;
  for (let b = 0; b < images; b++) {
    for (let k = 0; k < E; k++) {
      if (!mask[b * E + k]) continue;
      let max = -Infinity;
      for (let p = 0; p < P; p++) max = Math.max(max, logits.data[(b * P + p) * E + k]);
      let z = 0;
      for (let p = 0; p < P; p++) z += Math.exp(logits.data[(b * P + p) * E + k] - max);
      const logZ = max + Math.log(z);
      for (let p = 0; p < P; p++) {
        const i = (b * P + p) * E + k;
        const logQ = logits.data[i] - logZ;
        ce -= targets[i] * logQ;
        dLogits[i] = (Math.exp(logQ) - targets[i]) * scale;
      }
    }
  }
  const g = gk.linearBackward(Tensor.f32([rows, E], dLogits), features, w, { dx: true, bias: true });
  grads.add(HEATMAP_WEIGHT, g.dw);
  grads.add(HEATMAP_BIAS, g.db!);
  const meanCe = ce / Math.max(1, count);
  return { loss: meanCe * weight, ce: meanCe, dFeatures: g.dx! };
}
