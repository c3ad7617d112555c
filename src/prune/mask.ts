// The picture of a pruning decision: the input image with dropped patches darkened and the protected ring around
// the end effector outlined, plus a small cross on the end effector itself.
import type { RgbImage } from '../io/image.js';
import { isInside, type ImagePoint, type PatchGrid } from './grid.js';

/** brightness left to dropped patches */
const DROPPED_BRIGHTNESS = 0.3;
const RING_COLOUR = [255, 220, 0];
const EEF_COLOUR = [255, 40, 40];

/** image (any size; the grid is stretched over it as preprocessing does), kept tokens, ring -> a new image */
export function pruningMask(image: RgbImage, grid: PatchGrid, kept: readonly number[], ring: readonly number[], eef: ImagePoint | null): RgbImage {
  const { width, height } = image;
  const data = Uint8Array.from(image.data);
  const keptSet = new Set(kept);
  const ringSet = new Set(ring);
  const patchOf = (x: number, y: number) => Math.floor((y * grid.rows) / height) * grid.cols + Math.floor((x * grid.cols) / width);
  const paint = (x: number, y: number, colour: number[]) => {
    if (x < 0 || y < 0 || x >= width || y >= height) return;
    data.set(colour, (y * width + x) * 3);
  };
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (keptSet.has(patchOf(x, y))) continue;
      const i = (y * width + x) * 3;
      for (let c = 0; c < 3; c++) data[i + c] = Math.round(data[i + c] * DROPPED_BRIGHTNESS);
    }
  }
  // ring outline: ring pixels with a 4-neighbour outside the ring (or the image edge)
  const inRing = (x: number, y: number) => x >= 0 && y >= 0 && x < width && y < height && ringSet.has(patchOf(x, y));
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (inRing(x, y) && !(inRing(x - 1, y) && inRing(x + 1, y) && inRing(x, y - 1) && inRing(x, y + 1))) paint(x, y, RING_COLOUR);
    }
  }
  if (eef && isInside(eef)) {
    const [ex, ey] = [Math.floor(eef.x * width), Math.floor(eef.y * height)];
    const arm = Math.max(2, Math.round(Math.min(width, height) / 80));
    for (let d = -arm; d <= arm; d++) {
      paint(ex + d, ey, EEF_COLOUR);
      paint(ex, ey + d, EEF_COLOUR);
    }
  }
  return { width, height, data };
}
