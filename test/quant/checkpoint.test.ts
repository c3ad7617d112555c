// Quantized checkpoints: quantize -> save -> load gives the same model as quantizing at load (same codes, scales,
// logits bit for bit), for each weight format, with rotations, group sizes and GPTQ; and one-line user errors
// (exit 2 from the CLI) for a damaged checkpoint or a bad request.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import nodePath from 'node:path';
import { fileURLToPath } from 'node:url';
import { Checkpoint } from '../../src/io/checkpoint.js';
import { readImageFile } from '../../src/io/image.js';
import { writeSafetensors } from '../../src/io/safetensors.js';
import { loadPolicy, type LoadedPolicy } from '../../src/policy.js';
import { saveQuantizedCheckpoint } from '../../src/quant/checkpoint.js';
import { UserError } from '../../src/errors.js';
import { getBackend } from '../../src/tensor/backends/index.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { heldWeightBytes, type QuantizedWeight } from '../../src/tensor/formats.js';
import { LLAMA_LINEARS } from '../../src/models/llama.js';
import { fixturePath, ids, loadExpected } from '../support/fixtures.js';

const ROOT = nodePath.resolve(nodePath.dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = nodePath.join(ROOT, 'bin', 'sqap-vla.js');
const MODEL = fixturePath('tiny-openvla');
const expected = loadExpected('tiny-openvla');
const inputIds = ids(expected.input_ids);
const pixels = expected.pixel_values.toF32();
const backend = getBackend('auto');

function tempDir(): string {
  return fs.mkdtempSync(nodePath.join(os.tmpdir(), 'sqap-quant-'));
}

function prefixLogits(policy: LoadedPolicy): Float32Array {
  const m = policy.model;
  return m.llm.forward(m.prefixEmbeds(inputIds, m.projector.forward(m.visionPatches(pixels))), m.llm.newCache(), { logits: 'all' }).logits!.data;
}

const calibration = ['pick up the cube', 'push the red block left', 'open the drawer'].map((instruction) => ({ image: readImageFile(fixturePath('tiny-openvla', 'image.png')), instruction }));

for (const [variant, groupSize] of [['w4a4+had', 0], ['w8a8', 0], ['w4a16', 16], ['w4a8+had', 32], ['had', 0], ['w4a4+had+gptq', 0]] as const) {
  test(`${variant}${groupSize ? ` group ${groupSize}` : ''}: quantize -> save -> load equals quantize at load`, () => {
    const dir = tempDir();
    try {
      const counts: [number, number][] = [];
      const atLoad = loadPolicy(MODEL, variant, { backend, groupSize, calibration, onProgress: (done, total) => counts.push([done, total]) });
      // the load progress counts each stored tensor once (quantize-at-load reads each RMSNorm weight for every linear
      // it folds into, and the count of reads passed 100%)
      assert.ok(counts.length > 0 && counts.every(([done, total]) => done <= total), `progress ${JSON.stringify(counts.at(-1))}`);
      saveQuantizedCheckpoint(atLoad.model, atLoad.quantization!, dir);
      const stored = loadPolicy(dir, 'base', { backend });
      assert.deepEqual(stored.quantization, atLoad.quantization);
      assert.deepEqual(prefixLogits(stored), prefixLogits(atLoad));
      const a = atLoad.predict({ pixelValues: pixels, inputIds });
      const b = stored.predict({ pixelValues: pixels, inputIds });
      assert.deepEqual(b.actionTokenIds, a.actionTokenIds);
      if (backend.name === 'native' && atLoad.quantization!.weightBits && atLoad.quantization!.activationBits < 16) {
        // one copy: after a step every integer linear holds only its kernel-layout copy (codes released), whether it
        // was read from the checkpoint or quantized at load
        for (const policy of [stored, atLoad]) {
          for (const layer of policy.model.llm.weights.layers) {
            for (const site of LLAMA_LINEARS) {
              const w = layer[site] as QuantizedWeight;
              assert.ok(w.packed, `${site} was not packed`);
              assert.equal(heldWeightBytes(w), w.packed.codes.byteLength + w.packed.scales.byteLength, `${site} holds more than its packed copy`);
            }
          }
        }
        // a packed model saves the same bytes (codes rebuilt from the packed copy)
        const again = tempDir();
        try {
          saveQuantizedCheckpoint(atLoad.model, atLoad.quantization!, again);
          for (const file of fs.readdirSync(dir)) assert.ok(fs.readFileSync(nodePath.join(again, file)).equals(fs.readFileSync(nodePath.join(dir, file))), file);
        } finally {
          fs.rmSync(again, { recursive: true, force: true });
        }
      }
      // the variant it was quantized to is accepted too; another one is refused
      assert.equal(loadPolicy(dir, variant, { backend }).quantization?.weightBits, atLoad.quantization?.weightBits);
      assert.throws(() => loadPolicy(dir, variant === 'w8a8' ? 'w4a4' : 'w8a8', { backend }), UserError);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
}

/** A saved w4a4+had checkpoint with `edit` applied to its tensors / config. */
function damaged(edit: (tensors: Record<string, Tensor>, config: Record<string, unknown>) => void): string {
  const dir = tempDir();
  const policy = loadPolicy(MODEL, 'w4a8+had', { backend, groupSize: 32 });
  saveQuantizedCheckpoint(policy.model, policy.quantization!, dir);
  const checkpoint = Checkpoint.open(dir);
  const tensors = Object.fromEntries(checkpoint.keys().map((k) => [k, checkpoint.read(k)]));
  checkpoint.close();
  const configPath = nodePath.join(dir, 'config.json');
  const config = JSON.parse(fs.readFileSync(configPath, 'utf8'));
  edit(tensors, config);
  const copy = Object.fromEntries(Object.entries(tensors).map(([k, t]) => [k, t]));
  fs.rmSync(nodePath.join(dir, 'model.safetensors'));
  writeSafetensors(nodePath.join(dir, 'model.safetensors'), copy, { format: 'pt' });
  fs.writeFileSync(configPath, JSON.stringify(config));
  return dir;
}

function cli(args: string[]): { status: number; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: ROOT, encoding: 'utf8' });
  return { status: r.status ?? -1, stderr: r.stderr };
}

function assertOneLineError(args: string[], pattern: RegExp): void {
  const r = cli(args);
  const lines = r.stderr.trim().split('\n').filter((l) => !l.startsWith('sqap-vla: the native addon is not built'));
  assert.equal(r.status, 2, r.stderr);
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], pattern);
}

const SCALE = 'language_model.model.layers.1.mlp.down_proj.weight_scale';
const ACT = ['--image', fixturePath('tiny-openvla', 'image.png'), '--input-ids', inputIds.join(','), '--backend', 'ref'];

test('errors: missing scale, mis-shaped scale, group size that does not divide K, unknown variant part', () => {
  const dirs = [
    damaged((t) => delete t[SCALE]),
    damaged((t) => (t[SCALE] = t[SCALE].reshape([t[SCALE].shape[0] * t[SCALE].shape[1], 1]))),
    damaged((_, c) => (((c.quantization_config as any).config_groups.group_0.weights.group_size = 48))),
  ];
  const oneLine = (pattern: RegExp) => (e: unknown) => e instanceof UserError && !e.message.includes('\n') && pattern.test(e.message);
  try {
    assert.throws(() => loadPolicy(dirs[0], 'base', { backend }), oneLine(/missing tensor '.*down_proj\.weight_scale'/));
    assert.throws(() => loadPolicy(dirs[1], 'base', { backend }), oneLine(/weight_scale' is f32 \[\d+,1\], expected f32 \[64,5\]/));
    assert.throws(() => loadPolicy(dirs[2], 'base', { backend }), oneLine(/group size 48 does not divide the 64 input channels/));
    assert.throws(() => loadPolicy(MODEL, 'w4a4', { backend, groupSize: 48 }), oneLine(/group size 48 does not divide/));
    assert.throws(() => loadPolicy(MODEL, 'w4a4+hadamard', { backend }), oneLine(/unknown part 'hadamard'/));
    // through the CLI: exit 2 and one line
    assertOneLineError(['act', '--model', dirs[1], ...ACT], /weight_scale' is f32/);
    assertOneLineError(['act', '--model', MODEL, ...ACT, '--variant', 'w4a4+hadamard'], /unknown part 'hadamard'/);
  } finally {
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  }
});

test('quantize and compare commands end to end (--json last line)', () => {
  const out = nodePath.join(tempDir(), 'q');
  try {
    const q = spawnSync(process.execPath, [BIN, 'quantize', '--model', MODEL, '--out', out, '--variant', 'w8a8+had', '--backend', 'ref', '--json'], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(q.status, 0, q.stderr);
    assert.equal(JSON.parse(q.stdout.trim().split('\n').pop()!).variant, 'w8a8+had');
    const c = spawnSync(process.execPath, [BIN, 'compare', '--model', MODEL, '--variants', 'had,w8a8+had', ...ACT, '--json'], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(c.status, 0, c.stderr);
    const report = JSON.parse(c.stdout.trim().split('\n').pop()!);
    assert.equal(report.reference, 'base');
    assert.deepEqual(report.variants.map((v: { name: string }) => v.name), ['had', 'w8a8+had']);
    for (const v of report.variants) for (const key of ['token_agreement', 'logit_cosine', 'action_max_abs_diff']) assert.equal(typeof v[key], 'number');
    assert.equal(report.variants[0].token_agreement, 1);
  } finally {
    fs.rmSync(nodePath.dirname(out), { recursive: true, force: true });
  }
});

test('--lm-head w8: lm_head in int8 per output channel, stored and at load alike, close to the float one', () => {
  const dir = tempDir();
  try {
    const float = loadPolicy(MODEL, 'w8a8+had', { backend });
    const atLoad = loadPolicy(MODEL, 'w8a8+had', { backend, lmHeadBits: 8 });
    const head = atLoad.model.llm.weights.lmHead as QuantizedWeight;
    assert.equal(head.format, 'i8');
    assert.equal(head.groupSize, head.shape[1], 'one scale per output channel');
    saveQuantizedCheckpoint(atLoad.model, atLoad.quantization!, dir);
    const checkpoint = Checkpoint.open(dir);
    try {
      assert.equal(checkpoint.info('language_model.lm_head.weight').dtype, 'i8');
      assert.deepEqual(checkpoint.info('language_model.lm_head.weight_scale').shape, [head.shape[0], 1]);
    } finally {
      checkpoint.close();
    }
    const config = JSON.parse(fs.readFileSync(nodePath.join(dir, 'config.json'), 'utf8')).quantization_config;
    assert.deepEqual(config.config_groups.group_1.targets, ['lm_head']);
    assert.ok(!config.ignore.includes('lm_head'));
    const stored = loadPolicy(dir, 'base', { backend });
    assert.equal(stored.quantization!.lmHeadBits, 8);
    assert.deepEqual(prefixLogits(stored), prefixLogits(atLoad));
    // int8 per channel is close to the float lm_head: logits cosine (all prompt rows) and the same action tokens
    const [a, b] = [prefixLogits(float), prefixLogits(atLoad)];
    let ab = 0, aa = 0, bb = 0;
    for (let i = 0; i < a.length; i++) {
      ab += a[i] * b[i];
      aa += a[i] * a[i];
      bb += b[i] * b[i];
    }
    assert.ok(ab / Math.sqrt(aa * bb) > 0.9999, `cosine ${ab / Math.sqrt(aa * bb)}`);
    assert.notDeepEqual(b, a, 'the lm_head really is quantized');
    assert.deepEqual(stored.predict({ pixelValues: pixels, inputIds }).actionTokenIds, float.predict({ pixelValues: pixels, inputIds }).actionTokenIds);
    // a damaged lm_head group is refused in one line
    const configPath = nodePath.join(dir, 'config.json');
    const json = JSON.parse(fs.readFileSync(configPath, 'utf8'));
    json.quantization_config.config_groups.group_1.weights.num_bits = 4;
    fs.writeFileSync(configPath, JSON.stringify(json));
    assert.throws(() => loadPolicy(dir, 'base', { backend }), (e: unknown) => e instanceof UserError && /group_1 \(lm_head\) must be 8-bit/.test(e.message));
    assertOneLineError(['quantize', '--model', MODEL, '--out', nodePath.join(dir, 'x'), '--variant', 'w4a8', '--lm-head', 'w4'], /--lm-head must be 'stored' or 'w8'/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
