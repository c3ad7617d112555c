// What a pruned policy looked at, drawn on its camera frame: patches it dropped are darkened, the protected ring
// around the projected end effector is outlined. The patch grid covers the whole image (the model sees the frame
// resized to its input, so patch (r, c) is the same fraction of the frame).
import { copyImage } from '../sim/episode.js';
import type { RgbImage } from '../sim/types.js';
import type { PatchMask } from './lockstep.js';

/** Brightness kept on a dropped patch. */
const DROPPED_BRIGHTNESS = 0.3;
const RING_COLOUR = [255, 220, 0];

/** image [H, W, 3] -> a copy with the mask drawn (the image itself when there is no mask). */
export function drawPatchMask(image: RgbImage, mask: PatchMask | undefined): RgbImage {
  if (!mask) return image;
  const out = copyImage(image);
  const [rows, cols] = mask.grid;
  const kept = new Set(mask.kept);
  for (let y = 0; y < out.height; y++) {
    const r = Math.min(rows - 1, Math.floor((y * rows) / out.height));
    for (let x = 0; x < out.width; x++) {
      const c = Math.min(cols - 1, Math.floor((x * cols) / out.width));
      if (kept.has(r * cols + c)) continue;
      const i = (y * out.width + x) * 3;
      for (let k = 0; k < 3; k++) out.data[i + k] = Math.round(out.data[i + k] * DROPPED_BRIGHTNESS);
    }
  }
  if (mask.ring) drawCircle(out, mask.ring.center, mask.ring.radius);
  return out;
}

function drawCircle(image: RgbImage, [cx, cy]: [number, number], radius: number): void {
  const steps = Math.max(32, Math.ceil(2 * Math.PI * radius * 2));
  for (let s = 0; s < steps; s++) {
    const angle = (2 * Math.PI * s) / steps;
    for (const dr of [-0.5, 0, 0.5]) {
      const x = Math.round(cx + (radius + dr) * Math.cos(angle));
      const y = Math.round(cy + (radius + dr) * Math.sin(angle));
      if (x < 0 || y < 0 || x >= image.width || y >= image.height) continue;
      image.data.set(RING_COLOUR, (y * image.width + x) * 3);
    }
  }
}

/** Up to `count` step indices spread evenly over an episode of `length` steps, first and last included. */
export function stripSteps(length: number, count: number): number[] {
  if (length <= 0) return [];
  if (length <= count) return [...Array(length).keys()];
  return [...new Set(Array.from({ length: count }, (_, i) => Math.round((i * (length - 1)) / (count - 1))))];
}
