// Token pruning inside the Llama prefill, checked against an oracle that runs the unpruned model with the dropped
// tokens' keys masked out of attention in layers >= K (written here from the fixtures' weights with plain loops),
// on the tiny-llama and tiny-openvla fixtures; keep-all equals base; kept tokens keep their original positions.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readJsonFile } from '../../src/io/json.js';
import { Llama, argmax, type TokenPruning } from '../../src/models/llama.js';
import { OpenVla } from '../../src/models/openvla.js';
import { refBackend } from '../../src/tensor/backends/ref.js';
import type { Backend } from '../../src/tensor/backend.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { fixturePath, fixtureWeights, ids, loadExpected, maxAbsDiff } from '../support/fixtures.js';
import { testBackends } from '../support/backends.js';
import { PRUNE_KEEP_ALL_MAX_ABS, PRUNE_ORACLE_MAX_ABS } from '../tolerances.js';

/**
 * The oracle: the full sequence through every layer, causal attention, except that in layers >= K no query may
 * attend to a key whose token is not in `visible`. ids/embeds of the whole sequence -> logits [T, V].
 */
function maskedOracle(llm: Llama, embeds: Tensor<'f32'>, pruneLayer: number, visible: Set<number>): Float32Array {
  const bk = refBackend;
  const { heads, kvHeads, headDim, rmsNormEps, ropeTheta } = llm.config;
  const T = embeds.shape[0];
  const positions = Int32Array.from({ length: T }, (_, i) => i);
  let x = embeds;
  llm.weights.layers.forEach((layer, i) => {
    const h = bk.rmsNorm(x, layer.inputNorm, rmsNormEps);
    const q = bk.rope(bk.linear(h, layer.q).reshape([T, heads, headDim]), positions, ropeTheta).data;
    const k = bk.rope(bk.linear(h, layer.k).reshape([T, kvHeads, headDim]), positions, ropeTheta).data;
    const v = bk.linear(h, layer.v).data;
    const out = new Float32Array(T * heads * headDim);
    for (let hq = 0; hq < heads; hq++) {
      const kh = Math.floor(hq / (heads / kvHeads));
      for (let t = 0; t < T; t++) {
        const keys = Array.from({ length: t + 1 }, (_, s) => s).filter((s) => i < pruneLayer || visible.has(s));
        const scores = keys.map((s) => {
          let dot = 0;
          for (let d = 0; d < headDim; d++) dot += q[(t * heads + hq) * headDim + d] * k[(s * kvHeads + kh) * headDim + d];
          return dot / Math.sqrt(headDim);
        });
        const max = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - max));
        const total = e.reduce((a, b) => a + b, 0);
        for (let d = 0; d < headDim; d++) {
          let acc = 0;
          keys.forEach((s, j) => (acc += (e[j] / total) * v[(s * kvHeads + kh) * headDim + d]));
          out[(t * heads + hq) * headDim + d] = acc;
        }
      }
    }
    x = bk.add(x, bk.linear(Tensor.f32([T, heads * headDim], out), layer.o));
    const m = bk.rmsNorm(x, layer.postAttentionNorm, rmsNormEps);
    x = bk.add(x, bk.linear(bk.siluMul(bk.linear(m, layer.gate), bk.linear(m, layer.up)), layer.down));
  });
  return bk.linear(bk.rmsNorm(x, llm.weights.norm, rmsNormEps), llm.weights.lmHead).data;
}

/** a pruning that keeps fixed rows (no scores needed) */
function fixedPruning(layer: number, rows: number[]): TokenPruning {
  return { layer, scores: {}, choose: () => Int32Array.from(rows) };
}

function tinyLlama(backend: Backend): { llm: Llama; embeds: Tensor<'f32'> } {
  const expected = loadExpected('tiny-llama');
  const config = readJsonFile(fixturePath('tiny-llama', 'config.json'), 'config') as Record<string, unknown>;
  const llm = Llama.load(fixtureWeights('tiny-llama'), config, backend);
  return { llm, embeds: llm.embed(Int32Array.from(ids(expected.input_ids))) };
}

function tinyOpenVlaPrefix(backend: Backend): { llm: Llama; embeds: Tensor<'f32'> } {
  const expected = loadExpected('tiny-openvla');
  const model = OpenVla.load(fixturePath('tiny-openvla'), backend);
  const projected = expected.projected_patches.asF32Tensor();
  const embeds = model.prefixEmbeds(ids(expected.input_ids), projected.reshape(projected.shape.slice(1)));
  return { llm: model.llm, embeds };
}

/** logits rows [rows] of a [T, V] matrix */
function pickRows(logits: Float32Array, vocab: number, rows: number[]): Float32Array {
  const out = new Float32Array(rows.length * vocab);
  rows.forEach((r, i) => out.set(logits.subarray(r * vocab, (r + 1) * vocab), i * vocab));
  return out;
}

// kept rows: BOS, every other "visual" row 1..12 (or of the 16 patches), and all text rows
const CASES = [
  { name: 'tiny-llama', load: tinyLlama, visual: [1, 13] },
  { name: 'tiny-openvla', load: tinyOpenVlaPrefix, visual: [1, 17] },
];

for (const { name, load, visual } of CASES) {
  for (const pruneLayer of [1, 2]) {
    test(`${name}: pruning at layer ${pruneLayer} matches the masked-key oracle (prefill and 4 decode steps)`, () => {
      const { llm, embeds } = load(refBackend);
      const T = embeds.shape[0];
      const vocab = llm.config.vocabSize;
      const kept = Array.from({ length: T }, (_, t) => t).filter((t) => t < visual[0] || t >= visual[1] || (t * 7) % 3 === 0);
      assert.ok(kept.length < T - 3);
      const cache = llm.newCache();
      const ours = llm.forward(embeds, cache, { logits: 'all', pruning: fixedPruning(pruneLayer, kept) });
      assert.deepEqual([...ours.pruned!.keptRows], kept);
      const visible = new Set(kept);
      const oracle = maskedOracle(llm, embeds, pruneLayer, visible);
      const prefillDiff = maxAbsDiff(ours.logits!.data, pickRows(oracle, vocab, kept));
      assert.ok(prefillDiff <= PRUNE_ORACLE_MAX_ABS, `prefill logits differ by ${prefillDiff}`);
      // the cache: layers < K hold every token, layers >= K only the kept ones (no phantom rows)
      for (let i = 0; i < llm.config.layers; i++) assert.equal(cache.layerLength(i), i < pruneLayer ? T : kept.length);
      // decode: each new token attends to the pruned cache; the oracle reruns the whole sequence with the same mask
      let sequence = embeds;
      let last = ours.logits!.rows(kept.length - 1, kept.length).data;
      for (let step = 0; step < 4; step++) {
        const next = llm.embed(Int32Array.of(argmax(last)));
        visible.add(sequence.shape[0]);
        sequence = Tensor.f32([sequence.shape[0] + 1, sequence.shape[1]], Float32Array.from([...sequence.data, ...next.data]));
        last = llm.forward(next, cache, { logits: 'last' }).logits!.data;
        const reference = maskedOracle(llm, sequence, pruneLayer, visible);
        const diff = maxAbsDiff(last, reference.subarray((sequence.shape[0] - 1) * vocab));
        assert.ok(diff <= PRUNE_ORACLE_MAX_ABS, `decode step ${step}: logits differ by ${diff}`);
      }
      for (let i = 0; i < llm.config.layers; i++) assert.equal(cache.layerLength(i), (i < pruneLayer ? T : kept.length) + 4);
    });
  }
}

for (const backend of await testBackends()) {
  describe(`pruning on the ${backend.name} backend`, () => {
    test('keeping every row equals the unpruned forward (logits, greedy tokens)', () => {
      for (const load of [tinyLlama, tinyOpenVlaPrefix]) {
        const { llm, embeds } = load(backend);
        const T = embeds.shape[0];
        const all = Array.from({ length: T }, (_, t) => t);
        const base = llm.forward(embeds, llm.newCache(), { logits: 'all' });
        // scores requested too, as a real criterion does: they must not disturb the computation
        const pruning: TokenPruning = { layer: 2, scores: { queryRows: Int32Array.of(T - 1), keyTotals: true }, choose: () => Int32Array.from(all) };
        const kept = llm.forward(embeds, llm.newCache(), { logits: 'all', pruning });
        assert.ok(maxAbsDiff(kept.logits!.data, base.logits!.data) <= PRUNE_KEEP_ALL_MAX_ABS);
        assert.deepEqual(llm.generateGreedy(embeds, 7, undefined, { pruning }).ids, llm.generateGreedy(embeds, 7).ids);
      }
    });

    test('kept tokens keep their original positions; decoding continues after the full prompt', () => {
      const { llm, embeds } = tinyLlama(backend);
      const T = embeds.shape[0];
      const seen: number[][] = [];
      const spy: Backend = { ...backend, rope: (x, positions, theta) => (seen.push([...positions]), backend.rope(x, positions, theta)) };
      const spyLlm = new Llama(llm.config, llm.weights, spy);
      const kept = [0, 3, 4, 9, 14, 15];
      spyLlm.generateGreedy(embeds, 2, undefined, { pruning: fixedPruning(2, kept) });
      // rope runs twice (q, k) per layer: layers 0, 1 on every position, layer 2 on the kept ones, then the decode step
      const full = Array.from({ length: T }, (_, t) => t);
      assert.deepEqual(seen.slice(0, 4), [full, full, full, full]);
      assert.deepEqual(seen.slice(4, 6), [kept, kept]);
      assert.deepEqual(seen.slice(6), Array(6).fill([T]));
    });
  });
}

test('the pruning layer must leave a layer on each side; chosen rows must be ascending and in range', () => {
  const { llm, embeds } = tinyLlama(refBackend);
  for (const layer of [0, 3]) assert.throws(() => llm.forward(embeds, llm.newCache(), { pruning: fixedPruning(layer, [0, 15]) }), /outside 1\.\.2/);
  for (const rows of [[3, 2, 15], [0, 16], []]) assert.throws(() => llm.forward(embeds, llm.newCache(), { pruning: fixedPruning(1, rows) }), /kept/);
});
