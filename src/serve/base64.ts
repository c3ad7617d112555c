// Strict base64 decoding from bytes to bytes, for the image values the body parser cuts out of a request body
// (body-parser.ts). Node 20 decodes base64 only from a JS string, and making a 200 KB string of the bytes first
// costs more than the decoding itself (a fresh large-object allocation, page faults); this reads the body bytes
// directly and writes into a buffer of its own from the image pool (buffer-pool.ts), which the server hands to the
// model thread without a copy and gets back with the step's result.

import { imageBuffers } from './buffer-pool.js';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const EQUALS = 0x3d;
/** byte -> its 6-bit value, or -1 outside the standard alphabet */
const SEXTET = new Int16Array(256).fill(-1);
for (let i = 0; i < ALPHABET.length; i++) SEXTET[ALPHABET.charCodeAt(i)] = i;

/**
 * `text` [n] ASCII bytes of padded standard base64 -> the decoded bytes [n/4*3 - padding] in a buffer of their own,
 * or undefined when the text is not strict base64 (length not a multiple of 4, a byte outside the alphabet, '='
 * anywhere but the last one or two places) — the same strings Python's b64encode writes.
 */
export function decodeBase64Bytes(text: Uint8Array): Buffer | undefined {
  const n = text.length;
  if (n % 4 !== 0) return undefined;
  if (n === 0) return Buffer.alloc(0);
  const padding = text[n - 1] === EQUALS ? (text[n - 2] === EQUALS ? 2 : 1) : 0;
  const out = imageBuffers.acquire((n / 4) * 3 - padding);
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
