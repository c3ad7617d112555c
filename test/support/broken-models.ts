// Copies of models/tiny-openvla with one edit (config, preprocessor config, tensors), and hand-made broken images,
// for the robustness tests, the fuzz suite and scripts/robustness-repro.ts.
import fs from 'node:fs';
import os from 'node:os';
import nodePath from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { SafetensorsFile, writeSafetensors } from '../../src/io/safetensors.js';
import { Tensor } from '../../src/tensor/tensor.js';

export const ROOT = nodePath.resolve(nodePath.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const TINY_MODEL = nodePath.join(ROOT, 'models', 'tiny-openvla');
export const TINY_IMAGE = nodePath.join(TINY_MODEL, 'image.png');
export const TINY_INPUT_IDS = [1, 40, 77, 300, 9, 123, 56, 201, 88, 14, 3];

export type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export interface ModelEdit {
  config?: (config: Json) => void;
  preprocessor?: (preprocessor: Json) => void;
  /** edit the tensor map in place (replace, delete or add entries) */
  tensors?: (tensors: Record<string, Tensor>) => void;
}

let tiny: Record<string, Tensor> | undefined;

/** The bundled tiny checkpoint's tensors (read once). */
export function tinyTensors(): Record<string, Tensor> {
  if (!tiny) {
    const file = SafetensorsFile.open(nodePath.join(TINY_MODEL, 'model.safetensors'));
    tiny = Object.fromEntries(file.keys().map((name) => [name, file.read(name)]));
    file.close();
  }
  return tiny;
}

export function readJson(path: string): Json {
  return JSON.parse(fs.readFileSync(path, 'utf8')) as Json;
}

/** A fresh scratch directory (removed by the caller or left in the OS temp folder). */
export function scratchDir(label = 'sqap-robust'): string {
  return fs.mkdtempSync(nodePath.join(os.tmpdir(), `${label}-`));
}

/** Writes a copy of tiny-openvla with `edit` applied into `dir` (created) and returns `dir`. */
export function writeEditedModel(dir: string, edit: ModelEdit = {}): string {
  fs.mkdirSync(dir, { recursive: true });
  const config = readJson(nodePath.join(TINY_MODEL, 'config.json'));
  const preprocessor = readJson(nodePath.join(TINY_MODEL, 'preprocessor_config.json'));
  edit.config?.(config);
  edit.preprocessor?.(preprocessor);
  fs.writeFileSync(nodePath.join(dir, 'config.json'), JSON.stringify(config));
  fs.writeFileSync(nodePath.join(dir, 'preprocessor_config.json'), JSON.stringify(preprocessor));
  if (edit.tensors) {
    const tensors = { ...tinyTensors() };
    edit.tensors(tensors);
    writeSafetensors(nodePath.join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  } else {
    fs.copyFileSync(nodePath.join(TINY_MODEL, 'model.safetensors'), nodePath.join(dir, 'model.safetensors'));
  }
  return dir;
}

/** The key of the per-backbone timm overrides in config.json (whatever its current name). */
export function overridesKey(config: Json): string {
  return Object.keys(config).find((key) => key.startsWith('timm_override') && Array.isArray(config[key]) && typeof config[key][0] === 'object' && config[key][0] !== null) ?? 'timm_overrides';
}

export function randomF32(shape: number[], seed = 1): Tensor<'f32'> {
  const size = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(size);
  let s = seed;
  for (let i = 0; i < size; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    data[i] = (s / 2 ** 32 - 0.5) * 0.1;
  }
  return Tensor.f32(shape, data);
}

function crc32(bytes: Uint8Array): number {
  let crc = ~0;
  for (const byte of bytes) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = (crc >>> 1) ^ (0xedb88320 & -(crc & 1));
  }
  return ~crc >>> 0;
}

function chunk(type: string, data: Uint8Array): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

/** An 8-bit RGB PNG of any declared size (0 included), rows of `fill`, written without pngjs's own checks. */
export function rawPng(width: number, height: number, fill = 128): Buffer {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = 2; // RGB
  const rows = Buffer.alloc(height * (1 + 3 * width), fill);
  for (let y = 0; y < height; y++) rows[y * (1 + 3 * width)] = 0; // filter: none
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', zlib.deflateSync(rows)),
    chunk('IEND', new Uint8Array(0)),
  ]);
}
