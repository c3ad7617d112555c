// A POST /act body -> the job the model worker runs, or a RequestError with a one-line reason. Accepts deploy.py's
// plain form ({"image": <json-numpy>, "instruction", "unnorm_key"}), its double-encoded form ({"encoded": "<the
// same JSON as a string>"}), a base64 PNG/JPEG image, prompt ids and the robot context that pruning uses. Runs on
// the event loop, so every check is linear in the body and nothing big is decoded before its size is known.
import type { PinholeCamera, RobotContext } from '../prune/index.js';
import { imageBuffers } from './buffer-pool.js';
import { RequestError } from './errors.js';
import { decodeBase64, decodeNdArray, isNdArrayJson, ndArrayNumbers, base64DecodedLength } from './ndarray.js';
import { MAX_INPUT_IDS } from './schema.js';

/** Largest image side and pixel count accepted (json-numpy arrays and PNG/JPEG alike). */
export const MAX_IMAGE_SIDE = 4096;
export const MAX_IMAGE_PIXELS = 1 << 22;


/** The image as the worker gets it: raw RGB8, or PNG/JPEG bytes it decodes off the event loop. */
export type ImagePayload =
  | { kind: 'rgb'; width: number; height: number; data: Uint8Array }
  | { kind: 'encoded'; format: 'png' | 'jpeg'; bytes: Uint8Array };

export interface ActJob {
  image: ImagePayload;
  /** prompt ids as given; when absent the worker tokenizes `instruction` */
  inputIds?: number[];
  instruction?: string;
  unnormKey?: string;
  robot?: RobotContext;
}

export interface ParsedAct {
  job: ActJob;
  /** the double-encoded form: the response is double-encoded too */
  encoded: boolean;
  returnDetails: boolean;
}

/** What the loaded model tells the request parser (absent while the model is still loading). */
export interface ModelFacts {
  vocabSize: number;
  unnormKeys: string[];
  hasTokenizer: boolean;
}

/** Validates a plain-form body against the JSON schema; returns the first error as one line, or undefined. */
export type SchemaCheck = (body: unknown) => string | undefined;

/** `slices`: the base64 values the body parser cut out of the raw body (body-parser.ts), if any. */
export function parseActBody(body: unknown, checkSchema: SchemaCheck, facts: ModelFacts | undefined, slices?: readonly Buffer[]): ParsedAct {
  let encoded = false;
  if (isObject(body) && 'encoded' in body) {
    // deploy.py: `assert len(payload.keys()) == 1` then json.loads(payload["encoded"])
    if (Object.keys(body).length !== 1) throw new RequestError(`the double-encoded form takes only the "encoded" key, got ${Object.keys(body).length} keys`);
    if (typeof body.encoded !== 'string') throw new RequestError('encoded must be a string holding the JSON body');
    try {
      body = JSON.parse(body.encoded);
    } catch (error) {
      throw new RequestError(`encoded is not valid JSON (${firstLine((error as Error).message)})`);
    }
    encoded = true;
    if (isObject(body) && 'encoded' in body) throw new RequestError('encoded must not itself hold an "encoded" key');
    const problem = checkSchema(body);
    if (problem !== undefined) throw new RequestError(`encoded: ${problem}`);
  }
  if (!isObject(body)) throw new RequestError('the body must be a JSON object');
  if (body.image === undefined) throw new RequestError('image is missing (a json-numpy uint8 array [H, W, 3] or a base64 PNG/JPEG)');
  const image = parseImage(body.image, slices);
  const inputIds = body.input_ids === undefined ? undefined : parseInputIds(body.input_ids, facts, slices);
  const instruction = body.instruction === undefined ? undefined : parseInstruction(body.instruction);
  if (inputIds === undefined) {
    if (instruction === undefined) throw new RequestError('instruction is missing');
    if (facts && !facts.hasTokenizer) {
      throw new RequestError('this checkpoint has no tokenizer (tokenizer.json) and its vocabulary is not Llama-2\'s; send the prompt as input_ids');
    }
  }
  const unnormKey = parseUnnormKey(body.unnorm_key, facts);
  const robot = parseRobotContext(body, slices);
  if (body.return_details !== undefined && typeof body.return_details !== 'boolean') throw new RequestError('return_details must be true or false');
  return { job: { image, inputIds, instruction, unnormKey, robot }, encoded, returnDetails: body.return_details === true };
}

function parseImage(value: unknown, slices: readonly Buffer[] | undefined): ImagePayload {
  if (typeof value === 'string') return parseEncodedImage(value);
  const dtype = isNdArrayJson(value) ? value.dtype : undefined;
  if (typeof dtype === 'string' && !/^[|<>=]?u1$/.test(dtype)) throw new RequestError(`image.dtype must be |u1 (uint8), got '${dtype.slice(0, 40)}'`);
  const array = decodeNdArray(value, 'image', { maxBytes: MAX_IMAGE_PIXELS * 4, maxRank: 3 }, slices);
  const [height, width, channels = 1] = array.shape;
  if (array.shape.length < 2 || ![1, 3, 4].includes(channels)) {
    throw new RequestError(`image.shape must be [H, W, 3] (or [H, W], [H, W, 1], [H, W, 4]), got ${JSON.stringify(array.shape)}`);
  }
  checkImageSize(width, height, 'image');
  return { kind: 'rgb', width, height, data: toRgb(array.bytes, width * height, channels) };
}

/** [H*W*C] uint8 with C in 1, 3, 4 -> RGB8, as Pillow's Image.fromarray(a).convert("RGB") (alpha dropped) */
function toRgb(bytes: Buffer, pixels: number, channels: number): Uint8Array {
  if (channels === 3) return ownBytes(bytes);
  const rgb = new Uint8Array(pixels * 3);
  for (let p = 0; p < pixels; p++) {
    for (let c = 0; c < 3; c++) rgb[p * 3 + c] = bytes[p * channels + (channels === 1 ? 0 : c)];
  }
  imageBuffers.release(bytes.buffer as ArrayBuffer); // the decoded bytes are not used any more
  return rgb;
}

function parseEncodedImage(text: string): ImagePayload {
  const comma = text.startsWith('data:') ? text.indexOf(',') : -1;
  const base64 = comma >= 0 ? text.slice(comma + 1) : text;
  if (base64.length === 0) throw new RequestError('image is an empty string');
  if (base64.length % 4 !== 0) throw new RequestError(`image is truncated base64 (its length ${base64.length} is not a multiple of 4)`);
  if (base64DecodedLength(base64) > MAX_IMAGE_PIXELS * 4) throw new RequestError('image is larger than the encoded-image size limit');
  const bytes = decodeBase64(base64, 'image');
  const format = bytes[0] === 0x89 && bytes.subarray(1, 4).toString('latin1') === 'PNG' ? 'png' : bytes[0] === 0xff && bytes[1] === 0xd8 ? 'jpeg' : undefined;
  if (!format) throw new RequestError('image is neither a json-numpy array nor base64 of a PNG or JPEG file');
  const size = format === 'png' ? pngSize(bytes) : jpegSize(bytes);
  checkImageSize(size.width, size.height, `image (${format.toUpperCase()})`);
  return { kind: 'encoded', format, bytes: ownBytes(bytes) };
}

/**
 * The bytes in an ArrayBuffer of their own, so that they can be transferred to the model thread without a copy:
 * large base64 decodes already own theirs; small ones live in Node's shared Buffer pool and are copied.
 */
function ownBytes(bytes: Buffer): Uint8Array {
  if (bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength) return new Uint8Array(bytes.buffer);
  return new Uint8Array(bytes);
}

function checkImageSize(width: number, height: number, name: string): void {
  if (width < 1 || height < 1) throw new RequestError(`${name} has no pixels (${width}x${height})`);
  if (width > MAX_IMAGE_SIDE || height > MAX_IMAGE_SIDE || width * height > MAX_IMAGE_PIXELS) {
    throw new RequestError(`${name} is ${width}x${height}; the limit is ${MAX_IMAGE_SIDE} pixels a side and ${MAX_IMAGE_PIXELS} pixels`);
  }
}

/** Width and height from the IHDR chunk, which must come first. */
function pngSize(bytes: Buffer): { width: number; height: number } {
  if (bytes.length < 33 || bytes.subarray(12, 16).toString('latin1') !== 'IHDR') throw new RequestError('image is a truncated PNG (no IHDR header)');
  return { width: bytes.readUInt32BE(16), height: bytes.readUInt32BE(20) };
}

/** Width and height from the first start-of-frame segment (SOF0..SOF15 except DHT, JPG, DAC). */
function jpegSize(bytes: Buffer): { width: number; height: number } {
  let offset = 2;
  while (offset + 4 <= bytes.length) {
    if (bytes[offset] !== 0xff) break;
    const marker = bytes[offset + 1];
    if (marker === 0xff) {
      offset += 1;
      continue;
    }
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
      offset += 2;
      continue;
    }
    const length = bytes.readUInt16BE(offset + 2);
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      if (offset + 9 > bytes.length) break;
      return { height: bytes.readUInt16BE(offset + 5), width: bytes.readUInt16BE(offset + 7) };
    }
    offset += 2 + length;
  }
  throw new RequestError('image is a truncated or corrupt JPEG (no frame header)');
}

function parseInputIds(value: unknown, facts: ModelFacts | undefined, slices: readonly Buffer[] | undefined): number[] {
  const ids = isNdArrayJson(value) ? ndArrayNumbers(decodeNdArray(value, 'input_ids', { maxBytes: MAX_INPUT_IDS * 8, maxRank: 1 }, slices)) : value;
  if (!Array.isArray(ids) || ids.length === 0) throw new RequestError('input_ids must be a non-empty list of token ids');
  if (ids.length > MAX_INPUT_IDS) throw new RequestError(`input_ids has ${ids.length} ids; the limit is ${MAX_INPUT_IDS}`);
  ids.forEach((id, i) => {
    if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0) throw new RequestError(`input_ids[${i}] must be a non-negative integer`);
    if (facts && id >= facts.vocabSize) throw new RequestError(`input_ids[${i}] = ${id} is outside this model's vocabulary of ${facts.vocabSize}`);
  });
  return ids as number[];
}

function parseInstruction(value: unknown): string {
  if (typeof value !== 'string') throw new RequestError('instruction must be a string');
  if (value.trim().length === 0) throw new RequestError('instruction is empty');
  return value;
}

function parseUnnormKey(value: unknown, facts: ModelFacts | undefined): string | undefined {
  if (value === undefined || value === null) {
    if (facts && facts.unnormKeys.length > 1) throw new RequestError(`the model has statistics for several datasets; send unnorm_key, one of: ${facts.unnormKeys.join(', ')}`);
    return undefined;
  }
  if (typeof value !== 'string') throw new RequestError('unnorm_key must be a string');
  if (facts && !facts.unnormKeys.includes(value)) {
    throw new RequestError(`unknown unnorm_key '${value.slice(0, 100)}'; the model has: ${facts.unnormKeys.join(', ')}`);
  }
  return value;
}

function parseRobotContext(body: Record<string, unknown>, slices: readonly Buffer[] | undefined): RobotContext | undefined {
  const { eef_pixel: eefPixel, eef, camera } = body;
  if (eefPixel !== undefined) {
    if (eef !== undefined || camera !== undefined) throw new RequestError('give eef_pixel or eef + camera, not both');
    return { eefPixel: finiteNumbers(eefPixel, 'eef_pixel', 2, slices) as [number, number] };
  }
  if (eef === undefined && camera === undefined) return undefined;
  if (eef === undefined || camera === undefined) throw new RequestError('eef and camera go together: the end-effector position [x, y, z] and the camera that took the image');
  return { eef: finiteNumbers(eef, 'eef', 3, slices) as [number, number, number], camera: parseCamera(camera) };
}

function parseCamera(value: unknown): PinholeCamera {
  if (!isObject(value)) throw new RequestError('camera must be an object {width, height, intrinsics, worldToCamera}');
  const size = (key: 'width' | 'height'): number => {
    const v = value[key];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) throw new RequestError(`camera.${key} must be a positive integer`);
    return v;
  };
  return {
    name: typeof value.name === 'string' ? value.name : 'request',
    width: size('width'),
    height: size('height'),
    intrinsics: finiteNumbers(value.intrinsics, 'camera.intrinsics', 9),
    worldToCamera: finiteNumbers(value.worldToCamera, 'camera.worldToCamera', 16),
  };
}

/** A list (or json-numpy array) of `length` finite numbers. */
function finiteNumbers(value: unknown, name: string, length: number, slices?: readonly Buffer[]): number[] {
  const numbers = isNdArrayJson(value) ? ndArrayNumbers(decodeNdArray(value, name, { maxBytes: length * 8, maxRank: 2 }, slices)) : value;
  if (!Array.isArray(numbers) || numbers.length !== length) throw new RequestError(`${name} must be a list of ${length} numbers`);
  numbers.forEach((v, i) => {
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new RequestError(`${name}[${i}] must be a finite number`);
  });
  return numbers as number[];
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function firstLine(text: string): string {
  return text.split('\n')[0].slice(0, 200);
}
