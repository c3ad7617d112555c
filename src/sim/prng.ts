// Seeded pseudo-random streams for episode layouts and expert noise, derived from (stream name, seed).
import { mulberry32, standardNormal } from '../random.js';

/** 32-bit FNV-1a hash of a string, to derive independent streams from names ("spatial", a task id). */
export function hashString(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export interface Rng {
  /** uniform in [0, 1) */
  next(): number;
  /** uniform in [low, high) */
  uniform(low: number, high: number): number;
  /** standard normal (Box-Muller) */
  normal(): number;
  /** integer in [0, n) */
  int(n: number): number;
}

/** mulberry32 seeded by (stream name, seed). */
export function createRng(seed: number, stream = ''): Rng {
  const next = mulberry32(hashString(stream) ^ Math.imul(seed | 0, 0x9e3779b1) ^ ((seed / 0x100000000) | 0));
  return {
    next,
    uniform: (low, high) => low + (high - low) * next(),
    normal: () => standardNormal(next),
    int: (n) => Math.floor(next() * n),
  };
}
