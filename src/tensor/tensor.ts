import { allocate, floatAt, type AnyTypedArray, type DType, type TypedArrayFor } from './dtype.js';

/**
 * A dense row-major tensor: a dtype, a shape and a flat typed array. It owns no kernels; backends do the math.
 * `data` may be a view into a larger buffer (a memory-read checkpoint region), so never assume data.buffer is ours.
 */
export class Tensor<D extends DType = DType> {
  readonly dtype: D;
  readonly shape: readonly number[];
  readonly data: TypedArrayFor<D>;

  constructor(dtype: D, shape: readonly number[], data: TypedArrayFor<D>) {
    const size = shapeSize(shape);
    if (data.length !== size) {
      throw new Error(`tensor data has ${data.length} elements but shape [${shape.join(',')}] needs ${size}`);
    }
    this.dtype = dtype;
    this.shape = Object.freeze([...shape]);
    this.data = data;
  }

  static zeros<D extends DType = 'f32'>(shape: readonly number[], dtype: D = 'f32' as D): Tensor<D> {
    return new Tensor(dtype, shape, allocate(dtype, shapeSize(shape)));
  }

  static f32(shape: readonly number[], data: Float32Array | readonly number[]): Tensor<'f32'> {
    return new Tensor('f32', shape, data instanceof Float32Array ? data : Float32Array.from(data));
  }

  get size(): number {
    return this.data.length;
  }

  get rank(): number {
    return this.shape.length;
  }

  /** Same data, new shape (one dimension may be -1). */
  reshape(shape: readonly number[]): Tensor<D> {
    const known = shape.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
    const resolved = shape.map((d) => (d === -1 ? this.size / known : d));
    return new Tensor(this.dtype, resolved, this.data);
  }

  /** A float32 copy (or this tensor's own array when it already is f32). */
  toF32(): Float32Array {
    if (this.dtype === 'f32') return this.data as Float32Array;
    const out = new Float32Array(this.size);
    if (this.dtype === 'bf16') {
      // bf16 is the top half of an f32: the bits shifted left by 16 (what bf16ToF32 does, per element)
      const bits = this.data as Uint16Array;
      const outBits = new Uint32Array(out.buffer);
      for (let i = 0; i < out.length; i++) outBits[i] = bits[i] << 16;
      return out;
    }
    for (let i = 0; i < out.length; i++) out[i] = floatAt(this.dtype, this.data as AnyTypedArray, i);
    return out;
  }

  asF32Tensor(): Tensor<'f32'> {
    return new Tensor('f32', this.shape, this.toF32());
  }

  /** Rows [start, end) of the first axis, as a view (no copy). */
  rows(start: number, end: number): Tensor<D> {
    const rowSize = this.size / this.shape[0];
    const data = this.data.subarray(start * rowSize, end * rowSize) as TypedArrayFor<D>;
    return new Tensor(this.dtype, [end - start, ...this.shape.slice(1)], data);
  }

  toString(): string {
    return `Tensor<${this.dtype}>[${this.shape.join(',')}]`;
  }
}

export function shapeSize(shape: readonly number[]): number {
  let size = 1;
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new Error(`invalid dimension ${d} in shape [${shape.join(',')}]`);
    size *= d;
  }
  return size;
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Concatenate f32 tensors along the last axis: [..., Ai] + [..., Bi] -> [..., sum]. */
export function concatLastAxis(parts: Tensor<'f32'>[]): Tensor<'f32'> {
  const lead = parts[0].shape.slice(0, -1);
  const rows = shapeSize(lead);
  const widths = parts.map((p) => p.shape[p.shape.length - 1]);
  const total = widths.reduce((a, b) => a + b, 0);
  const out = new Float32Array(rows * total);
  for (let r = 0; r < rows; r++) {
    let col = 0;
    parts.forEach((p, i) => {
      out.set(p.data.subarray(r * widths[i], (r + 1) * widths[i]), r * total + col);
      col += widths[i];
    });
  }
  return Tensor.f32([...lead, total], out);
}

/** Concatenate f32 tensors along the first axis. */
export function concatRows(parts: Tensor<'f32'>[]): Tensor<'f32'> {
  const rest = parts[0].shape.slice(1);
  const out = new Float32Array(parts.reduce((a, p) => a + p.size, 0));
  let offset = 0;
  for (const p of parts) {
    if (!sameShape(p.shape.slice(1), rest)) throw new Error(`concatRows: shapes differ after axis 0`);
    out.set(p.data, offset);
    offset += p.size;
  }
  return Tensor.f32([out.length / shapeSize(rest), ...rest], out);
}
