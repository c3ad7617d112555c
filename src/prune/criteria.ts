// The pruning criteria: pure functions from per-token scores, the patch grid and an optional end-effector point to
// the kept visual tokens (indices into the row-major patch grid, ascending). `budget` is how many to keep.
import { mulberry32 } from '../random.js';
import { farthestPointSampling } from './fps.js';
import { patchesWithin, type ImagePoint, type PatchGrid } from './grid.js';

/** Per-visual-token scores read from layer K-1's attention (see scores.ts). */
export interface VisualScores {
  /** attention each visual token receives from all prompt tokens, summed over heads, divided by the token count (FastV) */
  received?: Float32Array;
  /** attention from the task-query token(s), averaged over heads (and query tokens) */
  fromQuery?: Float32Array;
}

export interface SqapOptions {
  /** share of the budget filled first by query attention, in [0, 1] */
  queryShare: number;
  /** protection radius around the end effector, in patches (patch centres within it are kept) */
  ringRadius: number;
}

export interface Selection {
  /** kept visual tokens, ascending */
  kept: number[];
  /** the protected patches around the end effector (sqap only; empty without one in view) */
  ring: number[];
}

/** SQAP defaults; docs/pruning.md gives the reasons. */
export const SQAP_DEFAULTS: SqapOptions = { queryShare: 0.5, ringRadius: 2 };

/** Tokens kept for a ratio: round(keep * count), at least 1. */
export function keepBudget(keep: number, count: number): number {
  return Math.min(count, Math.max(1, Math.round(keep * count)));
}

/** the `k` highest scores' indices, ascending (the lower index wins ties) */
export function topK(scores: ArrayLike<number>, k: number): number[] {
  const order = Array.from({ length: scores.length }, (_, j) => j);
  order.sort((a, b) => scores[b] - scores[a] || a - b);
  return ascending(order.slice(0, k));
}

/** FastV: the tokens that receive the most attention from all tokens. */
export function fastv(scores: VisualScores, budget: number): Selection {
  return { kept: topK(required(scores.received, 'fastv', 'received'), budget), ring: [] };
}

/** The tokens the task query attends to most. */
export function query(scores: VisualScores, budget: number): Selection {
  return { kept: topK(required(scores.fromQuery, 'query', 'fromQuery'), budget), ring: [] };
}

/**
 * SQAP: round(queryShare * budget) tokens by query attention; then every patch within ringRadius of the end
 * effector (nearest first, as long as the budget lasts); then farthest-point sampling from everything kept for the
 * rest. Without an end effector in view the ring is empty: query + FPS.
 */
export function sqap(scores: VisualScores, grid: PatchGrid, budget: number, eef: ImagePoint | null, options: SqapOptions = SQAP_DEFAULTS): Selection {
  const fromQuery = required(scores.fromQuery, 'sqap', 'fromQuery');
  const kept = new Set(topK(fromQuery, Math.round(options.queryShare * budget)));
  const ring = eef ? patchesWithin(grid, eef, options.ringRadius) : [];
  for (const j of ring) {
    if (kept.size >= budget) break;
    kept.add(j);
  }
  const start = [...kept];
  const fill = farthestPointSampling(grid, start, budget - start.length);
  return { kept: ascending([...start, ...fill]), ring };
}

/** Uniformly random tokens from a seeded generator (same seed, same tokens). */
export function random(count: number, budget: number, seed: number): Selection {
  const next = mulberry32(seed);
  const order = Array.from({ length: count }, (_, j) => j);
  for (let i = 0; i < budget; i++) {
    const j = i + Math.floor(next() * (count - i));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return { kept: ascending(order.slice(0, budget)), ring: [] };
}

/** Every (count / budget)-th token in row-major order, centred in each stride: floor((i + 0.5) * count / budget). */
export function grid(count: number, budget: number): Selection {
  return { kept: Array.from({ length: budget }, (_, i) => Math.floor(((i + 0.5) * count) / budget)), ring: [] };
}

/** Share of `a`'s tokens that `b` also keeps (|a ∩ b| / |a|; 1 when both keep the same). */
export function topkOverlap(a: readonly number[], b: readonly number[]): number {
  if (a.length === 0) return 1;
  const other = new Set(b);
  return a.filter((j) => other.has(j)).length / a.length;
}

function required(values: Float32Array | undefined, method: string, name: string): Float32Array {
  if (!values) throw new Error(`${method} needs the '${name}' scores`);
  return values;
}

function ascending(indices: number[]): number[] {
  return indices.sort((a, b) => a - b);
}
