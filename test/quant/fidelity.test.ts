// Fidelity of quantized variants against base with compare's metrics (token agreement, teacher-forced logit cosine):
// `had` computes the base function, w8a8+had stays close, and on a checkpoint with activation outliers the
// rotations make w4a4 clearly closer to base — shown, not assumed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import nodePath from 'node:path';
import { loadPolicy } from '../../src/policy.js';
import { traceStep, variantFidelity, type CompareInput } from '../../src/cli/compare.js';
import { getBackend } from '../../src/tensor/backends/index.js';
import { HAD_MIN_LOGIT_COSINE, OUTLIER_HAD_MAX_ERROR_RATIO, W8A8_HAD_MIN_LOGIT_COSINE } from '../tolerances.js';
import { fixturePath, ids, loadExpected } from '../support/fixtures.js';
import { writeOutlierCheckpoint } from '../support/outlier.js';

const backend = getBackend('auto');
const expected = loadExpected('tiny-openvla');
const input: CompareInput = { pixelValues: expected.pixel_values.toF32(), inputIds: ids(expected.input_ids) };

function fidelity(dir: string, variants: string[]) {
  const reference = [traceStep(loadPolicy(dir, 'base', { backend }), input)];
  return Object.fromEntries(variants.map((v) => [v, variantFidelity(v, reference, [traceStep(loadPolicy(dir, v, { backend }), input, reference[0].tokens)])]));
}

test('bundled tiny checkpoint: had keeps every token (cosine >= 0.99999), w8a8+had cosine >= 0.995', () => {
  const r = fidelity(fixturePath('tiny-openvla'), ['had', 'w8a8+had']);
  assert.equal(r.had.token_agreement, 1);
  assert.ok(r.had.logit_cosine >= HAD_MIN_LOGIT_COSINE, `had cosine ${r.had.logit_cosine}`);
  assert.equal(r.had.action_max_abs_diff, 0);
  assert.ok(r['w8a8+had'].logit_cosine >= W8A8_HAD_MIN_LOGIT_COSINE, `w8a8+had cosine ${r['w8a8+had'].logit_cosine}`);
});

test('outlier checkpoint: w4a4+had clearly closer to base than w4a4; had still exact', () => {
  const dir = fs.mkdtempSync(nodePath.join(os.tmpdir(), 'sqap-outlier-'));
  try {
    writeOutlierCheckpoint(fixturePath('tiny-openvla'), dir);
    const r = fidelity(dir, ['had', 'w4a4', 'w4a4+had']);
    assert.equal(r.had.token_agreement, 1);
    assert.ok(r.had.logit_cosine >= HAD_MIN_LOGIT_COSINE, `had cosine ${r.had.logit_cosine}`);
    const plainError = 1 - r.w4a4.logit_cosine;
    const rotatedError = 1 - r['w4a4+had'].logit_cosine;
    assert.ok(rotatedError <= OUTLIER_HAD_MAX_ERROR_RATIO * plainError, `w4a4 error ${plainError.toFixed(4)}, w4a4+had error ${rotatedError.toFixed(4)}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('quantization composes with token pruning: w4a4+had+sqap@0.5 prunes on the integer attention scores', () => {
  const policy = loadPolicy(fixturePath('tiny-openvla'), 'w4a4+had+sqap@0.5', { backend });
  const result = policy.predict({ ...input, robot: { eefPixel: [20, 48] } });
  assert.equal(result.actionTokenIds.length, 7);
  assert.ok(result.pruning && result.keptVisualTokens && result.keptVisualTokens.length === 8, `kept ${result.keptVisualTokens?.length}`);
});
