import type { WeightTensor } from '../tensor/backend.js';
import type { Tensor } from '../tensor/tensor.js';
import { UserError } from '../errors.js';
import type { Checkpoint } from '../io/checkpoint.js';

/** Where model code gets its tensors: a checkpoint, a prefix of one, or an in-memory map in tests. */
export interface TensorSource {
  readonly description: string;
  /** every read returns new arrays that nothing else references (a checkpoint), not shared ones (an in-memory map) */
  readonly freshReads?: boolean;
  keys(): string[];
  has(name: string): boolean;
  /**
   * `transient`: the caller converts the tensor and drops it at once (quantize at load), so a checkpoint copies it
   * instead of memory-mapping it (a dropped mapping stays resident until the load returns to the event loop).
   */
  read(name: string, options?: { transient?: boolean }): Tensor;
}

/** The tensors under `prefix.` of a source, with the prefix removed from their names. */
export function scoped(source: TensorSource, prefix: string): TensorSource {
  const head = prefix.endsWith('.') ? prefix : `${prefix}.`;
  return {
    description: `${source.description} [${head}*]`,
    freshReads: source.freshReads,
    keys: () => source.keys().filter((k) => k.startsWith(head)).map((k) => k.slice(head.length)),
    has: (name) => source.has(head + name),
    read: (name, options) => source.read(head + name, options),
  };
}

/** A checkpoint as a TensorSource; `onRead` is told of every tensor read (for progress). */
export function checkpointSource(checkpoint: Checkpoint, onRead?: () => void): TensorSource {
  // onRead fires once per distinct tensor: a quantized decoder reads some tensors twice (its scales, to check them,
  // then with the codes), and a progress count of reads ran past the checkpoint's tensor count ("160/119")
  const seen = new Set<string>();
  return {
    description: `checkpoint ${checkpoint.path}`,
    freshReads: true,
    keys: () => checkpoint.keys(),
    has: (name) => checkpoint.has(name),
    read: (name, options) => {
      const tensor = checkpoint.read(name, { map: !options?.transient });
      if (!seen.has(name)) {
        seen.add(name);
        onRead?.();
      }
      return tensor;
    },
  };
}

export function mapSource(tensors: Record<string, Tensor>, description = 'in-memory tensors'): TensorSource {
  return {
    description,
    keys: () => Object.keys(tensors),
    has: (name) => name in tensors,
    read: (name) => {
      const t = tensors[name];
      if (!t) throw new UserError(`${description} has no tensor '${name}'`);
      return t;
    },
  };
}

/** A float weight (f32, bf16 or f16), kept in its stored dtype; optionally checked against an expected shape. */
export function readWeight(source: TensorSource, name: string, shape?: readonly (number | undefined)[], options?: { transient?: boolean }): WeightTensor {
  if (!source.has(name)) throw new UserError(`${source.description} is missing tensor '${name}'`);
  const t = source.read(name, options);
  if (t.dtype !== 'f32' && t.dtype !== 'bf16' && t.dtype !== 'f16') {
    throw new UserError(`${source.description}: tensor '${name}' has dtype ${t.dtype}, expected a float weight (f32, bf16, f16)`);
  }
  if (shape && (shape.length !== t.rank || shape.some((d, i) => d !== undefined && d !== t.shape[i]))) {
    throw new UserError(
      `${source.description}: tensor '${name}' has shape [${t.shape.join(',')}], expected [${shape.map((d) => d ?? '?').join(',')}]`,
    );
  }
  return t as WeightTensor;
}

/** Number of blocks `prefix.{i}.` present in a source (layers are counted from tensor names, not from config). */
export function countBlocks(source: TensorSource, prefix: string, probe: string): number {
  let n = 0;
  while (source.has(`${prefix}.${n}.${probe}`)) n++;
  return n;
}
