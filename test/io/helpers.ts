// Shared helpers for the io tests: temp directories, a seeded PRNG, hand-built safetensors bytes, a read counter.

import fs from 'node:fs';
import os from 'node:os';
import nodePath from 'node:path';
import { after } from 'node:test';
import type { FileIO } from '../../src/io/safetensors.js';

/** A fresh temp directory, removed when the test file finishes. */
export function tempDir(prefix = 'sqap-io-'): string {
  const dir = fs.mkdtempSync(nodePath.join(os.tmpdir(), prefix));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A seeded PRNG so that fuzz and random data are reproducible. Returns floats in [0, 1). */
export { mulberry32 as seededRandom } from '../../src/random.js';

export function u64le(value: number | bigint): Uint8Array {
  const bytes = new Uint8Array(8);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(value), true);
  return bytes;
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/**
 * Hand-build a safetensors file: [u64 length][header][dataBytes zero bytes]. `header` is JSON text (or raw
 * bytes, or a value to stringify); `lengthField` overrides the declared header length.
 */
export function rawSafetensors(header: string | Uint8Array | object, dataBytes = 0, lengthField?: bigint): Uint8Array {
  const headerBytes =
    header instanceof Uint8Array ? header : new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  return concatBytes(u64le(lengthField ?? BigInt(headerBytes.length)), headerBytes, new Uint8Array(dataBytes));
}

/** `node:fs` wrapped so that a test can count the bytes the reader really asks the OS for. */
export function countingIO(): FileIO & { bytesRead: number; reads: number } {
  const io = {
    bytesRead: 0,
    reads: 0,
    openSync: (path: string, flags: 'r') => fs.openSync(path, flags),
    fstatSync: (fd: number) => fs.fstatSync(fd),
    closeSync: (fd: number) => fs.closeSync(fd),
    readSync(fd: number, buffer: Uint8Array, offset: number, length: number, position: number): number {
      const got = fs.readSync(fd, buffer, offset, length, position);
      io.bytesRead += got;
      io.reads += 1;
      return got;
    },
  };
  return io;
}

/** The raw bytes of a typed array (for exact comparisons across dtypes, NaN payloads included). */
export function bytesOf(data: ArrayBufferView): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** A FileIO over bytes in memory (any path opens them): lets a fuzz loop run thousands of cases without disk I/O. */
export function memoryIO(bytes: () => Uint8Array): FileIO {
  return {
    openSync: () => 3,
    fstatSync: () => ({ size: bytes().length, isFile: () => true }),
    readSync(_fd: number, buffer: Uint8Array, offset: number, length: number, position: number): number {
      const source = bytes().subarray(position, position + length);
      buffer.set(source, offset);
      return source.length;
    },
    closeSync: () => {},
  };
}
