// OpenVLA's action tokenizer, inverse direction: the last 256 ids of the real vocabulary are action bins.
// Float64 math throughout, as numpy does in the reference (actions match it to 1e-9).
import { UserError } from '../errors.js';

export interface ActionStats {
  q01: number[];
  q99: number[];
  /** true: un-normalize this dimension; false: keep the model's value (the gripper) */
  mask?: boolean[];
}

/** Bin centres of linspace(-1, 1, nBins): nBins - 1 values. */
export function binCenters(nBins: number): Float64Array {
  const step = 2 / (nBins - 1);
  const edges = Float64Array.from({ length: nBins }, (_, i) => (i === nBins - 1 ? 1 : -1 + i * step));
  return Float64Array.from({ length: nBins - 1 }, (_, i) => (edges[i] + edges[i + 1]) / 2);
}

/** Token ids -> normalized actions in [-1, 1]: index = clip(vocab - id - 1, 0, nBins - 2). */
export function detokenizeActions(tokenIds: number[], realVocabSize: number, nBins: number): number[] {
  const centers = binCenters(nBins);
  return tokenIds.map((id) => centers[Math.min(Math.max(realVocabSize - id - 1, 0), centers.length - 1)]);
}

/** normalized [-1,1] -> 0.5 (x + 1) (q99 - q01) + q01 where mask, else unchanged */
export function unnormalizeAction(normalized: number[], stats: ActionStats): number[] {
  if (stats.q01.length !== normalized.length || stats.q99.length !== normalized.length) {
    throw new UserError(`action statistics have ${stats.q01.length} dimensions but the model produced ${normalized.length}`);
  }
  return normalized.map((x, i) => ((stats.mask?.[i] ?? true) ? 0.5 * (x + 1) * (stats.q99[i] - stats.q01[i]) + stats.q01[i] : x));
}

export type NormStats = Record<string, { action: ActionStats } & Record<string, unknown>>;

/**
 * The dataset statistics to un-normalize with. With one dataset the key may be omitted; with several it must be
 * given, and the error lists them.
 */
export function chooseUnnormKey(normStats: NormStats | undefined, key: string | undefined): string {
  const keys = Object.keys(normStats ?? {});
  if (keys.length === 0) throw new UserError('the checkpoint has no norm_stats, so actions cannot be un-normalized');
  if (key !== undefined) {
    if (!keys.includes(key)) throw new UserError(`unknown --unnorm-key '${key}'; the checkpoint has: ${keys.join(', ')}`);
    return key;
  }
  if (keys.length > 1) throw new UserError(`the checkpoint has statistics for several datasets; choose one with --unnorm-key: ${keys.join(', ')}`);
  return keys[0];
}
