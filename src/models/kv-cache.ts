import { Tensor } from '../tensor/tensor.js';

/**
 * Keys and values of every decoder layer, in sequence order. RoPE is applied before caching, so a cached token
 * carries its position in its key; token pruning removes entries with `keep` and kept tokens keep their original
 * positions. New tokens continue from `nextPosition` (the length of the unpruned sequence), so positions stay
 * those of the full prompt even after pruning. Storage grows by doubling.
 */
export class KVCache {
  private keys: Float32Array[];
  private values: Float32Array[];
  private lengths: number[];
  private capacity: number;
  /** position id the next appended token gets */
  nextPosition = 0;

  constructor(
    readonly layers: number,
    readonly kvHeads: number,
    readonly headDim: number,
    initialCapacity = 64,
  ) {
    this.capacity = Math.max(1, initialCapacity);
    const rowSize = kvHeads * headDim;
    this.keys = Array.from({ length: layers }, () => new Float32Array(this.capacity * rowSize));
    this.values = Array.from({ length: layers }, () => new Float32Array(this.capacity * rowSize));
    this.lengths = new Array(layers).fill(0);
  }

  /** tokens cached in a layer (after pruning at layer K, layers >= K hold fewer) */
  layerLength(layer: number): number {
    return this.lengths[layer];
  }

  /** k, v [T, Hkv, Dh] appended to `layer`; returns the layer's whole cache k, v [S, Hkv, Dh] */
  append(layer: number, k: Tensor<'f32'>, v: Tensor<'f32'>): [Tensor<'f32'>, Tensor<'f32'>] {
    const rowSize = this.kvHeads * this.headDim;
    const tokens = k.size / rowSize;
    const start = this.lengths[layer];
    this.reserve(start + tokens);
    this.keys[layer].set(k.data, start * rowSize);
    this.values[layer].set(v.data, start * rowSize);
    this.lengths[layer] = start + tokens;
    return [this.layerKeys(layer), this.layerValues(layer)];
  }

  /** [S, Hkv, Dh] view of a layer's keys */
  layerKeys(layer: number): Tensor<'f32'> {
    const n = this.lengths[layer];
    return Tensor.f32([n, this.kvHeads, this.headDim], this.keys[layer].subarray(0, n * this.kvHeads * this.headDim));
  }

  /** [S, Hkv, Dh] view of a layer's values */
  layerValues(layer: number): Tensor<'f32'> {
    const n = this.lengths[layer];
    return Tensor.f32([n, this.kvHeads, this.headDim], this.values[layer].subarray(0, n * this.kvHeads * this.headDim));
  }

  /** Position ids [T] for the next T tokens, advancing nextPosition. */
  takePositions(tokens: number): Int32Array {
    const ids = Int32Array.from({ length: tokens }, (_, i) => this.nextPosition + i);
    this.nextPosition += tokens;
    return ids;
  }

  /**
   * Keep only the cached tokens at `indices` (strictly ascending, into each layer's current cache) in layers
   * [fromLayer, toLayer). Layers outside the range keep everything (pruning at layer K leaves layers < K untouched).
   * Every layer in the range must already hold the indexed tokens: a layer the current pass has not reached yet is
   * an error, never padded (Llama.forward prunes mid-prefill by appending only kept rows to layers >= K instead).
   */
  keep(indices: Int32Array, fromLayer = 0, toLayer = this.layers): void {
    checkKeepArguments('KVCache.keep', indices, fromLayer, toLayer, this.lengths);
    const rowSize = this.kvHeads * this.headDim;
    for (let layer = fromLayer; layer < toLayer; layer++) {
      for (const store of [this.keys[layer], this.values[layer]]) {
        indices.forEach((src, dst) => store.copyWithin(dst * rowSize, src * rowSize, (src + 1) * rowSize));
      }
      this.lengths[layer] = indices.length;
    }
  }

  private reserve(tokens: number): void {
    if (tokens <= this.capacity) return;
    while (this.capacity < tokens) this.capacity *= 2;
    const rowSize = this.kvHeads * this.headDim;
    const grow = (old: Float32Array) => {
      const next = new Float32Array(this.capacity * rowSize);
      next.set(old);
      return next;
    };
    this.keys = this.keys.map(grow);
    this.values = this.values.map(grow);
  }
}

/**
 * The checks every cache's keep() makes before moving rows: [fromLayer, toLayer) inside 0..layers, indices strictly
 * ascending and non-negative, and every layer in the range already holding the last indexed token. `lengths` holds
 * the cached tokens per layer. Violations are internal errors (the pruning executor builds these arguments).
 */
export function checkKeepArguments(name: string, indices: Int32Array, fromLayer: number, toLayer: number, lengths: readonly number[]): void {
  const layers = lengths.length;
  if (!(Number.isInteger(fromLayer) && Number.isInteger(toLayer) && 0 <= fromLayer && fromLayer <= toLayer && toLayer <= layers)) {
    throw new Error(`${name}: layer range [${fromLayer}, ${toLayer}) is outside 0..${layers}`);
  }
  indices.forEach((index, i) => {
    if (index < 0 || (i > 0 && index <= indices[i - 1])) throw new Error(`${name}: indices must be strictly ascending and non-negative (at position ${i}: ${index})`);
  });
  const last = indices.length ? indices[indices.length - 1] : -1;
  for (let layer = fromLayer; layer < toLayer; layer++) {
    if (last >= lengths[layer]) throw new Error(`${name}: index ${last} is outside layer ${layer}'s ${lengths[layer]} cached tokens`);
  }
}
