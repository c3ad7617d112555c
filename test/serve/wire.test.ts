// json-numpy's wire format and the /act body parser. Reference encodings come from the format's definition
// (base64 of little-endian IEEE-754 / raw uint8 bytes) and, where python3 exists, from Python's own base64/struct.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { parseActBody, type ModelFacts } from '../../src/serve/act-request.js';
import { RequestError } from '../../src/serve/errors.js';
import { decodeNdArray, encodeFloat64, ndArrayNumbers, pythonJsonDumps } from '../../src/serve/ndarray.js';

const LIMITS = { maxBytes: 1 << 20, maxRank: 3 };
const FACTS: ModelFacts = { vocabSize: 576, unnormKeys: ['tiny_dataset'], hasTokenizer: false };
const noSchema = () => undefined;
const zeros = (h: number, w: number) => ({ __numpy__: Buffer.alloc(h * w * 3).toString('base64'), dtype: '|u1', shape: [h, w, 3] });

test('encodeFloat64 writes numpy float64 little-endian bytes: 1.0 is 00..f03f, -2.5 is 00..04c0', () => {
  assert.deepEqual(encodeFloat64([1, -2.5]), { __numpy__: 'AAAAAAAA8D8AAAAAAAAEwA==', dtype: '<f8', shape: [2] });
});

test('pythonJsonDumps matches json.dumps default separators, as json_numpy.dumps writes them', (t) => {
  const value = encodeFloat64([0.85, 0, -0.1]);
  const python = spawnSync('python3', ['-c', 'import json,sys; print(json.dumps(json.loads(sys.argv[1])))', JSON.stringify(value)], { encoding: 'utf8' });
  if (python.error) return t.skip('python3 is not installed');
  assert.equal(pythonJsonDumps(value), python.stdout.trim());
});

test('decodeNdArray reads the dtypes a numpy client sends (|u1, <f8, >f4, <i8, <f2)', () => {
  assert.deepEqual(ndArrayNumbers(decodeNdArray({ __numpy__: 'AQL/', dtype: '|u1', shape: [3] }, 'a', LIMITS)), [1, 2, 255]);
  assert.deepEqual(ndArrayNumbers(decodeNdArray({ __numpy__: 'AAAAAAAA8D8AAAAAAAAEwA==', dtype: '<f8', shape: [2] }, 'a', LIMITS)), [1, -2.5]);
  assert.deepEqual(ndArrayNumbers(decodeNdArray({ __numpy__: Buffer.from([0x3f, 0xc0, 0, 0]).toString('base64'), dtype: '>f4', shape: [1] }, 'a', LIMITS)), [1.5]);
  assert.deepEqual(ndArrayNumbers(decodeNdArray({ __numpy__: Buffer.from([0xfe, 255, 255, 255, 255, 255, 255, 255]).toString('base64'), dtype: '<i8', shape: [] }, 'a', LIMITS)), [-2]);
  assert.deepEqual(ndArrayNumbers(decodeNdArray({ __numpy__: Buffer.from([0x00, 0x3c]).toString('base64'), dtype: '<f2', shape: [1] }, 'a', LIMITS)), [1]);
});

test('decodeNdArray refuses bad base64, byte counts that do not match the shape, and huge shapes before decoding', () => {
  const cases: [unknown, RegExp][] = [
    [{ __numpy__: 'AAAA*AAA', dtype: '|u1', shape: [6] }, /not valid base64/],
    [{ __numpy__: 'AAAAAA', dtype: '|u1', shape: [4] }, /truncated base64/],
    [{ __numpy__: 'AAAA', dtype: '|u1', shape: [4] }, /holds 3 bytes .* need 4/],
    [{ __numpy__: 'AAAA', dtype: '|u1', shape: [1e6, 1e6, 3] }, /larger than the 1048576-byte limit/],
    [{ __numpy__: 'AAAA', dtype: '|u1', shape: [2 ** 53, 2] }, /non-negative integers/],
    [{ __numpy__: 'AAAA', dtype: '|u1', shape: [-3] }, /non-negative integers/],
    [{ __numpy__: 'AAAA', dtype: '|u1', shape: [1, 1, 1, 3] }, /at most 3 sizes/],
    [{ __numpy__: 'AAAA', dtype: 'O', shape: [3] }, /not a numeric numpy dtype/],
    [{ __numpy__: 'AAAA', dtype: '<u3', shape: [1] }, /not a numeric numpy dtype/],
    [{ __numpy__: 5, dtype: '|u1', shape: [3] }, /base64 string/],
    [{ dtype: '|u1', shape: [3] }, /json-numpy array/],
  ];
  for (const [value, pattern] of cases) assert.throws(() => decodeNdArray(value, 'a', LIMITS), (e: Error) => e instanceof RequestError && pattern.test(e.message), JSON.stringify(value));
});

test('parseActBody: the plain form, the double-encoded form and a base64 PNG image', () => {
  const plain = { image: zeros(2, 3), instruction: 'pick', unnorm_key: 'tiny_dataset', input_ids: [1, 2] };
  const parsed = parseActBody(plain, noSchema, FACTS);
  assert.equal(parsed.encoded, false);
  assert.deepEqual(parsed.job.image, { kind: 'rgb', width: 3, height: 2, data: new Uint8Array(18) });
  assert.deepEqual(parsed.job.inputIds, [1, 2]);
  const encoded = parseActBody({ encoded: JSON.stringify(plain) }, noSchema, FACTS);
  assert.equal(encoded.encoded, true);
  assert.deepEqual(encoded.job, parsed.job);
  // a 1x1 PNG: magic, IHDR(width 1, height 1)
  const png = Buffer.from('89504e470d0a1a0a0000000d49484452000000010000000108020000009077533800000000000000', 'hex');
  const withPng = parseActBody({ image: png.toString('base64'), input_ids: [1] }, noSchema, FACTS);
  assert.equal(withPng.job.image.kind, 'encoded');
});

test('parseActBody: [H, W, 4] drops alpha and [H, W] replicates grey, as Image.fromarray(a).convert("RGB")', () => {
  const rgba = { __numpy__: Buffer.from([1, 2, 3, 4, 5, 6, 7, 8]).toString('base64'), dtype: '|u1', shape: [1, 2, 4] };
  const grey = { __numpy__: Buffer.from([9, 10]).toString('base64'), dtype: '|u1', shape: [2, 1] };
  const image = (value: unknown) => parseActBody({ image: value, input_ids: [1] }, noSchema, FACTS).job.image as { data: Uint8Array };
  assert.deepEqual([...image(rgba).data], [1, 2, 3, 5, 6, 7]);
  assert.deepEqual([...image(grey).data], [9, 9, 9, 10, 10, 10]);
});

test('parseActBody: the robot context is validated and passed on', () => {
  const camera = { width: 64, height: 80, intrinsics: [50, 0, 32, 0, 50, 40, 0, 0, 1], worldToCamera: [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 2, 0, 0, 0, 1] };
  assert.deepEqual(parseActBody({ image: zeros(1, 1), input_ids: [1], eef_pixel: [3.5, 4] }, noSchema, FACTS).job.robot, { eefPixel: [3.5, 4] });
  const robot = parseActBody({ image: zeros(1, 1), input_ids: [1], eef: encodeFloat64([0.1, 0.2, 0.3]), camera }, noSchema, FACTS).job.robot;
  assert.deepEqual(robot, { eef: [0.1, 0.2, 0.3], camera: { name: 'request', ...camera } });
});

test('parseActBody: every malformed request is a RequestError with its reason', () => {
  const ok = { image: zeros(2, 2), instruction: 'pick', input_ids: [1, 2] };
  const cases: [unknown, RegExp][] = [
    [[1, 2], /JSON object/],
    [{ instruction: 'x' }, /image is missing/],
    [{ ...ok, instruction: '   ', input_ids: undefined }, /instruction is empty/],
    [{ image: zeros(2, 2) }, /instruction is missing/],
    [{ image: zeros(2, 2), instruction: 'pick' }, /no tokenizer.*input_ids/],
    [{ ...ok, input_ids: [1, 576] }, /input_ids\[1\] = 576 is outside this model's vocabulary of 576/],
    [{ ...ok, input_ids: [] }, /non-empty list/],
    [{ ...ok, input_ids: [1.5] }, /non-negative integer/],
    [{ ...ok, unnorm_key: 'bridge' }, /unknown unnorm_key 'bridge'; the model has: tiny_dataset/],
    [{ ...ok, image: { ...zeros(2, 2), dtype: '<f4' } }, /image\.dtype must be \|u1/],
    [{ ...ok, image: { __numpy__: 'AAA=', dtype: '|u1', shape: [1, 1, 2] } }, /image\.shape must be \[H, W, 3\]/],
    [{ ...ok, image: { __numpy__: '', dtype: '|u1', shape: [0, 5, 3] } }, /has no pixels/],
    [{ ...ok, image: { __numpy__: 'AAAA', dtype: '|u1', shape: [5000, 5000, 3] } }, /larger than/],
    [{ ...ok, image: 'aGVsbG8gd29ybGQh' }, /neither a json-numpy array nor base64 of a PNG or JPEG/],
    [{ ...ok, image: 'iVBORw0KGgo=' }, /truncated PNG/],
    [{ ...ok, image: '/9j/4AAQ' }, /truncated or corrupt JPEG/],
    [{ ...ok, eef_pixel: [1, Infinity] }, /eef_pixel\[1\] must be a finite number/],
    [{ ...ok, eef_pixel: encodeFloat64([1, NaN]) }, /eef_pixel\[1\] must be a finite number/],
    [{ ...ok, eef: [1, 2, 3] }, /eef and camera go together/],
    [{ ...ok, eef_pixel: [1, 2], eef: [1, 2, 3] }, /not both/],
    [{ ...ok, return_details: 'yes' }, /return_details must be true or false/],
    [{ encoded: '{"image": ' }, /encoded is not valid JSON/],
    [{ encoded: JSON.stringify(ok), instruction: 'x' }, /only the "encoded" key/],
    [{ encoded: 7 }, /encoded must be a string/],
  ];
  for (const [body, pattern] of cases) {
    assert.throws(() => parseActBody(body, noSchema, FACTS), (e: Error) => e instanceof RequestError && pattern.test(e.message) && !e.message.includes('\n'), JSON.stringify(body).slice(0, 200));
  }
});
