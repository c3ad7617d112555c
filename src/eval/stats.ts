// Statistics of a paired closed-loop comparison: Wilson intervals for success rates (shared with the sim runner),
// the exact McNemar test on the discordant pairs, medians.
import { wilsonInterval } from '../sim/statistics.js';

export { wilsonInterval };

/** Natural log of n choose k, summed exactly enough for n in the tens of thousands. */
function logChoose(n: number, k: number): number {
  let sum = 0;
  for (let i = 1; i <= k; i++) sum += Math.log(n - k + i) - Math.log(i);
  return sum;
}

/**
 * Exact (binomial) McNemar test, two-sided: of the n = b + c discordant pairs (b: only the first variant succeeded,
 * c: only the second), how surprising is a split this uneven if each is equally likely?
 * p = min(1, 2 * P(X <= min(b, c))), X ~ Binomial(n, 1/2); p = 1 when there are no discordant pairs.
 */
export function mcnemarExactP(b: number, c: number): number {
  if (!Number.isInteger(b) || !Number.isInteger(c) || b < 0 || c < 0) throw new Error(`discordant counts must be non-negative integers, got ${b}, ${c}`);
  const n = b + c;
  if (n === 0) return 1;
  const k = Math.min(b, c);
  let tail = 0;
  if (n <= 1000) {
    // pmf by the recurrence P(i+1) = P(i) (n-i)/(i+1) from P(0) = 2^-n (exact; 2^-1000 is still a normal double)
    let term = 2 ** -n;
    for (let i = 0; i <= k; i++) {
      tail += term;
      term *= (n - i) / (i + 1);
    }
  } else {
    // log-space terms so that 2^-n does not underflow
    for (let i = 0; i <= k; i++) tail += Math.exp(logChoose(n, i) - n * Math.LN2);
  }
  return Math.min(1, 2 * tail);
}

export interface PairedComparison {
  /** pairs (same task and seed) present for both variants */
  pairs: number;
  /** first succeeded, other failed */
  onlyFirst: number;
  /** first failed, other succeeded */
  onlyOther: number;
  /** success rate of the other minus that of the first, over the pairs */
  difference: number;
  /** exact McNemar p-value */
  p: number;
}

/** Pairs two variants' episodes by (task, seed) and compares their successes. */
export function pairedComparison(
  first: { task: string; seed: number; success: boolean }[],
  other: { task: string; seed: number; success: boolean }[],
): PairedComparison {
  const byKey = new Map(first.map((e) => [`${e.task}\u0000${e.seed}`, e.success]));
  let pairs = 0;
  let onlyFirst = 0;
  let onlyOther = 0;
  for (const e of other) {
    const firstSuccess = byKey.get(`${e.task}\u0000${e.seed}`);
    if (firstSuccess === undefined) continue;
    pairs++;
    if (firstSuccess && !e.success) onlyFirst++;
    if (!firstSuccess && e.success) onlyOther++;
  }
  return { pairs, onlyFirst, onlyOther, difference: pairs ? (onlyOther - onlyFirst) / pairs : 0, p: mcnemarExactP(onlyFirst, onlyOther) };
}

/** Median of the finite values (mean of the two middle ones for an even count); NaN when there are none. */
export function median(values: Iterable<number>): number {
  const sorted = [...values].filter(Number.isFinite).sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const middle = sorted.length >> 1;
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}
