// A per-step pool of float32 buffers for training.
//
// Every op returns a fresh output array. At inference that is harmless, but a training step allocates a few hundred
// megabytes of activations and gradients and drops them all at its end: V8 counts those backing stores as external
// memory, and their growth alone triggered about 11 full mark-compacts per step (a fifth of a step's time,
// docs/training.md). Inside `withArena`, `allocF32` hands out buffers from free lists instead; `releaseAll` returns
// every buffer lent since the last release, so from the second step on a step allocates (almost) no new backing
// stores. Outside an arena `allocF32` is `new Float32Array(n)`, so inference never sees the pool. (The training code's
// own buffers are pooled on either backend; of the backends, only native's outputs are: `ref` allocates its own.)
//
// The contract for callers: a buffer from `allocF32` is zero-filled, like `new Float32Array(n)`, and is valid only
// until the arena's next `releaseAll`. Anything that must outlive a training step (parameters, AdamW moments, logged
// numbers) is allocated with `new Float32Array` or copied out before the release.

/** Below this many elements a buffer lives on V8's heap and costs no external memory: not pooled. */
const MIN_POOLED = 1024;

/** Capacity class of n: the next of 2^k · {1, 1.25, 1.5, 1.75} (at most 25% more memory than asked). */
export function capacityClass(n: number): number {
  if (n <= MIN_POOLED) return n;
  const top = 2 ** Math.floor(Math.log2(n));
  for (const f of [1, 1.25, 1.5, 1.75]) if (top * f >= n) return top * f;
  return top * 2;
}

export class BufferArena {
  private readonly free = new Map<number, Float32Array[]>();
  private lent: Float32Array[] = [];
  /** buffers created (not reused) since construction */
  allocated = 0;

  /** a zero-filled view of n floats, valid until the next releaseAll */
  take(n: number): Float32Array {
    if (n < MIN_POOLED) return new Float32Array(n);
    const capacity = capacityClass(n);
    let buffer = this.free.get(capacity)?.pop();
    if (buffer) buffer.fill(0, 0, n);
    else {
      buffer = new Float32Array(capacity);
      this.allocated++;
    }
    this.lent.push(buffer);
    return n === capacity ? buffer : buffer.subarray(0, n);
  }

  /** every buffer lent since the last release goes back to the free lists */
  releaseAll(): void {
    for (const buffer of this.lent) {
      const list = this.free.get(buffer.length);
      if (list) list.push(buffer);
      else this.free.set(buffer.length, [buffer]);
    }
    this.lent = [];
  }
}

let current: BufferArena | undefined;

/** n zero-filled floats: from the active arena inside withArena, else a new array */
export function allocF32(n: number): Float32Array {
  return current ? current.take(n) : new Float32Array(n);
}

/** run fn with `arena` active for allocF32 (fn must be synchronous: the arena is one per thread, not per task) */
export function withArena<T>(arena: BufferArena | undefined, fn: () => T): T {
  const previous = current;
  current = arena;
  try {
    return fn();
  } finally {
    current = previous;
  }
}
