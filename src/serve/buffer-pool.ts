// Reused memory for the two big buffers of every /act request: the raw body (~200 KB for a 224x224 json-numpy image)
// and the decoded image (~150 KB), which moves to the model thread and comes back with the result. Fresh memory of
// that size costs a page fault per 4 KiB when it is first written; measured on a shared 2-core VM that was over 100
// faults (~2 ms of CPU) per request, more than the parsing itself. Reusing a few buffers takes that away.

/** Buffers smaller than this are not worth pooling (they come from the allocator's warm memory anyway). */
export const MIN_POOLED_BYTES = 16 * 1024;

export class BufferPool {
  private readonly free = new Map<number, ArrayBuffer[]>();
  private pooledBytes = 0;

  /**
   * @param roundTo    capacities are rounded up to a multiple of this (1: exact lengths, for buffers that are
   *                   transferred whole; more: sizes that vary a little, such as bodies, still find a buffer)
   * @param maxPerSize free buffers kept per capacity
   * @param maxBytes   total bytes kept free, all capacities together
   */
  constructor(
    private readonly roundTo: number,
    private readonly maxPerSize: number,
    private readonly maxBytes: number,
  ) {}

  /**
   * `bytes` uninitialized bytes: a Buffer at offset 0 of an ArrayBuffer that nothing else uses (transferable), of
   * capacity `bytes` rounded up to roundTo.
   */
  acquire(bytes: number): Buffer {
    if (bytes < MIN_POOLED_BYTES) return Buffer.allocUnsafeSlow(bytes);
    const capacity = Math.ceil(bytes / this.roundTo) * this.roundTo;
    const buffer = this.free.get(capacity)?.pop();
    if (!buffer) return Buffer.allocUnsafeSlow(capacity).subarray(0, bytes);
    this.pooledBytes -= capacity;
    return Buffer.from(buffer, 0, bytes);
  }

  /** Give a buffer back after its last use (a detached buffer, length 0, is ignored). */
  release(buffer: ArrayBuffer): void {
    const bytes = buffer.byteLength;
    if (bytes < MIN_POOLED_BYTES || bytes % this.roundTo !== 0 || this.pooledBytes + bytes > this.maxBytes) return;
    let list = this.free.get(bytes);
    if (!list) this.free.set(bytes, (list = []));
    if (list.length >= this.maxPerSize || list.includes(buffer)) return;
    list.push(buffer);
    this.pooledBytes += bytes;
  }

  /** bytes held free, for tests */
  get heldBytes(): number {
    return this.pooledBytes;
  }
}

/** Request bodies (read by body-parser.ts, released when the answer is sent). */
export const bodyBuffers = new BufferPool(64 * 1024, 8, 64 * 1024 * 1024);
/** Decoded images (sent whole to the model thread, released when the step's result brings them back). */
export const imageBuffers = new BufferPool(1, 8, 64 * 1024 * 1024);
