import { resolve } from 'node:path';
import { UserError } from '../errors.js';
import { parseOptions } from './args.js';
import { getBackend } from '../tensor/backends/index.js';
import { getGradBackend } from '../tensor/backends/grad-index.js';
import { checkTrainOptions, RESUMED_SETTINGS, train, TRAIN_DEFAULTS, type TrainOptions } from '../train/trainer.js';
import { PRESETS } from '../train/presets.js';
import { parseBackendName } from './act.js';
import { progressBar } from './progress.js';

const HELP = `usage: sqap-vla train --demos DIR --out DIR [--preset mini] [--steps N] [--batch B] [--lr X] [--resume]
                      [--eval-every N] [--eval-samples M] [--json] [more options below]

Trains an OpenVLA-architecture policy from scratch (or from --init) by behaviour cloning on demonstrations recorded
with 'sqap-vla sim record' (docs/training.md). OUT becomes a checkpoint in the OpenVLA Hugging Face layout
(config.json with norm_stats, preprocessor_config.json, tokenizer.json, model.safetensors in bf16) that act,
sim run --policy model, eval and serve load; OUT/training/ holds what --resume needs; OUT/loss.jsonl and
OUT/loss.png are the learning curve.

  --demos DIR          a 'sim record' directory (successful episodes are used); its action statistics become the
                       checkpoint's norm_stats and its highest seeds the held-out set
  --add-demos DIR      (repeatable) another recording whose episodes join the training set, e.g. a DAgger one
                       ('sim record --policy model', every labelled step used, failed episodes too)
  --out DIR            run directory (created); with --resume, the run to continue
  --preset NAME        model size: ${Object.keys(PRESETS).join(', ')} (default ${TRAIN_DEFAULTS.preset})
  --steps N            optimizer steps in all (default ${TRAIN_DEFAULTS.steps}); a resumed run may raise it
  --batch B            samples per step (default ${TRAIN_DEFAULTS.batch})
  --lr X               peak learning rate (default ${TRAIN_DEFAULTS.lr}); warmup then cosine decay
  --warmup N           warmup steps (default ${TRAIN_DEFAULTS.warmupSteps})
  --min-lr-ratio R     final rate / peak (default ${TRAIN_DEFAULTS.minLrRatio})
  --weight-decay W     AdamW decoupled decay on weight matrices (default ${TRAIN_DEFAULTS.weightDecay})
  --clip C             gradient clipping by global norm (default ${TRAIN_DEFAULTS.clipNorm})
  --seed S             run seed: initialization, batches, augmentation (default ${TRAIN_DEFAULTS.seed})
  --holdout K          hold out the K highest seeds of every task for evaluation (default ${TRAIN_DEFAULTS.holdoutPerTask})
  --save-every SEC     checkpoint every SEC seconds (default ${TRAIN_DEFAULTS.saveEverySeconds}) and at the end
  --save-every-steps N also every N steps
  --eval-every N       every N steps: greedy action-token accuracy on held-out demonstration steps
  --eval-samples M     held-out steps per evaluation (default ${TRAIN_DEFAULTS.evalSamples})
  --eval-episodes M    also run M closed-loop episodes per task in the testbed at each evaluation (seeds 0..M-1,
                       disjoint from recorded training seeds when those start higher, as docs/training.md does)
  --no-augment         no random crop / colour jitter
  --no-buffer-pool     allocate every step's activations and gradients afresh instead of reusing them (same weights;
                       slower: the garbage collector runs more, docs/training.md)
  --vision-steps N     first N steps train only the ViTs, on a readout of the scene's recorded state (end effector,
                       objects, fixtures), as a stand-in for OpenVLA's pretrained backbones (default 0; needs a
                       recording with object positions; docs/training.md)
  --aux-pool P         how that readout reads the patch features: grid (flattened, default) or mean (averaged over
                       the patches, so the features must say where things are in a form the decoder can read)
  --aux-weight W       keep that readout loss beside the action loss afterwards, weighted W (default 0)
  --query-aux-weight W also read that state and the demonstrated action (as numbers) from the decoder rows that
                       predict the action tokens, weighted W (default 0; training-only head; docs/training.md)
  --label-sigma S      Gaussian soft labels over neighbouring action bins, S bins wide (default 0: one-hot, as
                       OpenVLA); the log's nll is then the one-hot loss
  --heatmap-weight W   also read from the ViTs' patches where each thing is on the patch grid (the end effector, the
                       table below it, every object and fixture): a softmax over the patches per thing against a
                       Gaussian around its projected pixel, weighted W, in the vision phase and after (default 0;
                       needs a recording with object positions; docs/training.md)
  --crop-scale F       the random crop keeps at least this fraction of the frame's area (default ${TRAIN_DEFAULTS.cropScale},
                       as OpenVLA); 1 keeps the whole frame (colour jitter only), as evaluation sees it
  --min-action-range R widen every normalized action dimension's q01..q99 to at least R (0 to 2, in the env's
                       -1..1 action units; default 0: OpenVLA's statistics as recorded); 1 keeps the experts'
                       small roll/pitch corrections in ~40 central bins instead of all 256 (docs/training.md)
  --init DIR           start from this checkpoint's weights and tokenizer (fresh optimizer)
  --init-vision DIR    start only the vision backbones from this checkpoint; projector and decoder fresh
  --resume             continue the run in --out exactly where its last checkpoint left it (its data, schedule and,
                       unless given again, its evaluation and save settings)
  --backend NAME       auto, ref, native (default auto)
  --json               print a summary as one JSON object on the last stdout line

Progress (loss, learning rate, samples/s, ETA) is a bar on a terminal, else one line every 10 s on stderr.`;

/** the flag of each setting a resumed run keeps */
const RESUMED_FLAGS = {
  evalEvery: 'eval-every',
  evalSamples: 'eval-samples',
  evalEpisodes: 'eval-episodes',
  saveEverySteps: 'save-every-steps',
  saveEverySeconds: 'save-every',
} as const satisfies Record<(typeof RESUMED_SETTINGS)[number], string>;

export async function runTrainCommand(argv: string[]): Promise<number> {
  const values = parseOptions(argv, {
      demos: { type: 'string' },
      'add-demos': { type: 'string', multiple: true },
      out: { type: 'string' },
      preset: { type: 'string' },
      steps: { type: 'string' },
      batch: { type: 'string' },
      lr: { type: 'string' },
      warmup: { type: 'string' },
      'min-lr-ratio': { type: 'string' },
      'weight-decay': { type: 'string' },
      clip: { type: 'string' },
      seed: { type: 'string' },
      holdout: { type: 'string' },
      'save-every': { type: 'string' },
      'save-every-steps': { type: 'string' },
      'eval-every': { type: 'string' },
      'eval-samples': { type: 'string' },
      'eval-episodes': { type: 'string' },
      'no-augment': { type: 'boolean', default: false },
      'no-buffer-pool': { type: 'boolean', default: false },
      init: { type: 'string' },
      'init-vision': { type: 'string' },
      'vision-steps': { type: 'string' },
      'aux-weight': { type: 'string' },
      'query-aux-weight': { type: 'string' },
      'label-sigma': { type: 'string' },
      'aux-pool': { type: 'string' },
      'heatmap-weight': { type: 'string' },
      'crop-scale': { type: 'string' },
      'min-action-range': { type: 'string' },
      resume: { type: 'boolean', default: false },
      backend: { type: 'string', default: 'auto' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    }, 'train');
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (!values.demos) throw new UserError('train needs --demos DIR (a directory written by sqap-vla sim record)');
  if (!values.out) throw new UserError('train needs --out DIR');
  const num = (flag: string, fallback: number, integer = false): number => {
    const text = values[flag as keyof typeof values] as string | undefined;
    if (text === undefined) return fallback;
    const value = Number(text);
    if (!Number.isFinite(value) || (integer && !Number.isInteger(value)) || value < 0) {
      throw new UserError(`--${flag} must be a non-negative ${integer ? 'integer' : 'number'}, got '${text}'`);
    }
    return value;
  };
  const d = TRAIN_DEFAULTS;
  const options: TrainOptions = {
    demos: values.demos,
    ...(values['add-demos'] ? { addDemos: values['add-demos'].map((dir) => resolve(dir)) } : {}),
    out: values.out,
    preset: values.preset ?? d.preset,
    steps: num('steps', d.steps, true),
    batch: num('batch', d.batch, true),
    lr: num('lr', d.lr),
    warmupSteps: num('warmup', d.warmupSteps, true),
    minLrRatio: num('min-lr-ratio', d.minLrRatio),
    weightDecay: num('weight-decay', d.weightDecay),
    clipNorm: num('clip', d.clipNorm),
    seed: num('seed', d.seed, true),
    holdoutPerTask: num('holdout', d.holdoutPerTask, true),
    saveEverySeconds: num('save-every', d.saveEverySeconds),
    saveEverySteps: num('save-every-steps', d.saveEverySteps, true),
    evalEvery: num('eval-every', d.evalEvery, true),
    evalSamples: num('eval-samples', d.evalSamples, true),
    evalEpisodes: num('eval-episodes', d.evalEpisodes, true),
    augment: !values['no-augment'],
    bufferPool: !values['no-buffer-pool'],
    init: values.init,
    initVision: values['init-vision'],
    visionSteps: num('vision-steps', d.visionSteps, true),
    auxWeight: num('aux-weight', d.auxWeight),
    queryAuxWeight: num('query-aux-weight', d.queryAuxWeight),
    labelSigma: num('label-sigma', d.labelSigma),
    auxPool: (values['aux-pool'] ?? d.auxPool) as TrainOptions['auxPool'],
    heatmapWeight: num('heatmap-weight', d.heatmapWeight),
    cropScale: num('crop-scale', d.cropScale),
    minActionRange: num('min-action-range', d.minActionRange),
  };
  checkTrainOptions(options);
  const { hasResumeState, readRunState } = await import('../train/run-checkpoint.js');
  if (values.resume && !hasResumeState(options.out)) {
    throw new UserError(`--resume: no training checkpoint in ${options.out} (expected ${options.out}/training/state.json); drop --resume to start a new run`);
  }
  // a resumed run keeps its own length unless --steps extends it (the default would silently stretch its schedule)
  // ... and keeps evaluating and saving as it did unless those flags are given again
  if (values.resume) {
    const saved = readRunState(options.out).options as Partial<TrainOptions>;
    if (values.steps === undefined && typeof saved.steps === 'number') options.steps = saved.steps;
    for (const key of RESUMED_SETTINGS) {
      if (values[RESUMED_FLAGS[key]] === undefined && typeof saved[key] === 'number') options[key] = saved[key];
    }
  }
  if (!values.resume && hasResumeState(options.out)) {
    throw new UserError(`${options.out} already holds a training run; continue it with --resume or choose another --out`);
  }
  const backendName = parseBackendName(values.backend!);
  const backend = getBackend(backendName);
  const grad = getGradBackend(backendName);

  let bar: ReturnType<typeof progressBar> | undefined;
  let lastLine = 0;
  let stopRequested = false;
  const onSignal = () => {
    if (stopRequested) process.exit(130);
    stopRequested = true;
    process.stderr.write('\nsqap-vla: stopping after this step (checkpoint first); press Ctrl-C again to quit at once\n');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const closedLoop = async (dir: string): Promise<number> => {
    const { runEpisodes } = await import('../sim/runner.js');
    const { listTasks } = await import('../sim/tasks.js');
    const { MODEL_POLICY_MODULE } = await import('../eval/model-policy.js');
    const summary = await runEpisodes({
      tasks: listTasks().map((t) => t.id),
      episodes: options.evalEpisodes,
      seed: 0,
      workers: 1,
      policy: { module: MODEL_POLICY_MODULE, options: { model: resolve(dir), backend: backendName } },
    });
    return summary.success_rate;
  };
  const result = await (async () => {
    try {
      return await train(options, backend, grad, {
        closedLoop,
        onStep: (r) => {
          const payload = { phase: r.phase === 'vision' ? 'vision mse' : 'loss', loss: r.loss.toFixed(4), lr: r.lr.toExponential(2), sps: r.samplesPerSecond.toFixed(1) };
          if (process.stderr.isTTY) {
            bar ??= progressBar('train', r.steps, 'steps', ' | {phase} {loss} lr {lr} | {sps} samples/s');
            bar.update(r.step, payload);
          } else if (performance.now() - lastLine > 10_000 || r.step === r.steps) {
            lastLine = performance.now();
            const remaining = ((r.steps - r.step) * options.batch) / Math.max(1e-9, r.samplesPerSecond);
            process.stderr.write(`train step ${r.step}/${r.steps} ${payload.phase} ${payload.loss} lr ${payload.lr} ${payload.sps} samples/s ETA ${formatSeconds(remaining)}\n`);
          }
        },
        onEval: (e) => {
          const closed = e.successRate === undefined ? '' : `; closed-loop success ${(100 * e.successRate).toFixed(1)}%`;
          const dims = e.meanAbsErrorPerDim.map((v, d) => `${v.toFixed(2)}/${e.constantMeanAbsErrorPerDim[d].toFixed(2)}`).join(' ');
          const line = `eval step ${e.step}: action-token accuracy ${(100 * e.tokenAccuracy).toFixed(1)}%, action MAE ${e.meanAbsError.toFixed(4)} on ${e.samples} held-out steps (per dim x y z roll pitch yaw grip, model/constant: ${dims})${closed}`;
          if (bar) bar.update(e.step, {});
          process.stderr.write(`${process.stderr.isTTY ? '\n' : ''}${line}\n`);
        },
        shouldStop: () => stopRequested,
      });
    } finally {
      bar?.stop();
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  })();
  const summary = {
    out: result.out,
    step: result.step,
    resumed_from: result.resumedFrom ?? null,
    final_loss: result.finalLoss,
    samples_per_s: result.samplesPerSecond,
    train_seconds: result.trainSeconds,
    train_steps_in_demos: result.trainSteps,
    held_out_steps: result.heldOutSteps,
    eval: result.lastEval ? { step: result.lastEval.step, token_accuracy: result.lastEval.tokenAccuracy, action_mae: result.lastEval.meanAbsError, action_mae_per_dim: result.lastEval.meanAbsErrorPerDim, constant_mae_per_dim: result.lastEval.constantMeanAbsErrorPerDim, samples: result.lastEval.samples, success_rate: result.lastEval.successRate ?? null } : null,
    backend: backend.name,
  };
  if (values.json) console.log(JSON.stringify(summary));
  else {
    console.log(`trained to step ${result.step} (loss ${result.finalLoss.toFixed(4)}, ${result.samplesPerSecond.toFixed(1)} samples/s); checkpoint: ${result.out}`);
    if (result.lastEval) console.log(`held-out action-token accuracy ${(100 * result.lastEval.tokenAccuracy).toFixed(1)}% at step ${result.lastEval.step}`);
  }
  return 0;
}

function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : `${m}m${String(Math.floor(s % 60)).padStart(2, '0')}s`;
}
