// The native backend: the C++ addon build/Release/sqap_native.node (native/, built by node-gyp on `npm ci`).
// This file checks shapes, allocates outputs and forwards flat arrays; native/binding.cc checks them again (types,
// lengths, ranges) before any raw pointer reaches a kernel. If the addon is not built, nativeBackend is undefined
// and backends/index.ts falls back to ref.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { AttentionOptions, AttentionResult, AttentionScores, Backend, QuantizedActivations, WeightTensor } from '../backend.js';
import { floatFormat, isPrepackedWeight, isQuantizedWeight, packWeight, prepackedSize, WEIGHT_FORMATS, type PackedWeight, type PrepackedFloatWeight, type QuantizedWeight } from '../formats.js';
import { checkHadamardBlock } from './ref-int.js';
import { allocF32 } from '../arena.js';
import { sameShape, shapeSize, Tensor } from '../tensor.js';

/** avxvnni = AVX2 + AVX-VNNI; avx512 = F/BW/VL without VNNI; avx512vnni = AVX-512 + AVX512-VNNI (native/README.md) */
export type NativeIsa = 'generic' | 'avx2' | 'avxvnni' | 'avx512' | 'avx512vnni';
export const NATIVE_ISAS: readonly NativeIsa[] = ['generic', 'avx2', 'avxvnni', 'avx512', 'avx512vnni'];

export interface NativeInfo {
  /** the instruction-set path the kernels use now */
  isa: NativeIsa;
  /** what SQAP_NATIVE_ISA asked for (null when unset or not a known name) */
  requestedIsa: NativeIsa | null;
  /** the paths this CPU can run */
  supportedIsas: NativeIsa[];
  /** worker threads, the calling thread included (SQAP_THREADS overrides) */
  threads: number;
  /** the current path has a prepacked float GEMM kernel (Backend.prepack packs only then) */
  prepackedFast: boolean;
  /** the bf16 dot-product kernel runs (an AVX-512 path on a CPU with AVX512-BF16): prepack's bf16Activations packs only then */
  prepackedDotFast: boolean;
}

type WeightArray = Float32Array | Uint16Array;

/** The addon's exports (native/binding.cc). Weight type codes: WEIGHT_FORMATS (src/tensor/formats.ts). Outputs are passed in. */
interface Addon {
  linear(out: Float32Array, x: Float32Array, w: WeightArray, wType: number, bias: WeightArray | null,
    biasType: number, M: number, K: number, N: number): void;
  prepackWeight(dst: Float32Array | Uint16Array, w: WeightArray, wType: number, N: number, K: number): void;
  releaseMappedPages(view: ArrayBufferView): boolean;
  linearPrepacked(out: Float32Array, x: Float32Array, packed: Float32Array | Uint16Array, wType: number,
    bias: WeightArray | null, biasType: number, M: number, K: number, N: number): void;
  prepackWeightDot(dst: Uint16Array, w: Uint16Array, N: number, K: number): void;
  linearPrepackedDot(out: Float32Array, x: Float32Array, packed: Uint16Array, bias: WeightArray | null, biasType: number,
    M: number, K: number, N: number): void;
  embedding(out: Float32Array, table: WeightArray, tableType: number, ids: Int32Array, V: number, D: number): void;
  layerNorm(out: Float32Array, x: Float32Array, weight: WeightArray, weightType: number, bias: WeightArray,
    biasType: number, M: number, D: number, eps: number): void;
  rmsNorm(out: Float32Array, x: Float32Array, weight: WeightArray, weightType: number, M: number, D: number,
    eps: number): void;
  gelu(out: Float32Array, x: Float32Array): void;
  siluMul(out: Float32Array, gate: Float32Array, up: Float32Array): void;
  add(out: Float32Array, a: Float32Array, b: Float32Array): void;
  scaleChannels(out: Float32Array, x: Float32Array, scale: WeightArray, scaleType: number, M: number, D: number): void;
  rope(out: Float32Array, x: Float32Array, positions: Int32Array, T: number, H: number, Dh: number, theta: number): void;
  attention(out: Float32Array, probs: Float32Array | null, q: Float32Array, k: Float32Array, v: Float32Array,
    T: number, S: number, Hq: number, Hkv: number, Dh: number, causal: boolean): void;
  intWeightLayout(type: number, N: number, K: number, group: number): { bytes: number; scales: number };
  packIntWeight(packed: Uint8Array, packedScales: Float32Array, codes: Int8Array | Uint8Array, scales: Float32Array,
    type: number, N: number, K: number, group: number): void;
  packIntWeightInPlace(codes: Int8Array | Uint8Array, scales: Float32Array, type: number, N: number, K: number, group: number): boolean;
  unpackIntWeight(codes: Int8Array | Uint8Array, scales: Float32Array, packed: Uint8Array, packedScales: Float32Array,
    type: number, N: number, K: number, group: number): void;
  quantizeActivations(codes: Int8Array, scales: Float32Array, x: Float32Array, M: number, K: number, bits: number,
    hasNorm: boolean, normWeight: WeightArray | null, normType: number, eps: number, hadBlock: number, clip: number): void;
  linearInt(out: Float32Array, acc: Int32Array | null, xCodes: Int8Array, xScales: Float32Array, wPacked: Uint8Array,
    wScales: Float32Array, wType: number, M: number, K: number, N: number, group: number, bias: WeightArray | null,
    biasType: number): void;
  linearDequant(out: Float32Array, x: Float32Array, codes: Int8Array | Uint8Array, scales: Float32Array, wType: number,
    group: number, bias: WeightArray | null, biasType: number, M: number, K: number, N: number): void;
  fwht(out: Float32Array, x: Float32Array, M: number, K: number, block: number): void;
  attentionInt(out: Float32Array, probs: Float32Array | null, q: Int8Array, qScales: Float32Array, k: Int8Array,
    kScales: Float32Array, v: Int8Array, vScales: Float32Array, T: number, S: number, Hq: number, Hkv: number,
    Dh: number, causal: boolean): void;
  weightTypes(): Record<string, number>;
  streamRead(buffer: Uint8Array): number;
  base64Decode(dst: Uint8Array, src: Uint8Array): boolean;
  mapFile(fd: number, offset: number, length: number): ArrayBuffer | null;
  attentionScores(keyTotals: Float32Array | null, queryProbs: Float32Array | null, rows: Int32Array, q: Float32Array,
    k: Float32Array, T: number, S: number, Hq: number, Hkv: number, Dh: number, causal: boolean): void;
  setIsa(isa: NativeIsa): void;
  info(): NativeInfo;
}

/** Where node-gyp puts the addon, from src/tensor/backends/ (and from a dist/ build of the same layout). */
export const NATIVE_ADDON_PATH = fileURLToPath(new URL('../../../build/Release/sqap_native.node', import.meta.url));

let loadError: string | undefined;

function loadAddon(): Addon | undefined {
  try {
    return createRequire(import.meta.url)(NATIVE_ADDON_PATH) as Addon;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    loadError = code === 'MODULE_NOT_FOUND' ? `${NATIVE_ADDON_PATH} does not exist` : String((error as Error).message);
    return undefined;
  }
}

const addon = loadAddon();

/** The message is built only on failure: formatting shapes on every call would cost more than small kernels. */
function check(condition: boolean, message: () => string): asserts condition {
  if (!condition) throw new Error(`native backend: ${message()}`);
}

function weightType(w: WeightTensor): number {
  return floatFormat(w.dtype).code;
}

/**
 * The kernel layout of an integer weight (native/kernels.h), packed on first use. packWeight keeps only this copy:
 * the weight's canonical codes and scales are released, and rebuilt by unpackIntWeight if anything reads them.
 */
function packed(native: Addon, w: QuantizedWeight): PackedWeight {
  return packWeight(w, 'native', (codes, scales, inPlace) => {
    const [n, k] = w.shape;
    const type = WEIGHT_FORMATS[w.format].code;
    const layout = native.intWeightLayout(type, n, k, w.groupSize);
    let p: { codes: Uint8Array; scales: Float32Array };
    if (inPlace && layout.bytes === codes.byteLength && layout.scales === scales.length && native.packIntWeightInPlace(codes, scales, type, n, k, w.groupSize)) {
      // the same memory, now in the kernel layout: packing allocated nothing
      p = { codes: new Uint8Array(codes.buffer, codes.byteOffset, codes.byteLength), scales };
    } else {
      p = { codes: new Uint8Array(layout.bytes), scales: new Float32Array(layout.scales) };
      native.packIntWeight(p.codes, p.scales, codes, scales, type, n, k, w.groupSize);
    }
    return {
      backend: 'native',
      ...p,
      unpack() {
        const out = { codes: w.format === 'i8' ? new Int8Array(n * k) : new Uint8Array(n * WEIGHT_FORMATS.i4.bytesPerRow(k)), scales: new Float32Array((n * k) / w.groupSize) };
        native.unpackIntWeight(out.codes, out.scales, p.codes, p.scales, type, n, k, w.groupSize);
        return out;
      },
    };
  });
}

function intRows(a: QuantizedActivations): number {
  return shapeSize(a.shape.slice(0, -1));
}

function lastDim(x: Tensor): number {
  check(x.rank >= 1, () => `expected a tensor of rank >= 1, got ${x}`);
  return x.shape[x.rank - 1];
}

/** Rows of x seen as a matrix [rows, lastDim]. */
function leadingRows(x: Tensor): number {
  return shapeSize(x.shape.slice(0, -1));
}

function makeBackend(native: Addon): Backend {
  return {
    name: 'native',

    // x [..., K] · w [N,K]ᵀ + bias [N] -> [..., N]
    linear(x, w, bias) {
      if (isQuantizedWeight(w)) {
        // W4A16/W8A16: dequantized 16 rows at a time inside the kernel (contract W2)
        const [n, k] = w.shape;
        check(lastDim(x) === k && (!bias || bias.size === n), () => `linear: x ${x}, bias ${bias} do not match w [${w.shape}]`);
        const m = leadingRows(x);
        const out = new Float32Array(m * n);
        // canonical codes: held unless linearInt packed this weight (then rebuilt here per call; no model does both)
        const { codes, scales } = w.packed ? w.packed.unpack() : w;
        native.linearDequant(out, x.data, codes, scales, WEIGHT_FORMATS[w.format].code, w.groupSize,
          bias ? bias.data : null, bias ? weightType(bias) : 0, m, k, n);
        return Tensor.f32([...x.shape.slice(0, -1), n], out);
      }
      if (isPrepackedWeight(w)) {
        const [n, k] = w.shape;
        check(w.backend === 'native', () => `linear: a weight prepacked by '${w.backend}' cannot run on native`);
        check(lastDim(x) === k && (!bias || bias.size === n), () => `linear: x ${x}, bias ${bias} do not match w [${w.shape}]`);
        const m = leadingRows(x);
        const out = new Float32Array(m * n);
        if (w.format === 'bf16-dot') {
          native.linearPrepackedDot(out, x.data, w.data as Uint16Array, bias ? bias.data : null, bias ? weightType(bias) : 0, m, k, n);
        } else {
          native.linearPrepacked(out, x.data, w.data, WEIGHT_FORMATS[w.format].code, bias ? bias.data : null,
            bias ? weightType(bias) : 0, m, k, n);
        }
        return Tensor.f32([...x.shape.slice(0, -1), n], out);
      }
      check(w.rank === 2 && lastDim(x) === w.shape[1], () => `linear: x ${x} does not match w ${w}`);
      const [n, k] = w.shape;
      check(!bias || bias.size === n, () => `linear: bias ${bias} does not match w ${w}`);
      const m = leadingRows(x);
      const out = allocF32(m * n);
      native.linear(out, x.data, w.data, weightType(w), bias ? bias.data : null, bias ? weightType(bias) : 0, m, k, n);
      return Tensor.f32([...x.shape.slice(0, -1), n], out);
    },

    // w [N,K] -> panels (native/kernels.h "Prepacked float weights") where the current path has their kernel
    prepack(w, options) {
      check(w.rank === 2, () => `prepack: expected a weight [N,K], got ${w}`);
      const info = native.info();
      const format = w.dtype === 'bf16' && options?.bf16Activations && info.prepackedDotFast ? 'bf16-dot' : w.dtype;
      if (format === 'f16' || (format !== 'bf16-dot' && !info.prepackedFast)) return w;
      const [n, k] = w.shape;
      const data = format === 'f32' ? new Float32Array(prepackedSize(n, k)) : new Uint16Array(prepackedSize(n, k, format));
      if (format === 'bf16-dot') native.prepackWeightDot(data as Uint16Array, w.data as Uint16Array, n, k);
      else native.prepackWeight(data, w.data, weightType(w), n, k);
      // A memory-mapped weight (src/io/safetensors.ts) is now read in full and resident, and stays so until the
      // collector unmaps it: give its pages back now, or a prepacked model holds its vision weights twice (+1.4
      // GiB on an OpenVLA-7B). Heap weights are left alone (freed when collected).
      native.releaseMappedPages(w.data);
      const packed: PrepackedFloatWeight = { kind: 'prepacked', format, shape: [n, k], backend: 'native', data };
      return packed;
    },

    // table [V,D], ids [T] -> [T,D]
    embedding(table, ids) {
      check(table.rank === 2, () => `embedding: table must be [V,D], got ${table}`);
      const [vocab, dim] = table.shape;
      const out = allocF32(ids.length * dim);
      native.embedding(out, table.data, weightType(table), ids, vocab, dim);
      return Tensor.f32([ids.length, dim], out);
    },

    // x [..., D] -> [..., D]
    layerNorm(x, weight, bias, eps) {
      const dim = lastDim(x);
      check(weight.size === dim && bias.size === dim, () => `layerNorm: x ${x}, weight ${weight}, bias ${bias}`);
      const out = allocF32(x.size);
      const rows = leadingRows(x);
      native.layerNorm(out, x.data, weight.data, weightType(weight), bias.data, weightType(bias), rows, dim, eps);
      return Tensor.f32(x.shape, out);
    },

    // x [..., D] -> [..., D]
    rmsNorm(x, weight, eps) {
      const dim = lastDim(x);
      check(weight.size === dim, () => `rmsNorm: x ${x}, weight ${weight}`);
      const out = allocF32(x.size);
      native.rmsNorm(out, x.data, weight.data, weightType(weight), leadingRows(x), dim, eps);
      return Tensor.f32(x.shape, out);
    },

    gelu(x) {
      const out = allocF32(x.size);
      native.gelu(out, x.data);
      return Tensor.f32(x.shape, out);
    },

    siluMul(gate, up) {
      check(sameShape(gate.shape, up.shape), () => `siluMul: ${gate} vs ${up}`);
      const out = allocF32(gate.size);
      native.siluMul(out, gate.data, up.data);
      return Tensor.f32(gate.shape, out);
    },

    add(a, b) {
      check(sameShape(a.shape, b.shape), () => `add: ${a} vs ${b}`);
      const out = allocF32(a.size);
      native.add(out, a.data, b.data);
      return Tensor.f32(a.shape, out);
    },

    // x [..., D] * scale [D]
    scaleChannels(x, scale) {
      const dim = lastDim(x);
      check(scale.size === dim, () => `scaleChannels: ${x} vs ${scale}`);
      const out = allocF32(x.size);
      native.scaleChannels(out, x.data, scale.data, weightType(scale), leadingRows(x), dim);
      return Tensor.f32(x.shape, out);
    },

    // x [T,H,Dh], positions [T] -> [T,H,Dh]
    rope(x, positions, theta) {
      check(x.rank === 3 && positions.length === x.shape[0], () => `rope: x ${x} with ${positions.length} positions`);
      const [tokens, heads, headDim] = x.shape;
      const out = allocF32(x.size);
      native.rope(out, x.data, positions, tokens, heads, headDim, theta);
      return Tensor.f32(x.shape, out);
    },

    // q [T,Hq,Dh], k [S,Hkv,Dh], v [S,Hkv,Dh] -> out [T,Hq*Dh] (+ probs [Hq,T,S])
    attention(q: Tensor<'f32'>, k: Tensor<'f32'>, v: Tensor<'f32'>, options: AttentionOptions): AttentionResult {
      check(q.rank === 3 && k.rank === 3 && sameShape(k.shape, v.shape), () => `attention: q ${q}, k ${k}, v ${v}`);
      const [tokens, qHeads, headDim] = q.shape;
      const [keys, kvHeads] = k.shape;
      check(k.shape[2] === headDim, () => `attention: q ${q} and k ${k} differ in head size`);
      const out = allocF32(tokens * qHeads * headDim);
      const probs = options.returnProbs ? allocF32(qHeads * tokens * keys) : null;
      native.attention(out, probs, q.data, k.data, v.data, tokens, keys, qHeads, kvHeads, headDim, options.causal);
      return {
        out: Tensor.f32([tokens, qHeads * headDim], out),
        probs: probs ? Tensor.f32([qHeads, tokens, keys], probs) : undefined,
        scores: options.scores ? attentionScores(native, q, k, options) : undefined,
      };
    },

    // x [..., K] -> codes [..., K], scales [rows]
    quantizeActivations(x, options) {
      const k = lastDim(x);
      const m = leadingRows(x);
      check(options.bits === 4 || options.bits === 8, () => `quantizeActivations: bits must be 4 or 8, got ${options.bits}`);
      if (options.hadamardBlock !== undefined) checkHadamardBlock(k, options.hadamardBlock);
      const clip = options.clipRatio ?? 1;
      check(clip > 0 && clip <= 1, () => `quantizeActivations: clipRatio must be in (0, 1], got ${clip}`);
      const norm = options.rmsNorm;
      check(!norm?.weight || norm.weight.size === k, () => `quantizeActivations: norm weight does not match width ${k}`);
      const codes = new Int8Array(m * k);
      const scales = new Float32Array(m);
      native.quantizeActivations(codes, scales, x.data, m, k, options.bits, norm !== undefined, norm?.weight?.data ?? null,
        norm?.weight ? weightType(norm.weight) : 0, norm?.eps ?? 0, options.hadamardBlock ?? 0, clip);
      return { shape: [...x.shape], bits: options.bits, codes, scales };
    },

    // xq [..., K] · w [N,K]ᵀ + bias [N] -> [..., N]
    linearInt(xq, w, bias) {
      const [n, k] = w.shape;
      check(xq.shape[xq.shape.length - 1] === k && (!bias || bias.size === n), () => `linearInt: activations [${xq.shape}] do not match weight [${w.shape}]`);
      const m = intRows(xq);
      const p = packed(native, w);
      const out = new Float32Array(m * n);
      native.linearInt(out, null, xq.codes, xq.scales, p.codes, p.scales, WEIGHT_FORMATS[w.format].code, m, k, n,
        w.groupSize, bias ? bias.data : null, bias ? weightType(bias) : 0);
      return Tensor.f32([...xq.shape.slice(0, -1), n], out);
    },

    // -> acc [M,N,G]
    linearIntAccumulators(xq, w) {
      const [n, k] = w.shape;
      check(xq.shape[xq.shape.length - 1] === k, () => `linearInt: activations [${xq.shape}] do not match weight [${w.shape}]`);
      const m = intRows(xq);
      const p = packed(native, w);
      const acc = new Int32Array((m * n * k) / w.groupSize);
      native.linearInt(new Float32Array(m * n), acc, xq.codes, xq.scales, p.codes, p.scales,
        WEIGHT_FORMATS[w.format].code, m, k, n, w.groupSize, null, 0);
      return acc;
    },

    // x [..., K] -> [..., K]
    fwht(x, blockSize) {
      const k = lastDim(x);
      checkHadamardBlock(k, blockSize);
      const out = new Float32Array(x.size);
      native.fwht(out, x.data, leadingRows(x), k, blockSize);
      return Tensor.f32(x.shape, out);
    },

    // q [T,Hq,Dh], k/v [S,Hkv,Dh] -> out [T,Hq*Dh] (+ probs [Hq,T,S])
    attentionInt(q, k, v, options) {
      check(q.shape.length === 3 && k.shape.length === 3 && sameShape(k.shape, v.shape), () => `attentionInt: q [${q.shape}], k [${k.shape}], v [${v.shape}]`);
      const [tokens, qHeads, headDim] = q.shape;
      const [keys, kvHeads] = k.shape;
      check(k.shape[2] === headDim, () => `attentionInt: q [${q.shape}] and k [${k.shape}] differ in head size`);
      const out = new Float32Array(tokens * qHeads * headDim);
      const probs = options.returnProbs ? new Float32Array(qHeads * tokens * keys) : null;
      native.attentionInt(out, probs, q.codes, q.scales, k.codes, k.scales, v.codes, v.scales, tokens, keys, qHeads,
        kvHeads, headDim, options.causal);
      return {
        out: Tensor.f32([tokens, qHeads * headDim], out),
        probs: probs ? Tensor.f32([qHeads, tokens, keys], probs) : undefined,
      };
    },
  };
}

/** Token-pruning scores of attention(q, k, ...): a separate kernel that recomputes the softmax rows it needs. */
function attentionScores(native: Addon, q: Tensor<'f32'>, k: Tensor<'f32'>, options: AttentionOptions): AttentionScores {
  const [tokens, qHeads, headDim] = q.shape;
  const [keys, kvHeads] = k.shape;
  const rows = options.scores?.queryRows ?? new Int32Array(0);
  const queryProbs = options.scores?.queryRows ? new Float32Array(qHeads * rows.length * keys) : null;
  const keyTotals = options.scores?.keyTotals ? new Float32Array(keys) : null;
  native.attentionScores(keyTotals, queryProbs, rows, q.data, k.data, tokens, keys, qHeads, kvHeads, headDim, options.causal);
  return {
    queryProbs: queryProbs ? Tensor.f32([qHeads, rows.length, keys], queryProbs) : undefined,
    keyTotals: keyTotals ?? undefined,
  };
}

/** The native backend, or undefined when the addon is not built (see nativeLoadError()). */
export const nativeBackend: Backend | undefined = addon ? makeBackend(addon) : undefined;

/** The addon's WeightType codes by name (formats.test.ts checks them against WEIGHT_FORMATS); undefined if not built. */
export function nativeWeightTypes(): Record<string, number> | undefined {
  return addon?.weightTypes();
}

/** Streams `buffer` through every pool thread once (benchmarks time it to measure memory bandwidth). */
export function nativeStreamRead(buffer: Uint8Array): number {
  check(addon !== undefined, () => `the addon is not built (${loadError})`);
  return addon.streamRead(buffer);
}

/**
 * Bytes [offset, offset + length) of an open file (fd) as an ArrayBuffer over a private, copy-on-write mapping (pages
 * are read when first touched and count as resident only then; unmapped when the buffer is collected), or undefined
 * when the addon is not built, the range is not inside the file, or the platform cannot map.
 */
/**
 * Drops the resident pages of a typed array that lies in a memory-mapped file (nativeMapFile) and returns true; the
 * data stays readable (faulted back in from the file). False for anything else, or without the addon.
 */
export function nativeReleaseMappedPages(view: ArrayBufferView): boolean {
  return typeof addon?.releaseMappedPages === 'function' ? addon.releaseMappedPages(view) : false;
}

export function nativeMapFile(fd: number, offset: number, length: number): ArrayBuffer | undefined {
  // an addon built from older sources (a checkout whose build/ predates the mapping) reads instead of failing
  if (typeof addon?.mapFile !== 'function') return undefined;
  return addon.mapFile(fd, offset, length) ?? undefined;
}

/**
 * Strict padded standard base64 `src` decoded into `dst` (exactly its decoded size) in place, without a JS string:
 * true when decoded, false when `src` is not strict base64 or `dst` is not its size; undefined when the addon is not
 * built (or predates this function), so the caller decodes in JS.
 */
export function nativeBase64Decode(dst: Uint8Array, src: Uint8Array): boolean | undefined {
  if (typeof addon?.base64Decode !== 'function') return undefined;
  return addon.base64Decode(dst, src);
}

/** Why the addon did not load, or undefined when it did. */
export function nativeLoadError(): string | undefined {
  return loadError;
}

/** The addon's chosen ISA, what was requested, what the CPU supports, and the thread count; undefined if not built. */
export function nativeInfo(): NativeInfo | undefined {
  return addon?.info();
}

/**
 * Switch the kernels to another instruction-set path for this process (tests and benchmarks compare the paths).
 * Throws a RangeError when the CPU lacks it. SQAP_NATIVE_ISA does the same at load time.
 */
export function setNativeIsa(isa: NativeIsa): void {
  check(addon !== undefined, () => `the addon is not built (${loadError})`);
  addon.setIsa(isa);
}
