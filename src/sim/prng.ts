// Seeded pseudo-random numbers for episode layouts and expert noise: the same seed gives the same sequence on every
// platform (32-bit integer arithmetic only, no Math.random).

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
  let state = (hashString(stream) ^ Math.imul(seed | 0, 0x9e3779b1) ^ ((seed / 0x100000000) | 0)) >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    uniform: (low, high) => low + (high - low) * next(),
    normal: () => {
      const u = Math.max(next(), 1e-12);
      return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * next());
    },
    int: (n) => Math.floor(next() * n),
  };
}
