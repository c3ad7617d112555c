// At least 1000 malformed POST /act bodies (fuzzed fields, truncated base64, huge shapes, wrong types, broken
// JSON, broken double-encoding, truncated PNGs that only fail in the model thread): each gets a 4xx with a one-line
// reason, and the server keeps answering valid requests with the right action throughout.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import fc from 'fast-check';
import type { RunningServer } from '../../src/serve/server.js';
import { decodeFloat64Reply, EXPECTED, IMAGE_PATH, jsonNumpyBody, post, startTestServer } from './helpers.js';

/** fuzz cases run (the issue asks for at least 1000) */
const FUZZ_RUNS = 1200;
const FUZZ_SEED = 20261129;

let server: RunningServer;
before(async () => {
  server = await startTestServer();
});
after(async () => {
  await server?.close();
});

// A small valid body (8x8 image) that each case breaks in one place; INF marks a number JSON cannot write.
const VALID_IMAGE = { __numpy__: Buffer.alloc(8 * 8 * 3, 7).toString('base64'), dtype: '|u1', shape: [8, 8, 3] };
const VALID = { image: VALID_IMAGE, instruction: 'pick up the cube', input_ids: EXPECTED.input_ids, unnorm_key: 'tiny_dataset' };
const INF = '"__INF__"';
const PNG = fs.readFileSync(IMAGE_PATH);

const notType = (...allowed: string[]) =>
  fc.oneof(fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.boolean(), fc.constant(null), fc.string(), fc.array(fc.integer(), { maxLength: 3 }), fc.dictionary(fc.string(), fc.integer(), { maxKeys: 2 })).filter(
    (v) => !allowed.includes(v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v),
  );

const labelled = <T>(label: string, arbitrary: fc.Arbitrary<T>) => arbitrary.map((value) => ({ label, value }));

/** image values that must be refused, by kind */
const badImage = fc.oneof(
  labelled('image of a wrong type', fc.oneof(notType('string', 'object'), fc.array(fc.integer(), { maxLength: 4 }))),
  labelled('image dtype', fc.oneof(fc.string({ maxLength: 6 }).filter((d) => !/^[|<>=]?u1$/.test(d)), fc.constantFrom('<f4', '<f8', '|i1', '|b1', '<u2', 'O', '<U8')).map((dtype) => ({ ...VALID_IMAGE, dtype }))),
  labelled('image shape not matching the bytes', fc.array(fc.integer({ min: 0, max: 100 }), { maxLength: 5 }).filter((s) => !(s.length === 3 && s[0] * s[1] * s[2] === 192) && !(s.length === 2 && s[0] * s[1] === 192)).map((shape) => ({ ...VALID_IMAGE, shape }))),
  labelled('image huge/negative/fractional shape', fc.array(fc.oneof(fc.integer({ min: 5000, max: 2 ** 31 }), fc.constant(2 ** 53), fc.integer({ min: -5, max: -1 }), fc.double({ min: 0.1, max: 9.9, noInteger: true })), { minLength: 1, maxLength: 4 }).map((shape) => ({ ...VALID_IMAGE, shape }))),
  labelled('image shape of a wrong type', fc.oneof(fc.string(), fc.integer(), fc.constant(null)).map((shape) => ({ ...VALID_IMAGE, shape }))),
  labelled('image truncated base64', fc.integer({ min: 0, max: VALID_IMAGE.__numpy__.length - 1 }).map((n) => ({ ...VALID_IMAGE, __numpy__: VALID_IMAGE.__numpy__.slice(0, n) }))),
  labelled('image corrupted base64', fc.tuple(fc.integer({ min: 0, max: VALID_IMAGE.__numpy__.length - 1 }), fc.constantFrom('*', '-', '_', ' ', '\n', '=', '.')).map(([i, c]) => ({ ...VALID_IMAGE, __numpy__: VALID_IMAGE.__numpy__.slice(0, i) + c + VALID_IMAGE.__numpy__.slice(i + 1) }))),
  labelled('image __numpy__ of a wrong type', notType('string').map((data) => ({ ...VALID_IMAGE, __numpy__: data }))),
  labelled('image json-numpy key missing', fc.constantFrom('__numpy__', 'dtype', 'shape').map((key) => Object.fromEntries(Object.entries(VALID_IMAGE).filter(([k]) => k !== key)))),
  labelled('image string not PNG/JPEG', fc.string({ maxLength: 40 })),
  // truncated PNGs: some only fail when the model thread decodes them
  labelled('image truncated PNG', fc.integer({ min: 1, max: PNG.length - 1 }).map((n) => PNG.subarray(0, n).toString('base64'))),
  labelled('image corrupt JPEG', fc.uint8Array({ minLength: 1, maxLength: 64 }).map((bytes) => Buffer.concat([Buffer.from([0xff, 0xd8, 0xff]), bytes]).toString('base64'))),
);

/** [field, bad value] pairs: everything else in the body stays valid */
const badField = fc.oneof(
  fc.oneof(notType('string'), fc.stringMatching(/^\s*$/), fc.constant('x'.repeat(2001))).map((v) => ['instruction', v] as const),
  fc.oneof(notType('string', 'null'), fc.string({ maxLength: 20 }).filter((k) => k !== 'tiny_dataset')).map((v) => ['unnorm_key', v] as const),
  fc
    .oneof(
      notType('array', 'object'),
      fc.constant([]),
      fc.array(fc.integer({ min: 576, max: 2 ** 40 }), { minLength: 1, maxLength: 3 }),
      fc.array(fc.integer({ min: -1000, max: -1 }), { minLength: 1, maxLength: 3 }),
      fc.array(fc.double({ noInteger: true, noDefaultInfinity: true, noNaN: true }), { minLength: 1, maxLength: 3 }),
      fc.array(fc.string(), { minLength: 1, maxLength: 3 }),
      fc.constant(Array(1025).fill(1)),
      fc.dictionary(fc.string(), fc.integer(), { maxKeys: 2 }),
    )
    .map((v) => ['input_ids', v] as const),
  fc.oneof(notType('array', 'object'), fc.array(fc.double({ noNaN: true, noDefaultInfinity: true }), { maxLength: 5 }).filter((a) => a.length !== 2), fc.constant([1, INF]), fc.constant(['1', 2])).map((v) => ['eef_pixel', v] as const),
  fc.oneof(fc.constant([0.1, 0.2, 0.3]), fc.constant([0.1, INF, 0.3]), notType('array', 'object')).map((v) => ['eef', v] as const),
  notType('boolean').map((v) => ['return_details', v] as const),
);

const malformedBody: fc.Arbitrary<{ label: string; text: string }> = fc.oneof(
  { weight: 8, arbitrary: badImage.map(({ label, value }) => ({ label, text: JSON.stringify({ ...VALID, image: value }) })) },
  { weight: 2, arbitrary: badImage.map(({ label, value }) => ({ label: `encoded ${label}`, text: JSON.stringify({ encoded: JSON.stringify({ ...VALID, image: value }) }) })) },
  { weight: 3, arbitrary: badField.map(([field, value]) => ({ label: `bad ${field}`, text: JSON.stringify({ ...VALID, [field]: value }).replaceAll(INF, '1e999') })) },
  { weight: 1, arbitrary: fc.constantFrom('image', 'instruction').map((field) => ({ label: `missing ${field}`, text: JSON.stringify({ ...VALID, [field]: undefined, input_ids: field === 'instruction' ? undefined : VALID.input_ids }) })) },
  fc.oneof(fc.integer(), fc.string(), fc.constant(null), fc.array(fc.integer())).map((value) => ({ label: 'not an object', text: JSON.stringify(value) })),
  fc.integer({ min: 0, max: JSON.stringify(VALID).length - 1 }).map((n) => ({ label: 'truncated JSON', text: JSON.stringify(VALID).slice(0, n) })),
  fc.string({ minLength: 1 }).filter((s) => { try { JSON.parse(s); return false; } catch { return true; } }).map((text) => ({ label: 'not JSON', text })),
  fc.constantFrom('{"image": NaN}', '{"image": Infinity}', '{"__proto__": {"x": 1}}', `{"image": ${JSON.stringify(VALID_IMAGE)}, "input_ids": [1, NaN]}`).map((text) => ({ label: 'non-JSON numbers', text })),
  // the double-encoded form: not a string, broken JSON inside, extra keys, a malformed inner body
  notType('string').map((encoded) => ({ label: 'encoded not a string', text: JSON.stringify({ encoded }) })),
  fc.integer({ min: 0, max: JSON.stringify(VALID).length - 1 }).map((n) => ({ label: 'encoded truncated', text: JSON.stringify({ encoded: JSON.stringify(VALID).slice(0, n) }) })),
  fc.string({ minLength: 1, maxLength: 10 }).filter((k) => k !== 'encoded').map((k) => ({ label: 'encoded with extra key', text: JSON.stringify({ encoded: JSON.stringify(VALID), [k]: 1 }) })),
  badField.map(([field, value]) => ({ label: `encoded bad ${field}`, text: JSON.stringify({ encoded: JSON.stringify({ ...VALID, [field]: value }).replaceAll(INF, '1e999') }) })),
);

test(`${FUZZ_RUNS} malformed /act bodies each get a 4xx with a one-line reason, and the server keeps answering`, async () => {
  const valid = jsonNumpyBody((await import('./helpers.js')).referenceImage());
  const byLabel: Record<string, number> = {};
  let runs = 0;
  await fc.assert(
    fc.asyncProperty(malformedBody, async ({ label, text }) => {
      runs++;
      byLabel[label] = (byLabel[label] ?? 0) + 1;
      const reply = await post(server.url, text);
      assert.ok(reply.status >= 400 && reply.status < 500, `${label}: ${reply.status} ${reply.text.slice(0, 200)} for ${text.slice(0, 300)}`);
      const error = (JSON.parse(reply.text) as { error: string }).error;
      assert.ok(typeof error === 'string' && error.length > 0 && !error.includes('\n'), reply.text);
      if (runs % 200 === 0) {
        const ok = await post(server.url, valid);
        assert.equal(ok.status, 200, ok.text);
        assert.deepEqual(decodeFloat64Reply(JSON.parse(ok.text)).length, 7);
      }
    }),
    { numRuns: FUZZ_RUNS, seed: FUZZ_SEED, endOnFailure: true },
  );
  assert.ok(runs >= 1000, `${runs} runs`);
  console.log(`fuzz: ${runs} malformed bodies, all 4xx; by kind: ${JSON.stringify(byLabel)}`);
  const ok = await post(server.url, valid);
  assert.equal(ok.status, 200, ok.text);
  assert.deepEqual(decodeFloat64Reply(JSON.parse(ok.text)).map((v) => v.toFixed(9)), EXPECTED.action.map((v) => v.toFixed(9)));
  const health = await fetch(`${server.url}/health`);
  assert.equal(health.status, 200);
  assert.equal(server.worker.restarts, 0);
});
