// loadPolicy's reuse of an already loaded model for a variant that differs only in pruning (bench runs
// `w4a8+had,w4a8+had+sqap@0.5` with one load): same weights object, same outputs as a fresh load, and no reuse
// across a different quantization.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadPolicy, weightsKey } from '../src/policy.js';
import { parseVariant } from '../src/variant.js';
import { getBackend } from '../src/tensor/backends/index.js';
import { fixturePath, ids, loadExpected } from './support/fixtures.js';

const backend = getBackend('auto');
const dir = fixturePath('tiny-openvla');
const expected = loadExpected('tiny-openvla');
const input = { pixelValues: expected.pixel_values.toF32(), inputIds: ids(expected.input_ids), robot: { eefPixel: [20, 48] as [number, number] } };

test('weightsKey ignores the pruning part and nothing else', () => {
  assert.equal(weightsKey(parseVariant('w4a8+had')), weightsKey(parseVariant('w4a8+had+sqap@0.5')));
  assert.notEqual(weightsKey(parseVariant('w4a8+had')), weightsKey(parseVariant('w4a8')));
  assert.notEqual(weightsKey(parseVariant('w4a8+had')), weightsKey(parseVariant('w4a4+had')));
  assert.notEqual(weightsKey(parseVariant('w4a8+had')), weightsKey(parseVariant('w4a8+had+gptq')));
});

test('a pruned variant reuses the weights of the same quantization and predicts what a fresh load predicts', () => {
  const first = loadPolicy(dir, 'w8a8+had', { backend });
  const reused = loadPolicy(dir, 'w8a8+had+fastv@0.5', { backend, reuse: first });
  assert.equal(reused.model, first.model);
  const fresh = loadPolicy(dir, 'w8a8+had+fastv@0.5', { backend });
  assert.notEqual(fresh.model, first.model);
  const a = reused.predict(input);
  const b = fresh.predict(input);
  assert.deepEqual(a.actionTokenIds, b.actionTokenIds);
  assert.deepEqual(a.keptVisualTokens, b.keptVisualTokens);
  assert.ok(a.keptVisualTokens && a.keptVisualTokens.length < 16, `kept ${a.keptVisualTokens?.length}`);
  const other = loadPolicy(dir, 'w4a8+had', { backend, reuse: first });
  assert.notEqual(other.model, first.model);
});
