// A GGUF v3 writer for a Llama-2-7B-shaped model with seeded random weights in Q4_0, so llama.cpp can run the same
// decoder shapes as our synthetic OpenVLA-7B checkpoint (bench/peers/llm-step.ts). Written from llama.cpp's
// ggml/include/gguf.h, docs/gguf.md and gguf-py/gguf/constants.py:
//
//   header   "GGUF" | u32 version = 3 | u64 tensor count | u64 key-value count
//   kv       string key | u32 value type | value        (string = u64 byte length + UTF-8 bytes, no terminator;
//                                                        array = u32 element type + u64 count + elements)
//   tensor   string name | u32 n_dims | u64 ne[n_dims] | u32 ggml type | u64 offset from the data section
//            (ne[0] is the contiguous axis: a PyTorch weight [out, in] is ne = [in, out])
//   padding  zeros up to general.alignment (32), then every tensor's data, each starting at a multiple of it
//
// Q4_0 (ggml_type 2) is llama.cpp's block_q4_0: per 32 consecutive elements along ne[0], an f16 scale
// d = (the element of largest magnitude, with its sign) / -8, then 16 bytes: byte j holds element j's code in its
// low nibble and element j+16's in its high nibble, code = min(15, trunc(x/d + 8.5)), x ≈ (code - 8) * d.
// Every matrix is Q4_0, token_embd and output included (llama.cpp's own Q4_0 files keep output in Q6_K; one format
// everywhere is simpler and changes the output matmul's cost by a few percent at most); the norms are F32.
//
// The file is written as it is generated, one chunk of rows at a time, so 32 layers (~3.8 GB) never sit in memory.
// CLI: npx tsx bench/peers/gguf.ts --layers 8 --out F.gguf [--seed S] [--vocab 32000] [--context 4096]
import * as fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseIntegerFlag } from '../../src/cli/args.js';
import { UserError } from '../../src/errors.js';
import { mulberry32 } from '../../src/random.js';
import { f32ToF16 } from '../../src/tensor/dtype.js';
import { parseFlags, runMain } from './flags.js';

const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
const GGUF_VERSION = 3;
const ALIGNMENT = 32;

/** gguf_type (gguf.h) */
const enum ValueType { UINT32 = 4, INT32 = 5, FLOAT32 = 6, STRING = 8, ARRAY = 9 }
/** ggml_type (ggml.h) */
export const enum GgmlType { F32 = 0, Q4_0 = 2 }
/** llama_token_type (llama.h), as tokenizer.ggml.token_type stores it */
const enum TokenType { NORMAL = 1, UNKNOWN = 2, CONTROL = 3, BYTE = 6 }
/** llama_ftype LLAMA_FTYPE_MOSTLY_Q4_0 */
const FILE_TYPE_MOSTLY_Q4_0 = 2;

export const Q4_0_BLOCK = 32;
export const Q4_0_BLOCK_BYTES = 18; // f16 d + 16 bytes of nibbles

type Value =
  | { type: ValueType.UINT32 | ValueType.INT32 | ValueType.FLOAT32; value: number }
  | { type: ValueType.STRING; value: string }
  | { type: ValueType.ARRAY; element: ValueType.STRING; values: string[] }
  | { type: ValueType.ARRAY; element: ValueType.FLOAT32 | ValueType.INT32; values: ArrayLike<number> };

const u32 = (value: number): Value => ({ type: ValueType.UINT32, value });
const f32 = (value: number): Value => ({ type: ValueType.FLOAT32, value });
const str = (value: string): Value => ({ type: ValueType.STRING, value });

/** Little-endian byte sink for the header. */
class ByteWriter {
  private buffer = Buffer.alloc(1 << 20);
  length = 0;
  private reserve(n: number): void {
    if (this.length + n <= this.buffer.length) return;
    const grown = Buffer.alloc(Math.max(2 * this.buffer.length, this.length + n));
    this.buffer.copy(grown, 0, 0, this.length);
    this.buffer = grown;
  }
  u32(v: number): void { this.reserve(4); this.buffer.writeUInt32LE(v, this.length); this.length += 4; }
  i32(v: number): void { this.reserve(4); this.buffer.writeInt32LE(v, this.length); this.length += 4; }
  u64(v: number): void { this.reserve(8); this.buffer.writeBigUInt64LE(BigInt(v), this.length); this.length += 8; }
  f32(v: number): void { this.reserve(4); this.buffer.writeFloatLE(v, this.length); this.length += 4; }
  string(s: string): void {
    const bytes = Buffer.from(s, 'utf8');
    this.u64(bytes.length);
    this.reserve(bytes.length);
    bytes.copy(this.buffer, this.length);
    this.length += bytes.length;
  }
  zeros(n: number): void { this.reserve(n); this.buffer.fill(0, this.length, this.length + n); this.length += n; }
  bytes(): Buffer { return this.buffer.subarray(0, this.length); }
}

function writeValue(w: ByteWriter, v: Value): void {
  w.u32(v.type);
  switch (v.type) {
    case ValueType.STRING: return w.string(v.value);
    case ValueType.UINT32: return w.u32(v.value);
    case ValueType.INT32: return w.i32(v.value);
    case ValueType.FLOAT32: return w.f32(v.value);
    case ValueType.ARRAY:
      w.u32(v.element);
      w.u64(v.values.length);
      if (v.element === ValueType.STRING) for (const s of v.values) w.string(s);
      else if (v.element === ValueType.FLOAT32) for (let i = 0; i < v.values.length; i++) w.f32(v.values[i]);
      else for (let i = 0; i < v.values.length; i++) w.i32(v.values[i]);
  }
}

/**
 * One row of floats [k] (k a multiple of 32) -> k/32 Q4_0 blocks in `out` at `offset`, bit for bit as ggml's
 * quantize_row_q4_0_ref: its arithmetic is float32, so every step is rounded with Math.fround.
 */
export function quantizeRowQ4_0(x: Float32Array, out: Uint8Array, offset: number): void {
  if (x.length % Q4_0_BLOCK !== 0) throw new Error(`quantizeRowQ4_0: row of ${x.length} is not a multiple of ${Q4_0_BLOCK}`);
  const fr = Math.fround;
  for (let b = 0; b < x.length / Q4_0_BLOCK; b++) {
    const base = b * Q4_0_BLOCK;
    let amax = 0;
    let max = 0;
    for (let j = 0; j < Q4_0_BLOCK; j++) {
      const v = x[base + j];
      if (amax < Math.abs(v)) { amax = Math.abs(v); max = v; }
    }
    const d = fr(max / -8);
    const id = d ? fr(1 / d) : 0;
    const half = f32ToF16(d);
    const o = offset + b * Q4_0_BLOCK_BYTES;
    out[o] = half & 0xff;
    out[o + 1] = half >>> 8;
    for (let j = 0; j < 16; j++) {
      const low = Math.min(15, Math.trunc(fr(fr(x[base + j] * id) + 8.5)));
      const high = Math.min(15, Math.trunc(fr(fr(x[base + 16 + j] * id) + 8.5)));
      out[o + 2 + j] = low | (high << 4);
    }
  }
}

export interface LlamaShape {
  layers: number;
  hidden: number; // embedding_length
  intermediate: number; // feed_forward_length
  heads: number;
  kvHeads: number;
  vocab: number;
  contextLength: number;
  rmsEps: number;
}

/** Llama-2-7B's shape with `layers` decoder layers */
export function llama2_7bShape(layers: number, vocab = 32000, contextLength = 4096): LlamaShape {
  return { layers, hidden: 4096, intermediate: 11008, heads: 32, kvHeads: 32, vocab, contextLength, rmsEps: 1e-5 };
}

interface TensorPlan {
  name: string;
  ne: [number, number] | [number]; // ne[0] contiguous
  type: GgmlType;
  /** uniform random in [-scale, scale] (std scale/√3), or all ones for the norms */
  fill: { kind: 'ones' } | { kind: 'uniform'; scale: number };
}

function tensorPlans(shape: LlamaShape): TensorPlan[] {
  const { hidden: h, intermediate: ff, vocab } = shape;
  const kv = (h / shape.heads) * shape.kvHeads;
  // std 1/√in (what a trained linear's weights are near): scale = √3/√in
  const matrix = (name: string, inFeatures: number, outFeatures: number): TensorPlan =>
    ({ name, ne: [inFeatures, outFeatures], type: GgmlType.Q4_0, fill: { kind: 'uniform', scale: Math.sqrt(3 / inFeatures) } });
  const norm = (name: string): TensorPlan => ({ name, ne: [h], type: GgmlType.F32, fill: { kind: 'ones' } });
  const plans: TensorPlan[] = [{ name: 'token_embd.weight', ne: [h, vocab], type: GgmlType.Q4_0, fill: { kind: 'uniform', scale: Math.sqrt(3) * 0.02 } }];
  for (let i = 0; i < shape.layers; i++) {
    plans.push(
      norm(`blk.${i}.attn_norm.weight`),
      matrix(`blk.${i}.attn_q.weight`, h, h),
      matrix(`blk.${i}.attn_k.weight`, h, kv),
      matrix(`blk.${i}.attn_v.weight`, h, kv),
      matrix(`blk.${i}.attn_output.weight`, h, h),
      norm(`blk.${i}.ffn_norm.weight`),
      matrix(`blk.${i}.ffn_gate.weight`, h, ff),
      matrix(`blk.${i}.ffn_up.weight`, h, ff),
      matrix(`blk.${i}.ffn_down.weight`, ff, h),
    );
  }
  plans.push(norm('output_norm.weight'), matrix('output.weight', h, vocab));
  return plans;
}

function tensorBytes(t: TensorPlan): number {
  const elements = t.ne.reduce((a, b) => a * b, 1);
  return t.type === GgmlType.F32 ? 4 * elements : (elements / Q4_0_BLOCK) * Q4_0_BLOCK_BYTES;
}

const alignUp = (n: number) => Math.ceil(n / ALIGNMENT) * ALIGNMENT;

/**
 * A SentencePiece-style vocabulary with Llama-2's layout: <unk>, <s>, </s>, the 256 byte tokens <0x00>..<0xFF>,
 * then ordinary pieces. Its text is made up; llama.cpp needs a loadable vocabulary, the benchmark feeds token ids.
 */
function vocabulary(size: number): { tokens: string[]; scores: Float32Array; types: Int32Array } {
  const tokens = ['<unk>', '<s>', '</s>'];
  for (let b = 0; b < 256; b++) tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
  const special = tokens.length;
  for (let i = special; i < size; i++) tokens.push(`\u2581t${i}`); // ▁ = SentencePiece's word start
  const types = new Int32Array(size).fill(TokenType.NORMAL);
  types[0] = TokenType.UNKNOWN;
  types[1] = TokenType.CONTROL;
  types[2] = TokenType.CONTROL;
  types.fill(TokenType.BYTE, 3, special);
  const scores = Float32Array.from({ length: size }, (_, i) => (i < special ? 0 : -(i - special)));
  return { tokens, scores, types };
}

function metadata(shape: LlamaShape): Array<[string, Value]> {
  const vocab = vocabulary(shape.vocab);
  return [
    ['general.architecture', str('llama')],
    ['general.name', str(`llama-2-7b-shaped-${shape.layers}-layers-random-q4_0`)],
    ['general.file_type', u32(FILE_TYPE_MOSTLY_Q4_0)],
    ['general.alignment', u32(ALIGNMENT)],
    ['llama.context_length', u32(shape.contextLength)],
    ['llama.embedding_length', u32(shape.hidden)],
    ['llama.block_count', u32(shape.layers)],
    ['llama.feed_forward_length', u32(shape.intermediate)],
    ['llama.attention.head_count', u32(shape.heads)],
    ['llama.attention.head_count_kv', u32(shape.kvHeads)],
    ['llama.rope.dimension_count', u32(shape.hidden / shape.heads)],
    ['llama.rope.freq_base', f32(10000)],
    ['llama.attention.layer_norm_rms_epsilon', f32(shape.rmsEps)],
    ['llama.vocab_size', u32(shape.vocab)],
    ['tokenizer.ggml.model', str('llama')],
    ['tokenizer.ggml.tokens', { type: ValueType.ARRAY, element: ValueType.STRING, values: vocab.tokens }],
    ['tokenizer.ggml.scores', { type: ValueType.ARRAY, element: ValueType.FLOAT32, values: vocab.scores }],
    ['tokenizer.ggml.token_type', { type: ValueType.ARRAY, element: ValueType.INT32, values: vocab.types }],
    ['tokenizer.ggml.unknown_token_id', u32(0)],
    ['tokenizer.ggml.bos_token_id', u32(1)],
    ['tokenizer.ggml.eos_token_id', u32(2)],
  ];
}

/** Writes the model to `path`; `onProgress(bytesDone, bytesTotal)` after each chunk. Returns the file size. */
export function writeLlamaGguf(path: string, shape: LlamaShape, seed: number, onProgress?: (done: number, total: number) => void): number {
  const plans = tensorPlans(shape);
  const kvs = metadata(shape);
  const header = new ByteWriter();
  header.u32(GGUF_MAGIC);
  header.u32(GGUF_VERSION);
  header.u64(plans.length);
  header.u64(kvs.length);
  for (const [key, value] of kvs) {
    header.string(key);
    writeValue(header, value);
  }
  let offset = 0;
  for (const t of plans) {
    header.string(t.name);
    header.u32(t.ne.length);
    for (const n of t.ne) header.u64(n);
    header.u32(t.type);
    header.u64(offset);
    offset = alignUp(offset + tensorBytes(t));
  }
  header.zeros(alignUp(header.length) - header.length);
  const dataBytes = offset;
  const total = header.length + dataBytes;

  const fd = fs.openSync(path, 'w');
  try {
    let position = 0;
    const write = (bytes: Uint8Array) => { fs.writeSync(fd, bytes, 0, bytes.length, position); position += bytes.length; };
    write(header.bytes());
    const dataStart = position;
    const random = mulberry32(seed);
    const CHUNK_ELEMENTS = 1 << 22; // 4 Mi floats (16 MiB) generated and quantized at a time
    for (const t of plans) {
      if (position !== dataStart + alignUp(position - dataStart)) write(new Uint8Array(alignUp(position - dataStart) - (position - dataStart)));
      const rowLength = t.ne[0];
      const rows = t.ne.length === 2 ? t.ne[1] : 1;
      const rowsPerChunk = Math.max(1, Math.floor(CHUNK_ELEMENTS / rowLength));
      const row = new Float32Array(rowLength);
      for (let r0 = 0; r0 < rows; r0 += rowsPerChunk) {
        const n = Math.min(rowsPerChunk, rows - r0);
        if (t.type === GgmlType.F32) {
          const values = new Float32Array(n * rowLength).fill(1); // only the norms are F32
          write(new Uint8Array(values.buffer));
        } else {
          const rowBytes = (rowLength / Q4_0_BLOCK) * Q4_0_BLOCK_BYTES;
          const out = new Uint8Array(n * rowBytes);
          const scale = t.fill.kind === 'uniform' ? t.fill.scale : 1;
          for (let r = 0; r < n; r++) {
            for (let j = 0; j < rowLength; j++) row[j] = (2 * random() - 1) * scale;
            quantizeRowQ4_0(row, out, r * rowBytes);
          }
          write(out);
        }
        onProgress?.(position, total);
      }
    }
    if (position !== total) write(new Uint8Array(total - position)); // the last tensor's padding
    if (position !== total) throw new Error(`writeLlamaGguf: wrote ${position} bytes, planned ${total}`);
  } finally {
    fs.closeSync(fd);
  }
  return total;
}

const HELP = `usage: npx tsx bench/peers/gguf.ts --layers N --out FILE.gguf [--seed S] [--vocab V] [--context C]

Writes a Llama-2-7B-shaped GGUF v3 model (hidden 4096, FFN 11008, 32 heads, RoPE 128, RMS eps 1e-5) with N decoder
layers and seeded random weights: every matrix Q4_0 (token_embd and output too), norms F32, a made-up 32000-token
Llama vocabulary. 32 layers: ~3.8 GB.
  --layers N     decoder layers, 1..32
  --out FILE     the .gguf file to write (overwritten)
  --seed S       weight seed, 0..2^32-1 (default 1)
  --vocab V      vocabulary size, 260..65536 (default 32000)
  --context C    llama.context_length, 512..131072 (default 4096)`;

function main(argv: string[]): number {
  const values = parseFlags(argv, {
    layers: { type: 'string' },
    out: { type: 'string' },
    seed: { type: 'string' },
    vocab: { type: 'string' },
    context: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  }, 'gguf.ts');
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (values.layers === undefined) throw new UserError('needs --layers N (1..32)');
  if (!values.out) throw new UserError('needs --out FILE.gguf');
  const layers = parseIntegerFlag(values.layers, 'layers', 0, 1, 32);
  const seed = parseIntegerFlag(values.seed, 'seed', 1, 0, 2 ** 32 - 1);
  const vocab = parseIntegerFlag(values.vocab, 'vocab', 32000, 260, 65536);
  const context = parseIntegerFlag(values.context, 'context', 4096, 512, 131072);
  const shape = llama2_7bShape(layers, vocab, context);
  const start = performance.now();
  let lastPrint = 0;
  const bytes = writeLlamaGguf(values.out, shape, seed, (done, total) => {
    const now = performance.now();
    if (now - lastPrint < 2000 && done < total) return;
    lastPrint = now;
    process.stderr.write(`gguf: ${(done / 2 ** 30).toFixed(2)} / ${(total / 2 ** 30).toFixed(2)} GiB (${((100 * done) / total).toFixed(0)}%), ${((now - start) / 1000).toFixed(0)} s\n`);
  });
  console.log(`wrote ${values.out}: ${layers} layers, vocab ${vocab}, Q4_0, ${(bytes / 2 ** 30).toFixed(3)} GiB in ${((performance.now() - start) / 1000).toFixed(1)} s`);
  return 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === fs.realpathSync(process.argv[1])) {
  await runMain('gguf.ts', () => main(process.argv.slice(2)));
}
