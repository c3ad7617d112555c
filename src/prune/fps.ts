// Farthest-point sampling over patch-grid coordinates: SQAP's spatially-aware fill, so that whatever the scores
// drop, the kept tokens still cover the whole scene.
import { patchCentre, patchCount, type PatchGrid } from './grid.js';

/**
 * Adds `count` patches to `start` (already kept, any order), each time the patch farthest (Euclidean, between patch
 * centres) from everything kept so far; the lowest index wins ties, so the result is deterministic. With an empty
 * start the first pick is the patch nearest the grid centre. -> the added patches, in the order picked.
 */
export function farthestPointSampling(grid: PatchGrid, start: ArrayLike<number>, count: number): number[] {
  const n = patchCount(grid);
  const nearest = new Float64Array(n).fill(Infinity); // squared distance to the nearest kept patch
  const kept = new Uint8Array(n);
  const centres = Array.from({ length: n }, (_, j) => patchCentre(grid, j));
  const take = (j: number) => {
    kept[j] = 1;
    const [x, y] = centres[j];
    for (let i = 0; i < n; i++) nearest[i] = Math.min(nearest[i], (centres[i][0] - x) ** 2 + (centres[i][1] - y) ** 2);
  };
  for (let i = 0; i < start.length; i++) take(start[i]);
  const added: number[] = [];
  if (start.length === 0 && count > 0) {
    const fromCentre = (j: number) => (centres[j][0] - grid.cols / 2) ** 2 + (centres[j][1] - grid.rows / 2) ** 2;
    let best = 0;
    for (let j = 1; j < n; j++) if (fromCentre(j) < fromCentre(best)) best = j;
    take(best);
    added.push(best);
  }
  while (added.length < count) {
    let best = -1;
    for (let j = 0; j < n; j++) if (!kept[j] && (best < 0 || nearest[j] > nearest[best])) best = j;
    if (best < 0) break; // every patch is kept
    take(best);
    added.push(best);
  }
  return added;
}
