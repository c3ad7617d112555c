// The pruning scores an attention call can return (AttentionOptions.scores): they must be exactly the rows and
// column sums of the full probabilities the same call computes, and native must agree with ref.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AttentionScores } from '../../src/tensor/backend.js';
import { refBackend } from '../../src/tensor/backends/ref.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { mulberry32 } from '../../src/random.js';
import { testBackends } from '../support/backends.js';
import { SCORES_PROB, SCORES_TOTAL_PER_TERM } from '../tolerances.js';

function random(shape: number[], seed: number): Tensor<'f32'> {
  const next = mulberry32(seed);
  return Tensor.f32(shape, Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => 2 * next() - 1));
}

const SHAPES = [
  { T: 13, S: 13, Hq: 4, Hkv: 2, Dh: 8 },
  { T: 1, S: 9, Hq: 6, Hkv: 3, Dh: 16 },
  { T: 37, S: 40, Hq: 8, Hkv: 8, Dh: 24 },
];

test('ref: query rows are the full probabilities of those rows, key totals their sums over heads and queries', () => {
  for (const { T, S, Hq, Hkv, Dh } of SHAPES) {
    const q = random([T, Hq, Dh], 1), k = random([S, Hkv, Dh], 2), v = random([S, Hkv, Dh], 3);
    const rows = T > 2 ? Int32Array.of(0, T - 2, T - 1) : Int32Array.of(T - 1);
    const r = refBackend.attention(q, k, v, { causal: true, returnProbs: true, scores: { queryRows: rows, keyTotals: true } });
    const probs = r.probs!.data;
    const qp = r.scores!.queryProbs!;
    assert.deepEqual(qp.shape, [Hq, rows.length, S]);
    for (let h = 0; h < Hq; h++) rows.forEach((t, i) => {
      for (let s = 0; s < S; s++) assert.equal(qp.data[(h * rows.length + i) * S + s], probs[(h * T + t) * S + s]);
    });
    for (let s = 0; s < S; s++) {
      let sum = 0;
      for (let h = 0; h < Hq; h++) for (let t = 0; t < T; t++) sum += probs[(h * T + t) * S + s];
      assert.ok(Math.abs(sum - r.scores!.keyTotals![s]) <= T * Hq * SCORES_TOTAL_PER_TERM, `key ${s}: ${sum} vs ${r.scores!.keyTotals![s]}`);
    }
    // each query's row sums to 1 over its heads, so all totals sum to Hq·T
    const total = r.scores!.keyTotals!.reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(total - Hq * T) < 1e-3);
  }
});

test('scores do not change the attention output', async () => {
  for (const backend of await testBackends()) {
    const { T, S, Hq, Hkv, Dh } = SHAPES[0];
    const q = random([T, Hq, Dh], 4), k = random([S, Hkv, Dh], 5), v = random([S, Hkv, Dh], 6);
    const plain = backend.attention(q, k, v, { causal: true });
    const scored = backend.attention(q, k, v, { causal: true, scores: { queryRows: Int32Array.of(T - 1), keyTotals: true } });
    assert.deepEqual(scored.out.data, plain.out.data, backend.name);
    assert.equal(plain.scores, undefined);
  }
});

test('native scores agree with ref', async () => {
  const backends = await testBackends();
  const native = backends.find((b) => b.name === 'native');
  if (!native) return; // build without the addon: nothing to compare
  for (const { T, S, Hq, Hkv, Dh } of SHAPES) {
    const q = random([T, Hq, Dh], 7), k = random([S, Hkv, Dh], 8), v = random([S, Hkv, Dh], 9);
    const scores = { queryRows: Int32Array.of(T - 1), keyTotals: true };
    const a = refBackend.attention(q, k, v, { causal: true, scores }).scores!;
    const b = native.attention(q, k, v, { causal: true, scores }).scores!;
    a.queryProbs!.data.forEach((x, i) => {
      assert.ok(Math.abs(x - b.queryProbs!.data[i]) <= SCORES_PROB.atol + SCORES_PROB.rtol * Math.abs(x), `queryProbs[${i}] ${x} vs ${b.queryProbs!.data[i]}`);
    });
    a.keyTotals!.forEach((x, i) => {
      assert.ok(Math.abs(x - b.keyTotals![i]) <= T * Hq * SCORES_TOTAL_PER_TERM, `keyTotals[${i}] ${x} vs ${b.keyTotals![i]}`);
    });
    // only what was asked for comes back
    const rowsOnly: AttentionScores = native.attention(q, k, v, { causal: true, scores: { queryRows: Int32Array.of(0) } }).scores!;
    assert.equal(rowsOnly.keyTotals, undefined);
    assert.deepEqual(rowsOnly.queryProbs!.shape, [Hq, 1, S]);
  }
});
