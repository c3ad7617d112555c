// The bundled policy (models/tabletop-policy, trained with `sqap-vla train`): within the size budget, bf16, at least
// 64 visual tokens per image, and `act --instruction` runs it through its own tokenizer.json.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Checkpoint } from '../../src/io/checkpoint.js';

const DIR = fileURLToPath(new URL('../../models/tabletop-policy', import.meta.url));
const BIN = fileURLToPath(new URL('../../bin/sqap-vla.js', import.meta.url));
/** the budget for the bundled checkpoint */
const MAX_BYTES = 40e6;

test('the bundled policy is bf16, at most 40 MB, with at least 64 visual tokens per image', () => {
  assert.ok(statSync(`${DIR}/model.safetensors`).size <= MAX_BYTES);
  const checkpoint = Checkpoint.open(DIR);
  try {
    assert.deepEqual(Object.keys(checkpoint.dtypeCounts()), ['bf16']);
  } finally {
    checkpoint.close();
  }
  const config = JSON.parse(readFileSync(`${DIR}/config.json`, 'utf8'));
  for (const vit of config.timm_model_overrides) assert.ok((vit.img_size / vit.patch_size) ** 2 >= 64);
  assert.ok(config.norm_stats.sqap_sim.action.q01.length === 7);
});

test('act --instruction runs the bundled policy on a testbed frame', () => {
  const run = spawnSync(process.execPath, [BIN, 'act', '--model', DIR, '--image', `${DIR}/frame.png`, '--instruction', 'put the red cube on the plate', '--json'], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(run.status, 0, run.stderr);
  const result = JSON.parse(run.stdout.trimEnd().split('\n').at(-1)!);
  assert.equal(result.action.length, 7);
  assert.ok(result.action.every(Number.isFinite));
  assert.equal(result.unnorm_key, 'sqap_sim');
  const vocab = JSON.parse(readFileSync(`${DIR}/config.json`, 'utf8')).text_config.vocab_size;
  assert.ok(result.input_ids.every((id: number) => id < vocab));
});
