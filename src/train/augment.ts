// Image augmentation for behaviour cloning, after OpenVLA's training transforms (random resized crop, then
// brightness / contrast / saturation jitter), on RGB8 frames before the model's own preprocessing. The crop keeps
// 90-100% of the area at aspect ratio 1 (OpenVLA: 90%; up to 100% so the un-cropped evaluation view is in the
// training distribution, since evaluation feeds whole frames). None of this runs at evaluation.
import type { RgbImage } from '../io/image.js';

export interface AugmentOptions {
  /** crop area as a fraction of the image, drawn uniformly */
  cropScale: [number, number];
  /** additive brightness delta range on [0, 1] pixels */
  brightness: number;
  /** contrast and saturation factors are drawn from [1 - x, 1 + x] */
  contrast: number;
  saturation: number;
}

export const OPENVLA_AUGMENT: AugmentOptions = { cropScale: [0.9, 1], brightness: 0.2, contrast: 0.2, saturation: 0.2 };

/** The part of the source frame an augmented image shows: pixels [x0, x0 + width) × [y0, y0 + height). */
export interface CropBox {
  x0: number;
  y0: number;
  width: number;
  height: number;
}

/** The whole frame (what evaluation sees). */
export const fullFrame = (image: { width: number; height: number }): CropBox => ({ x0: 0, y0: 0, width: image.width, height: image.height });

/** image [H,W,3] -> a random square-ish crop [h,w,3] (copied), colour-jittered */
export function augmentImage(image: RgbImage, random: () => number, o: AugmentOptions = OPENVLA_AUGMENT): RgbImage {
  return augmentWithCrop(image, random, o).image;
}

/** augmentImage, also saying which part of the frame was kept (for targets tied to pixels, aux-heatmap.ts) */
export function augmentWithCrop(image: RgbImage, random: () => number, o: AugmentOptions = OPENVLA_AUGMENT): { image: RgbImage; crop: CropBox } {
  const scale = o.cropScale[0] + (o.cropScale[1] - o.cropScale[0]) * random();
  const side = Math.sqrt(scale);
  const w = Math.max(1, Math.round(image.width * side));
  const h = Math.max(1, Math.round(image.height * side));
  const x0 = Math.floor(random() * (image.width - w + 1));
  const y0 = Math.floor(random() * (image.height - h + 1));
  const brightness = (2 * random() - 1) * o.brightness * 255;
  const contrast = 1 + (2 * random() - 1) * o.contrast;
  const saturation = 1 + (2 * random() - 1) * o.saturation;
  const out = new Uint8Array(w * h * 3);
  let sum = 0;
  for (let y = 0; y < h; y++) {
    const src = ((y0 + y) * image.width + x0) * 3;
    out.set(image.data.subarray(src, src + w * 3), y * w * 3);
  }
  for (let i = 0; i < out.length; i += 3) sum += 0.299 * out[i] + 0.587 * out[i + 1] + 0.114 * out[i + 2];
  const meanGrey = sum / (w * h);
  for (let i = 0; i < out.length; i += 3) {
    const grey = 0.299 * out[i] + 0.587 * out[i + 1] + 0.114 * out[i + 2];
    for (let c = 0; c < 3; c++) {
      let v = grey + (out[i + c] - grey) * saturation; // saturation: blend with the pixel's grey
      v = meanGrey + (v - meanGrey) * contrast + brightness; // contrast about the image mean, then brightness
      out[i + c] = v < 0 ? 0 : v > 255 ? 255 : Math.round(v);
    }
  }
  return { image: { width: w, height: h, data: out }, crop: { x0, y0, width: w, height: h } };
}
