import assert from 'node:assert/strict';
import fs from 'node:fs';
import nodePath from 'node:path';
import { test } from 'node:test';
import { UserError } from '../../src/errors.js';
import { Checkpoint, INDEX_FILE_NAME } from '../../src/io/checkpoint.js';
import { readJsonFile } from '../../src/io/json.js';
import { SafetensorsFile, writeSafetensors } from '../../src/io/safetensors.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { bytesOf, countingIO, rawSafetensors, tempDir } from './helpers.js';

const TINY_LLAMA = nodePath.join(import.meta.dirname, '..', 'fixtures', 'tiny-llama');

function assertUserError(action: () => unknown, ...phrases: string[]): void {
  assert.throws(action, (error: unknown) => {
    assert.ok(error instanceof UserError, `expected a UserError, got ${String(error)}`);
    for (const phrase of phrases) assert.ok(error.message.includes(phrase), `message contains ${JSON.stringify(phrase)}: ${error.message}`);
    assert.ok(!error.message.includes('\n'), 'one line');
    return true;
  });
}

/** Split the tiny-llama fixture into 3 shards with an index, as transformers' save_pretrained lays them out. */
function writeShardedCopy(dir: string): void {
  const source = SafetensorsFile.open(nodePath.join(TINY_LLAMA, 'model.safetensors'));
  const shards: Array<Record<string, Tensor>> = [{}, {}, {}];
  const weightMap: Record<string, string> = {};
  const names = source.keys();
  names.forEach((name, i) => {
    const shard = Math.floor((i * 3) / names.length);
    shards[shard][name] = source.read(name);
    weightMap[name] = `model-0000${shard + 1}-of-00003.safetensors`;
  });
  source.close();
  shards.forEach((tensors, i) => writeSafetensors(nodePath.join(dir, `model-0000${i + 1}-of-00003.safetensors`), tensors, { format: 'pt' }));
  const index = { metadata: { total_size: 681728 }, weight_map: weightMap };
  fs.writeFileSync(nodePath.join(dir, INDEX_FILE_NAME), JSON.stringify(index, null, 2));
}

test('a sharded checkpoint reads identically to the single-file one, opening shards lazily', () => {
  const dir = tempDir();
  writeShardedCopy(dir);
  const single = Checkpoint.open(TINY_LLAMA);
  const io = countingIO();
  const sharded = Checkpoint.open(dir, io);
  try {
    assert.equal(io.bytesRead, 0, 'opening an indexed checkpoint reads only the index');
    assert.deepEqual(sharded.keys(), single.keys());
    assert.equal(sharded.keys().length, 30);
    sharded.info('model.norm.weight');
    assert.equal(io.reads, 2, 'info() opened exactly one shard: its length prefix and header');
    for (const name of single.keys()) {
      assert.ok(sharded.has(name));
      const [a, b] = [single.read(name), sharded.read(name)];
      assert.equal(b.dtype, a.dtype, name);
      assert.deepEqual(b.shape, a.shape, name);
      assert.deepEqual(bytesOf(b.data), bytesOf(a.data), name);
    }
    assert.equal(sharded.files().length, 3);
    assert.equal(single.files().length, 1);
    assert.equal(sharded.totalBytes(), single.totalBytes());
    assert.equal(single.totalBytes(), 681728); // every tensor byte of the fixture file (684776 - 8 - 3040 header)
    assert.deepEqual(sharded.dtypeCounts(), { f32: 30 });
    assert.deepEqual(single.dtypeCounts(), { f32: 30 });
    assertUserError(() => sharded.read('model.layers.9.mlp.up_proj.weight'), '"model.layers.9.mlp.up_proj.weight" not found in checkpoint', dir);
    assertUserError(() => single.info('nope'), '"nope" not found in checkpoint', TINY_LLAMA);
  } finally {
    sharded.close();
    single.close();
  }
});

test('a path to a single .safetensors file is a checkpoint too', () => {
  const checkpoint = Checkpoint.open(nodePath.join(TINY_LLAMA, 'model.safetensors'));
  assert.deepEqual(checkpoint.info('model.embed_tokens.weight').shape, [320, 64]);
  checkpoint.close();
});

test('missing directory, or a directory without safetensors, says what was expected', () => {
  const dir = tempDir();
  assertUserError(() => Checkpoint.open(nodePath.join(dir, 'absent')), 'checkpoint not found', nodePath.join(dir, 'absent'), 'model.safetensors');
  assertUserError(() => Checkpoint.open(dir), `no checkpoint in ${dir}: expected model.safetensors or model.safetensors.index.json`);
  fs.writeFileSync(nodePath.join(dir, 'pytorch_model.bin'), '');
  assertUserError(() => Checkpoint.open(dir), 'found pytorch_model.bin: convert it to safetensors first');
});

test('a malformed index, or one naming a missing shard, is a UserError naming the index', () => {
  const dir = tempDir();
  const index = nodePath.join(dir, INDEX_FILE_NAME);
  const shard = 'model-00001-of-00001.safetensors';
  fs.writeFileSync(nodePath.join(dir, shard), rawSafetensors({ w: { dtype: 'U8', shape: [1], data_offsets: [0, 1] } }, 1));
  const withIndex = (text: string) => {
    fs.writeFileSync(index, text);
    return () => Checkpoint.open(dir);
  };
  assertUserError(withIndex('{"weight_map": {'), `checkpoint index ${index} is not valid JSON`);
  assertUserError(withIndex('[]'), `checkpoint index ${index} has no "weight_map" object`);
  assertUserError(withIndex('{"weight_map": ["a"]}'), 'has no "weight_map" object');
  assertUserError(withIndex('{"weight_map": {"w": 3}}'), index, 'maps tensor "w" to 3, expected a shard file name');
  assertUserError(withIndex('{"weight_map": {"w": "../model.safetensors"}}'), index, 'maps tensor "w" to "../model.safetensors"');
  assertUserError(
    withIndex('{"weight_map": {"w": "model-00002-of-00002.safetensors"}}'),
    index,
    'names shard "model-00002-of-00002.safetensors" (for tensor "w")',
    `${nodePath.join(dir, 'model-00002-of-00002.safetensors')} is missing`,
  );
  // The index lists a tensor that its shard does not hold: found when that tensor is first used.
  const checkpoint = withIndex(JSON.stringify({ weight_map: { w: shard, ghost: shard } }))();
  assert.equal(checkpoint.read('w').data[0], 0);
  assertUserError(() => checkpoint.read('ghost'), index, `maps tensor "ghost" to ${nodePath.join(dir, shard)}, but that shard has no such tensor`);
  checkpoint.close();
  // A malformed shard is reported with the shard's own name.
  fs.writeFileSync(nodePath.join(dir, shard), new Uint8Array(3));
  const broken = withIndex(JSON.stringify({ weight_map: { w: shard } }))();
  assertUserError(() => broken.read('w'), nodePath.join(dir, shard), 'shorter than the 8-byte header length prefix');
  broken.close();
});

test('readJsonFile: missing file, directory and bad JSON name the file and its role', () => {
  const dir = tempDir();
  const config = nodePath.join(dir, 'config.json');
  assertUserError(() => readJsonFile(config, 'model config'), `model config not found: ${config} does not exist`);
  assertUserError(() => readJsonFile(dir, 'model config'), `model config ${dir} is a directory`);
  fs.writeFileSync(config, '{"hidden_size": 64,\n');
  assertUserError(() => readJsonFile(config, 'model config'), `model config ${config} is not valid JSON`);
  fs.writeFileSync(config, '{"hidden_size": 64}');
  assert.deepEqual(readJsonFile(config, 'model config'), { hidden_size: 64 });
});
