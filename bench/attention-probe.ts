// Where a policy's decoder looks: for demonstration steps of a recording, the attention of the prompt's last row (the
// row that predicts the first action token) in every layer and head, split into BOS, visual tokens and text tokens,
// with the largest weight on one patch, on how many different patches that largest weight fell, and the entropy of the row (nats; uniform over ~90 tokens is 4.5). A decoder
// whose rows sit at entropy ≈ 0 on a fixed token has saturated: its softmax passes almost no gradient, so no loss
// can teach it to read the image any more (docs/training.md, "Why the auxiliary losses"). Also the residual
// stream's RMS at that row and over the patches after each layer. Means over the sampled steps.
// Run: npx tsx bench/attention-probe.ts --model DIR --demos DIR [--samples 8] [--backend native|ref]
import { parseArgs } from 'node:util';
import nodePath from 'node:path';
import { readJsonFile } from '../src/io/json.js';
import { parsePreprocessorConfig, preprocessImage } from '../src/models/preprocess.js';
import { instructionInputIds } from '../src/models/prompt.js';
import { tokenizerFromJson } from '../src/models/tokenizer.js';
import { getBackend } from '../src/tensor/backends/index.js';
import { getGradBackend } from '../src/tensor/backends/grad-index.js';
import { Tensor } from '../src/tensor/tensor.js';
import { DemoDataset } from '../src/train/dataset.js';
import { TrainableOpenVla, visionForward } from '../src/train/model.js';

const { values } = parseArgs({ options: { model: { type: 'string' }, demos: { type: 'string' }, samples: { type: 'string', default: '8' }, backend: { type: 'string', default: 'native' } } });
if (!values.model || !values.demos) throw new Error('usage: attention-probe.ts --model DIR --demos DIR [--samples N]');
const dir = values.model;
const bk = getBackend(values.backend as 'native' | 'ref');
const model = TrainableOpenVla.load(dir, bk, getGradBackend(values.backend as 'native' | 'ref'));
const preprocessor = parsePreprocessorConfig(readJsonFile(nodePath.join(dir, 'preprocessor_config.json'), 'preprocessor config') as Record<string, unknown>);
const tokenizer = tokenizerFromJson(readJsonFile(nodePath.join(dir, 'tokenizer.json'), 'tokenizer') as Record<string, unknown>, 'tokenizer.json');
const dataset = DemoDataset.open(values.demos);
const c = model.llm.config;
const p = (name: string) => model.params.get(name);
const L = 'language_model.model.layers.';

type Stat = { bos: number; patches: number; text: number; maxPatch: number; entropy: number; argmaxes: Set<number> };
const stats: Stat[][] = Array.from({ length: c.layers }, () => Array.from({ length: c.heads }, () => ({ bos: 0, patches: 0, text: 0, maxPatch: 0, entropy: 0, argmaxes: new Set<number>() })));
const rms = Array.from({ length: c.layers }, () => ({ last: 0, patches: 0 }));
const n = Number(values.samples);

/** RMS of rows lo..hi-1 of x [T, D] */
function rowsRms(x: Float32Array, width: number, lo: number, hi: number): number {
  let s = 0;
  for (let i = lo * width; i < hi * width; i++) s += x[i] * x[i];
  return Math.sqrt(s / ((hi - lo) * width));
}

for (let sample = 0; sample < n; sample++) {
  const ref = dataset.steps[Math.floor(((sample + 0.5) * dataset.steps.length) / n)];
  const pixels = preprocessImage(dataset.frame(ref), preprocessor);
  const ids = instructionInputIds(tokenizer, dataset.instruction(ref));
  // the ViTs, concatenated per patch, then the projector, as TrainableOpenVla's training step computes them
  const joined = visionForward(model, [pixels]).features; // [P, C]
  const patches = joined.shape[0];
  let h = bk.linear(joined, p('projector.fc1.weight'), p('projector.fc1.bias'));
  h = bk.linear(bk.gelu(h), p('projector.fc2.weight'), p('projector.fc2.bias'));
  const projected = bk.linear(bk.gelu(h), p('projector.fc3.weight'), p('projector.fc3.bias'));
  const text = model.llm.embed(bk, Int32Array.from(ids));
  const D = c.hidden;
  const T = ids.length + patches;
  const embeds = new Float32Array(T * D);
  embeds.set(text.data.subarray(0, D), 0);
  embeds.set(projected.data, D);
  embeds.set(text.data.subarray(D), (1 + patches) * D);
  let x = Tensor.f32([T, D], embeds);
  const positions = Int32Array.from({ length: T }, (_, i) => i);
  for (let l = 0; l < c.layers; l++) {
    const w = (name: string) => p(`${L}${l}.${name}.weight`);
    const normed = bk.rmsNorm(x, w('input_layernorm'), c.rmsNormEps);
    const q = bk.rope(bk.linear(normed, w('self_attn.q_proj')).reshape([T, c.heads, c.headDim]), positions, c.ropeTheta);
    const k = bk.rope(bk.linear(normed, w('self_attn.k_proj')).reshape([T, c.kvHeads, c.headDim]), positions, c.ropeTheta);
    const v = bk.linear(normed, w('self_attn.v_proj')).reshape([T, c.kvHeads, c.headDim]);
    const attention = bk.attention(q, k, v, { causal: true, returnProbs: true });
    const probs = attention.probs!; // [H, T, S]
    for (let head = 0; head < c.heads; head++) {
      const row = probs.data.subarray((head * T + T - 1) * T, (head * T + T) * T);
      const s = stats[l][head];
      s.bos += row[0] / n;
      let maxPatch = 0;
      let argmax = 0;
      for (let j = 1; j <= patches; j++) {
        s.patches += row[j] / n;
        if (row[j] > maxPatch) [maxPatch, argmax] = [row[j], j - 1];
      }
      s.argmaxes.add(argmax);
      for (let j = patches + 1; j < T; j++) s.text += row[j] / n;
      s.maxPatch += maxPatch / n;
      for (let j = 0; j < T; j++) if (row[j] > 0) s.entropy -= (row[j] * Math.log(row[j])) / n;
    }
    const x2 = bk.add(x, bk.linear(attention.out.reshape([T, c.heads * c.headDim]), w('self_attn.o_proj')));
    const m = bk.rmsNorm(x2, w('post_attention_layernorm'), c.rmsNormEps);
    x = bk.add(x2, bk.linear(bk.siluMul(bk.linear(m, w('mlp.gate_proj')), bk.linear(m, w('mlp.up_proj'))), w('mlp.down_proj')));
    rms[l].last += rowsRms(x.data, D, T - 1, T) / n;
    rms[l].patches += rowsRms(x.data, D, 1, 1 + patches) / n;
  }
}

console.log(`${dir}: attention of the last prompt row, mean over ${n} steps of ${values.demos}`);
// distinct: over how many different patches the heaviest patch weight fell across the steps (1 with a high
// max-patch: the head stares at one fixed place; a head that follows the gripper or an object moves)
console.log('layer head   bos  patches  text  max-patch  distinct  entropy');
stats.forEach((heads, l) => {
  heads.forEach((s, head) => console.log(`${String(l).padStart(5)} ${String(head).padStart(4)}  ${s.bos.toFixed(2)}  ${s.patches.toFixed(2).padStart(7)}  ${s.text.toFixed(2)}  ${s.maxPatch.toFixed(3).padStart(9)}  ${String(s.argmaxes.size).padStart(8)}  ${s.entropy.toFixed(2).padStart(7)}`));
  console.log(`      residual RMS after layer ${l}: last row ${rms[l].last.toFixed(2)}, patches ${rms[l].patches.toFixed(2)}`);
});
