// Safetensors files (https://github.com/huggingface/safetensors), read without loading the whole file.
//
// Layout: [u64 little-endian N][N bytes of UTF-8 JSON header, space-padded][data section].
// The header maps tensor name -> {dtype, shape, data_offsets: [begin, end]} (offsets relative to the data
// section) plus an optional "__metadata__" map of strings. Opening reads only the 8-byte prefix and the header;
// each tensor is read on demand with readSync into its own freshly allocated typed array (so it is aligned for
// its dtype whatever the file offset). A real OpenVLA-7B is 3 shards of 5-7 GB in BF16: never buffer a file.
// Float tensors of at least MAP_MIN_BYTES are memory-mapped instead when the native addon is built (private,
// copy-on-write; unmapped when collected): no copy at load, and pages count as resident only once touched, so an
// embedding table costs only the rows a prompt looks up. SQAP_MMAP=0 turns mapping off.
//
// Every way a file can be malformed is a UserError naming the file; nothing in a header can cause an
// allocation larger than the file itself.

import fs from 'node:fs';
import os from 'node:os';
import { UserError } from '../errors.js';
import { allocate, BYTES_PER_ELEMENT, viewBytes, type AnyTypedArray, type DType } from '../tensor/dtype.js';
import { nativeMapFile } from '../tensor/backends/native.js';
import { Tensor } from '../tensor/tensor.js';
import { oneLine } from './json.js';

/** The same limit as the reference implementation: a larger header is certainly corrupt. */
export const MAX_HEADER_BYTES = 100_000_000;

/** Float tensors at least this large are memory-mapped (see the top of this file); smaller ones are copied. */
export const MAP_MIN_BYTES = 1 << 20;
const MAPPED_DTYPES: ReadonlySet<DType> = new Set(['f32', 'bf16', 'f16']);

/** Largest single readSync/writeSync (Node caps one call below 2 GiB). */
const IO_CHUNK_BYTES = 1 << 30;

/** Safetensors dtype names we load, and our dtype for each. BF16 stays bf16 bits: no conversion on load.
// F64 is for reference data (fixture actions), not weights. */
const DTYPE_FROM_NAME: Readonly<Record<string, DType>> = {
  F32: 'f32',
  F64: 'f64',
  BF16: 'bf16',
  F16: 'f16',
  I8: 'i8',
  U8: 'u8',
  I32: 'i32',
  I64: 'i64',
};
const NAME_FROM_DTYPE: Readonly<Record<DType, string>> = {
  f32: 'F32',
  f64: 'F64',
  bf16: 'BF16',
  f16: 'F16',
  i8: 'I8',
  u8: 'U8',
  i32: 'I32',
  i64: 'I64',
};
/** Position in the reference `Dtype` enum (increasing alignment); the writer orders data by descending rank. */
const DTYPE_RANK: Readonly<Record<DType, number>> = { u8: 0, i8: 1, f16: 2, bf16: 3, i32: 4, f32: 5, f64: 6, i64: 7 };

/** Where one tensor lives. `byteOffset` is absolute in `file` (8 + header length + data_offsets[0]). */
export interface TensorInfo {
  name: string;
  dtype: DType;
  shape: readonly number[];
  file: string;
  byteOffset: number;
  byteLength: number;
}

/** The file operations the reader uses; `node:fs` by default. Tests inject a wrapper to count bytes read. */
export interface FileIO {
  openSync(path: string, flags: 'r'): number;
  fstatSync(fd: number): { size: number; isFile(): boolean };
  readSync(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): number;
  closeSync(fd: number): void;
}

export class SafetensorsFile {
  readonly path: string;
  /** The header's "__metadata__" (e.g. {format: "pt"}); empty when absent. */
  readonly metadata: Readonly<Record<string, string>>;
  private readonly tensors: ReadonlyMap<string, TensorInfo>;
  private readonly io: FileIO;
  private fd: number | null;

  private constructor(path: string, fd: number, io: FileIO, header: ParsedHeader) {
    this.path = path;
    this.fd = fd;
    this.io = io;
    this.metadata = header.metadata;
    this.tensors = header.tensors;
  }

  /** Open a file and read its header (only). Throws UserError if the file is missing or malformed. */
  static open(path: string, io: FileIO = fs): SafetensorsFile {
    let fd: number;
    try {
      fd = io.openSync(path, 'r');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw new UserError(`safetensors file not found: ${path} does not exist.`);
      throw new UserError(`cannot open safetensors file ${path} (${code ?? String(error)}).`);
    }
    try {
      return new SafetensorsFile(path, fd, io, readHeader(path, fd, io));
    } catch (error) {
      io.closeSync(fd);
      throw error;
    }
  }

  /** Tensor names, sorted (as the Python `safe_open(...).keys()` returns them). */
  keys(): string[] {
    return [...this.tensors.keys()].sort();
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  info(name: string): TensorInfo {
    const info = this.tensors.get(name);
    if (!info) throw new UserError(`tensor ${quote(name)} not found in ${this.path} (it holds ${this.tensors.size} tensors).`);
    return info;
  }

  /**
   * Read one tensor into a new, aligned typed array in its stored dtype, or over a memory mapping of the file (see the
   * top of this file). `map: false` always copies: for a tensor the caller converts and drops at once, since a
   * mapping is released only after its buffer is collected AND control returns to the event loop (a synchronous
   * load would keep every dropped mapping resident until it ends).
   */
  read(name: string, options: { map?: boolean } = {}): Tensor {
    const info = this.info(name);
    if (this.fd === null) throw new Error(`SafetensorsFile ${this.path} was read after close()`);
    if (os.endianness() !== 'LE') throw new Error('safetensors data is little-endian; big-endian hosts are not supported');
    const mapped = options.map === false ? undefined : this.mapped(info);
    if (mapped) return new Tensor(info.dtype, info.shape, mapped);
    let data: AnyTypedArray;
    try {
      data = allocate(info.dtype, info.byteLength / BYTES_PER_ELEMENT[info.dtype]);
    } catch (error) {
      if (!(error instanceof RangeError)) throw error;
      throw new UserError(`not enough memory to read tensor ${quote(name)} (${info.byteLength} bytes) from ${this.path}.`);
    }
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    for (let done = 0; done < bytes.length; ) {
      const length = Math.min(IO_CHUNK_BYTES, bytes.length - done);
      const got = this.io.readSync(this.fd, bytes, done, length, info.byteOffset + done);
      if (got === 0) {
        throw new UserError(`${this.path} ended while reading tensor ${quote(name)}; the file was truncated after it was opened.`);
      }
      done += got;
    }
    return new Tensor(info.dtype, info.shape, data);
  }

  /** The tensor over a memory mapping of its bytes, or undefined when it is read instead (see MAP_MIN_BYTES). */
  private mapped(info: TensorInfo): AnyTypedArray | undefined {
    const element = BYTES_PER_ELEMENT[info.dtype];
    // only the real file system (an injected FileIO is read through), only aligned float tensors worth a mapping
    if (this.io !== fs || process.env.SQAP_MMAP === '0' || this.fd === null) return undefined;
    if (!MAPPED_DTYPES.has(info.dtype) || info.byteLength < MAP_MIN_BYTES || info.byteOffset % element !== 0) return undefined;
    const buffer = nativeMapFile(this.fd, info.byteOffset, info.byteLength);
    return buffer ? viewBytes(info.dtype, buffer, 0, info.byteLength / element) : undefined;
  }

  close(): void {
    if (this.fd !== null) this.io.closeSync(this.fd);
    this.fd = null;
  }
}

interface ParsedHeader {
  metadata: Readonly<Record<string, string>>;
  tensors: Map<string, TensorInfo>;
}

function readHeader(path: string, fd: number, io: FileIO): ParsedHeader {
  const stat = io.fstatSync(fd);
  if (!stat.isFile()) throw new UserError(`${path} is not a regular file, expected a .safetensors file.`);
  const fileBytes = stat.size;
  const fail = (problem: string) => new UserError(`${path} is not a valid safetensors file: ${problem}.`);
  if (fileBytes < 8) {
    throw fail(`the file is ${fileBytes} bytes, shorter than the 8-byte header length prefix (truncated or not safetensors)`);
  }
  const prefix = new Uint8Array(8);
  readExactly(path, fd, io, prefix, 0);
  const headerBytes = new DataView(prefix.buffer).getBigUint64(0, true);
  if (headerBytes > BigInt(MAX_HEADER_BYTES)) {
    throw fail(`header length ${headerBytes} bytes exceeds the ${MAX_HEADER_BYTES}-byte limit (corrupt or not safetensors)`);
  }
  const headerLength = Number(headerBytes);
  if (8 + headerLength > fileBytes) {
    throw fail(`header length ${headerLength} bytes runs past the end of the file (${fileBytes} bytes; truncated?)`);
  }
  const raw = new Uint8Array(headerLength);
  readExactly(path, fd, io, raw, 8);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(raw);
  } catch {
    throw fail('the header is not valid UTF-8');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw fail(`the header is not valid JSON (${oneLine((error as Error).message)})`);
  }
  return parseHeaderJson(json, path, 8 + headerLength, fileBytes - 8 - headerLength, fail);
}

function readExactly(path: string, fd: number, io: FileIO, into: Uint8Array, position: number): void {
  for (let done = 0; done < into.length; ) {
    const got = io.readSync(fd, into, done, Math.min(IO_CHUNK_BYTES, into.length - done), position + done);
    if (got === 0) throw new UserError(`${path} ended early while reading its header; the file is truncated.`);
    done += got;
  }
}

/** Validate the header object: every entry, then that no two tensors share bytes. */
function parseHeaderJson(
  json: unknown,
  path: string,
  dataStart: number,
  dataBytes: number,
  fail: (problem: string) => UserError,
): ParsedHeader {
  if (!isPlainObject(json)) throw fail(`the header is ${describe(json)}, not a JSON object`);
  const metadata: Record<string, string> = {};
  const tensors = new Map<string, TensorInfo>();
  const ranges: Array<{ name: string; begin: number; end: number }> = [];
  for (const [name, entry] of Object.entries(json)) {
    if (name === '__metadata__') {
      if (!isPlainObject(entry)) throw fail(`"__metadata__" is ${describe(entry)}, expected an object of strings`);
      for (const [key, value] of Object.entries(entry)) {
        if (typeof value !== 'string') throw fail(`"__metadata__" value for ${quote(key)} is ${describe(value)}, expected a string`);
        metadata[key] = value;
      }
      continue;
    }
    const tensor = `tensor ${quote(name)}`;
    if (!isPlainObject(entry)) throw fail(`${tensor} is ${describe(entry)}, expected {dtype, shape, data_offsets}`);
    for (const field of ['dtype', 'shape', 'data_offsets']) {
      if (!(field in entry)) throw fail(`${tensor} has no "${field}"`);
    }
    const { dtype: dtypeName, shape, data_offsets: offsets } = entry;
    if (typeof dtypeName !== 'string') throw fail(`${tensor} has "dtype" ${describe(dtypeName)}, expected a string`);
    const dtype = Object.hasOwn(DTYPE_FROM_NAME, dtypeName) ? DTYPE_FROM_NAME[dtypeName] : undefined;
    if (dtype === undefined) {
      throw fail(`${tensor} has unsupported dtype ${quote(dtypeName)} (supported: ${Object.keys(DTYPE_FROM_NAME).join(', ')})`);
    }
    if (!Array.isArray(shape)) throw fail(`${tensor} has "shape" ${describe(shape)}, expected an array of integers`);
    for (const dim of shape) {
      if (!Number.isSafeInteger(dim) || (dim as number) < 0) {
        throw fail(`${tensor} has invalid dimension ${oneLine(JSON.stringify(dim) ?? String(dim), 40)} in its shape; dimensions must be non-negative integers`);
      }
    }
    const dims = shape as number[];
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every((o) => Number.isSafeInteger(o) && (o as number) >= 0) ||
      offsets[0] > offsets[1]
    ) {
      throw fail(`${tensor} has "data_offsets" ${oneLine(JSON.stringify(offsets) ?? '', 60)}, expected [begin, end] integers with 0 <= begin <= end`);
    }
    const [begin, end] = offsets as [number, number];
    const needBytes = byteSize(dims, BYTES_PER_ELEMENT[dtype]);
    if (needBytes !== end - begin) {
      throw fail(`${tensor} has ${end - begin} bytes of data but dtype ${dtypeName} and shape [${dims.join(',')}] need ${needBytes ?? 'more than 2^53'} bytes`);
    }
    if (end > dataBytes) {
      throw fail(`${tensor} has data_offsets [${begin}, ${end}] past the end of the data section (${dataBytes} bytes; truncated?)`);
    }
    tensors.set(name, { name, dtype, shape: Object.freeze([...dims]), file: path, byteOffset: dataStart + begin, byteLength: end - begin });
    if (end > begin) ranges.push({ name, begin, end });
  }
  ranges.sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < ranges.length; i++) {
    const [previous, current] = [ranges[i - 1], ranges[i]];
    if (current.begin < previous.end) {
      throw fail(`tensors ${quote(previous.name)} [${previous.begin}, ${previous.end}) and ${quote(current.name)} [${current.begin}, ${current.end}) overlap`);
    }
  }
  return { metadata: Object.freeze(metadata), tensors };
}

/** product(shape) * elementBytes, or null when it is not an exact JS integer (then it cannot match any file). */
function byteSize(shape: readonly number[], elementBytes: number): number | null {
  if (shape.includes(0)) return 0;
  let size = elementBytes;
  for (const d of shape) {
    size *= d;
    if (size > Number.MAX_SAFE_INTEGER) return null;
  }
  return size;
}

/**
 * Write tensors as one safetensors file, byte-compatible with the reference writer: data ordered by descending
 * dtype alignment then name, header entries in data order with "__metadata__" first (its keys sorted), compact
 * JSON padded with spaces to a multiple of 8 bytes. Tensors are streamed one by one into a temporary file that
 * is renamed into place, so a crash never leaves a half-written checkpoint under the final name.
 */
export function writeSafetensors(path: string, tensors: Readonly<Record<string, Tensor>>, metadata?: Readonly<Record<string, string>>): void {
  const encoder = new TextEncoder();
  const entries = Object.entries(tensors);
  entries.sort(([nameA, a], [nameB, b]) => DTYPE_RANK[b.dtype] - DTYPE_RANK[a.dtype] || compareUtf8(nameA, nameB));
  const parts: string[] = [];
  if (metadata) {
    const keys = Object.keys(metadata).sort(compareUtf8);
    parts.push(`"__metadata__":{${keys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(metadata[k])}`).join(',')}}`);
  }
  let offset = 0;
  for (const [name, tensor] of entries) {
    if (name === '__metadata__') throw new Error('"__metadata__" is reserved and cannot name a tensor');
    const begin = offset;
    offset += tensor.data.byteLength;
    const info = `{"dtype":"${NAME_FROM_DTYPE[tensor.dtype]}","shape":[${tensor.shape.join(',')}],"data_offsets":[${begin},${offset}]}`;
    parts.push(`${JSON.stringify(name)}:${info}`);
  }
  const json = encoder.encode(`{${parts.join(',')}}`);
  const header = new Uint8Array(json.length + ((8 - (json.length % 8)) % 8)).fill(0x20);
  header.set(json);
  const prefix = new Uint8Array(8);
  new DataView(prefix.buffer).setBigUint64(0, BigInt(header.length), true);

  const temporary = `${path}.tmp-${process.pid}`;
  let fd: number;
  try {
    fd = fs.openSync(temporary, 'w');
  } catch (error) {
    throw new UserError(`cannot write safetensors file ${path} (${(error as NodeJS.ErrnoException).code ?? String(error)}).`);
  }
  try {
    writeAll(fd, prefix);
    writeAll(fd, header);
    for (const [, tensor] of entries) writeAll(fd, new Uint8Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength));
    fs.closeSync(fd);
    fs.renameSync(temporary, path);
  } catch (error) {
    try {
      fs.closeSync(fd);
    } catch {
      // already closed
    }
    fs.rmSync(temporary, { force: true });
    throw error;
  }
}

function writeAll(fd: number, bytes: Uint8Array): void {
  for (let done = 0; done < bytes.length; ) {
    done += fs.writeSync(fd, bytes, done, Math.min(IO_CHUNK_BYTES, bytes.length - done));
  }
}

/** Order strings by their UTF-8 bytes, as Rust's `str::cmp` (the reference writer) does. */
function compareUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `${typeof value} ${oneLine(JSON.stringify(value) ?? String(value), 40)}`;
}

/** A name from a file, quoted and made safe for a one-line message. */
export function quote(name: string): string {
  return oneLine(JSON.stringify(name), 120);
}
