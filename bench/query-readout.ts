// Do the decoder rows that predict the action tokens hold the action? On held-out demonstration steps of a run
// trained with --query-aux-weight, the run's own (training-only) query readout, read from training/master.safetensors,
// is applied to those rows: its error on the scene state and on each action dimension (as numbers, in the
// normalized [-1, 1] units), beside the error of always answering the held-out median. If the readout predicts the
// action well while greedy decoding of the action tokens does not, the gap lies in lm_head and the binned
// cross-entropy; if the readout cannot either, the rows do not hold it (docs/training.md).
// Run: npx tsx bench/query-readout.ts --model RUN_DIR --demos DIR [--samples 96] [--holdout 4]
import { parseArgs } from 'node:util';
import nodePath from 'node:path';
import { Checkpoint } from '../src/io/checkpoint.js';
import { readJsonFile } from '../src/io/json.js';
import { parseOpenVlaConfig } from '../src/models/openvla.js';
import { parsePreprocessorConfig } from '../src/models/preprocess.js';
import { tokenizerFromJson } from '../src/models/tokenizer.js';
import { getBackend } from '../src/tensor/backends/index.js';
import { getGradBackend } from '../src/tensor/backends/grad-index.js';
import { Tensor } from '../src/tensor/tensor.js';
import { QUERY_PREFIX } from '../src/train/aux-query.js';
import { auxTargets, buildAuxSpec } from '../src/train/aux-vision.js';
import { DemoDataset } from '../src/train/dataset.js';
import { TrainableOpenVla, trainingStep } from '../src/train/model.js';
import { heldOutEpisodes, makeSample, type Sampler } from '../src/train/trainer.js';

const { values } = parseArgs({ options: { model: { type: 'string' }, demos: { type: 'string' }, samples: { type: 'string', default: '96' }, holdout: { type: 'string', default: '4' } } });
if (!values.model || !values.demos) throw new Error('usage: query-readout.ts --model RUN_DIR --demos DIR [--samples N] [--holdout K]');
const dir = values.model;
const model = TrainableOpenVla.load(dir, getBackend('native'), getGradBackend('native'));
const master = Checkpoint.open(nodePath.join(dir, 'training', 'master.safetensors'));
const w = master.read(`${QUERY_PREFIX}weight`).toF32();
const bias = master.read(`${QUERY_PREFIX}bias`).toF32();
master.close();
const everything = DemoDataset.open(values.demos);
const held = heldOutEpisodes(everything, Number(values.holdout));
const training = DemoDataset.open(values.demos, (task, seed) => !held.has(`${task}#${seed}`));
const heldOut = DemoDataset.open(values.demos, (task, seed) => held.has(`${task}#${seed}`));
// the run standardized its state targets over its training split; so does this
const spec = buildAuxSpec(training.episodes.map((e) => e.state));
const config = parseOpenVlaConfig(readJsonFile(nodePath.join(dir, 'config.json'), 'config'), 'config.json');
const tokenizer = tokenizerFromJson(readJsonFile(nodePath.join(dir, 'tokenizer.json'), 'tokenizer') as Record<string, unknown>, 'tokenizer.json');
const sampler: Sampler = {
  dataset: heldOut, tokenizer, realVocabSize: config.realVocabSize, eosId: tokenizer.eosId, promptCache: new Map(),
  preprocessor: parsePreprocessorConfig(readJsonFile(nodePath.join(dir, 'preprocessor_config.json'), 'preprocessor') as Record<string, unknown>),
};
const S = spec.names.length;
const K = S + 7;
const D = w.length / K;
if (!Number.isInteger(D)) throw new Error(`query head has ${w.length} weights, not a multiple of ${K} targets`);

const n = Math.min(Number(values.samples), heldOut.steps.length);
let stateSq = 0;
let stateCount = 0;
const predicted: number[][] = [];
const actual: number[][] = [];
for (let i = 0; i < n; i++) {
  const ref = heldOut.steps[Math.floor(((i + 0.5) * heldOut.steps.length) / n)];
  const { sample, normalized } = makeSample(sampler, ref);
  const state = auxTargets(spec, heldOut.state(ref), ref.step);
  let row: Float32Array | undefined;
  trainingStep(model, [sample], {
    rowLoss: (normed) => {
      row = normed.data.slice(0, D); // the row predicting the first action token (all action rows share the targets)
      return { loss: 0, dNormed: Tensor.zeros(normed.shape) };
    },
  });
  const y = new Float64Array(K);
  for (let k = 0; k < K; k++) {
    let s = bias[k];
    for (let d = 0; d < D; d++) s += w[k * D + d] * row![d];
    y[k] = s;
  }
  for (let k = 0; k < S; k++) if (state.mask[k]) {
    stateSq += (y[k] - state.values[k]) ** 2;
    stateCount++;
  }
  predicted.push(Array.from(y.subarray(S)));
  actual.push(normalized);
}
const dims = ['x', 'y', 'z', 'roll', 'pitch', 'yaw', 'grip'];
const median = (a: number[]) => [...a].sort((p, q) => p - q)[a.length >> 1];
console.log(`${dir}: query readout on ${n} held-out steps`);
console.log(`state: MSE ${(stateSq / stateCount).toFixed(3)} of the standardized variance (${S} targets)`);
console.log('action MAE per dim (normalized units):  dim  readout  constant');
dims.forEach((name, d) => {
  const m = median(actual.map((a) => a[d]));
  const readout = actual.reduce((s, a, i) => s + Math.abs(predicted[i][d] - a[d]), 0) / n;
  const constant = actual.reduce((s, a) => s + Math.abs(m - a[d]), 0) / n;
  console.log(`${name.padStart(44)}  ${readout.toFixed(3).padStart(7)}  ${constant.toFixed(3).padStart(8)}`);
});
