// Image file I/O: PNG (any bit depth / colour type) and JPEG in, RGB8 out; PNG out.
// Decoding follows what Pillow's `Image.open(f).convert('RGB')` yields, since the reference pipelines
// (OpenVLA's processor) start from that: alpha is dropped (not composited), 16-bit samples keep their high
// byte, 16-bit greyscale is clipped to 255 (Pillow's I -> RGB conversion clips, it does not rescale),
// low-bit greyscale is scaled to 0..255, palettes are looked up.
import { readFileSync, writeFileSync } from 'node:fs';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { UserError } from '../errors.js';

/** An RGB8 image, row-major, 3 bytes a pixel. */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

/** Largest side and pixel count of an image this package decodes (a 64 MP frame is ~200 MB as RGBA). */
export const MAX_IMAGE_SIDE = 16384;
export const MAX_IMAGE_PIXELS = 64 * 2 ** 20;

/** Refuses an empty or oversized image before anything is allocated for it. */
export function checkImageSize(width: number, height: number, name: string): void {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new UserError(`image ${name} is ${width}x${height} pixels; it needs at least 1x1.`);
  }
  if (width > MAX_IMAGE_SIDE || height > MAX_IMAGE_SIDE || width * height > MAX_IMAGE_PIXELS) {
    throw new UserError(`image ${name} is ${width}x${height} pixels, more than the ${MAX_IMAGE_SIDE} px side / ${MAX_IMAGE_PIXELS / 2 ** 20} MP this tool decodes; downscale it first.`);
  }
}

const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

function isPng(bytes: Uint8Array): boolean {
  return bytes.length >= 8 && PNG_MAGIC.every((b, i) => bytes[i] === b);
}

function isJpeg(bytes: Uint8Array): boolean {
  return bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff;
}

function readUint32BE(bytes: Uint8Array, offset: number): number {
  return ((bytes[offset] << 24) | (bytes[offset + 1] << 16) | (bytes[offset + 2] << 8) | bytes[offset + 3]) >>> 0;
}

/**
 * pngjs turns pixels that match a greyscale/RGB tRNS colour into (0,0,0,0), destroying their RGB; Pillow keeps the
 * colour and only adds alpha, which convert('RGB') then drops. So drop the tRNS chunk of non-palette images.
 */
function withoutColourKey(bytes: Uint8Array, colourType: number): Uint8Array {
  if (colourType === 3) return bytes;
  const kept: Uint8Array[] = [bytes.subarray(0, 8)];
  let offset = 8;
  let dropped = false;
  while (offset + 12 <= bytes.length) {
    const length = readUint32BE(bytes, offset);
    const type = String.fromCharCode(bytes[offset + 4], bytes[offset + 5], bytes[offset + 6], bytes[offset + 7]);
    const end = offset + 12 + length;
    if (end > bytes.length) break; // truncated: let pngjs report it
    if (type === 'tRNS') dropped = true;
    else kept.push(bytes.subarray(offset, end));
    offset = end;
  }
  if (!dropped) return bytes;
  if (offset < bytes.length) kept.push(bytes.subarray(offset));
  return Buffer.concat(kept);
}

function decodePng(bytes: Uint8Array, name: string): RgbImage {
  if (bytes.length < 33) throw new UserError(`Cannot decode image ${name}: truncated PNG header.`);
  const isIhdr = bytes[12] === 0x49 && bytes[13] === 0x48 && bytes[14] === 0x44 && bytes[15] === 0x52;
  if (isIhdr) checkImageSize(readUint32BE(bytes, 16), readUint32BE(bytes, 20), name); // before pngjs allocates
  const depth = bytes[24];
  const colourType = bytes[25];
  let png: { width: number; height: number; data: ArrayLike<number> };
  try {
    png = PNG.sync.read(Buffer.from(withoutColourKey(bytes, colourType)), { skipRescale: true });
  } catch (error) {
    throw new UserError(`Cannot decode image ${name}: corrupt or unsupported PNG (${(error as Error).message}).`);
  }
  const { width, height } = png;
  checkImageSize(width, height, name);
  const rgba = png.data; // RGBA, samples of `depth` bits (palette entries are 8-bit)
  const toByte: (v: number) => number =
    colourType === 3 || depth === 8
      ? (v) => v
      : depth === 16
        ? colourType === 0
          ? (v) => (v > 255 ? 255 : v) // Pillow: 16-bit grey opens as mode I, and I -> RGB clips
          : (v) => v >> 8 // Pillow unpacks RGB;16B / RGBA;16B / LA;16B by their high byte
        : (v) => (v * 255) / ((1 << depth) - 1); // 1/2/4-bit grey: exact multiples (255, 85, 17)
  const data = new Uint8Array(width * height * 3);
  for (let pixel = 0; pixel < width * height; pixel++) {
    data[pixel * 3] = toByte(rgba[pixel * 4]);
    data[pixel * 3 + 1] = toByte(rgba[pixel * 4 + 1]);
    data[pixel * 3 + 2] = toByte(rgba[pixel * 4 + 2]);
  }
  return { width, height, data };
}

function decodeJpeg(bytes: Uint8Array, name: string): RgbImage {
  try {
    const decoded = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: false, tolerantDecoding: false, maxResolutionInMP: MAX_IMAGE_PIXELS / 2 ** 20, maxMemoryUsageInMB: 1024 });
    checkImageSize(decoded.width, decoded.height, name);
    return { width: decoded.width, height: decoded.height, data: decoded.data };
  } catch (error) {
    if (error instanceof UserError) throw error;
    throw new UserError(`Cannot decode image ${name}: corrupt or unsupported JPEG (${(error as Error).message}).`);
  }
}

/** Decode PNG or JPEG bytes (chosen by magic bytes) to RGB8. */
export function decodeImage(bytes: Uint8Array, nameForErrors = '<image bytes>'): RgbImage {
  if (isPng(bytes)) return decodePng(bytes, nameForErrors);
  if (isJpeg(bytes)) return decodeJpeg(bytes, nameForErrors);
  throw new UserError(`Cannot decode image ${nameForErrors}: not a PNG or JPEG file (unrecognised magic bytes).`);
}

export function readImageFile(path: string): RgbImage {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new UserError(`Cannot read image ${path}: ${code === 'ENOENT' ? 'no such file' : (error as Error).message}.`);
  }
  return decodeImage(bytes, path);
}

function assertRgbImage(image: RgbImage): void {
  const { width, height, data } = image;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) {
    throw new Error(`RgbImage has invalid size ${width}x${height}`);
  }
  if (data.length !== width * height * 3) {
    throw new Error(`RgbImage ${width}x${height} needs ${width * height * 3} bytes, has ${data.length}`);
  }
}

/** 8-bit RGB PNG, no alpha. */
export function encodePng(image: RgbImage): Buffer {
  assertRgbImage(image);
  const png = new PNG({ width: image.width, height: image.height, colorType: 2, inputColorType: 2, inputHasAlpha: false });
  png.data = Buffer.from(image.data.buffer, image.data.byteOffset, image.data.byteLength);
  return PNG.sync.write(png, { colorType: 2, inputColorType: 2, inputHasAlpha: false });
}

export function writePng(path: string, image: RgbImage): void {
  const bytes = encodePng(image);
  try {
    writeFileSync(path, bytes);
  } catch (error) {
    throw new UserError(`Cannot write image ${path}: ${(error as Error).message}.`);
  }
}
