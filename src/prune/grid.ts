// The patch grid of the visual tokens: token j is the patch at row floor(j / cols), column j % cols (row-major, as
// the ViTs emit them). Geometry is in patch units: patch (r, c) covers [c, c+1) x [r, r+1) and its centre is
// (c + 0.5, r + 0.5). Image points are given as fractions of the image size, so any input resolution maps onto the
// grid the way OpenVLA's "resize-naive" preprocessing stretches it.

export interface PatchGrid {
  rows: number;
  cols: number;
}

/** A point in the image as fractions of its width (x) and height (y); [0, 1) is inside. */
export interface ImagePoint {
  x: number;
  y: number;
}

/** The square grid of `visualTokens` patches (OpenVLA: 256 = 16 x 16). */
export function squareGrid(visualTokens: number): PatchGrid {
  const side = Math.round(Math.sqrt(visualTokens));
  if (side * side !== visualTokens) throw new Error(`${visualTokens} visual tokens do not form a square patch grid`);
  return { rows: side, cols: side };
}

export function patchCount(grid: PatchGrid): number {
  return grid.rows * grid.cols;
}

/** centre of patch j in patch units: [column + 0.5, row + 0.5] */
export function patchCentre(grid: PatchGrid, j: number): [number, number] {
  return [(j % grid.cols) + 0.5, Math.floor(j / grid.cols) + 0.5];
}

export function isInside(point: ImagePoint): boolean {
  return point.x >= 0 && point.x < 1 && point.y >= 0 && point.y < 1;
}

/** the patch containing an image point, or null outside the image */
export function patchAt(grid: PatchGrid, point: ImagePoint): number | null {
  if (!isInside(point)) return null;
  return Math.floor(point.y * grid.rows) * grid.cols + Math.floor(point.x * grid.cols);
}

/**
 * Patches whose centre lies within `radius` patches of an image point, nearest first (lower index on ties); empty
 * when the point is outside the image (an end effector out of view protects nothing).
 */
export function patchesWithin(grid: PatchGrid, point: ImagePoint, radius: number): number[] {
  if (!isInside(point)) return [];
  const px = point.x * grid.cols;
  const py = point.y * grid.rows;
  const found: { j: number; d: number }[] = [];
  for (let j = 0; j < patchCount(grid); j++) {
    const [cx, cy] = patchCentre(grid, j);
    const d = Math.hypot(cx - px, cy - py);
    if (d <= radius) found.push({ j, d });
  }
  found.sort((a, b) => a.d - b.d || a.j - b.j);
  return found.map((f) => f.j);
}

/** Largest distance (patch units) from any patch centre to the nearest kept patch centre: how well `kept` covers. */
export function coverageRadius(grid: PatchGrid, kept: ArrayLike<number>): number {
  let worst = 0;
  for (let j = 0; j < patchCount(grid); j++) {
    const [x, y] = patchCentre(grid, j);
    let best = Infinity;
    for (let i = 0; i < kept.length; i++) {
      const [kx, ky] = patchCentre(grid, kept[i]);
      best = Math.min(best, Math.hypot(kx - x, ky - y));
    }
    worst = Math.max(worst, best);
  }
  return worst;
}
