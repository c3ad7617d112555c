// Access to the reference fixtures copied from ../shared/fixtures (see test/fixtures/README.md).
import nodePath from 'node:path';
import { fileURLToPath } from 'node:url';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { Checkpoint } from '../../src/io/checkpoint.js';
import { mapSource, type TensorSource } from '../../src/models/weights.js';

export const FIXTURES_DIR = nodePath.join(nodePath.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');

export function fixturePath(name: string, ...rest: string[]): string {
  return nodePath.join(FIXTURES_DIR, name, ...rest);
}

/** All tensors of a fixture's expected.safetensors. */
export function loadExpected(name: string): Record<string, Tensor> {
  const file = SafetensorsFile.open(fixturePath(name, 'expected.safetensors'));
  try {
    return Object.fromEntries(file.keys().map((k) => [k, file.read(k)]));
  } finally {
    file.close();
  }
}

/** A fixture's model.safetensors as a TensorSource (read eagerly; fixtures are small). */
export function fixtureWeights(name: string): TensorSource {
  const checkpoint = Checkpoint.open(fixturePath(name));
  const tensors = Object.fromEntries(checkpoint.keys().map((k) => [k, checkpoint.read(k)]));
  checkpoint.close();
  return mapSource(tensors, `fixture ${name}`);
}

/** Largest |a - b| over two equally long arrays; throws on a length mismatch. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length mismatch: ${a.length} vs ${b.length}`);
  let max = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= max)) max = Number.isNaN(d) ? Infinity : d;
  }
  return max;
}

/** Integer array of an i64 / i32 tensor as numbers. */
export function ids(t: Tensor): number[] {
  return Array.from(t.data as ArrayLike<number | bigint>, (v) => Number(v));
}
