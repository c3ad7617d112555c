// The `act`, `inspect` and `convert` commands end to end, through bin/sqap-vla.js as a user runs them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import nodePath from 'node:path';
import { fileURLToPath } from 'node:url';
import { ACTION_MAX_ABS } from '../tolerances.js';
import { fixturePath, maxAbsDiff } from '../support/fixtures.js';

const ROOT = nodePath.resolve(nodePath.dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = nodePath.join(ROOT, 'bin', 'sqap-vla.js');
const expected = JSON.parse(fs.readFileSync(fixturePath('tiny-openvla', 'expected.json'), 'utf8')) as { action_token_ids: number[]; action: number[]; input_ids: number[] };

function cli(args: string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: ROOT, encoding: 'utf8' });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** stderr lines of an error, without the one-time note a build without the native addon prints first */
function errorLines(stderr: string): string[] {
  return stderr.trim().split('\n').filter((line) => !line.startsWith('sqap-vla: the native addon is not built'));
}

function lastJson(stdout: string): Record<string, unknown> {
  const lines = stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]);
}

const ACT_ARGS = ['act', '--model', fixturePath('tiny-openvla'), '--image', fixturePath('tiny-openvla', 'image.png'), '--input-ids', expected.input_ids.join(','), '--json'];

for (const backend of ['ref', 'auto']) {
  test(`act --backend ${backend} prints the reference action for tiny-openvla`, () => {
    const r = cli([...ACT_ARGS, '--backend', backend]);
    assert.equal(r.status, 0, r.stderr);
    const out = lastJson(r.stdout) as { action_token_ids: number[]; action: number[] };
    assert.deepEqual(out.action_token_ids, expected.action_token_ids);
    assert.ok(maxAbsDiff(out.action, expected.action) <= ACTION_MAX_ABS, `action ${out.action}`);
  });
}

test('act on the bundled model gives the same action (it is the fixture checkpoint)', () => {
  const r = cli(['act', '--model', 'models/tiny-openvla', '--image', 'models/tiny-openvla/image.png', '--input-ids', expected.input_ids.join(','), '--json']);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(lastJson(r.stdout).action_token_ids, expected.action_token_ids);
});

test('act errors are one line and a non-zero exit', () => {
  const cases: [string[], RegExp][] = [
    [['act', '--image', 'x.png', '--input-ids', '1'], /needs --model/],
    [['act', '--model', '/nonexistent', '--image', 'x.png', '--input-ids', '1'], /not found/],
    [['act', '--model', fixturePath('tiny-openvla'), '--image', '/nonexistent.png', '--input-ids', '1'], /nonexistent\.png/],
    [[...ACT_ARGS, '--unnorm-key', 'bridge'], /unknown --unnorm-key 'bridge'.*tiny_dataset/],
    [[...ACT_ARGS, '--backend', 'gpu'], /unknown --backend/],
    [['act', '--model', fixturePath('tiny-openvla'), '--image', fixturePath('tiny-openvla', 'image.png'), '--input-ids', '1,a'], /comma-separated/],
    [['act', '--model', fixturePath('tiny-openvla'), '--image', fixturePath('tiny-openvla', 'image.png'), '--input-ids', '1,9999'], /outside this model's vocabulary of 576/],
    [['act', '--bogus'], /Unknown option/],
  ];
  for (const [args, pattern] of cases) {
    const r = cli(args);
    assert.notEqual(r.status, 0, `${args.join(' ')} should fail`);
    assert.match(r.stderr, pattern);
    assert.equal(errorLines(r.stderr).length, 1, `one line, got: ${r.stderr}`);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  }
});

test('act reads JPEG input, and a file that is no image is one clear error', async () => {
  const { default: jpeg } = await import('jpeg-js');
  const { readImageFile } = await import('../../src/io/image.js');
  const dir = fs.mkdtempSync(nodePath.join(os.tmpdir(), 'sqap-act-jpeg-'));
  try {
    const image = readImageFile(fixturePath('tiny-openvla', 'image.png'));
    const rgba = new Uint8Array(image.width * image.height * 4);
    for (let p = 0; p < image.width * image.height; p++) rgba.set([...image.data.subarray(3 * p, 3 * p + 3), 255], 4 * p);
    const jpegPath = nodePath.join(dir, 'frame.jpg');
    fs.writeFileSync(jpegPath, jpeg.encode({ width: image.width, height: image.height, data: rgba }, 95).data);
    const r = cli(['act', '--model', fixturePath('tiny-openvla'), '--image', jpegPath, '--input-ids', expected.input_ids.join(','), '--json']);
    assert.equal(r.status, 0, r.stderr);
    const out = lastJson(r.stdout) as { action_token_ids: number[]; action: number[] };
    assert.equal(out.action_token_ids.length, 7);
    assert.ok(out.action_token_ids.every((id) => id >= 512 - 256 && id < 512), `action tokens ${out.action_token_ids}`);
    const notImage = nodePath.join(dir, 'notes.png');
    fs.writeFileSync(notImage, 'not an image');
    const bad = cli(['act', '--model', fixturePath('tiny-openvla'), '--image', notImage, '--input-ids', '1']);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /notes\.png/);
    assert.equal(errorLines(bad.stderr).length, 1, bad.stderr);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('inspect reports the architecture given by the fixture config', () => {
  const r = cli(['inspect', '--model', fixturePath('tiny-openvla'), '--json']);
  assert.equal(r.status, 0, r.stderr);
  const out = lastJson(r.stdout) as { components: { name: string; parameters: number; details: Record<string, unknown> }[] };
  const byName = Object.fromEntries(out.components.map((c) => [c.name, c]));
  // text_config: hidden 64, 3 layers, 4 heads, 4 KV heads, intermediate 160, vocab 576
  assert.deepEqual(
    { ...byName['language model'].details },
    { layers: 3, hidden: 64, heads: 4, kv_heads: 4, head_dim: 16, intermediate: 160, vocab: 576, action_bins: 256, tied_lm_head: false },
  );
  // overrides: DINOv2 width 64 / 4 heads, SigLIP width 72 / 4 heads; the fixture's ViTs have 3 blocks of patch 14
  assert.equal(byName['vision backbone 1'].details.width, 64);
  assert.equal(byName['vision backbone 2'].details.width, 72);
  assert.equal(byName['vision backbone 1'].details.prefix_tokens, 5);
  assert.equal(byName['vision backbone 2'].details.patches, 16);
  // projector fc1 136 -> 544, fc2 544 -> 64, fc3 64 -> 64, with biases
  assert.equal(byName.projector.parameters, 136 * 544 + 544 + 544 * 64 + 64 + 64 * 64 + 64);
});

test('convert to sharded bf16 loads back and predicts like f32 weights rounded to bf16', () => {
  const dir = fs.mkdtempSync(nodePath.join(os.tmpdir(), 'sqap-convert-'));
  try {
    const bf16 = nodePath.join(dir, 'bf16');
    const roundTrip = nodePath.join(dir, 'f32-from-bf16');
    execFileSync(process.execPath, [BIN, 'convert', '--model', fixturePath('tiny-openvla'), '--out', bf16, '--dtype', 'bf16', '--max-shard-size', '500KB']);
    const index = JSON.parse(fs.readFileSync(nodePath.join(bf16, 'model.safetensors.index.json'), 'utf8'));
    assert.ok(new Set(Object.values(index.weight_map)).size >= 2, 'expected several shards');
    execFileSync(process.execPath, [BIN, 'convert', '--model', bf16, '--out', roundTrip, '--dtype', 'f32', '--max-shard-size', '1GB']);
    const inspect = lastJson(cli(['inspect', '--model', bf16, '--json']).stdout) as { dtypes: Record<string, number> };
    assert.deepEqual(Object.keys(inspect.dtypes), ['bf16']);
    // bf16 -> f32 is exact, so both checkpoints hold the same values: kernels reading bf16 directly must give the
    // same logits (up to float32 summation order) and therefore the same tokens.
    const base = ['--image', fixturePath('tiny-openvla', 'image.png'), '--input-ids', expected.input_ids.join(','), '--json', '--backend', 'ref'];
    const a = lastJson(cli(['act', '--model', bf16, ...base]).stdout);
    const b = lastJson(cli(['act', '--model', roundTrip, ...base]).stdout);
    assert.deepEqual(a.action_token_ids, b.action_token_ids);
    assert.deepEqual(a.action, b.action);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('act --instruction on a checkpoint with the Llama-2 vocabulary builds the prompt ids OpenVLA would', async () => {
  const { writeSyntheticOpenVla, TINY_SIZES } = await import('../../src/models/synthetic.js');
  const dir = fs.mkdtempSync(nodePath.join(os.tmpdir(), 'sqap-llama2-vocab-'));
  try {
    writeSyntheticOpenVla(dir, { ...TINY_SIZES, llmHidden: 32, llmIntermediate: 64, llmLayers: 1, vocabSize: 32064 }, { dtype: 'bf16' });
    const r = cli(['act', '--model', dir, '--image', fixturePath('tiny-openvla', 'image.png'), '--instruction', 'Pick up the black bowl between the plate and the ramekin and place it on the plate', '--json']);
    assert.equal(r.status, 0, r.stderr);
    const out = lastJson(r.stdout) as { input_ids: number[]; action_token_ids: number[]; action: number[] };
    // transformers LlamaTokenizerFast ids for this OpenVLA prompt with the trailing space token (recorded in a
    // LeRobot OpenVLA-OFT test; see test/models/tokenizer.test.ts)
    assert.deepEqual(out.input_ids, [
      1, 512, 29901, 1724, 3158, 881, 278, 19964, 2125, 304, 5839, 701, 278, 4628, 12580, 29880, 1546,
      278, 15284, 322, 278, 364, 420, 9089, 322, 2058, 372, 373, 278, 15284, 29973, 13, 3744, 29901, 29871,
    ]);
    assert.equal(out.action_token_ids.length, 7);
    assert.equal(out.action.length, 7);
    assert.ok(out.action.every(Number.isFinite));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
