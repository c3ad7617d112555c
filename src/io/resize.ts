// Bit-exact port of Pillow's `Image.resize((w, h), Image.BICUBIC)` for 8-bit RGB images
// (libImaging/Resample.c: ImagingResample -> ImagingResampleInner with the 8bpc passes; plain resize uses
// box = (0, 0, inWidth, inHeight) and no reducing_gap, so the reduce() shortcut never runs).
//
// Separable: a horizontal pass (skipped when the width is unchanged) writes a uint8 intermediate image, rounded
// and clipped, then a vertical pass (skipped when the height is unchanged). When downscaling the filter support
// is stretched by the scale factor (antialiasing). Coefficients are normalised per output pixel in double and
// then turned into 22-bit fixed point; accumulation is integer with a rounding bias of half an output unit.
import type { RgbImage } from './image.js';

/** 32 bits minus 8 for the result and 2 for the overflow of a filter with negative lobes. */
const PRECISION_BITS = 32 - 8 - 2;
const BICUBIC_SUPPORT = 2.0;

/** Keys' cubic convolution kernel with a = -0.5, written in Pillow's operation order (same doubles). */
function bicubicFilter(x: number): number {
  const a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

interface Coefficients {
  /** taps per output pixel (row stride of `weights`) */
  kernelSize: number;
  /** [outSize] first input index used by each output pixel */
  first: Int32Array;
  /** [outSize] number of input pixels used by each output pixel */
  count: Int32Array;
  /** [outSize, kernelSize] fixed-point weights (PRECISION_BITS fractional bits) */
  weights: Int32Array;
}

/** precompute_coeffs + normalize_coeffs_8bpc for the box [0, inSize). */
function precomputeCoefficients(inSize: number, outSize: number): Coefficients {
  const scale = inSize / outSize; // (double)(in1 - in0) / outSize with in0 = 0, in1 = inSize (exact floats)
  const filterScale = scale < 1.0 ? 1.0 : scale;
  const support = BICUBIC_SUPPORT * filterScale;
  const kernelSize = Math.ceil(support) * 2 + 1;
  const first = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const weights = new Int32Array(outSize * kernelSize);
  const taps = new Float64Array(kernelSize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = 0 + (xx + 0.5) * scale;
    const inverseFilterScale = 1.0 / filterScale;
    let xmin = Math.trunc(center - support + 0.5); // C (int) cast truncates toward zero
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let total = 0.0;
    for (let x = 0; x < xmax; x++) {
      const w = bicubicFilter((x + xmin - center + 0.5) * inverseFilterScale);
      taps[x] = w;
      total += w;
    }
    for (let x = 0; x < xmax; x++) {
      const w = total !== 0.0 ? taps[x] / total : taps[x];
      weights[xx * kernelSize + x] = w < 0 ? Math.trunc(-0.5 + w * (1 << PRECISION_BITS)) : Math.trunc(0.5 + w * (1 << PRECISION_BITS));
    }
    first[xx] = xmin;
    count[xx] = xmax;
  }
  return { kernelSize, first, count, weights };
}

/** clip8: arithmetic shift of the int32 accumulator, clamped to 0..255 (Pillow's lookup table). */
function clip8(accumulator: number): number {
  const v = (accumulator | 0) >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

const ROUNDING_BIAS = 1 << (PRECISION_BITS - 1);

// in [rows, inWidth, 3] -> out [rows, outWidth, 3]
function resampleHorizontal(input: Uint8Array, rows: number, inWidth: number, outWidth: number): Uint8Array {
  const { kernelSize, first, count, weights } = precomputeCoefficients(inWidth, outWidth);
  const out = new Uint8Array(rows * outWidth * 3);
  for (let y = 0; y < rows; y++) {
    const rowStart = y * inWidth * 3;
    for (let xx = 0; xx < outWidth; xx++) {
      const k = xx * kernelSize;
      const base = rowStart + first[xx] * 3;
      let r = ROUNDING_BIAS;
      let g = ROUNDING_BIAS;
      let b = ROUNDING_BIAS;
      for (let x = 0; x < count[xx]; x++) {
        const w = weights[k + x];
        r += input[base + x * 3] * w;
        g += input[base + x * 3 + 1] * w;
        b += input[base + x * 3 + 2] * w;
      }
      const o = (y * outWidth + xx) * 3;
      out[o] = clip8(r);
      out[o + 1] = clip8(g);
      out[o + 2] = clip8(b);
    }
  }
  return out;
}

// in [inHeight, width, 3] -> out [outHeight, width, 3]
function resampleVertical(input: Uint8Array, width: number, inHeight: number, outHeight: number): Uint8Array {
  const { kernelSize, first, count, weights } = precomputeCoefficients(inHeight, outHeight);
  const rowBytes = width * 3;
  const out = new Uint8Array(outHeight * rowBytes);
  for (let yy = 0; yy < outHeight; yy++) {
    const k = yy * kernelSize;
    for (let i = 0; i < rowBytes; i++) {
      let s = ROUNDING_BIAS;
      for (let y = 0; y < count[yy]; y++) s += input[(first[yy] + y) * rowBytes + i] * weights[k + y];
      out[yy * rowBytes + i] = clip8(s);
    }
  }
  return out;
}

/** Pillow `Image.resize((width, height), Image.BICUBIC)` of an RGB8 image, bit for bit. */
export function resizeBicubicPillow(image: RgbImage, width: number, height: number): RgbImage {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) {
    throw new Error(`resize target must be positive integers, got ${width}x${height}`);
  }
  if (image.data.length !== image.width * image.height * 3) {
    throw new Error(`RgbImage ${image.width}x${image.height} needs ${image.width * image.height * 3} bytes, has ${image.data.length}`);
  }
  // Pillow restricts the horizontal pass to the rows the vertical pass reads; the values are the same, so we run
  // it on every row (simpler; the extra rows are only read when the vertical pass is skipped, and then all are).
  let data = image.data;
  if (width !== image.width) data = resampleHorizontal(data, image.height, image.width, width);
  if (height !== image.height) data = resampleVertical(data, width, image.height, height);
  if (data === image.data) data = data.slice();
  return { width, height, data };
}
