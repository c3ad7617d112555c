// Generators for the fuzz suite: random damage to checkpoint headers and tensors, config.json,
// preprocessor_config.json, images and command lines, each paired with how to run it in this process.
import fs from 'node:fs';
import nodePath from 'node:path';
import fc from 'fast-check';
import { UserError } from '../../src/errors.js';
import { decodeImage } from '../../src/io/image.js';
import { OpenVla } from '../../src/models/openvla.js';
import { getBackend } from '../../src/tensor/backends/index.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { allocate, type DType } from '../../src/tensor/dtype.js';
import { readJson, rawPng, TINY_IMAGE, TINY_INPUT_IDS, TINY_MODEL, tinyTensors, writeEditedModel, type Json } from '../support/broken-models.js';
import { isCleanError, runCli } from './in-process.js';

export type Outcome = 'ok' | 'user-error' | 'bug' | 'garbage';

/** What one case did: its outcome and, for bugs and garbage, what happened. */
export interface CaseResult {
  outcome: Outcome;
  detail?: string;
}

const backend = getBackend('auto');
const IMAGE = decodeImage(fs.readFileSync(TINY_IMAGE), TINY_IMAGE);

/** A JSON value of the kinds that break parsers: wrong types, signs, fractions, huge and empty values. */
export const weirdValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(0, -1, 1, 2, 3, 2.5, -64, 7, 64, 576, 1e9, 1e308, -1e308, null, '', 'NaN', '1', true, false, [], {}, [0], [3, 56, 56], [3, 0, 0], [null]),
  fc.integer({ min: -100000, max: 100000 }),
  fc.double({ noDefaultInfinity: true, noNaN: true }),
  fc.string({ maxLength: 8 }),
  fc.jsonValue({ maxDepth: 2 }),
);

/** Every path to a value in a JSON tree (arrays up to 8 entries deep into). */
function paths(value: unknown, prefix: (string | number)[] = []): (string | number)[][] {
  const out: (string | number)[][] = prefix.length ? [prefix] : [];
  if (Array.isArray(value)) value.slice(0, 8).forEach((v, i) => out.push(...paths(v, [...prefix, i])));
  else if (value && typeof value === 'object') for (const [k, v] of Object.entries(value)) out.push(...paths(v, [...prefix, k]));
  return out;
}

export interface JsonEdit {
  path: (string | number)[];
  action: 'set' | 'delete';
  value: unknown;
}

function applyEdit(json: Json, edit: JsonEdit): void {
  let node: any = json; // eslint-disable-line @typescript-eslint/no-explicit-any
  for (const key of edit.path.slice(0, -1)) {
    node = node[key];
    if (typeof node !== 'object' || node === null) return; // an earlier edit removed this branch
  }
  const last = edit.path[edit.path.length - 1];
  if (edit.action === 'delete') {
    if (Array.isArray(node)) node.splice(Number(last), 1);
    else delete node[last];
  } else node[last] = edit.value;
}

function jsonEdits(file: string): fc.Arbitrary<JsonEdit[]> {
  const all = paths(readJson(nodePath.join(TINY_MODEL, file)));
  const edit = fc.record({ path: fc.constantFrom(...all), action: fc.constantFrom<'set' | 'delete'>('set', 'set', 'set', 'delete'), value: weirdValue });
  return fc.array(edit, { minLength: 1, maxLength: 3 });
}

/** Load the model in `dir` and predict one action: 'ok' with a well-formed action, else how it failed. */
export function runModel(dir: string, inputIds: number[] = TINY_INPUT_IDS, image = IMAGE): CaseResult {
  try {
    const model = OpenVla.load(dir, backend);
    const result = model.predictAction({ image, inputIds });
    const wellFormed = result.action.length === 7 && result.action.every(Number.isFinite) && result.actionTokenIds.every(Number.isInteger);
    return wellFormed ? { outcome: 'ok' } : { outcome: 'garbage', detail: JSON.stringify(result.action) };
  } catch (error) {
    return classifyError(error);
  }
}

export function classifyError(error: unknown): CaseResult {
  if (error instanceof UserError && !error.message.includes('\n')) return { outcome: 'user-error' };
  return { outcome: 'bug', detail: error instanceof Error ? (error.stack ?? error.message).split('\n').slice(0, 3).join(' | ') : String(error) };
}

/** A model folder whose weights are a link to the bundled ones (config fuzzing writes only JSON). */
function linkedModel(dir: string, config: Json, preprocessor: Json): string {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(nodePath.join(dir, 'config.json'), JSON.stringify(config));
  fs.writeFileSync(nodePath.join(dir, 'preprocessor_config.json'), JSON.stringify(preprocessor));
  fs.symlinkSync(nodePath.join(TINY_MODEL, 'model.safetensors'), nodePath.join(dir, 'model.safetensors'));
  return dir;
}

export interface FuzzCategory<T> {
  name: string;
  arbitrary: fc.Arbitrary<T>;
  run(value: T, dir: string): Promise<CaseResult> | CaseResult;
}

const configCategory: FuzzCategory<JsonEdit[]> = {
  name: 'config.json',
  arbitrary: jsonEdits('config.json'),
  run(edits, dir) {
    const config = readJson(nodePath.join(TINY_MODEL, 'config.json'));
    for (const edit of edits) applyEdit(config, edit);
    return runModel(linkedModel(dir, config, readJson(nodePath.join(TINY_MODEL, 'preprocessor_config.json'))));
  },
};

const preprocessorCategory: FuzzCategory<JsonEdit[]> = {
  name: 'preprocessor_config.json',
  arbitrary: jsonEdits('preprocessor_config.json'),
  run(edits, dir) {
    const preprocessor = readJson(nodePath.join(TINY_MODEL, 'preprocessor_config.json'));
    for (const edit of edits) applyEdit(preprocessor, edit);
    return runModel(linkedModel(dir, readJson(nodePath.join(TINY_MODEL, 'config.json')), preprocessor));
  },
};

const DTYPES: DType[] = ['f32', 'bf16', 'f16', 'f64', 'i8', 'u8', 'i32', 'i64'];
const DIMS = [0, 1, 2, 3, 4, 7, 14, 16, 56, 60, 64, 72, 136, 160, 256, 544, 576, 640];

interface TensorEdit {
  index: number;
  action: 'delete' | 'reshape' | 'dtype' | 'add';
  shape: number[];
  dtype: DType;
}

const tensorCategory: FuzzCategory<TensorEdit[]> = {
  name: 'tensors',
  arbitrary: fc.array(
    fc.record({
      index: fc.nat(),
      action: fc.constantFrom<TensorEdit['action']>('delete', 'reshape', 'dtype', 'add'),
      shape: fc.array(fc.constantFrom(...DIMS), { minLength: 0, maxLength: 4 }),
      dtype: fc.constantFrom(...DTYPES),
    }),
    { minLength: 1, maxLength: 3 },
  ),
  run(edits, dir) {
    const model = writeEditedModel(dir, {
      tensors: (tensors) => {
        for (const edit of edits) {
          const names = Object.keys(tensors).sort();
          const name = names[edit.index % names.length];
          // the harness itself allocates these, so keep them small (shape mismatches, not sizes, are the point here)
          const shape = edit.shape.reduce((a, b) => a * b, 1) > 1 << 20 ? edit.shape.slice(0, 2) : edit.shape;
          const size = shape.reduce((a, b) => a * b, 1);
          if (edit.action === 'delete') delete tensors[name];
          else if (edit.action === 'add') tensors[`${name}.extra`] = new Tensor(edit.dtype, shape, allocate(edit.dtype, size));
          else if (edit.action === 'reshape') tensors[name] = new Tensor(tensors[name].dtype, shape, allocate(tensors[name].dtype, size));
          else tensors[name] = new Tensor(edit.dtype, tensors[name].shape, allocate(edit.dtype, tensors[name].size));
        }
      },
    });
    return runModel(model);
  },
};

interface HeaderEdit {
  kind: 'entry' | 'length' | 'truncate' | 'bytes';
  index: number;
  field: 'dtype' | 'shape' | 'data_offsets' | 'delete';
  value: unknown;
  at: number;
}

let headerParts: { header: Json; data: Buffer } | undefined;

function tinyHeader(): { header: Json; data: Buffer } {
  if (!headerParts) {
    const bytes = fs.readFileSync(nodePath.join(TINY_MODEL, 'model.safetensors'));
    const length = Number(bytes.readBigUInt64LE(0));
    headerParts = { header: JSON.parse(bytes.subarray(8, 8 + length).toString('utf8')) as Json, data: bytes.subarray(8 + length) };
  }
  return headerParts;
}

const headerCategory: FuzzCategory<HeaderEdit[]> = {
  name: 'safetensors header',
  arbitrary: fc.array(
    fc.record({
      kind: fc.constantFrom<HeaderEdit['kind']>('entry', 'entry', 'entry', 'length', 'truncate', 'bytes'),
      index: fc.nat(),
      field: fc.constantFrom<HeaderEdit['field']>('dtype', 'shape', 'data_offsets', 'delete'),
      value: fc.oneof(weirdValue, fc.constantFrom('F32', 'BF16', 'F16', 'I8', 'U8', 'I64', 'F64', 'BOOL'), fc.array(fc.constantFrom(...DIMS, -1, 1e9), { maxLength: 4 })),
      at: fc.nat(),
    }),
    { minLength: 1, maxLength: 3 },
  ),
  run(edits, dir) {
    const { header: original, data } = tinyHeader();
    const header = structuredClone(original);
    let lengthDelta = 0;
    let body: Buffer = data;
    for (const edit of edits) {
      const names = Object.keys(header).filter((k) => k !== '__metadata__');
      const name = names[edit.index % names.length];
      if (edit.kind === 'entry') {
        if (!name) continue;
        if (edit.field === 'delete') delete header[name];
        else header[name][edit.field] = edit.value;
      } else if (edit.kind === 'length') lengthDelta = (edit.at % 17) - 8;
      else if (edit.kind === 'truncate') body = body.subarray(0, edit.at % (body.length + 1));
      else {
        body = Buffer.from(body);
        if (body.length) body[edit.at % body.length] ^= 0xff;
      }
    }
    const json = Buffer.from(JSON.stringify(header), 'utf8');
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(BigInt(Math.max(0, json.length + lengthDelta)));
    fs.mkdirSync(dir, { recursive: true });
    for (const file of ['config.json', 'preprocessor_config.json']) fs.copyFileSync(nodePath.join(TINY_MODEL, file), nodePath.join(dir, file));
    fs.writeFileSync(nodePath.join(dir, 'model.safetensors'), Buffer.concat([prefix, json, body]));
    return runModel(dir);
  },
};

interface ImageCase {
  kind: 'png-size' | 'flip' | 'truncate' | 'jpeg';
  width: number;
  height: number;
  at: number;
}

let jpegBytes: Buffer | undefined;

const imageCategory: FuzzCategory<ImageCase> = {
  name: 'images',
  arbitrary: fc.record({
    kind: fc.constantFrom<ImageCase['kind']>('png-size', 'flip', 'truncate', 'jpeg'),
    width: fc.oneof(fc.constantFrom(0, 1, 2, 5, 16384, 16385, 40000, 2 ** 31), fc.integer({ min: 0, max: 64 })),
    height: fc.oneof(fc.constantFrom(0, 1, 3, 5), fc.integer({ min: 0, max: 64 })),
    at: fc.nat(),
  }),
  async run(c, dir) {
    let bytes: Buffer;
    if (c.kind === 'png-size') {
      // a header that declares the size, with rows only when they are small enough to write
      bytes = c.width * c.height <= 64 * 64 ? rawPng(c.width, c.height) : rawPng(1, 1).fill(0, 16, 24);
      if (c.width * c.height > 64 * 64) {
        bytes.writeUInt32BE(c.width >>> 0, 16);
        bytes.writeUInt32BE(c.height >>> 0, 20);
      }
    } else {
      const jpeg = await import('jpeg-js');
      jpegBytes ??= Buffer.from(jpeg.default.encode({ width: 8, height: 8, data: Buffer.alloc(8 * 8 * 4, 200) }, 90).data);
      const source = c.kind === 'jpeg' ? jpegBytes : fs.readFileSync(TINY_IMAGE);
      bytes = Buffer.from(source);
      if (c.kind === 'truncate') bytes = bytes.subarray(0, c.at % bytes.length);
      else bytes[c.at % bytes.length] ^= 1 << (c.width % 8);
    }
    const path = nodePath.join(dir, 'image.bin');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path, bytes);
    const r = await runCli(['act', '--model', TINY_MODEL, '--image', path, '--input-ids', TINY_INPUT_IDS.join(','), '--json']);
    return cliOutcome(r);
  },
};

function cliOutcome(r: { status: number; stdout: string; stderr: string }): CaseResult {
  if (r.status === 0) return { outcome: 'ok' };
  if (isCleanError(r)) return { outcome: 'user-error' };
  return { outcome: 'bug', detail: `exit ${r.status}: ${r.stderr.slice(0, 300)}` };
}

const TASK = 'spatial-left-cube-to-plate';
const NUMBERS = ['-1', '0', '1', '2.5', '1e9', '1000000000', 'abc', '', '-0', '99999999999999999999', '0x10', ' 3'];

/** One flag and value drawn for a command; sim run/record always get an invalid --episodes (real episodes are slow). */
function cliArgs(dir: string): fc.Arbitrary<string[]> {
  const value = fc.oneof(fc.constantFrom(...NUMBERS, TASK, 'model', 'base', 'sqap@0.5', 'fastv@0', 'w4a4+had+sqap@0.5', 'sqap@1.5', '10,20', '0.1,0.2,0.3', 'nope', 'all', 'spatial', '/dev/null', '/proc/x', '/dev/null/x', TINY_MODEL, TINY_IMAGE, nodePath.join(dir, 'o'), '-', '--', '--json', '-h', 'ref', 'bf16', '5GB', '1,2,3', '-1,2,3', '1,,2'), fc.string({ maxLength: 6 }));
  const flags = (names: string[]) => fc.array(fc.tuple(fc.constantFrom(...names.map((n) => `--${n}`), '--bogus', '-x'), value), { maxLength: 4 }).map((pairs) => pairs.flat());
  const badEpisodes = fc.constantFrom('0', '-1', '1e9', 'x', '1000000000', '');
  return fc.oneof(
    flags(['model', 'image', 'instruction', 'input-ids', 'unnorm-key', 'backend', 'variant', 'prune-layer', 'sqap-share', 'sqap-radius', 'prune-seed', 'eef-pixel', 'eef', 'camera', 'save-mask']).map((a) => ['act', ...a]),
    flags(['model', 'json']).map((a) => ['inspect', ...a]),
    flags(['model', 'out', 'dtype', 'max-shard-size']).map((a) => ['convert', ...a]),
    flags(['suite', 'json']).map((a) => ['sim', 'tasks', ...a]),
    fc.tuple(flags(['task', 'seed', 'image-size', 'out']), fc.constantFrom('1', '-1', '1e9', '100000', '7')).map(([a, size]) => ['sim', 'render', ...a, '--image-size', size]),
    fc.tuple(flags(['task', 'suite', 'seed', 'workers', 'image-size', 'policy', 'policy-options', 'frames', 'model', 'variant', 'backend', 'unnorm-key']), badEpisodes).map(([a, e]) => ['sim', 'run', ...a, '--episodes', e]),
    flags(['demos', 'out', 'preset', 'steps', 'batch', 'lr', 'eval-every', 'eval-samples', 'eval-episodes', 'init']).map((a) => ['train', ...a]),
    // synth: only the tiny preset or invalid ones (openvla-7b writes 15 GB)
    fc.tuple(flags(['out', 'llm-layers', 'vision-layers']), fc.constantFrom('tiny', 'nope', '', '-1')).map(([a, preset]) => ['synth', ...a, '--preset', preset]),
    fc.tuple(flags(['model', 'variants', 'image', 'input-ids']), fc.constantFrom('0', '-1', '1.5', 'x', '1e9')).map(([a, steps]) => ['bench', ...a, '--steps', steps]),
    fc.tuple(flags(['task', 'suite', 'seed', 'workers', 'image-size', 'out', 'name']), badEpisodes).map(([a, e]) => ['sim', 'record', ...a, '--episodes', e]),
  );
}

const cliCategory: FuzzCategory<string[]> = {
  name: 'cli arguments',
  arbitrary: fc.constant(null).chain(() => cliArgs('{DIR}')),
  async run(args, dir) {
    fs.mkdirSync(dir, { recursive: true });
    return cliOutcome(await runCli(args.map((a) => a.replace('{DIR}', dir))));
  },
};

const VARIANT_PARTS = ['base', 'w8a8', 'w4a8', 'w4a4', 'w4a16', 'had', 'gptq', 'sqap', 'fastv', 'query', 'random', 'grid', '@', '+', '0.5', '1', '0', '-1', '1e9', 'NaN', ' ', 'x'];

const variantCategory: FuzzCategory<string> = {
  name: 'variant strings',
  arbitrary: fc.oneof(fc.array(fc.constantFrom(...VARIANT_PARTS), { maxLength: 6 }).map((parts) => parts.join('')), fc.string({ maxLength: 12 })),
  async run(variant) {
    const r = await runCli(['act', '--model', TINY_MODEL, '--image', TINY_IMAGE, '--input-ids', TINY_INPUT_IDS.join(','), '--variant', variant, '--json']);
    return cliOutcome(r);
  },
};

export const CATEGORIES: FuzzCategory<any>[] = [headerCategory, tensorCategory, configCategory, preprocessorCategory, imageCategory, variantCategory, cliCategory]; // eslint-disable-line @typescript-eslint/no-explicit-any
