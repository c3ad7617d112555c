// Strict base64 decoding from bytes to bytes, for the image values the body parser cuts out of a request body
// (body-parser.ts), into a buffer of its own from the image pool (buffer-pool.ts), which the server hands to the
// model thread without a copy and gets back with the step's result. Node 20 decodes base64 only from a JS string,
// and making a 200 KB latin1 string of the bytes costs 0.6-0.9 ms on the 2-vCPU machine (more than decoding them),
// so the native core's strict decoder reads the bytes in place (native/generic/base64.cc). Without the addon: a
// latin1 string and Node's C++ decoder first, and the strict JS loop decides only what that cannot (see
// decodeBase64Bytes).

import { nativeBase64Decode } from '../tensor/backends/native.js';
import { imageBuffers } from './buffer-pool.js';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const EQUALS = 0x3d;
/** byte -> its 6-bit value, or -1 outside the standard alphabet */
const SEXTET = new Int16Array(256).fill(-1);
for (let i = 0; i < ALPHABET.length; i++) SEXTET[ALPHABET.charCodeAt(i)] = i;

/**
 * `text` [n] ASCII bytes of padded standard base64 -> the decoded bytes [n/4*3 - padding] in a buffer of their own,
 * or undefined when the text is not strict base64 (length not a multiple of 4, a byte outside the alphabet, '='
 * anywhere but the last one or two places) — the same strings Python's b64encode writes. `native: false` skips
 * the native decoder (tests check both paths give the same answers).
 */
export function decodeBase64Bytes(text: Uint8Array, options: { native?: boolean } = {}): Buffer | undefined {
  const n = text.length;
  if (n % 4 !== 0) return undefined;
  if (n === 0) return Buffer.alloc(0);
  const padding = text[n - 1] === EQUALS ? (text[n - 2] === EQUALS ? 2 : 1) : 0;
  const out = imageBuffers.acquire((n / 4) * 3 - padding);
  // Fastest: the native core decodes the body's bytes in place (no JS string; strict, so its answer is final).
  const native = options.native === false ? undefined : nativeBase64Decode(out, text);
  if (native !== undefined) return native ? out : undefined;
  // Fast path: Node's own decoder (C++, about 3x this loop) through a latin1 string. It is lenient, but in a way
  // that shows: any byte outside the alphabet or a '=' before the end is skipped (or ends the decoding), so fewer
  // bytes come out; only '-' and '_' (base64url) decode as values, and indexOf finds those. A text that passes both
  // checks is strict base64; anything else goes through the strict loop below, which decides.
  if (text.indexOf(0x2d) < 0 && text.indexOf(0x5f) < 0) {
    const bytes = Buffer.isBuffer(text) ? text : Buffer.from(text.buffer, text.byteOffset, text.byteLength);
    if (out.write(bytes.toString('latin1', 0, n), 0, out.length, 'base64') === out.length) return out;
  }
  let bad = 0;
  let o = 0;
  const whole = padding === 0 ? n : n - 4;
  for (let i = 0; i < whole; i += 4) {
    const a = SEXTET[text[i]];
    const b = SEXTET[text[i + 1]];
    const c = SEXTET[text[i + 2]];
    const d = SEXTET[text[i + 3]];
    bad |= a | b | c | d; // any -1 makes it negative
    const v = (a << 18) | (b << 12) | (c << 6) | d;
    out[o++] = v >> 16;
    out[o++] = (v >> 8) & 0xff;
    out[o++] = v & 0xff;
  }
  if (padding > 0) {
    const a = SEXTET[text[n - 4]];
    const b = SEXTET[text[n - 3]];
    const c = padding === 1 ? SEXTET[text[n - 2]] : 0;
    bad |= a | b | c;
    const v = (a << 18) | (b << 12) | (c << 6);
    out[o++] = (v >> 16) & 0xff;
    if (padding === 1) out[o++] = (v >> 8) & 0xff;
  }
  return bad < 0 ? undefined : out;
}
