// The JSON body parser of the server. A deploy.py body is ~200 KB, nearly all of it one base64 string (the image's
// json-numpy "__numpy__" value). Turning those bytes into a JS string, JSON-parsing it, scanning it for prototype
// poisoning and then base64-decoding it costs several milliseconds per request, which is most of the server's
// overhead over a bare policy step. So before parsing, each long "__numpy__" value is cut out of the raw body bytes
// and replaced by a short placeholder; only the small rest is parsed (with Fastify's own JSON parser, so errors and
// poisoning checks stay the same), and the base64 bytes are decoded straight from the body buffer when the request
// parser meets the placeholder (ndarray.ts resolveBase64). Both deploy.py forms are handled: the plain one
// ("__numpy__": "AAAA") and the double-encoded one, where the same text sits escaped inside the "encoded" string
// (\"__numpy__\": \"AAAA\"). Anything the cut does not recognise is left in place and parsed the ordinary way.
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { errorCodes } from 'fastify';
import { bodyBuffers } from './buffer-pool.js';

/** Values shorter than this are parsed the ordinary way (the cut only pays off for big ones). */
export const MIN_CUT_LENGTH = 1024;

/**
 * Start of every placeholder: a NUL character (JSON can only spell it escaped) and a per-process random tag, so a
 * client cannot write a string that is taken for a placeholder.
 */
const TAG = `sqap-b64-${randomBytes(8).toString('hex')}-`;
const PLACEHOLDER_PREFIX = `\u0000${TAG}`;

const KEY = Buffer.from('__numpy__');
const ENCODED_KEY = Buffer.from('"encoded"');
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;

export interface CutBody {
  /** the body with long "__numpy__" values replaced by placeholders (utf-8 decoded) */
  text: string;
  /** the cut-out base64 values, views into the body buffer, by placeholder index */
  slices: Buffer[];
}

/** Cut the long "__numpy__" base64 values out of a raw JSON body (see the file comment). */
export function cutBase64Values(body: Buffer): CutBody {
  const slices: Buffer[] = [];
  const pieces: Buffer[] = [];
  let copied = 0;
  const encodedForm = startsWithEncodedKey(body);
  for (let at = body.indexOf(KEY); at >= 0; at = body.indexOf(KEY, at + KEY.length)) {
    const cut = valueAfterKey(body, at, encodedForm);
    if (!cut) continue;
    pieces.push(body.subarray(copied, cut.start), Buffer.from(placeholderText(slices.length, cut.escaped)));
    slices.push(body.subarray(cut.start, cut.end));
    copied = cut.end;
  }
  if (slices.length === 0) return { text: body.toString('utf8'), slices };
  pieces.push(body.subarray(copied));
  return { text: Buffer.concat(pieces).toString('utf8'), slices };
}

/**
 * The byte range of the string value of the key "__numpy__" whose name starts at `at`, when it can be cut safely:
 * the key's opening quote is a real quote (plain form) or an escaped quote inside the "encoded" string (a single
 * backslash: the inner JSON's quote is then unescaped too), and the value holds no quote or backslash, so it lies
 * wholly inside one string literal and replacing it changes nothing else in the body.
 */
function valueAfterKey(body: Buffer, at: number, encodedForm: boolean): { start: number; end: number; escaped: boolean } | undefined {
  if (at < 1 || body[at - 1] !== QUOTE) return undefined;
  let backslashes = 0;
  while (at - 2 - backslashes >= 0 && body[at - 2 - backslashes] === BACKSLASH) backslashes++;
  if (backslashes > (encodedForm ? 1 : 0)) return undefined;
  const escaped = backslashes === 1;
  let i = at + KEY.length;
  if (escaped && body[i++] !== BACKSLASH) return undefined;
  if (body[i++] !== QUOTE) return undefined;
  i = skipSpaces(body, i);
  if (body[i++] !== COLON) return undefined;
  i = skipSpaces(body, i);
  if (escaped && body[i++] !== BACKSLASH) return undefined;
  if (body[i++] !== QUOTE) return undefined;
  const start = i;
  const close = body.indexOf(QUOTE, start);
  if (close < 0) return undefined;
  const end = escaped ? close - 1 : close;
  if (end - start < MIN_CUT_LENGTH) return undefined;
  if (escaped && body[end] !== BACKSLASH) return undefined;
  if (body.subarray(start, end).indexOf(BACKSLASH) >= 0) return undefined; // an escape inside: parse it normally
  return { start, end, escaped };
}

/**
 * Whether the body opens with `{"encoded": "`. Escaped keys are only cut then: inside the "encoded" string they are
 * keys of the inner JSON; in any other string (an instruction quoting JSON) they are just text. A body with more keys
 * than "encoded" is refused anyway (act-request.ts), so every escaped key that matters lies in that one string.
 */
function startsWithEncodedKey(body: Buffer): boolean {
  let i = skipSpaces(body, 0);
  if (body[i++] !== 0x7b) return false; // {
  i = skipSpaces(body, i);
  if (!body.subarray(i, i + ENCODED_KEY.length).equals(ENCODED_KEY)) return false;
  i = skipSpaces(body, i + ENCODED_KEY.length);
  if (body[i++] !== COLON) return false;
  return body[skipSpaces(body, i)] === QUOTE;
}

function skipSpaces(body: Buffer, i: number): number {
  while (body[i] === 0x20 || body[i] === 0x09 || body[i] === 0x0a || body[i] === 0x0d) i++;
  return i;
}

/** The placeholder as written into the JSON text: one level of escaping more inside the "encoded" string. */
function placeholderText(index: number, escaped: boolean): string {
  return `${escaped ? '\\\\' : '\\'}u0000${TAG}${index}`;
}

/** A string from a parsed body -> the base64 bytes it stands for, or the string itself when it is no placeholder. */
export function resolveBase64(value: string, slices: readonly Buffer[] | undefined): string | Buffer {
  if (!slices || slices.length === 0 || !value.startsWith(PLACEHOLDER_PREFIX)) return value;
  const index = Number(value.slice(PLACEHOLDER_PREFIX.length));
  return Number.isInteger(index) && index >= 0 && index < slices.length ? slices[index] : value;
}

/**
 * Read a request body into one buffer from the body pool (buffer-pool.ts) as it arrives, with Fastify's own checks
 * and errors: 413 past `limit` bytes (Content-Length or bytes received), 400 when the bytes received do not match
 * Content-Length. `done(error)` or `done(null, body)`; the body goes back to the pool with releaseBody.
 */
export function readBody(payload: Readable, contentLengthHeader: string | undefined, limit: number, done: (error: Error | null, body?: Buffer) => void): void {
  const contentLength = contentLengthHeader === undefined ? NaN : Number(contentLengthHeader);
  if (contentLength > limit) {
    done(new errorCodes.FST_ERR_CTP_BODY_TOO_LARGE());
    return;
  }
  // with a Content-Length the bytes go straight into a pooled buffer; a chunked body is gathered and joined
  const known = Number.isSafeInteger(contentLength) && contentLength >= 0;
  let body = known ? bodyBuffers.acquire(contentLength) : undefined;
  const chunks: Buffer[] = [];
  let received = 0;
  const finish = (error: Error | null, result?: Buffer) => {
    payload.removeListener('data', onData);
    payload.removeListener('end', onEnd);
    payload.removeListener('error', onEnd);
    if (error && body) releaseBody(body);
    done(error, result);
  };
  const onData = (chunk: Buffer | string) => {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    if (received + bytes.length > limit) {
      finish(new errorCodes.FST_ERR_CTP_BODY_TOO_LARGE());
      return;
    }
    if (body && received + bytes.length <= body.length) bytes.copy(body, received);
    else chunks.push(Buffer.from(bytes)); // no Content-Length (or more bytes than it said: refused at the end)
    received += bytes.length;
  };
  const onEnd = (error?: Error & { statusCode?: number }) => {
    if (error) {
      if (!(typeof error.statusCode === 'number' && error.statusCode >= 400)) error.statusCode = 400;
      finish(error);
      return;
    }
    if (known && received !== contentLength) {
      finish(new errorCodes.FST_ERR_CTP_INVALID_CONTENT_LENGTH());
      return;
    }
    if (!body) body = Buffer.concat(chunks, received);
    finish(null, body);
  };
  payload.on('data', onData);
  payload.on('end', onEnd);
  payload.on('error', onEnd);
  payload.resume();
}

/** Return a body from readBody to the pool once nothing reads it any more (its base64 slices included). */
export function releaseBody(body: Buffer): void {
  bodyBuffers.release(body.buffer as ArrayBuffer);
}
