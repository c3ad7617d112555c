// json-numpy's wire format (Crimson-Crow/json-numpy 2.x, what OpenVLA's deploy.py clients send and receive):
// an array is `{"__numpy__": base64(raw C-order bytes), "dtype": numpy descr (e.g. "|u1", "<f8"), "shape": [..]}`;
// an empty shape means a scalar. Decoding checks the byte count implied by dtype and shape against the base64
// length *before* decoding, so a huge declared shape costs nothing.
import { decodeBase64Bytes } from './base64.js';
import { resolveBase64 } from './body-parser.js';
import { RequestError } from './errors.js';

export interface NdArrayJson {
  __numpy__: string;
  dtype: string;
  shape: number[];
}

export type NdKind = 'u' | 'i' | 'f' | 'b';

export interface DecodedNdArray {
  kind: NdKind;
  itemBytes: number;
  littleEndian: boolean;
  shape: number[];
  /** the raw bytes, C order */
  bytes: Buffer;
}

export interface NdLimits {
  /** largest total byte count accepted */
  maxBytes: number;
  /** largest number of dimensions */
  maxRank: number;
}

const EQUALS = 0x3d;
const DESCR = /^([<>|=]?)([uifb])(\d+)$/;
const ITEM_BYTES: Record<NdKind, number[]> = { u: [1, 2, 4, 8], i: [1, 2, 4, 8], f: [2, 4, 8], b: [1] };

export function isNdArrayJson(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && '__numpy__' in value;
}

/** Bytes a valid base64 text of this length decodes to (it must be a multiple of 4 long). */
export function base64DecodedLength(text: string | Buffer): number {
  const n = text.length;
  const at = (i: number) => (typeof text === 'string' ? text.charCodeAt(i) : text[i]);
  const padding = n >= 2 && at(n - 1) === EQUALS ? (at(n - 2) === EQUALS ? 2 : 1) : 0;
  return (n / 4) * 3 - padding;
}

/**
 * Strict base64 (standard alphabet, padded, no whitespace), as Python's b64encode writes it. `text` is a string, or
 * the raw ASCII bytes of one (a value the body parser cut out of the body), decoded without making a string of it.
 * For a string, Node's decoder is used: it skips characters outside the alphabet (and stops at '='), and takes
 * base64url's '-' and '_', so a string is strict exactly when it is a multiple of 4 long, decodes to the byte count
 * its length implies and holds neither '-' nor '_' (no regular-expression pass over the whole string).
 */
export function decodeBase64(text: string | Buffer, name: string): Buffer {
  const bytes = typeof text !== 'string' ? decodeBase64Bytes(text) : text.length % 4 === 0 ? Buffer.from(text, 'base64') : undefined;
  if (!bytes || bytes.length !== base64DecodedLength(text) || (typeof text === 'string' && (text.includes('-') || text.includes('_')))) {
    throw new RequestError(`${name} is not valid base64 (standard alphabet, padded, length a multiple of 4)`);
  }
  return bytes;
}

/** numpy descr -> element kind, size and byte order; only plain numeric dtypes */
export function parseDtype(descr: string, name: string): { kind: NdKind; itemBytes: number; littleEndian: boolean } {
  const match = DESCR.exec(descr);
  const kind = match?.[2] as NdKind | undefined;
  const itemBytes = Number(match?.[3]);
  if (!match || !kind || !ITEM_BYTES[kind].includes(itemBytes)) {
    throw new RequestError(`${name}.dtype '${descr.slice(0, 40)}' is not a numeric numpy dtype (e.g. |u1, <f8)`);
  }
  return { kind, itemBytes, littleEndian: match[1] !== '>' };
}

/**
 * Validate and decode one json-numpy object; every failure is a one-line RequestError naming `name`. `slices` are
 * the base64 values the body parser cut out of the body (body-parser.ts), which "__numpy__" placeholders stand for.
 */
export function decodeNdArray(value: unknown, name: string, limits: NdLimits, slices?: readonly Buffer[]): DecodedNdArray {
  if (!isNdArrayJson(value)) throw new RequestError(`${name} must be a json-numpy array {"__numpy__", "dtype", "shape"}`);
  const { dtype, shape } = value;
  if (typeof value.__numpy__ !== 'string') throw new RequestError(`${name}.__numpy__ must be a base64 string`);
  const data = resolveBase64(value.__numpy__, slices);
  if (typeof dtype !== 'string') throw new RequestError(`${name}.dtype must be a string such as "|u1"`);
  if (!Array.isArray(shape) || shape.length > limits.maxRank) {
    throw new RequestError(`${name}.shape must be a list of at most ${limits.maxRank} sizes`);
  }
  const parsed = parseDtype(dtype, name);
  let count = 1;
  for (const size of shape) {
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
      throw new RequestError(`${name}.shape must hold non-negative integers, got ${JSON.stringify(shape).slice(0, 80)}`);
    }
    count *= size;
    if (count * parsed.itemBytes > limits.maxBytes) {
      throw new RequestError(`${name}.shape ${JSON.stringify(shape).slice(0, 80)} is larger than the ${limits.maxBytes}-byte limit`);
    }
  }
  const expected = count * parsed.itemBytes;
  if (data.length % 4 !== 0) throw new RequestError(`${name}.__numpy__ is truncated base64 (its length ${data.length} is not a multiple of 4)`);
  const actual = base64DecodedLength(data);
  if (actual !== expected) {
    throw new RequestError(`${name} holds ${actual} bytes but dtype ${dtype} and shape ${JSON.stringify(shape)} need ${expected}`);
  }
  return { ...parsed, shape: shape as number[], bytes: decodeBase64(data, `${name}.__numpy__`) };
}

/** The elements of a decoded array as numbers (float64), C order. */
export function ndArrayNumbers(array: DecodedNdArray): number[] {
  const { kind, itemBytes, littleEndian, bytes } = array;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: number[] = [];
  for (let offset = 0; offset < bytes.byteLength; offset += itemBytes) out.push(readElement(view, offset, kind, itemBytes, littleEndian));
  return out;
}

function readElement(view: DataView, offset: number, kind: NdKind, itemBytes: number, le: boolean): number {
  if (kind === 'f') return itemBytes === 8 ? view.getFloat64(offset, le) : itemBytes === 4 ? view.getFloat32(offset, le) : float16(view.getUint16(offset, le));
  if (kind === 'b') return view.getUint8(offset) ? 1 : 0;
  const signed = kind === 'i';
  if (itemBytes === 1) return signed ? view.getInt8(offset) : view.getUint8(offset);
  if (itemBytes === 2) return signed ? view.getInt16(offset, le) : view.getUint16(offset, le);
  if (itemBytes === 4) return signed ? view.getInt32(offset, le) : view.getUint32(offset, le);
  return Number(signed ? view.getBigInt64(offset, le) : view.getBigUint64(offset, le));
}

function float16(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 31) return mantissa ? NaN : sign * Infinity;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

/** float64 values -> json-numpy `<f8` array (what OpenVLA's predict_action returns: numpy float64). */
export function encodeFloat64(values: number[]): NdArrayJson {
  const bytes = Buffer.alloc(values.length * 8);
  values.forEach((v, i) => bytes.writeDoubleLE(v, i * 8));
  return { __numpy__: bytes.toString('base64'), dtype: '<f8', shape: [values.length] };
}

/**
 * json.dumps with Python's default separators (", ", ": "), which is how deploy.py's `json_numpy.dumps(action)`
 * writes the double-encoded response. Enough for the flat objects of this format.
 */
export function pythonJsonDumps(value: NdArrayJson): string {
  return `{"__numpy__": ${JSON.stringify(value.__numpy__)}, "dtype": ${JSON.stringify(value.dtype)}, "shape": [${value.shape.join(', ')}]}`;
}
