// Every malformed file is a UserError naming the file and the problem; a seeded fuzz test checks that no
// mutation of a valid header can produce any other error.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import nodePath from 'node:path';
import { test } from 'node:test';
import { UserError } from '../../src/errors.js';
import { SafetensorsFile, writeSafetensors } from '../../src/io/safetensors.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { concatBytes, memoryIO, rawSafetensors, seededRandom, tempDir, u64le } from './helpers.js';

const dir = tempDir('sqap-malformed-');

/** Write `bytes` as `<label>.safetensors`, open it, and check the UserError's message. */
function expectUserError(label: string, bytes: Uint8Array, phrase: string): void {
  const file = nodePath.join(dir, `${label}.safetensors`);
  fs.writeFileSync(file, bytes);
  assert.throws(
    () => SafetensorsFile.open(file).close(),
    (error: unknown) => {
      assert.ok(error instanceof UserError, `${label}: expected a UserError, got ${String(error)}`);
      assert.ok(error.message.includes(file), `${label}: message names the file: ${error.message}`);
      assert.ok(error.message.includes(phrase), `${label}: message contains ${JSON.stringify(phrase)}: ${error.message}`);
      assert.ok(!error.message.includes('\n'), `${label}: message is one line`);
      return true;
    },
  );
}

const f32x2 = (offsets: unknown = [0, 8]) => ({ dtype: 'F32', shape: [2], data_offsets: offsets });

test('length prefix: short file, header past the end, absurd header length', () => {
  expectUserError('five-bytes', new Uint8Array(5), 'shorter than the 8-byte header length prefix');
  expectUserError('empty-file', new Uint8Array(0), 'the file is 0 bytes');
  expectUserError('header-past-end', rawSafetensors('{}', 0, 100n), 'header length 100 bytes runs past the end of the file (10 bytes');
  expectUserError('header-huge', rawSafetensors('{}', 0, 1n << 40n), 'exceeds the 100000000-byte limit');
  expectUserError('header-u64-max', rawSafetensors('{}', 0, (1n << 64n) - 1n), 'exceeds the 100000000-byte limit');
});

test('header text: not UTF-8, not JSON, not an object', () => {
  expectUserError('not-utf8', rawSafetensors(Uint8Array.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d])), 'the header is not valid UTF-8');
  expectUserError('truncated-json', rawSafetensors('{"a": {"dtype": "F32",'), 'the header is not valid JSON');
  expectUserError('json-array', rawSafetensors('[1, 2]'), 'the header is an array, not a JSON object');
  expectUserError('json-null', rawSafetensors('null'), 'the header is null, not a JSON object');
  expectUserError('json-string', rawSafetensors('"weights"'), 'the header is string "weights", not a JSON object');
  expectUserError('metadata-not-object', rawSafetensors({ __metadata__: ['pt'] }), '"__metadata__" is an array');
  expectUserError('metadata-not-string', rawSafetensors({ __metadata__: { step: 5 } }), '"__metadata__" value for "step" is number 5');
});

test('tensor entries: missing or mistyped fields, unknown dtype, bad dimensions', () => {
  expectUserError('entry-not-object', rawSafetensors({ w: 3 }), 'tensor "w" is number 3, expected {dtype, shape, data_offsets}');
  expectUserError('no-dtype', rawSafetensors({ w: { shape: [2], data_offsets: [0, 8] } }, 8), 'tensor "w" has no "dtype"');
  expectUserError('no-shape', rawSafetensors({ w: { dtype: 'F32', data_offsets: [0, 8] } }, 8), 'tensor "w" has no "shape"');
  expectUserError('no-offsets', rawSafetensors({ w: { dtype: 'F32', shape: [2] } }, 8), 'tensor "w" has no "data_offsets"');
  expectUserError('dtype-number', rawSafetensors({ w: { ...f32x2(), dtype: 7 } }, 8), 'tensor "w" has "dtype" number 7, expected a string');
  expectUserError('shape-string', rawSafetensors({ w: { ...f32x2(), shape: '2' } }, 8), 'tensor "w" has "shape" string "2", expected an array');
  expectUserError(
    'unknown-dtype',
    rawSafetensors({ w: { ...f32x2(), dtype: 'F8_E4M3' } }, 8),
    'tensor "w" has unsupported dtype "F8_E4M3" (supported: F32, F64, BF16, F16, I8, U8, I32, I64)',
  );
  expectUserError('negative-dim', rawSafetensors({ w: { ...f32x2(), shape: [-2] } }, 8), 'tensor "w" has invalid dimension -2');
  expectUserError('fractional-dim', rawSafetensors({ w: { ...f32x2(), shape: [1.5] } }, 8), 'tensor "w" has invalid dimension 1.5');
  expectUserError('string-dim', rawSafetensors({ w: { ...f32x2(), shape: ['2'] } }, 8), 'tensor "w" has invalid dimension "2"');
  expectUserError('huge-dim', rawSafetensors({ w: { ...f32x2(), shape: [1e300] } }, 8), 'tensor "w" has invalid dimension');
});

test('data offsets: malformed pairs, past the end, overlapping, wrong byte length', () => {
  const offsetsPhrase = 'expected [begin, end] integers with 0 <= begin <= end';
  expectUserError('offsets-reversed', rawSafetensors({ w: f32x2([8, 0]) }, 8), `tensor "w" has "data_offsets" [8,0], ${offsetsPhrase}`);
  expectUserError('offsets-one', rawSafetensors({ w: f32x2([8]) }, 8), `"data_offsets" [8], ${offsetsPhrase}`);
  expectUserError('offsets-strings', rawSafetensors({ w: f32x2(['0', '8']) }, 8), `"data_offsets" ["0","8"], ${offsetsPhrase}`);
  expectUserError('offsets-negative', rawSafetensors({ w: f32x2([-8, 0]) }, 8), `"data_offsets" [-8,0], ${offsetsPhrase}`);
  expectUserError('offsets-object', rawSafetensors({ w: f32x2({ begin: 0 }) }, 8), `"data_offsets" {"begin":0}, ${offsetsPhrase}`);
  expectUserError('offsets-past-end', rawSafetensors({ w: f32x2([0, 8]) }, 4), 'data_offsets [0, 8] past the end of the data section (4 bytes');
  expectUserError(
    'offsets-overlap',
    rawSafetensors({ a: f32x2([0, 8]), b: f32x2([4, 12]) }, 12),
    'tensors "a" [0, 8) and "b" [4, 12) overlap',
  );
  expectUserError(
    'byte-length',
    rawSafetensors({ w: { dtype: 'BF16', shape: [3, 2], data_offsets: [0, 8] } }, 8),
    'tensor "w" has 8 bytes of data but dtype BF16 and shape [3,2] need 12 bytes',
  );
  expectUserError(
    'byte-length-overflow',
    rawSafetensors({ w: { dtype: 'I64', shape: [2 ** 30, 2 ** 30], data_offsets: [0, 8] } }, 8),
    'need more than 2^53 bytes',
  );
});

test('valid edge cases: zero-length tensors may share an offset, gaps are allowed, names are data', () => {
  const file = nodePath.join(dir, 'edge.safetensors');
  // Hand-written text: an own "__proto__" key cannot be made with an object literal.
  const text =
    '{"__proto__":{"dtype":"U8","shape":[0],"data_offsets":[4,4]},' +
    '"toString":{"dtype":"U8","shape":[2,0],"data_offsets":[4,4]},' +
    '"line\\nbreak":{"dtype":"I8","shape":[],"data_offsets":[6,7]}}';
  fs.writeFileSync(file, rawSafetensors(text, 8));
  const reader = SafetensorsFile.open(file);
  assert.deepEqual(reader.keys(), ['__proto__', 'line\nbreak', 'toString']);
  assert.deepEqual(reader.read('toString').shape, [2, 0]);
  assert.equal(reader.read('line\nbreak').rank, 0);
  assert.equal(reader.has('constructor'), false);
  assert.throws(() => reader.read('constructor'), (e: unknown) => e instanceof UserError && e.message.includes('"constructor" not found in'));
  reader.close();
});

test('fuzz: seeded random mutations and truncations of a valid file give success or UserError, nothing else', { timeout: 20_000 }, () => {
  const seed = 20_251_127;
  const random = seededRandom(seed);
  const base = nodePath.join(dir, 'fuzz-base.safetensors');
  writeSafetensors(
    base,
    {
      'model.embed_tokens.weight': Tensor.zeros([4, 3], 'bf16'),
      'model.norm.weight': Tensor.f32([3], [1, 2, 3]),
      'lm_head.bias': Tensor.zeros([2, 1], 'i64'),
      scalar: Tensor.zeros([], 'f16'),
      empty: Tensor.zeros([0, 5], 'u8'),
    },
    { format: 'pt' },
  );
  const original = new Uint8Array(fs.readFileSync(base));
  const headerEnd = 8 + Number(new DataView(original.buffer).getBigUint64(0, true));
  // Bytes that steer the JSON into interesting places: digits, signs, structure, exponent, invalid UTF-8.
  const interesting = [...'0123456789-+.eE"{}[],: ', 'F', 'I'].map((c) => c.charCodeAt(0)).concat([0x00, 0x80, 0xc3, 0xff]);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)];
  const file = nodePath.join(dir, 'fuzz.safetensors'); // never written: the mutated bytes are served from memory
  let bytes: Uint8Array = original;
  const io = memoryIO(() => bytes);
  let opened = 0;
  let rejected = 0;
  const iterations = 10_000;
  for (let iteration = 0; iteration < iterations; iteration++) {
    bytes = original.slice();
    const kind = Math.floor(random() * 5);
    if (kind <= 1) {
      // 1-4 byte replacements anywhere in the length prefix or header
      for (let n = 1 + Math.floor(random() * 4); n > 0; n--) {
        bytes[Math.floor(random() * headerEnd)] = random() < 0.7 ? pick(interesting) : Math.floor(random() * 256);
      }
    } else if (kind === 2) {
      bytes = bytes.slice(0, Math.floor(random() * bytes.length)); // truncation
    } else if (kind === 3) {
      // a byte range deleted from the header, the length prefix left as it was or made consistent
      const start = 8 + Math.floor(random() * (headerEnd - 8));
      const end = Math.min(headerEnd, start + 1 + Math.floor(random() * 12));
      bytes = concatBytes(bytes.subarray(0, start), bytes.subarray(end));
      if (random() < 0.5) bytes.set(u64le(headerEnd - 8 - (end - start)), 0);
    } else {
      // a random length prefix, small or wildly large
      const length = random() < 0.5 ? BigInt(Math.floor(random() * (headerEnd + 64))) : BigInt(Math.floor(random() * 2 ** 53)) << 11n;
      bytes.set(u64le(length & ((1n << 64n) - 1n)), 0);
    }
    try {
      const reader = SafetensorsFile.open(file, io);
      try {
        for (const name of reader.keys()) reader.read(name);
      } finally {
        reader.close();
      }
      opened++;
    } catch (error) {
      if (!(error instanceof UserError)) {
        assert.fail(`seed ${seed} iteration ${iteration} (mutation kind ${kind}): expected UserError, got ${String((error as Error)?.stack ?? error)}`);
      }
      assert.ok(error.message.includes(file) && !error.message.includes('\n'), `iteration ${iteration}: ${error.message}`);
      rejected++;
    }
  }
  assert.equal(opened + rejected, iterations);
  assert.ok(opened > 0 && rejected > iterations / 2, `both outcomes occur (opened ${opened}, rejected ${rejected})`);
});
