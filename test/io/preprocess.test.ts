// Image decode, Pillow-bicubic resize and OpenVLA preprocessing against the tiny-openvla reference fixture
// (made by shared/fixtures/make_fixtures.py with Pillow + torch; see test/fixtures/README.md, step 1).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import jpeg from 'jpeg-js';
import { UserError } from '../../src/errors.js';
import { decodeImage, encodePng, readImageFile } from '../../src/io/image.js';
import { resizeBicubicPillow } from '../../src/io/resize.js';
import { parsePreprocessorConfig, preprocessImage } from '../../src/models/preprocess.js';
import { fixturePath, loadExpected, maxAbsDiff } from '../support/fixtures.js';
import { JPEG_MEAN_ABS_TOL, PIXEL_VALUES_MAX_ABS, RESIZE_MAX_DIFF } from '../tolerances.js';

const FIXTURE = 'tiny-openvla';

const expected = loadExpected(FIXTURE);
const imagePath = fixturePath(FIXTURE, 'image.png');
const readConfigJson = () => JSON.parse(readFileSync(fixturePath(FIXTURE, 'preprocessor_config.json'), 'utf8')) as Record<string, unknown>;

test('image.png decodes to the raw fixture pixels', () => {
  const raw = expected.raw_image_hwc_uint8;
  const image = readImageFile(imagePath);
  assert.deepEqual([image.height, image.width, 3], raw.shape);
  assert.equal(raw.dtype, 'u8');
  assert.equal(maxAbsDiff(image.data, raw.data as Uint8Array), 0);
});

test('Pillow bicubic resize to 56x56 reproduces the reference uint8 pixels exactly', () => {
  const image = readImageFile(imagePath);
  const resized = resizeBicubicPillow(image, 56, 56);
  // The reference keeps only normalized values; undo channel 3-5's (x - 0.5) / 0.5 to recover x/255 exactly.
  const pixelValues = expected.pixel_values.toF32();
  const plane = 56 * 56;
  let maxDiff = 0;
  for (let p = 0; p < plane; p++) {
    for (let c = 0; c < 3; c++) {
      const reference = Math.round((pixelValues[(3 + c) * plane + p] * 0.5 + 0.5) * 255);
      maxDiff = Math.max(maxDiff, Math.abs(reference - resized.data[p * 3 + c]));
    }
  }
  console.log(`resize max |diff| vs Pillow: ${maxDiff}`);
  assert.ok(maxDiff <= RESIZE_MAX_DIFF, `max diff ${maxDiff}`);
});

test('resize skips passes for unchanged axes and handles upscaling', () => {
  const image = { width: 3, height: 2, data: Uint8Array.from({ length: 18 }, (_, i) => i * 13) };
  assert.deepEqual(resizeBicubicPillow(image, 3, 2).data, image.data);
  const up = resizeBicubicPillow(image, 7, 5);
  assert.equal(up.data.length, 7 * 5 * 3);
  const flat = { width: 4, height: 4, data: new Uint8Array(48).fill(200) };
  assert.ok(resizeBicubicPillow(flat, 3, 9).data.every((v) => v === 200));
});

test('preprocessImage matches the reference pixel_values', () => {
  const config = parsePreprocessorConfig(readConfigJson());
  const pixels = preprocessImage(readImageFile(imagePath), config);
  assert.deepEqual(expected.pixel_values.shape, [1, 6, 56, 56]);
  const maxError = maxAbsDiff(pixels, expected.pixel_values.toF32());
  console.log(`pixel_values max |error|: ${maxError}`);
  assert.ok(maxError <= PIXEL_VALUES_MAX_ABS, `max error ${maxError}`);
});

test('parsePreprocessorConfig rejects unsupported settings with UserErrors naming them', () => {
  const base = readConfigJson();
  assert.throws(() => parsePreprocessorConfig({ ...base, image_resize_strategy: 'letterbox' }), (e: unknown) => e instanceof UserError && /letterbox/.test(e.message));
  assert.throws(() => parsePreprocessorConfig({ ...base, interpolations: ['bilinear', 'bicubic'] }), (e: unknown) => e instanceof UserError && /bilinear/.test(e.message));
  assert.throws(() => parsePreprocessorConfig({ ...base, input_sizes: [[3, 56, 56]] }), UserError);
  assert.throws(() => parsePreprocessorConfig(null), UserError);
  const { tvf_normalize_params: _unused, ...nominal } = base;
  const config = parsePreprocessorConfig(nominal);
  assert.equal(config.backbones[0].mean[0], Math.fround(0.485));
});

test('decodeImage: PNG round trip through encodePng is lossless', () => {
  const image = { width: 5, height: 3, data: Uint8Array.from({ length: 45 }, (_, i) => (i * 37) % 256) };
  const decoded = decodeImage(encodePng(image));
  assert.equal(decoded.width, 5);
  assert.equal(decoded.height, 3);
  assert.deepEqual(Buffer.from(decoded.data), Buffer.from(image.data));
});

test('decodeImage: JPEG made with jpeg-js decodes close to its source', () => {
  const width = 32;
  const height = 24;
  const rgba = new Uint8Array(width * height * 4);
  const rgb = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const p = y * width + x;
      const value = [x * 8, y * 10, 128];
      rgba.set([...value, 255], p * 4);
      rgb.set(value, p * 3);
    }
  }
  const bytes = jpeg.encode({ width, height, data: rgba }, 95).data;
  const decoded = decodeImage(bytes, 'gradient.jpg');
  assert.equal(decoded.width, width);
  assert.equal(decoded.height, height);
  let sum = 0;
  for (let i = 0; i < rgb.length; i++) sum += Math.abs(decoded.data[i] - rgb[i]);
  assert.ok(sum / rgb.length <= JPEG_MEAN_ABS_TOL, `mean abs diff ${sum / rgb.length}`);
});

test('decode and read errors are UserErrors naming the file', () => {
  const named = (name: string) => (e: unknown) => e instanceof UserError && e.message.includes(name);
  assert.throws(() => decodeImage(new Uint8Array([1, 2, 3, 4]), 'notes.txt'), named('notes.txt'));
  const png = encodePng({ width: 4, height: 4, data: new Uint8Array(48) });
  assert.throws(() => decodeImage(png.subarray(0, 40), 'cut.png'), named('cut.png'));
  assert.throws(() => decodeImage(Uint8Array.from([0xff, 0xd8, 0xff, 0xe0, 0, 0]), 'bad.jpg'), named('bad.jpg'));
  assert.throws(() => readImageFile('/nonexistent/frame.png'), named('/nonexistent/frame.png'));
});
