// Small statistics shared by the episode runner (success intervals) and the recorder (action normalization stats).

/** z for a two-sided 95% interval. */
const Z_95 = 1.959963984540054;

/**
 * Wilson score interval for a binomial proportion (successes out of trials); better than the normal approximation
 * at the extremes (0/n, n/n) and for the small n of closed-loop evaluations. Returns [0, 1] when trials = 0.
 */
export function wilsonInterval(successes: number, trials: number, z = Z_95): [number, number] {
  if (trials === 0) return [0, 1];
  const p = successes / trials;
  const z2 = z * z;
  const denominator = 1 + z2 / trials;
  const centre = (p + z2 / (2 * trials)) / denominator;
  const halfWidth = (z * Math.sqrt((p * (1 - p)) / trials + z2 / (4 * trials * trials))) / denominator;
  return [Math.max(0, centre - halfWidth), Math.min(1, centre + halfWidth)];
}

/** numpy.quantile(values, q) with the default 'linear' method; `sorted` must be ascending and non-empty. */
export function quantileSorted(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) throw new Error('quantile of an empty array');
  const position = (sorted.length - 1) * q;
  const below = Math.floor(position);
  const above = Math.min(below + 1, sorted.length - 1);
  const fraction = position - below;
  const difference = sorted[above] - sorted[below];
  // numpy's _lerp: interpolate from the nearer end, so results are bit-identical to np.quantile
  return fraction >= 0.5 ? sorted[above] - difference * (1 - fraction) : sorted[below] + difference * fraction;
}

/** Per-dimension statistics of rows [N, D], as numpy computes them along axis 0 (std with ddof = 0). */
export interface ColumnStatistics {
  mean: number[];
  std: number[];
  min: number[];
  max: number[];
  q01: number[];
  q99: number[];
}

export function columnStatistics(rows: number[][]): ColumnStatistics {
  if (rows.length === 0) throw new Error('statistics of zero rows');
  const dims = rows[0].length;
  const result: ColumnStatistics = { mean: [], std: [], min: [], max: [], q01: [], q99: [] };
  const column = new Float64Array(rows.length);
  for (let d = 0; d < dims; d++) {
    let sum = 0;
    for (let i = 0; i < rows.length; i++) {
      column[i] = rows[i][d];
      sum += column[i];
    }
    const mean = sum / rows.length;
    let squares = 0;
    for (let i = 0; i < rows.length; i++) squares += (column[i] - mean) ** 2;
    column.sort();
    result.mean.push(mean);
    result.std.push(Math.sqrt(squares / rows.length));
    result.min.push(column[0]);
    result.max.push(column[rows.length - 1]);
    result.q01.push(quantileSorted(column, 0.01));
    result.q99.push(quantileSorted(column, 0.99));
  }
  return result;
}
