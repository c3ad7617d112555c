// Training diagnostic, not a speed benchmark: a checkpoint's own answers (policy.predict, the path `act` and
// `sim run` take) on recorded frames of training episodes and of the held-out episodes (train --holdout: the K
// highest seeds of each task), per action dimension: mean |predicted - label| in the normalized [-1, 1] space,
// against always answering the label median. Tells underfitting (training error at the constant too) from
// overfitting (training error low, held-out at or above the constant), which the trainer's held-out evaluation alone
// cannot.
// Run: npx tsx bench/fit-check.ts --model RUN_DIR --demos DIR [--samples 64] [--holdout 4]
import { parseArgs } from 'node:util';
import { parseVariant } from '../src/variant.js';
import { loadPolicy } from '../src/policy.js';
import { instructionInputIds } from '../src/models/prompt.js';
import { loadTokenizer } from '../src/models/tokenizer.js';
import { openDemonstrations } from '../src/sim/record.js';
import { getBackend } from '../src/tensor/backends/index.js';
import { normalizeAction } from '../src/train/action-targets.js';
import type { ActionStats } from '../src/models/action-tokenizer.js';

const { values } = parseArgs({ options: { model: { type: 'string' }, demos: { type: 'string' }, samples: { type: 'string', default: '64' }, holdout: { type: 'string', default: '4' } } });
if (!values.model || !values.demos) throw new Error('usage: fit-check.ts --model RUN_DIR --demos DIR [--samples 64] [--holdout 4]');
const policy = loadPolicy(values.model, parseVariant('base'), { backend: getBackend('auto') });
const tokenizer = loadTokenizer(values.model);
const stats = Object.values(policy.model.config.normStats)[0] as unknown as { action: ActionStats };
const demos = openDemonstrations(values.demos);
const successful = demos.meta.episodes.map((e, index) => ({ ...e, index })).filter((e) => e.success);
// held out: the K highest seeds of every task, as train --holdout picks them
const heldOut = new Set<number>();
for (const task of new Set(successful.map((e) => e.task_id))) {
  successful.filter((e) => e.task_id === task).sort((a, b) => b.seed - a.seed).slice(0, Number(values.holdout)).forEach((e) => heldOut.add(e.index));
}
const samples = Number(values.samples);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
for (const [name, pool] of [['training', successful.filter((e) => !heldOut.has(e.index))], ['held-out', successful.filter((e) => heldOut.has(e.index))]] as const) {
  const predicted: number[][] = [];
  const labels: number[][] = [];
  for (let i = 0; i < samples; i++) {
    const entry = pool[Math.floor((i * pool.length) / samples) % pool.length];
    const episode = demos.episode(entry.index);
    const t = Math.floor(((i * 7919) % 1000) / 1000 * episode.steps);
    const label = normalizeAction((episode.expertActions ?? episode.actions)[t], stats.action);
    const result = policy.predict({ image: episode.frames[t], inputIds: instructionInputIds(tokenizer, episode.instruction) });
    predicted.push(result.normalizedAction);
    labels.push(label);
  }
  const dims = ['x', 'y', 'z', 'roll', 'pitch', 'yaw', 'grip'];
  const model = dims.map((_, d) => predicted.reduce((s, p, i) => s + Math.abs(p[d] - labels[i][d]), 0) / samples);
  const constant = dims.map((_, d) => { const m = median(labels.map((l) => l[d])); return labels.reduce((s, l) => s + Math.abs(l[d] - m), 0) / samples; });
  console.log(`${name} (${samples} frames of ${pool.length} episodes): model / constant MAE`);
  console.log('  ' + dims.map((d, i) => `${d} ${model[i].toFixed(3)}/${constant[i].toFixed(3)}`).join('  '));
}
