// Weight formats: ONE table for every way a linear weight can be stored, float or integer. The native addon's
// WeightType enum (native/kernels.h) uses the same codes; test/tensor/formats.test.ts checks they agree.
//
// Float formats hold a Tensor (data.length === size). Integer formats hold a QuantizedWeight: int8 codes, or int4
// codes nibble-packed two per byte, plus symmetric f32 scales per output channel or per group of K. docs/
// quantization.md ("Kernel contract") writes the arithmetic out step by step.
import { UserError } from '../errors.js';
import { floatAt, type AnyTypedArray } from './dtype.js';
import type { Tensor } from './tensor.js';

export type FloatFormatName = 'f32' | 'bf16' | 'f16';
export type IntFormatName = 'i8' | 'i4';
export type WeightFormatName = FloatFormatName | IntFormatName;

export interface WeightFormat {
  readonly name: WeightFormatName;
  /** the code the native addon takes for this format (WeightType in native/kernels.h) */
  readonly code: number;
  /** bits per stored element */
  readonly bits: number;
  /** integer formats: the largest code magnitude the reference quantizer produces (symmetric, 2^(bits-1) - 1) */
  readonly qmax: number;
  /** bytes one row of K elements takes (int4 rounds up to whole bytes) */
  bytesPerRow(K: number): number;
}

export const WEIGHT_FORMATS: Readonly<Record<WeightFormatName, WeightFormat>> = Object.freeze({
  f32: { name: 'f32', code: 0, bits: 32, qmax: 0, bytesPerRow: (K: number) => 4 * K },
  bf16: { name: 'bf16', code: 1, bits: 16, qmax: 0, bytesPerRow: (K: number) => 2 * K },
  f16: { name: 'f16', code: 2, bits: 16, qmax: 0, bytesPerRow: (K: number) => 2 * K },
  i8: { name: 'i8', code: 3, bits: 8, qmax: 127, bytesPerRow: (K: number) => K },
  i4: { name: 'i4', code: 4, bits: 4, qmax: 7, bytesPerRow: (K: number) => Math.ceil(K / 2) },
});

/**
 * A quantized linear weight w [N,K] (PyTorch nn.Linear layout), symmetric: w[n,k] ≈ code[n,k] · scales[n, k / groupSize].
 * - i8: `codes` is an Int8Array [N*K], row-major; any int8 value (the RTN quantizer gives [-127, 127]).
 * - i4: `codes` is a Uint8Array [N * ceil(K/2)]: row n starts at byte n·ceil(K/2); element k is the low nibble of
 *   byte k/2 when k is even, the high nibble when odd, as a two's-complement nibble in [-8, 7] (RTN gives [-7, 7]).
 * - `groupSize` divides K; groupSize === K means one scale per output channel. `scales` is [N, K/groupSize].
 * Not a Tensor: packed int4 cannot keep Tensor's data.length === size.
 *
 * One copy only: a backend with its own kernel layout (native) packs the weight on first use with `packWeight`, which
 * keeps the packed copy and RELEASES the codes and scales above. Reading `codes` or `scales` afterwards rebuilds them
 * from the packed copy, a fresh array on every read: read them once per use (`codeAt(w, n, k, codes)`), never per
 * element. Never mutate codes or scales. A weight made with `owned: true` (its arrays referenced nowhere else: fresh
 * from a quantizer or a file read) may be packed IN those arrays when the layouts have the same size, so packing
 * allocates nothing.
 */
export interface QuantizedWeight {
  readonly kind: 'quantized';
  readonly format: IntFormatName;
  readonly shape: readonly [number, number];
  readonly groupSize: number;
  readonly codes: Int8Array | Uint8Array;
  readonly scales: Float32Array;
  /** the backend layout the weight was packed into, once a backend packed it (then the only copy held) */
  readonly packed?: PackedWeight;
}

/** A quantized weight in one backend's kernel layout (e.g. native/kernels.h `pack_int_weight`). */
export interface PackedWeight {
  /** the backend whose layout this is */
  readonly backend: string;
  readonly codes: Uint8Array;
  readonly scales: Float32Array;
  /** the weight's codes and scales in the canonical layout above, rebuilt exactly (a fresh copy per call) */
  unpack(): { codes: Int8Array | Uint8Array; scales: Float32Array };
}

/** The QuantizedWeight every constructor here returns: canonical arrays until a backend packs it, then only the packed. */
class StoredQuantizedWeight implements QuantizedWeight {
  readonly kind = 'quantized' as const;
  #canonical: { codes: Int8Array | Uint8Array; scales: Float32Array } | undefined;
  #packed: PackedWeight | undefined;

  constructor(
    readonly format: IntFormatName,
    readonly shape: readonly [number, number],
    readonly groupSize: number,
    codes: Int8Array | Uint8Array,
    scales: Float32Array,
    /** the arrays are this weight's alone: a backend may overwrite them with its packed layout */
    readonly owned: boolean,
  ) {
    this.#canonical = { codes, scales };
  }

  get codes(): Int8Array | Uint8Array {
    return (this.#canonical ?? this.#packed!.unpack()).codes;
  }

  get scales(): Float32Array {
    return (this.#canonical ?? this.#packed!.unpack()).scales;
  }

  get packed(): PackedWeight | undefined {
    return this.#packed;
  }

  /** keep `packed` and drop the canonical arrays (their memory is freed once nothing else references them) */
  adopt(packed: PackedWeight): void {
    this.#packed = packed;
    this.#canonical = undefined;
  }

  /** bytes of the typed arrays this object holds (canonical and/or packed) */
  heldBytes(): number {
    const c = this.#canonical;
    const p = this.#packed;
    return (c ? c.codes.byteLength + c.scales.byteLength : 0) + (p ? p.codes.byteLength + p.scales.byteLength : 0);
  }
}

/** Backend layouts of weights not made here (plain objects): cached beside them, canonical arrays kept. */
const foreignPacked = new WeakMap<QuantizedWeight, PackedWeight>();

/**
 * The weight in `backend`'s layout: packed by `pack` on the first call, then cached; the canonical codes and scales
 * are released, so the weight holds one copy. `pack` gets the canonical arrays and whether it may overwrite them
 * (an `owned` weight): then it may return a PackedWeight over those same arrays. A weight already packed for another
 * backend is refused (one packed layout per weight).
 */
export function packWeight(w: QuantizedWeight, backend: string, pack: (codes: Int8Array | Uint8Array, scales: Float32Array, inPlace: boolean) => PackedWeight): PackedWeight {
  const existing = w instanceof StoredQuantizedWeight ? w.packed : foreignPacked.get(w);
  if (existing) {
    if (existing.backend !== backend) throw new Error(`quantized weight [${w.shape}] is packed for ${existing.backend}, not ${backend}`);
    return existing;
  }
  const packed = pack(w.codes, w.scales, w instanceof StoredQuantizedWeight && w.owned);
  if (w instanceof StoredQuantizedWeight) w.adopt(packed);
  else foreignPacked.set(w, packed);
  return packed;
}

/**
 * Bytes of weight data this object keeps alive: its canonical codes and scales while it holds them, plus its packed
 * copy once a backend packed it. (Tests check that a packed weight holds one copy.)
 */
export function heldWeightBytes(w: QuantizedWeight): number {
  if (w instanceof StoredQuantizedWeight) return w.heldBytes();
  const p = foreignPacked.get(w);
  return w.codes.byteLength + w.scales.byteLength + (p ? p.codes.byteLength + p.scales.byteLength : 0);
}

export type FloatWeight = Tensor<'f32'> | Tensor<'bf16'> | Tensor<'f16'>;

export function isQuantizedWeight(w: unknown): w is QuantizedWeight {
  return typeof w === 'object' && w !== null && (w as { kind?: unknown }).kind === 'quantized';
}

/**
 * A float weight w [N,K] rearranged by a backend into its GEMM's panel layout once, for inference: the weight must
 * never change afterwards (Backend.prepack; training never prepacks). The only copy held. Layouts (native/kernels.h,
 * "Prepacked float weights" and "Prepacked bf16 weights for bf16 dot products"): panels of PREPACK_ROWS weight rows;
 * see prepackedIndex.
 */
export interface PrepackedFloatWeight {
  readonly kind: 'prepacked';
  /**
   * 'f32' (f32 values) or 'bf16' (bf16 bits): packed from that type, multiplied by f32 x. 'bf16-dot' (bf16 bits):
   * packed from bf16 in k pairs, multiplied by x rounded to bf16 (Backend.prepack's bf16Activations).
   */
  readonly format: PrepackedFormat;
  readonly shape: readonly [number, number];
  /** the backend whose kernels read this layout */
  readonly backend: string;
  readonly data: Float32Array | Uint16Array;
}

export type PrepackedFormat = 'f32' | 'bf16' | 'bf16-dot';

/** Weight rows per panel of the prepacked layout (native/kernels.h kPrepackRows). */
export const PREPACK_ROWS = 32;

export function isPrepackedWeight(w: unknown): w is PrepackedFloatWeight {
  return typeof w === 'object' && w !== null && (w as { kind?: unknown }).kind === 'prepacked';
}

/** Elements of a prepacked [N,K] weight: whole panels, rows past N zero (bf16-dot: K rounded up to a pair). */
export function prepackedSize(N: number, K: number, format: PrepackedFormat = 'f32'): number {
  const k = format === 'bf16-dot' ? 2 * Math.ceil(K / 2) : K;
  return Math.ceil(N / PREPACK_ROWS) * PREPACK_ROWS * k;
}

/**
 * Where w[n,k] lives in the prepacked layout: panel p = n / 32 holds, for each k, 32 values at (p·K + k)·32. f32:
 * slot j = n mod 32. bf16: slot 2j for j < 16 and 2(j - 16) + 1 above, so one 32-bit lane holds rows j and j + 16.
 * bf16-dot: pair q = k / 2 of row j at ((p·Q + q)·32 + j)·2, Q = ceil(K / 2), k's parity selecting the half.
 */
export function prepackedIndex(format: PrepackedFormat, K: number, n: number, k: number): number {
  const j = n % PREPACK_ROWS;
  const p = Math.floor(n / PREPACK_ROWS);
  if (format === 'bf16-dot') return ((p * Math.ceil(K / 2) + Math.floor(k / 2)) * PREPACK_ROWS + j) * 2 + (k % 2);
  const half = PREPACK_ROWS / 2;
  const slot = format === 'f32' ? j : j < half ? 2 * j : 2 * (j - half) + 1;
  return (p * K + k) * PREPACK_ROWS + slot;
}

/** The dtype a prepacked weight was packed from, and unpacks to. */
export function prepackedDtype(w: PrepackedFloatWeight): 'f32' | 'bf16' {
  return w.format === 'f32' ? 'f32' : 'bf16';
}

/** The weight back in [N,K] row-major (f32 values or bf16 bits), exactly; a fresh array per call. */
export function unpackPrepacked(w: PrepackedFloatWeight): Float32Array | Uint16Array {
  const [N, K] = w.shape;
  const out = w.format === 'f32' ? new Float32Array(N * K) : new Uint16Array(N * K);
  for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) out[n * K + k] = w.data[prepackedIndex(w.format, K, n, k)];
  return out;
}

/** A float weight as stored (a Tensor), not a quantized or prepacked one. */
export function isFloatTensor(w: unknown): w is Tensor<'f32'> | Tensor<'bf16'> | Tensor<'f16'> {
  return !isQuantizedWeight(w) && !isPrepackedWeight(w);
}

/** Round half to even (the rounding of every quantizer here; IEEE's default, torch.round's). */
export function roundHalfEven(v: number): number {
  const r = Math.round(v); // rounds halves up
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function checkGroup(K: number, groupSize: number): void {
  if (!Number.isInteger(groupSize) || groupSize <= 0 || K % groupSize !== 0) {
    throw new UserError(`group size ${groupSize} does not divide the weight's input width ${K}`);
  }
}

/**
 * Build a QuantizedWeight from its parts, checking every length (a mis-shaped scale is a user-visible error).
 * `owned`: nothing else references `codes` and `scales` (see QuantizedWeight); default false.
 */
export function makeQuantizedWeight(
  format: IntFormatName,
  shape: readonly [number, number],
  groupSize: number,
  codes: Int8Array | Uint8Array,
  scales: Float32Array,
  options: { owned?: boolean } = {},
): QuantizedWeight {
  const [N, K] = shape;
  checkGroup(K, groupSize);
  const expectedCodes = N * WEIGHT_FORMATS[format].bytesPerRow(K);
  if (format === 'i8' && !(codes instanceof Int8Array)) throw new UserError('i8 weight codes must be an Int8Array');
  if (format === 'i4' && !(codes instanceof Uint8Array)) throw new UserError('i4 weight codes must be a Uint8Array');
  if (codes.length !== expectedCodes) {
    throw new UserError(`${format} weight [${N},${K}] needs ${expectedCodes} code bytes, got ${codes.length}`);
  }
  if (scales.length !== (N * K) / groupSize) {
    throw new UserError(`${format} weight [${N},${K}] with group size ${groupSize} needs ${(N * K) / groupSize} scales, got ${scales.length}`);
  }
  return new StoredQuantizedWeight(format, [N, K], groupSize, codes, scales, options.owned ?? false);
}

/** code of element (n, k), as a signed integer; in loops pass `codes` read once (w.codes may be rebuilt per read) */
export function codeAt(w: QuantizedWeight, n: number, k: number, codes: Int8Array | Uint8Array = w.codes): number {
  const K = w.shape[1];
  if (w.format === 'i8') return (codes as Int8Array)[n * K + k];
  const byte = codes[n * Math.ceil(K / 2) + (k >> 1)];
  const nibble = k & 1 ? byte >> 4 : byte & 15;
  return nibble >= 8 ? nibble - 16 : nibble;
}

/** scale of element (n, k); in loops pass `scales` read once */
export function scaleAt(w: QuantizedWeight, n: number, k: number, scales: Float32Array = w.scales): number {
  const groups = w.shape[1] / w.groupSize;
  return scales[n * groups + Math.floor(k / w.groupSize)];
}

/**
 * Row `r` of a 2-D float weight [N,K] as f32: a view of the data for f32, else converted into `scratch` (length K)
 * and `scratch` returned. bf16 is the top half of an f32, so its row is the bits shifted left by 16.
 */
export function weightRowF32(w: FloatWeight, r: number, scratch: Float32Array): Float32Array {
  const K = w.shape[1];
  if (w.dtype === 'f32') return (w.data as Float32Array).subarray(r * K, (r + 1) * K);
  if (w.dtype === 'bf16') {
    const bits = w.data as Uint16Array;
    const out = new Uint32Array(scratch.buffer, scratch.byteOffset, K);
    for (let k = 0; k < K; k++) out[k] = bits[r * K + k] << 16;
  } else {
    for (let k = 0; k < K; k++) scratch[k] = floatAt(w.dtype, w.data as AnyTypedArray, r * K + k);
  }
  return scratch;
}

/**
 * Reference round-to-nearest quantizer (RTN). For each row n and group g of `groupSize` columns:
 *   amax = max |w[n,k]| over the group (f32);  scale = f32(amax / qmax);
 *   code = clamp(roundHalfEven(f32(w / scale)), -qmax, qmax), or 0 when scale is 0.
 * w [N,K] (f32/bf16/f16, or a Float32Array with an explicit shape) -> QuantizedWeight. `owned`: the caller hands
 * the result to a model without reading its arrays (see QuantizedWeight), so a backend may pack it in place.
 */
export function quantizeWeight(w: FloatWeight, format: IntFormatName, groupSize?: number, options: { owned?: boolean } = {}): QuantizedWeight {
  if (w.shape.length !== 2) throw new UserError(`only 2-D weights can be quantized, got [${w.shape.join(',')}]`);
  const [N, K] = w.shape as [number, number];
  const group = groupSize ?? K;
  checkGroup(K, group);
  const { qmax } = WEIGHT_FORMATS[format];
  const groups = K / group;
  const scales = new Float32Array(N * groups);
  const rowBytes = WEIGHT_FORMATS[format].bytesPerRow(K);
  const codes = format === 'i8' ? new Int8Array(N * K) : new Uint8Array(N * rowBytes);
  const row = new Float32Array(K);
  for (let n = 0; n < N; n++) {
    const values = weightRowF32(w, n, row);
    for (let g = 0; g < groups; g++) {
      let amax = 0;
      for (let k = g * group; k < (g + 1) * group; k++) amax = Math.max(amax, Math.abs(values[k]));
      const scale = Math.fround(amax / qmax);
      scales[n * groups + g] = scale;
      for (let k = g * group; k < (g + 1) * group; k++) {
        const q = scale === 0 ? 0 : Math.min(qmax, Math.max(-qmax, roundHalfEven(Math.fround(values[k] / scale))));
        if (format === 'i8') codes[n * K + k] = q;
        else codes[n * rowBytes + (k >> 1)] |= (q & 15) << (k & 1 ? 4 : 0);
      }
    }
  }
  return makeQuantizedWeight(format, [N, K], group, codes, scales, { owned: options.owned });
}

/** Reference dequantizer: w[n,k] = f32(code · scale) -> Float32Array [N*K] (what W4A16/W8A16 multiply by). */
export function dequantizeWeight(w: QuantizedWeight): Float32Array {
  const [N, K] = w.shape;
  const out = new Float32Array(N * K);
  const { codes, scales } = w;
  for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) out[n * K + k] = codeAt(w, n, k, codes) * scaleAt(w, n, k, scales);
  return out;
}

/** Bytes the weight occupies (codes + scales): what a quantized checkpoint stores for it. */
export function quantizedWeightBytes(w: QuantizedWeight): number {
  const [N, K] = w.shape;
  return N * WEIGHT_FORMATS[w.format].bytesPerRow(K) + 4 * ((N * K) / w.groupSize);
}

/** The format of a float tensor weight (throws for dtypes that are not weight formats). */
export function floatFormat(dtype: string): WeightFormat {
  if (dtype !== 'f32' && dtype !== 'bf16' && dtype !== 'f16') throw new Error(`weights must be f32, bf16 or f16, got ${dtype}`);
  return WEIGHT_FORMATS[dtype];
}
