// Behaviour cloning as OpenVLA trains: multi-task batches of (augmented frame, instruction prompt, 7 action tokens +
// </s>) drawn uniformly over the successful demonstration steps; cross-entropy on those 8 targets; AdamW on f32
// master weights with gradient clipping and a warmup + cosine schedule. Step s draws its batch and augmentation
// from a generator seeded by (seed, s) alone, so a run resumed from a checkpoint continues exactly as an
// uninterrupted one would.
import fs from 'node:fs';
import nodePath from 'node:path';
import { UserError } from '../errors.js';
import { readJsonFile } from '../io/json.js';
import { argmax } from '../models/llama.js';
import { OpenVla, parseOpenVlaConfig } from '../models/openvla.js';
import { parsePreprocessorConfig, preprocessImage, type PreprocessorConfig } from '../models/preprocess.js';
import { instructionInputIds } from '../models/prompt.js';
import { tokenizerFromJson, type Tokenizer } from '../models/tokenizer.js';
import { mapSource } from '../models/weights.js';
import { mulberry32 } from '../random.js';
import { listTasks } from '../sim/tasks.js';
import type { Backend } from '../tensor/backend.js';
import type { GradBackend } from '../tensor/grad-backend.js';
import { Checkpoint } from '../io/checkpoint.js';
import { checkpointSource } from '../models/weights.js';
import type { Tensor } from '../tensor/tensor.js';
import { actionTokenIds, normalizeAction } from './action-targets.js';
import { AdamW } from './adamw.js';
import { augmentWithCrop, fullFrame, OPENVLA_AUGMENT, type AugmentOptions, type CropBox } from './augment.js';
import { addHeatmapHead, buildHeatmapSpec, heatmapLoss, heatmapTargets } from './aux-heatmap.js';
import { DemoDataset, type StepRef } from './dataset.js';
import { appendLog, plotLog, readLog, truncateLog, type LogRecord } from './loss-log.js';
import { trainingStep, TrainableOpenVla, visionStep, type FeatureLoss, type RowLoss, type TrainSample } from './model.js';
import { getPreset, initWeights, openVlaConfigJson, preprocessorConfigJson } from './presets.js';
import { hasResumeState, readRunState, restoreRun, saveRun, type RunFiles, type RunState } from './run-checkpoint.js';
import { learningRate } from './schedule.js';
import { ACTION_BINS, buildVocabulary } from './vocabulary.js';
import { addAuxHead, AUX_POOLS, AUX_WEIGHT, auxInputs, auxLoss, auxTargets, buildAuxSpec, readoutLoss, type AuxPool } from './aux-vision.js';
import { QUERY_PREFIX, queryRowTargets, queryTargetNames } from './aux-query.js';
import { Gradients } from './gradients.js';
import { BufferArena, withArena } from '../tensor/arena.js';

export interface TrainOptions {
  demos: string;
  /** more recordings whose episodes join the training set (e.g. DAgger ones); statistics and held-out stay --demos' */
  addDemos?: string[];
  out: string;
  preset: string;
  steps: number;
  batch: number;
  lr: number;
  warmupSteps: number;
  /** final learning rate as a fraction of the peak */
  minLrRatio: number;
  weightDecay: number;
  clipNorm: number;
  seed: number;
  /** the last `holdoutPerTask` seeds of every task are held out for offline evaluation */
  holdoutPerTask: number;
  /** write a checkpoint when this many seconds passed since the last one (and at the end) */
  saveEverySeconds: number;
  /** and every this many steps (0: only by time) */
  saveEverySteps: number;
  /** offline evaluation every N steps (0: never) on `evalSamples` held-out steps */
  evalEvery: number;
  evalSamples: number;
  /** closed-loop episodes per task at each evaluation (0: none), through TrainHooks.closedLoop */
  evalEpisodes: number;
  augment: boolean;
  /** start from this checkpoint's weights instead of a fresh initialization (fresh optimizer) */
  init?: string;
  /**
   * start only the vision backbones from this checkpoint (projector and decoder fresh): reuses ViTs that learned the
   * scene (e.g. with --vision-steps) without a decoder whose attention has already saturated (docs/training.md)
   */
  initVision?: string;
  /**
   * the first `visionSteps` steps train only the ViTs, on the auxiliary state readout (aux-vision.ts), with their
   * own warmup + cosine schedule; behaviour cloning takes the remaining steps
   */
  visionSteps: number;
  /** weight of the auxiliary state readout beside the action loss during behaviour cloning (0: off) */
  auxWeight: number;
  /** weight of the query-row readout of state and action (aux-query.ts) during behaviour cloning (0: off) */
  queryAuxWeight: number;
  /** width in bins of the action tokens' Gaussian soft labels (soft-labels.ts); 0: one-hot, as OpenVLA */
  labelSigma: number;
  /** how the vision readout reads the patch features (aux-vision.ts AuxPool): `grid` (flattened) or `mean` */
  auxPool: AuxPool;
  /**
   * weight of the per-patch heatmap loss (aux-heatmap.ts: where each entity is on the patch grid), in the vision
   * phase and during behaviour cloning (0: off)
   */
  heatmapWeight: number;
  /** the random crop keeps this fraction of the frame's area at least (OpenVLA: 0.9); 1: no crop, jitter only */
  cropScale: number;
  /**
   * every normalized action dimension's q01..q99 is widened to at least this range (action-targets.ts
   * widenActionStats; 0: OpenVLA's statistics as recorded)
   */
  minActionRange: number;
  /**
   * take each step's activations and gradients from a pool reused across steps (tensor/arena.ts; default true).
   * The weights are bit-identical either way (test/train/train-loop.test.ts); off, every op allocates afresh.
   */
  bufferPool?: boolean;
}

export const TRAIN_DEFAULTS: Omit<TrainOptions, 'demos' | 'out'> = {
  preset: 'mini', steps: 2000, batch: 16, lr: 6e-4, warmupSteps: 100, minLrRatio: 0.1, weightDecay: 0.01, clipNorm: 1,
  seed: 0, holdoutPerTask: 4, saveEverySeconds: 600, saveEverySteps: 0, evalEvery: 0, evalSamples: 64, evalEpisodes: 0, augment: true,
  visionSteps: 0, auxWeight: 0, queryAuxWeight: 0, labelSigma: 0, auxPool: 'grid', heatmapWeight: 0,
  cropScale: OPENVLA_AUGMENT.cropScale[0], minActionRange: 0,
};

/** Options a resumed run takes from its checkpoint, not from the command line (they define the run). */
const RUN_DEFINING = ['preset', 'batch', 'lr', 'warmupSteps', 'minLrRatio', 'weightDecay', 'clipNorm', 'seed', 'holdoutPerTask', 'augment', 'steps', 'visionSteps', 'auxWeight', 'queryAuxWeight', 'labelSigma', 'auxPool', 'heatmapWeight', 'cropScale', 'minActionRange', 'addDemos'] as const;

/**
 * Settings of how a run reports and saves, stored with it too: `train --resume` keeps them when their flags are not
 * given again (src/cli/train.ts), so a resumed run goes on evaluating and saving as it did.
 */
export const RESUMED_SETTINGS = ['evalEvery', 'evalSamples', 'evalEpisodes', 'saveEverySteps', 'saveEverySeconds'] as const;

export interface StepReport {
  step: number;
  steps: number;
  /** the action loss; during the vision phase, the auxiliary readout's mean squared error */
  loss: number;
  phase: 'vision' | 'bc';
  lr: number;
  gradNorm: number;
  samplesPerSecond: number;
  elapsedSeconds: number;
}

export interface EvalReport {
  step: number;
  tokenAccuracy: number;
  /** mean |normalized action - target| over the 7 dimensions */
  meanAbsError: number;
  /** the same per dimension (x, y, z, roll, pitch, yaw, gripper) */
  meanAbsErrorPerDim: number[];
  /**
   * per dimension, the error of always answering the held-out targets' median: a model that ignores its image and
   * instruction scores about this, so the gap to it is what the model has learned
   */
  constantMeanAbsErrorPerDim: number[];
  samples: number;
  /** closed-loop success over all tasks, when measured */
  successRate?: number;
}

export interface TrainHooks {
  onStep?(report: StepReport): void;
  onSave?(step: number, dir: string): void;
  onEval?(report: EvalReport): void;
  /**
   * Closed-loop evaluation of the checkpoint just written to `dir` (the testbed runner lives above this layer, so
   * the CLI supplies it); resolves to the success rate over all tasks.
   */
  closedLoop?(dir: string, step: number): Promise<number>;
  /** stop after the current step (e.g. SIGINT); a checkpoint is written first */
  shouldStop?(): boolean;
}

export interface TrainResult {
  step: number;
  resumedFrom?: number;
  finalLoss: number;
  samplesPerSecond: number;
  trainSeconds: number;
  lastEval?: EvalReport;
  out: string;
  trainSteps: number;
  heldOutSteps: number;
}

/** A generator for step `step` of a run seeded `seed` (independent of every other step). */
export function stepRandom(seed: number, step: number): () => number {
  return mulberry32((Math.imul(seed + 1, 0x9e3779b1) ^ Math.imul(step + 1, 0x85ebca77)) >>> 0);
}

/** Which episodes are held out: the `perTask` highest seeds of every task in the recording. */
export function heldOutEpisodes(dataset: DemoDataset | { episodes: { taskId: string; seed: number }[] }, perTask: number): Set<string> {
  const byTask = new Map<string, number[]>();
  for (const e of dataset.episodes) byTask.set(e.taskId, [...(byTask.get(e.taskId) ?? []), e.seed]);
  const held = new Set<string>();
  for (const [task, seeds] of byTask) for (const seed of seeds.sort((a, b) => b - a).slice(0, perTask)) held.add(`${task}#${seed}`);
  return held;
}

export interface Sampler {
  dataset: DemoDataset;
  tokenizer: Tokenizer;
  preprocessor: PreprocessorConfig;
  realVocabSize: number;
  eosId: number;
  promptCache: Map<string, number[]>;
}

/**
 * One training example from a demonstration step (augmented with `augment` when `random` is given); `crop` is the
 * part of the recorded frame it shows.
 */
export function makeSample(s: Sampler, ref: StepRef, random?: () => number, augment: AugmentOptions = OPENVLA_AUGMENT): { sample: TrainSample; normalized: number[]; crop: CropBox } {
  const instruction = s.dataset.instruction(ref);
  let prompt = s.promptCache.get(instruction);
  if (!prompt) {
    prompt = instructionInputIds(s.tokenizer, instruction);
    s.promptCache.set(instruction, prompt);
  }
  const normalized = normalizeAction(s.dataset.action(ref), s.dataset.stats);
  const actions = actionTokenIds(normalized, s.realVocabSize, ACTION_BINS);
  const frame = s.dataset.frame(ref);
  const { image, crop } = random ? augmentWithCrop(frame, random, augment) : { image: frame, crop: fullFrame(frame) };
  return {
    crop,
    sample: {
      pixelValues: preprocessImage(image, s.preprocessor),
      inputIds: Int32Array.from([...prompt, ...actions]),
      targets: Int32Array.from([...actions, s.eosId]),
    },
    normalized,
  };
}

/** Greedy decoding on held-out steps (no augmentation): action-token accuracy and mean |error| of the actions. */
function evaluateOffline(s: Sampler, params: Map<string, Tensor<'f32'>>, files: RunFiles, backend: Backend, refs: StepRef[], step: number): EvalReport {
  const config = parseOpenVlaConfig(files.configJson, 'config.json');
  const model = OpenVla.fromSource(config, s.preprocessor, mapSource(Object.fromEntries(params)), backend, 'training run');
  let correct = 0;
  const absError = new Array<number>(7).fill(0);
  const targets: number[][] = [];
  for (const ref of refs) {
    const { sample, normalized } = makeSample(s, ref);
    const prompt = Array.from(sample.inputIds.subarray(0, sample.inputIds.length - 7));
    const result = model.predictAction({ pixelValues: sample.pixelValues, inputIds: prompt });
    result.actionTokenIds.forEach((id, i) => {
      if (id === sample.targets[i]) correct++;
      absError[i] += Math.abs(result.normalizedAction[i] - normalized[i]);
    });
    targets.push(normalized);
  }
  const n = Math.max(1, refs.length);
  const perDim = absError.map((e) => e / n);
  const constant = absError.map((_, d) => {
    const column = targets.map((t) => t[d]).sort((a, b) => a - b);
    const median = column.length ? column[Math.floor(column.length / 2)] : 0;
    return column.reduce((acc, v) => acc + Math.abs(v - median), 0) / n;
  });
  return {
    step,
    tokenAccuracy: correct / (7 * n),
    meanAbsError: perDim.reduce((a, b) => a + b, 0) / 7,
    meanAbsErrorPerDim: perDim,
    constantMeanAbsErrorPerDim: constant,
    samples: refs.length,
  };
}

export async function train(options: TrainOptions, backend: Backend, grad: GradBackend, hooks: TrainHooks = {}): Promise<TrainResult> {
  let o = { ...options };
  const resuming = hasResumeState(o.out);
  let state: RunState | undefined;
  if (resuming) {
    state = readRunState(o.out);
    const saved = state.options as Partial<TrainOptions>;
    o = { ...o, ...Object.fromEntries(RUN_DEFINING.map((k) => [k, saved[k] ?? o[k]])) };
    if (options.steps > o.steps) o.steps = options.steps; // a resumed run may be extended
  }
  const sizes = getPreset(o.preset);

  const everything = DemoDataset.open(o.demos);
  const held = heldOutEpisodes(everything, o.holdoutPerTask);
  const dataset = DemoDataset.open(o.demos, (task, seed) => !held.has(`${task}#${seed}`), o.minActionRange, o.addDemos ?? []);
  const heldOut = o.holdoutPerTask > 0 ? DemoDataset.open(o.demos, (task, seed) => held.has(`${task}#${seed}`), o.minActionRange) : undefined;

  let files: RunFiles;
  if (resuming) {
    files = {
      configJson: readJsonFile(nodePath.join(o.out, 'config.json'), 'model config') as Record<string, unknown>,
      preprocessorJson: readJsonFile(nodePath.join(o.out, 'preprocessor_config.json'), 'preprocessor config') as Record<string, unknown>,
      tokenizerJson: readJsonFile(nodePath.join(o.out, 'tokenizer.json'), 'tokenizer') as Record<string, unknown>,
    };
  } else if (o.init) {
    files = {
      configJson: { ...(readJsonFile(nodePath.join(o.init, 'config.json'), 'model config') as Record<string, unknown>), norm_stats: dataset.normStats },
      preprocessorJson: readJsonFile(nodePath.join(o.init, 'preprocessor_config.json'), 'preprocessor config') as Record<string, unknown>,
      tokenizerJson: readJsonFile(nodePath.join(o.init, 'tokenizer.json'), 'tokenizer') as Record<string, unknown>,
    };
  } else {
    const vocab = buildVocabulary([...new Set([...listTasks().map((t) => t.instruction), ...dataset.instructions])]);
    files = {
      configJson: openVlaConfigJson(sizes, vocab, dataset.normStats, o.preset),
      preprocessorJson: preprocessorConfigJson(sizes),
      tokenizerJson: vocab.tokenizerJson,
    };
  }
  // the frame size the policy learns from, so that closed-loop commands render the camera at it (OpenVlaConfig)
  const cameraImageSize = dataset.cameraImageSize;
  if (cameraImageSize !== undefined) files.configJson = { ...files.configJson, sqap_vla_camera_image_size: cameraImageSize };
  const config = parseOpenVlaConfig(files.configJson, 'config.json');
  const tokenizer = tokenizerFromJson(files.tokenizerJson, 'tokenizer.json');
  const sampler: Sampler = {
    dataset,
    tokenizer,
    preprocessor: parsePreprocessorConfig(files.preprocessorJson),
    realVocabSize: config.realVocabSize,
    eosId: tokenizer.eosId,
    promptCache: new Map(),
  };

  let initial: Map<string, Tensor<'f32'>>;
  if (o.init && !resuming) {
    const checkpoint = Checkpoint.open(o.init);
    try {
      const source = checkpointSource(checkpoint);
      initial = new Map(source.keys().map((k) => [k, source.read(k).asF32Tensor()]));
    } finally {
      checkpoint.close();
    }
  } else {
    initial = initWeights(sizes, (config.textConfig.vocab_size as number), o.seed);
    if (o.initVision && !resuming) copyVisionBackbones(o.initVision, initial);
  }
  const model = TrainableOpenVla.fromSource(mapSource(Object.fromEntries(initial)), config, backend, grad);
  const params = model.params;
  const useAux = o.visionSteps > 0 || o.auxWeight > 0 || o.queryAuxWeight > 0 || o.heatmapWeight > 0;
  const auxSpec = useAux ? buildAuxSpec(dataset.episodes.map((e) => e.state)) : undefined;
  const featureChannels = model.vits.reduce((a, v) => a + v.config.width, 0); // both ViTs, concatenated per patch
  if (auxSpec && (o.visionSteps > 0 || o.auxWeight > 0)) {
    const inputs = auxInputs(o.auxPool, model.vits[0].patchesPerImage, featureChannels);
    addAuxHead(params, auxSpec.names.length, inputs, o.seed);
  }
  const heatmapSpec = o.heatmapWeight > 0 ? buildHeatmapSpec(dataset.episodes.map((e) => e.state)) : undefined;
  const gridSide = Math.round(Math.sqrt(model.vits[0].patchesPerImage));
  if (heatmapSpec) addHeatmapHead(params, heatmapSpec.entities.length, featureChannels, o.seed);
  const augment: AugmentOptions = { ...OPENVLA_AUGMENT, cropScale: [o.cropScale, 1] };
  if (auxSpec && o.queryAuxWeight > 0) {
    addAuxHead(params, queryTargetNames(auxSpec.names).length, config.textConfig.hidden_size as number, o.seed, QUERY_PREFIX);
  }
  const softLabels = o.labelSigma > 0 ? { sigma: o.labelSigma, first: config.realVocabSize - ACTION_BINS, last: config.realVocabSize - 1 } : undefined;
  const isMatrix = (name: string, p: Tensor<'f32'>) => p.rank >= 2 && !/pos_embed|cls_token|reg_token/.test(name);
  const optimizer = new AdamW({ lr: o.lr, betas: [0.9, 0.999], eps: 1e-8, weightDecay: o.weightDecay, decays: isMatrix });
  let step = 0;
  let samplesSeen = 0;
  let trainSeconds = 0;
  if (resuming) {
    step = state!.step;
    samplesSeen = state!.samplesSeen;
    trainSeconds = state!.trainSeconds;
    restoreRun(o.out, params, optimizer, step);
  }
  fs.mkdirSync(o.out, { recursive: true });
  const logPath = nodePath.join(o.out, 'loss.jsonl');
  if (resuming) truncateLog(logPath, step);
  else fs.writeFileSync(logPath, '');

  const evalRefs = heldOut ? Array.from({ length: Math.min(o.evalSamples, heldOut.steps.length) }, (_, i) => heldOut.steps[Math.floor((i * heldOut.steps.length) / Math.min(o.evalSamples, heldOut.steps.length))]) : [];
  const evalSampler = heldOut ? { ...sampler, dataset: heldOut } : undefined;
  const runOptions = Object.fromEntries([...RUN_DEFINING, ...RESUMED_SETTINGS].map((k) => [k, o[k]]));
  const save = () => {
    saveRun(o.out, files, params, optimizer, { step, options: runOptions, samplesSeen, trainSeconds });
    plotLog(nodePath.join(o.out, 'loss.png'), readLog(logPath));
    hooks.onSave?.(step, o.out);
  };

  const resumedFrom = resuming ? step : undefined;
  let lastSave = performance.now();
  let lastLoss = NaN;
  let lastEval: EvalReport | undefined;
  let windowStart = performance.now();
  let windowSamples = 0;
  // the vision phase (steps 0 .. visionSteps-1) and behaviour cloning each have their own warmup + cosine schedule
  const visionSchedule = { peak: o.lr, warmupSteps: Math.min(o.warmupSteps, o.visionSteps), totalSteps: o.visionSteps, minRatio: o.minLrRatio };
  const schedule = { peak: o.lr, warmupSteps: o.warmupSteps, totalSteps: o.steps - o.visionSteps, minRatio: o.minLrRatio };
  const arena = o.bufferPool === false ? undefined : new BufferArena();
  while (step < o.steps) {
    const started = performance.now();
    // the step's activations and gradients come from the arena and go back to it after the update (tensor/arena.ts)
    const { loss, nll, gradNorm, lr, phase, auxMse, queryMse, heatmapCe } = withArena(arena, () => {
      const random = stepRandom(o.seed, step);
      const refs: StepRef[] = [];
      const normalizedActions: number[][] = [];
      const crops: CropBox[] = [];
      const batch = Array.from({ length: o.batch }, () => {
        const ref = dataset.steps[Math.floor(random() * dataset.steps.length)];
        refs.push(ref);
        const made = makeSample(sampler, ref, o.augment ? random : undefined, augment);
        normalizedActions.push(made.normalized);
        crops.push(made.crop);
        return made.sample;
      });
      const phase: 'vision' | 'bc' = step < o.visionSteps ? 'vision' : 'bc';
      let featureLoss: FeatureLoss | undefined;
      let rowLoss: RowLoss | undefined;
      let auxMse = NaN;
      let queryMse = NaN;
      let heatmapCe = NaN;
      const stateTargets = auxSpec ? refs.map((ref) => auxTargets(auxSpec, dataset.state(ref), ref.step)) : [];
      if (auxSpec && phase === 'bc' && o.queryAuxWeight > 0) {
        const rowsPerSample = batch[0].targets.length;
        const parts = stateTargets.map((t, b) => queryRowTargets(t.values, t.mask, normalizedActions[b], rowsPerSample));
        const targets = new Float32Array(parts.reduce((a, p) => a + p.values.length, 0));
        const mask = new Float32Array(targets.length);
        let at = 0;
        for (const p of parts) {
          targets.set(p.values, at);
          mask.set(p.mask, at);
          at += p.values.length;
        }
        rowLoss = (normed) => {
          const r = readoutLoss(backend, grad, params, QUERY_PREFIX, normed, targets, mask, o.queryAuxWeight, stepGrads);
          queryMse = r.mse;
          return { loss: r.loss, dNormed: r.dX };
        };
      }
      // the losses on the ViTs' patch features: the state readout and the heatmaps, summed
      const featureParts: FeatureLoss[] = [];
      const readoutWeight = params.tensors.has(AUX_WEIGHT) ? (phase === 'vision' ? 1 : o.auxWeight) : 0;
      if (auxSpec && readoutWeight > 0) {
        const k = auxSpec.names.length;
        const targets = new Float32Array(o.batch * k);
        const mask = new Float32Array(o.batch * k);
        stateTargets.forEach((t, b) => {
          targets.set(t.values, b * k);
          mask.set(t.mask, b * k);
        });
        featureParts.push((features, images) => {
          const r = auxLoss(backend, grad, params, features, images, targets, mask, readoutWeight, stepGrads, o.auxPool);
          auxMse = r.mse;
          return r;
        });
      }
      if (heatmapSpec) {
        const e = heatmapSpec.entities.length;
        const patches = gridSide * gridSide;
        const targets = new Float32Array(o.batch * patches * e);
        const mask = new Float32Array(o.batch * e);
        refs.forEach((ref, b) => {
          const t = heatmapTargets(heatmapSpec, dataset.state(ref), ref.step, dataset.camera(ref), crops[b], gridSide);
          targets.set(t.values, b * patches * e);
          mask.set(t.mask, b * e);
        });
        featureParts.push((features, images) => {
          const r = heatmapLoss(backend, grad, params, features, images, targets, mask, o.heatmapWeight, stepGrads);
          heatmapCe = r.ce;
          return r;
        });
      }
      if (featureParts.length > 0) featureLoss = (features, images) => sumFeatureLosses(featureParts, features, images);
      const stepGrads = new Gradients(grad);
      let loss: number;
      let nll = NaN;
      let grads: Gradients;
      if (phase === 'vision') {
        ({ loss, grads } = visionStep(model, batch.map((b) => b.pixelValues), featureLoss!, stepGrads));
      } else {
        ({ loss, nll, grads } = trainingStep(model, batch, { grads: stepGrads, ...(featureLoss ? { featureLoss } : {}), ...(rowLoss ? { rowLoss } : {}), ...(softLabels ? { softLabels } : {}) }));
      }
      const gradNorm = grads.globalNorm();
      if (gradNorm > o.clipNorm) grads.scale(o.clipNorm / (gradNorm + 1e-6));
      const lr = phase === 'vision' ? learningRate(step, visionSchedule) : learningRate(step - o.visionSteps, schedule);
      optimizer.step(params, grads, lr);
      return { loss, nll, gradNorm, lr, phase, auxMse, queryMse, heatmapCe };
    });
    arena?.releaseAll();
    step++;
    samplesSeen += o.batch;
    const seconds = (performance.now() - started) / 1000;
    trainSeconds += seconds;
    windowSamples += o.batch;
    const windowSeconds = (performance.now() - windowStart) / 1000;
    const samplesPerSecond = windowSamples / Math.max(1e-9, windowSeconds);
    if (windowSeconds > 60) {
      windowStart = performance.now();
      windowSamples = 0;
    }
    lastLoss = loss;
    const record: LogRecord = { step, loss, lr, grad_norm: gradNorm, samples_per_s: samplesPerSecond, elapsed_s: trainSeconds };
    if (auxSpec) {
      record.phase = phase;
      if (Number.isFinite(auxMse)) record.aux_mse = auxMse;
      if (Number.isFinite(queryMse)) record.query_mse = queryMse;
      if (Number.isFinite(heatmapCe)) record.heatmap_ce = heatmapCe;
    }
    if (softLabels && Number.isFinite(nll)) record.nll = nll;
    if (o.evalEvery > 0 && evalSampler && step > o.visionSteps && (step % o.evalEvery === 0 || step === o.steps)) {
      lastEval = evaluateOffline(evalSampler, params.tensors, files, backend, evalRefs, step);
      record.eval_token_accuracy = lastEval.tokenAccuracy;
      record.eval_action_mae = lastEval.meanAbsError;
      record.eval_action_mae_per_dim = lastEval.meanAbsErrorPerDim;
      record.eval_constant_mae_per_dim = lastEval.constantMeanAbsErrorPerDim;
      if (o.evalEpisodes > 0 && hooks.closedLoop) {
        save();
        lastSave = performance.now();
        lastEval.successRate = await hooks.closedLoop(o.out, step);
        record.eval_success_rate = lastEval.successRate;
      }
      hooks.onEval?.(lastEval);
    }
    appendLog(logPath, record);
    hooks.onStep?.({ step, steps: o.steps, loss, phase, lr, gradNorm, samplesPerSecond, elapsedSeconds: trainSeconds });
    await new Promise<void>((resolve) => setImmediate(resolve)); // let signal handlers (Ctrl-C: stop and save) run
    const stop = hooks.shouldStop?.() ?? false;
    const due = (performance.now() - lastSave) / 1000 >= o.saveEverySeconds || (o.saveEverySteps > 0 && step % o.saveEverySteps === 0);
    if (due || step === o.steps || stop) {
      save();
      lastSave = performance.now();
    }
    if (stop) break;
  }
  if (step === resumedFrom) save();
  return {
    step,
    resumedFrom,
    finalLoss: lastLoss,
    samplesPerSecond: samplesSeen / Math.max(1e-9, trainSeconds),
    trainSeconds,
    lastEval,
    out: o.out,
    trainSteps: dataset.steps.length,
    heldOutSteps: heldOut?.steps.length ?? 0,
  };
}

/** Several losses on the same features: their sum, and the sum of their gradients. */
function sumFeatureLosses(parts: FeatureLoss[], features: Tensor<'f32'>, images: number): { loss: number; dFeatures: Tensor<'f32'> } {
  let loss = 0;
  let d: Tensor<'f32'> | undefined;
  for (const part of parts) {
    const r = part(features, images);
    loss += r.loss;
    if (!d) d = r.dFeatures;
    else for (let i = 0; i < d.size; i++) d.data[i] += r.dFeatures.data[i];
  }
  return { loss, dFeatures: d! };
}

/** Overwrites the vision backbones' tensors of `params` with those of the checkpoint in `dir` (same shapes). */
function copyVisionBackbones(dir: string, params: Map<string, Tensor<'f32'>>): void {
  const checkpoint = Checkpoint.open(dir);
  try {
    const source = checkpointSource(checkpoint);
    let copied = 0;
    for (const [name, tensor] of params) {
      if (!name.startsWith('vision_backbone.')) continue;
      if (!source.has(name)) throw new UserError(`--init-vision ${dir}: the checkpoint has no ${name}`);
      const t = source.read(name).asF32Tensor();
      if (t.shape.join('x') !== tensor.shape.join('x')) {
        throw new UserError(`--init-vision ${dir}: ${name} is [${t.shape}], this preset's is [${tensor.shape}]`);
      }
      params.set(name, t);
      copied++;
    }
    if (copied === 0) throw new UserError(`--init-vision ${dir}: no vision backbone tensors to copy`);
  } finally {
    checkpoint.close();
  }
}

export function checkTrainOptions(o: TrainOptions): void {
  if (o.init && o.initVision) throw new UserError('--init and --init-vision exclude each other (--init already takes the vision backbones)');
  getPreset(o.preset);
  if (!Number.isInteger(o.steps) || o.steps < 1) throw new UserError(`--steps must be a positive integer, got ${o.steps}`);
  if (!Number.isInteger(o.batch) || o.batch < 1) throw new UserError(`--batch must be a positive integer, got ${o.batch}`);
  if (!(o.lr > 0)) throw new UserError(`--lr must be a positive number, got ${o.lr}`);
  if (!Number.isInteger(o.visionSteps) || o.visionSteps < 0 || o.visionSteps >= o.steps) {
    throw new UserError(`--vision-steps must be an integer from 0 to --steps - 1 (${o.steps - 1}), got ${o.visionSteps}`);
  }
  if (!(o.auxWeight >= 0) || !Number.isFinite(o.auxWeight)) throw new UserError(`--aux-weight must be a number >= 0, got ${o.auxWeight}`);
  if (!(o.queryAuxWeight >= 0) || !Number.isFinite(o.queryAuxWeight)) throw new UserError(`--query-aux-weight must be a number >= 0, got ${o.queryAuxWeight}`);
  if (!(o.labelSigma >= 0) || !Number.isFinite(o.labelSigma) || o.labelSigma > 64) throw new UserError(`--label-sigma must be a number of bins from 0 to 64, got ${o.labelSigma}`);
  if (!(o.heatmapWeight >= 0) || !Number.isFinite(o.heatmapWeight)) throw new UserError(`--heatmap-weight must be a number >= 0, got ${o.heatmapWeight}`);
  if (!(o.cropScale > 0 && o.cropScale <= 1)) throw new UserError(`--crop-scale must be a fraction of the area in (0, 1], got ${o.cropScale}`);
  if (!(o.minActionRange >= 0 && o.minActionRange <= 2)) throw new UserError(`--min-action-range must be a range of actions from 0 to 2 (the env's -1..1), got ${o.minActionRange}`);
  if (!AUX_POOLS.includes(o.auxPool)) throw new UserError(`--aux-pool must be one of ${AUX_POOLS.join(', ')}, got ${o.auxPool}`);
}
