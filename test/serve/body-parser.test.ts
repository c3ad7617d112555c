// The fast body path: long json-numpy values cut out of the raw body before the JSON parse (body-parser.ts), strict
// base64 decoded from bytes (base64.ts), pooled buffers (buffer-pool.ts). References: JSON.parse of the whole body
// with the ordinary request parser, the definition of strict base64 (a regular expression) with Node's decoder.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseActBody, type ModelFacts } from '../../src/serve/act-request.js';
import { decodeBase64Bytes } from '../../src/serve/base64.js';
import { nativeBase64Decode } from '../../src/tensor/backends/native.js';
import { cutBase64Values, MIN_CUT_LENGTH, resolveBase64 } from '../../src/serve/body-parser.js';
import { BufferPool, MIN_POOLED_BYTES } from '../../src/serve/buffer-pool.js';
import { RequestError } from '../../src/serve/errors.js';
import { decodeBase64 } from '../../src/serve/ndarray.js';

const FACTS: ModelFacts = { vocabSize: 576, unnormKeys: ['tiny_dataset'], hasTokenizer: true };
const noSchema = () => undefined;

/** a deterministic pseudo-random generator (mulberry32) */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function image(height: number, width: number, seed = 1): { __numpy__: string; dtype: string; shape: number[] } {
  const next = random(seed);
  const bytes = Buffer.from(Array.from({ length: height * width * 3 }, () => Math.floor(next() * 256)));
  return { __numpy__: bytes.toString('base64'), dtype: '|u1', shape: [height, width, 3] };
}

/** the parsed job the ordinary way (whole body through JSON.parse) and through the cut */
function bothWays(body: string) {
  const plain = parseActBody(JSON.parse(body), noSchema, FACTS);
  const { text, slices } = cutBase64Values(Buffer.from(body));
  const cut = parseActBody(JSON.parse(text), noSchema, FACTS, slices);
  return { plain, cut, text, slices };
}

test('strict base64 from bytes and from strings accepts exactly what the definition accepts, and decodes as Node does', () => {
  const STRICT = /^[A-Za-z0-9+/]*={0,2}$/;
  const next = random(7);
  const specials = ['=', '-', '_', ' ', '\n', '.', '\u00e9', 'A', '/', '+'];
  let accepted = 0;
  for (let i = 0; i < 3000; i++) {
    let text = Buffer.from(Array.from({ length: Math.floor(next() * 12) }, () => Math.floor(next() * 256))).toString('base64');
    const mutations = Math.floor(next() * 3);
    for (let m = 0; m < mutations; m++) {
      const at = Math.floor(next() * (text.length + 1));
      const kind = next();
      const char = specials[Math.floor(next() * specials.length)];
      if (kind < 0.4) text = text.slice(0, at) + char + text.slice(at + 1);
      else if (kind < 0.7) text = text.slice(0, at) + char + text.slice(at);
      else text = text.slice(0, at);
    }
    const strict = text.length % 4 === 0 && STRICT.test(text);
    const expected = strict ? Buffer.from(text, 'base64') : undefined;
    if (/^[\x00-\x7f]*$/.test(text)) {
      // the native decoder (when the addon is built) and the JS paths give the same answers
      for (const native of [true, false]) {
        const fromBytes = decodeBase64Bytes(Buffer.from(text, 'latin1'), { native });
        assert.deepEqual(fromBytes && Buffer.from(fromBytes), expected, `${JSON.stringify(text)} native ${native}`);
      }
    }
    let fromString: Buffer | undefined;
    try {
      fromString = decodeBase64(text, 'x');
    } catch (error) {
      assert.ok(error instanceof RequestError);
    }
    assert.deepEqual(fromString && Buffer.from(fromString), expected, JSON.stringify(text));
    if (strict) accepted++;
  }
  assert.ok(accepted > 500 && accepted < 2500, `a mix of valid and invalid strings (${accepted} valid)`);
});

test('the native decoder equals Node\'s on random bytes of every length mod 3, and refuses a wrong destination size', () => {
  const decode = nativeBase64Decode(new Uint8Array(0), new Uint8Array(0));
  if (decode === undefined) return; // no addon in this build: decodeBase64Bytes runs the JS paths, tested above
  assert.equal(decode, true);
  const next = random(11);
  for (let length = 1; length < 200; length++) {
    const bytes = Buffer.from(Array.from({ length }, () => Math.floor(next() * 256)));
    const text = Buffer.from(bytes.toString('base64'), 'latin1');
    const out = new Uint8Array(length);
    assert.equal(nativeBase64Decode(out, text), true, `length ${length}`);
    assert.deepEqual(Buffer.from(out), bytes);
    assert.equal(nativeBase64Decode(new Uint8Array(length + 1), text), false, `length ${length}: destination one too big`);
  }
});

test('strict base64 from bytes: every byte value outside the alphabet, anywhere in a long value, is refused', () => {
  const valid = Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 7919) % 256)).toString('base64');
  const alphabet = /[A-Za-z0-9+/]/;
  for (const native of [true, false]) {
    assert.deepEqual(Buffer.from(decodeBase64Bytes(Buffer.from(valid, 'latin1'), { native })!), Buffer.from(valid, 'base64'));
    for (let byte = 0; byte < 256; byte++) {
      if (alphabet.test(String.fromCharCode(byte))) continue;
      for (const at of [0, 1, 1777, valid.length - 3]) {
        const text = Buffer.from(valid, 'latin1');
        text[at] = byte;
        assert.equal(decodeBase64Bytes(text, { native }), undefined, `byte ${byte} at ${at}, native ${native}`);
      }
    }
  }
});

test('the plain form: the image value is cut out, the rest parses alone, and the job equals the ordinary parse', () => {
  const body = JSON.stringify({ image: image(24, 32), instruction: 'pick up the red cube', unnorm_key: 'tiny_dataset', eef_pixel: [3, 4] });
  const { plain, cut, text, slices } = bothWays(body);
  assert.equal(slices.length, 1);
  assert.ok(text.length < 400, `the parsed text is small (${text.length} characters)`);
  assert.deepEqual(cut, plain);
});

test("the double-encoded form (Python's json.dumps layout): cut inside the encoded string, one small parse each", () => {
  const inner = `{"image": {"__numpy__": "${image(24, 32).__numpy__}", "dtype": "|u1", "shape": [24, 32, 3]}, "instruction": "pick up the red cube"}`;
  const body = JSON.stringify({ encoded: inner });
  const { plain, cut, text, slices } = bothWays(body);
  assert.equal(slices.length, 1);
  assert.ok(text.length < 400, `the parsed text is small (${text.length} characters)`);
  assert.deepEqual(cut, plain);
  assert.equal(cut.encoded, true);
});

test('text that only looks like a json-numpy value is left alone', () => {
  const long = image(24, 32).__numpy__;
  assert.ok(long.length >= MIN_CUT_LENGTH);
  const bodies = [
    // quoted JSON inside an instruction of a plain body
    JSON.stringify({ image: image(4, 4), instruction: `say {"__numpy__": "${long.slice(0, 1500)}"}` }),
    // a key that is "\"__numpy__" (an escaped quote starts it)
    `{"image": {"\\"__numpy__": "${long}", "__numpy__": "AAAA", "dtype": "|u1", "shape": [1, 1, 3]}, "instruction": "x"}`,
    // an escape inside the value: parsed the ordinary way
    `{"image": {"__numpy__": "${long.slice(0, 2000)}\\/${long.slice(2002)}", "dtype": "|u1", "shape": [24, 32, 3]}, "instruction": "x"}`,
  ];
  for (const body of bodies) {
    const { text, slices } = cutBase64Values(Buffer.from(body));
    assert.equal(slices.length, 0, body.slice(0, 80));
    assert.equal(text, body);
  }
  // a value shorter than MIN_CUT_LENGTH is parsed the ordinary way too
  assert.equal(cutBase64Values(Buffer.from(JSON.stringify({ image: image(4, 4) }))).slices.length, 0);
});

test('a client string cannot pose as a placeholder, and a cut keeps an invalid body invalid', () => {
  const body = JSON.stringify({ image: image(24, 32), instruction: 'x' });
  const { text, slices } = cutBase64Values(Buffer.from(body));
  const placeholder = (JSON.parse(text) as { image: { __numpy__: string } }).image.__numpy__;
  assert.ok(resolveBase64(placeholder, slices) instanceof Buffer);
  for (const forged of ['\u0000sqap-b64-0000000000000000-0', `${placeholder}x`, placeholder.slice(1)]) assert.equal(resolveBase64(forged, slices), forged);
  assert.equal(resolveBase64(placeholder, []), placeholder);
  const broken = body.replace('"instruction"', ', "instruction"'); // a stray comma
  assert.throws(() => JSON.parse(cutBase64Values(Buffer.from(broken)).text), SyntaxError);
});

test('a cut value with a bad byte, truncated or with the wrong length gets the ordinary one-line 400 reason', () => {
  const good = image(24, 32);
  const cases: [string, RegExp][] = [
    [good.__numpy__.slice(0, 1000) + '*' + good.__numpy__.slice(1001), /image.__numpy__ is not valid base64/],
    [good.__numpy__.slice(0, -3), /truncated base64/],
    [good.__numpy__.slice(0, -4), /image holds 2301 bytes but dtype \|u1 and shape \[24,32,3\] need 2304/],
  ];
  for (const [data, pattern] of cases) {
    const body = JSON.stringify({ image: { ...good, __numpy__: data }, instruction: 'x' });
    const { text, slices } = cutBase64Values(Buffer.from(body));
    assert.equal(slices.length, 1);
    assert.throws(() => parseActBody(JSON.parse(text), noSchema, FACTS, slices), (e: Error) => e instanceof RequestError && pattern.test(e.message), pattern.source);
    assert.throws(() => parseActBody(JSON.parse(body), noSchema, FACTS), (e: Error) => e instanceof RequestError && pattern.test(e.message), pattern.source);
  }
});

test('BufferPool hands a released buffer out again, and keeps neither small nor detached ones', () => {
  const pool = new BufferPool(1, 2, 1 << 20);
  const a = pool.acquire(MIN_POOLED_BYTES * 2);
  assert.equal(a.byteOffset, 0);
  assert.equal(a.buffer.byteLength, MIN_POOLED_BYTES * 2);
  pool.release(a.buffer as ArrayBuffer);
  pool.release(a.buffer as ArrayBuffer); // twice is once
  assert.equal(pool.heldBytes, MIN_POOLED_BYTES * 2);
  assert.equal(pool.acquire(MIN_POOLED_BYTES * 2).buffer, a.buffer);
  assert.equal(pool.heldBytes, 0);
  pool.release(new ArrayBuffer(16));
  const detached = new ArrayBuffer(MIN_POOLED_BYTES * 2);
  structuredClone(detached, { transfer: [detached] });
  pool.release(detached);
  assert.equal(pool.heldBytes, 0);
  const rounded = new BufferPool(64 * 1024, 2, 1 << 20);
  const body = rounded.acquire(100_000);
  assert.equal(body.length, 100_000);
  rounded.release(body.buffer as ArrayBuffer);
  assert.equal(rounded.acquire(120_000).buffer, body.buffer, 'a body of a slightly different size reuses it');
});
