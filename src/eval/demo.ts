// `sqap-vla demo`: one episode of the checkpoint as stored (base) and one of the SQAP configuration (or the best
// accelerated variant this build has), side by side in an animated GIF with the kept-patch overlay and each
// step's measured policy time.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import gifenc from 'gifenc';
import { UserError } from '../errors.js';
import { writePng } from '../io/image.js';
import type { RgbImage } from '../sim/types.js';
import type { BackendName } from '../tensor/backends/index.js';
import { drawText, GLYPH_HEIGHT } from './font.js';
import { runLockstep, type CreateEnv, type LockstepEpisode } from './lockstep.js';
import { ModelPolicy } from './model-policy.js';
import { median } from './stats.js';

/** Best first: the paper's configuration, then what remains when parts of it are missing from this build. */
export const DEMO_VARIANT_PREFERENCE = ['w4a4+had+sqap@0.5', 'w4a4+sqap@0.5', 'w8a8+had+sqap@0.5', 'sqap@0.5', 'w4a4+had', 'w8a8+had', 'w4a4', 'w8a8'];

export interface DemoOptions {
  model: string;
  task: string;
  seed: number;
  out: string;
  backend: BackendName;
  /** variant to compare with base; default: the first of DEMO_VARIANT_PREFERENCE this build can load */
  variant?: string;
  maxSteps?: number;
  /** camera side in pixels (default the testbed's) */
  imageSize?: number;
  createEnv: CreateEnv;
}

export interface DemoPanel {
  variant: string;
  success: boolean;
  /** why the episode ended early (policy or env error), if it did */
  failureReason?: string;
  steps: number;
  stepMsMedian: number;
  stepMs: number[];
}

export interface DemoResult {
  gif: string;
  frame: string;
  json: string;
  panels: DemoPanel[];
  /** variants of the preference list this build could not load, with why */
  unavailable: { variant: string; reason: string }[];
}

const { GIFEncoder, applyPalette, quantize } = gifenc;
const BAND = 2 * GLYPH_HEIGHT * 2 + 10; // two lines of scale-2 text
const MAX_FRAMES = 160;

/** Loads the first loadable variant of the list; UserErrors (a part this build lacks) move on to the next. */
function loadBest(options: DemoOptions, unavailable: DemoResult['unavailable']): ModelPolicy | undefined {
  for (const variant of options.variant ? [options.variant] : DEMO_VARIANT_PREFERENCE) {
    try {
      return ModelPolicy.load({ model: options.model, variant, backend: options.backend });
    } catch (error) {
      if (!(error instanceof UserError) || options.variant) throw error;
      unavailable.push({ variant, reason: error.message });
    }
  }
  return undefined;
}

async function runOne(policy: ModelPolicy, options: DemoOptions): Promise<LockstepEpisode> {
  const [episode] = await runLockstep([{ task: options.task, seed: options.seed, captureFrames: true }], policy.batchPolicy(), options.createEnv, {
    ...(options.maxSteps ? { maxSteps: options.maxSteps } : {}),
    ...(options.imageSize ? { imageSize: options.imageSize } : {}),
  });
  return episode;
}

function panelFrame(episode: LockstepEpisode, variant: string, t: number, baseMs: number, size: { width: number; height: number }): RgbImage {
  const frames = episode.frames ?? [];
  const last = frames.length - 1;
  const index = Math.max(0, Math.min(t, last));
  const overlay = episode.masks?.[index];
  // an episode that failed before its first action has no frame: a black panel says so
  const raw = frames[index] ?? { ...size, data: new Uint8Array(size.width * size.height * 3) };
  const frame = overlay ? overlay(raw) : raw;
  const image: RgbImage = { width: frame.width, height: frame.height + BAND, data: new Uint8Array(frame.width * (frame.height + BAND) * 3) };
  image.data.set(frame.data);
  const ms = episode.stepTimings[index]?.total ?? Number.NaN;
  const ended = t >= last;
  const status = ended ? (episode.success ? 'SUCCESS' : episode.failureReason ? 'ERROR' : 'FAILED') : `STEP ${index}`;
  const stepMs = median(episode.stepTimings.map((s) => s.total));
  const speed = variant === 'base' || !Number.isFinite(stepMs) ? '' : ` ${(baseMs / stepMs).toFixed(1)}X`;
  drawText(image, variant, 4, frame.height + 4, [255, 255, 255], variant.length * 12 > frame.width - 8 ? 1 : 2);
  const line = Number.isFinite(ms) ? `${status} ${ms.toFixed(0)} MS${speed}` : status;
  drawText(image, line, 4, frame.height + 8 + 2 * GLYPH_HEIGHT, ended ? (episode.success ? [80, 230, 80] : [240, 90, 80]) : [255, 220, 0], 2);
  return image;
}

function sideBySide(panels: RgbImage[]): RgbImage {
  const gap = 4;
  const width = panels.reduce((sum, p) => sum + p.width, 0) + gap * (panels.length - 1);
  const height = Math.max(...panels.map((p) => p.height));
  const out: RgbImage = { width, height, data: new Uint8Array(width * height * 3) };
  let x0 = 0;
  for (const panel of panels) {
    for (let y = 0; y < panel.height; y++) out.data.set(panel.data.subarray(y * panel.width * 3, (y + 1) * panel.width * 3), (y * width + x0) * 3);
    x0 += panel.width + gap;
  }
  return out;
}

function rgba(image: RgbImage): Uint8Array {
  const out = new Uint8Array(image.width * image.height * 4);
  for (let i = 0, j = 0; i < image.data.length; i += 3, j += 4) {
    out[j] = image.data[i];
    out[j + 1] = image.data[i + 1];
    out[j + 2] = image.data[i + 2];
    out[j + 3] = 255;
  }
  return out;
}

export async function runDemo(options: DemoOptions): Promise<DemoResult> {
  const unavailable: DemoResult['unavailable'] = [];
  const episodes: { variant: string; episode: LockstepEpisode }[] = [];
  const base = ModelPolicy.load({ model: options.model, variant: 'base', backend: options.backend });
  episodes.push({ variant: 'base', episode: await runOne(base, options) });
  const best = loadBest(options, unavailable);
  if (best) episodes.push({ variant: best.variantName, episode: await runOne(best, options) });

  mkdirSync(options.out, { recursive: true });
  const baseMs = median(episodes[0].episode.stepTimings.map((s) => s.total));
  const length = Math.max(...episodes.map((e) => e.episode.frames?.length ?? 0)) + 1; // one more frame shows the outcome
  const size = episodes.flatMap((e) => e.episode.frames ?? [])[0] ?? { width: 224, height: 224 };
  const stride = Math.max(1, Math.ceil(length / MAX_FRAMES));
  const gif = GIFEncoder();
  let firstFrame: RgbImage | undefined;
  for (let t = 0; t < length; t += stride) {
    const frame = sideBySide(episodes.map(({ variant, episode }) => panelFrame(episode, variant, t, baseMs, size)));
    firstFrame ??= frame;
    const pixels = rgba(frame);
    const palette = quantize(pixels, 256);
    const last = t + stride >= length;
    gif.writeFrame(applyPalette(pixels, palette), frame.width, frame.height, { palette, delay: last ? 2000 : 50 * stride });
  }
  gif.finish();
  const gifPath = join(options.out, 'demo.gif');
  const framePath = join(options.out, 'demo-frame.png');
  const jsonPath = join(options.out, 'demo.json');
  writeFileSync(gifPath, gif.bytes());
  writePng(framePath, firstFrame!);
  const panels = episodes.map(({ variant, episode }) => ({
    variant,
    success: episode.success,
    ...(episode.failureReason !== undefined ? { failureReason: episode.failureReason } : {}),
    steps: episode.steps,
    stepMsMedian: median(episode.stepTimings.map((s) => s.total)),
    stepMs: episode.stepTimings.map((s) => Math.round(s.total * 100) / 100),
  }));
  writeFileSync(jsonPath, `${JSON.stringify({ model: options.model, task: options.task, seed: options.seed, panels, unavailable }, null, 1)}\n`);
  return { gif: gifPath, frame: framePath, json: jsonPath, panels, unavailable };
}
