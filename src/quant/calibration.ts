// Calibration inputs for GPTQ: (image, instruction) pairs turned into OpenVLA prompt embeddings. Sources:
//  - a `sim record` dataset directory (meta.json + episode_*.json + raw frames; docs/demonstrations.md): frames
//    spread evenly over its episodes, with each episode's instruction (read from the files here: quant does not
//    import the simulator);
//  - a folder of images (PNG/JPEG), each with its instruction in a sidecar text file of the same name
//    (`cube.png` + `cube.txt`) or in `instructions.json` ({"cube.png": "pick up the cube", ...});
//  - the default, rendered testbed frames with their task instructions, which the CLI layer supplies.
import fs from 'node:fs';
import nodePath from 'node:path';
import { UserError } from '../errors.js';
import { readImageFile, type RgbImage } from '../io/image.js';
import type { OpenVla } from '../models/openvla.js';
import { instructionInputIds } from '../models/prompt.js';
import { loadTokenizer } from '../models/tokenizer.js';
import type { Tensor } from '../tensor/tensor.js';

export interface CalibrationSample {
  image: RgbImage;
  instruction: string;
}

/** Default number of calibration samples. */
export const DEFAULT_CALIBRATION_SAMPLES = 16;

/** Samples from a directory: a `sim record` dataset (has meta.json) or a folder of images with instructions. */
export function readCalibrationDir(dir: string, maxSamples = DEFAULT_CALIBRATION_SAMPLES): CalibrationSample[] {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new UserError(`calibration directory not found: ${dir}`);
  const samples = fs.existsSync(nodePath.join(dir, 'meta.json')) ? readRecording(dir, maxSamples) : readImageFolder(dir, maxSamples);
  if (samples.length === 0) throw new UserError(`${dir} holds no calibration samples (expected a sim record dataset or images with instructions)`);
  return samples;
}

interface RecordingMeta {
  episodes?: { file: string }[];
}

interface RecordedEpisode {
  instruction: string;
  frames: { file: string; shape: [number, number, number, number]; offsets: number[] };
}

function readRecording(dir: string, maxSamples: number): CalibrationSample[] {
  const meta = readJson(nodePath.join(dir, 'meta.json')) as RecordingMeta;
  const episodes = meta.episodes ?? [];
  if (!Array.isArray(episodes) || episodes.length === 0) throw new UserError(`${dir}/meta.json lists no episodes`);
  const perEpisode = Math.max(1, Math.ceil(maxSamples / episodes.length));
  const samples: CalibrationSample[] = [];
  for (const entry of episodes) {
    if (samples.length >= maxSamples) break;
    const episode = readJson(nodePath.join(dir, entry.file)) as RecordedEpisode;
    const [frames, height, width, channels] = episode.frames?.shape ?? [];
    if (typeof episode.instruction !== 'string' || channels !== 3 || !frames) throw new UserError(`${dir}/${entry.file}: not a recorded episode (instruction and frames [T,H,W,3] expected)`);
    const bytes = fs.readFileSync(nodePath.join(dir, episode.frames.file));
    const frameBytes = height * width * 3;
    for (let j = 0; j < Math.min(perEpisode, frames) && samples.length < maxSamples; j++) {
      const t = Math.floor((j * frames) / Math.min(perEpisode, frames));
      const offset = episode.frames.offsets?.[t] ?? t * frameBytes;
      if (offset + frameBytes > bytes.length) throw new UserError(`${dir}/${episode.frames.file} is shorter than its episode file says`);
      samples.push({ image: { width, height, data: new Uint8Array(bytes.subarray(offset, offset + frameBytes)) }, instruction: episode.instruction });
    }
  }
  return samples;
}

function readImageFolder(dir: string, maxSamples: number): CalibrationSample[] {
  const listed = fs.existsSync(nodePath.join(dir, 'instructions.json')) ? (readJson(nodePath.join(dir, 'instructions.json')) as Record<string, unknown>) : {};
  const images = fs.readdirSync(dir).filter((f) => /\.(png|jpe?g)$/i.test(f)).sort();
  return images.slice(0, maxSamples).map((file) => {
    const sidecar = nodePath.join(dir, file.replace(/\.[^.]+$/, '.txt'));
    const instruction = typeof listed[file] === 'string' ? (listed[file] as string) : fs.existsSync(sidecar) ? fs.readFileSync(sidecar, 'utf8').trim() : undefined;
    if (!instruction) throw new UserError(`${dir}/${file} has no instruction (add ${nodePath.basename(sidecar)} or an entry in instructions.json)`);
    return { image: readImageFile(nodePath.join(dir, file)), instruction };
  });
}

function readJson(path: string): unknown {
  try {
    return JSON.parse(fs.readFileSync(path, 'utf8'));
  } catch (error) {
    throw new UserError(`cannot read ${path}: ${(error as Error).message.split('\n')[0]}`);
  }
}

/**
 * Prompt ids of an instruction for `model`: its tokenizer (or the built-in Llama-2 one). A checkpoint whose vocabulary
 * is smaller than the tokenizer's (the bundled tiny one has none of its own) gets the ids folded into its text
 * vocabulary below the action bins — meaningless as text, but the same kind of input for calibration and fidelity
 * measurements.
 */
export function promptIds(model: OpenVla, instruction: string): number[] {
  const ids = instructionInputIds(loadTokenizer(model.path), instruction);
  const vocab = model.llm.config.vocabSize;
  if (ids.every((id) => id < vocab)) return ids;
  const textIds = Math.max(4, model.config.realVocabSize - model.config.nActionBins);
  return ids.map((id, i) => (i === 0 ? id : 3 + (id % (textIds - 3))));
}

/** Samples -> OpenVLA prompt embeddings [T, D] (vision, projector and prompt as predictAction builds them). */
export function calibrationPrefixes(model: OpenVla, samples: CalibrationSample[]): Tensor<'f32'>[] {
  return samples.map((s) => model.prefixEmbeds(promptIds(model, s.instruction), model.projector.forward(model.visionPatches(model.preprocess(s.image)))));
}
