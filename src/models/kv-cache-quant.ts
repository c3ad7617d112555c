// The KV cache of a model whose attention runs on integers (A8/A4): keys and values stored as int8 codes (4-bit
// codes unpacked, one per byte) with one f32 scale per (token, KV head), exactly what Backend.quantizeActivations
// produced, so attentionInt reads the cache without re-quantizing. Same semantics as KVCache (kv-cache.ts):
// sequence order, positions kept through pruning, storage grows by doubling.
import type { QuantizedActivations } from '../tensor/backend.js';
import { checkKeepArguments, KVCache } from './kv-cache.js';

export class QuantizedKVCache {
  private keyCodes: Int8Array[];
  private valueCodes: Int8Array[];
  private keyScales: Float32Array[];
  private valueScales: Float32Array[];
  private lengths: number[];
  private capacity: number;
  /** position id the next appended token gets */
  nextPosition = 0;

  constructor(
    readonly layers: number,
    readonly kvHeads: number,
    readonly headDim: number,
    readonly bits: 4 | 8,
    initialCapacity = 64,
  ) {
    this.capacity = Math.max(1, initialCapacity);
    const rowSize = kvHeads * headDim;
    this.keyCodes = Array.from({ length: layers }, () => new Int8Array(this.capacity * rowSize));
    this.valueCodes = Array.from({ length: layers }, () => new Int8Array(this.capacity * rowSize));
    this.keyScales = Array.from({ length: layers }, () => new Float32Array(this.capacity * kvHeads));
    this.valueScales = Array.from({ length: layers }, () => new Float32Array(this.capacity * kvHeads));
    this.lengths = new Array(layers).fill(0);
  }

  layerLength(layer: number): number {
    return this.lengths[layer];
  }

  /** k, v quantized [T, Hkv, Dh] appended to `layer`; returns the layer's whole cache k, v [S, Hkv, Dh] */
  append(layer: number, k: QuantizedActivations, v: QuantizedActivations): [QuantizedActivations, QuantizedActivations] {
    const rowSize = this.kvHeads * this.headDim;
    const tokens = k.codes.length / rowSize;
    if (k.bits !== this.bits || v.bits !== this.bits || v.codes.length !== k.codes.length || k.scales.length !== tokens * this.kvHeads) {
      throw new Error(`QuantizedKVCache.append: expected ${this.bits}-bit k, v [T,${this.kvHeads},${this.headDim}] quantized per (token, head)`);
    }
    const start = this.lengths[layer];
    this.reserve(start + tokens);
    this.keyCodes[layer].set(k.codes, start * rowSize);
    this.valueCodes[layer].set(v.codes, start * rowSize);
    this.keyScales[layer].set(k.scales, start * this.kvHeads);
    this.valueScales[layer].set(v.scales, start * this.kvHeads);
    this.lengths[layer] = start + tokens;
    return [this.view(layer, this.keyCodes, this.keyScales), this.view(layer, this.valueCodes, this.valueScales)];
  }

  takePositions(tokens: number): Int32Array {
    const ids = Int32Array.from({ length: tokens }, (_, i) => this.nextPosition + i);
    this.nextPosition += tokens;
    return ids;
  }

  /** Keep only the cached tokens at `indices` (strictly ascending) in layers [fromLayer, toLayer), as KVCache.keep. */
  keep(indices: Int32Array, fromLayer = 0, toLayer = this.layers): void {
    checkKeepArguments('QuantizedKVCache.keep', indices, fromLayer, toLayer, this.lengths);
    const rowSize = this.kvHeads * this.headDim;
    for (let layer = fromLayer; layer < toLayer; layer++) {
      for (const [store, size] of [[this.keyCodes[layer], rowSize], [this.valueCodes[layer], rowSize], [this.keyScales[layer], this.kvHeads], [this.valueScales[layer], this.kvHeads]] as const) {
        indices.forEach((src, dst) => store.copyWithin(dst * size, src * size, (src + 1) * size));
      }
      this.lengths[layer] = indices.length;
    }
  }

  private view(layer: number, codes: Int8Array[], scales: Float32Array[]): QuantizedActivations {
    const n = this.lengths[layer];
    return {
      shape: [n, this.kvHeads, this.headDim],
      bits: this.bits,
      codes: codes[layer].subarray(0, n * this.kvHeads * this.headDim),
      scales: scales[layer].subarray(0, n * this.kvHeads),
    };
  }

  private reserve(tokens: number): void {
    if (tokens <= this.capacity) return;
    while (this.capacity < tokens) this.capacity *= 2;
    const grow = <T extends Int8Array | Float32Array>(old: T, perToken: number): T => {
      const next = new (old.constructor as { new (n: number): T })(this.capacity * perToken);
      next.set(old);
      return next;
    };
    const rowSize = this.kvHeads * this.headDim;
    this.keyCodes = this.keyCodes.map((a) => grow(a, rowSize));
    this.valueCodes = this.valueCodes.map((a) => grow(a, rowSize));
    this.keyScales = this.keyScales.map((a) => grow(a, this.kvHeads));
    this.valueScales = this.valueScales.map((a) => grow(a, this.kvHeads));
  }
}

/** The cache a Llama decodes with: float, or quantized when its attention runs on integers. */
export type DecoderCache = KVCache | QuantizedKVCache;
