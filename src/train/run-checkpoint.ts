// A training run's directory: the model in the OpenVLA Hugging Face layout at the top (config.json with
// norm_stats, preprocessor_config.json, tokenizer.json, model.safetensors in bf16), loadable by act, sim run, eval
// and serve; what resuming needs under training/ (f32 master weights, AdamW moments, state.json); the loss log
// (loss.jsonl) and its plot (loss.png). state.json is written last, and every file names its step, so a run cut
// off mid-write is detected on resume instead of silently mixing steps.
import fs from 'node:fs';
import nodePath from 'node:path';
import { UserError } from '../errors.js';
import { castFloat } from '../io/convert.js';
import { Checkpoint } from '../io/checkpoint.js';
import { writeSafetensors } from '../io/safetensors.js';
import { Tensor } from '../tensor/tensor.js';
import type { AdamW } from './adamw.js';
import type { ParamStore } from './params.js';

export const TRAINING_DIR = 'training';
const MASTER_FILE = 'master.safetensors';
const OPTIMIZER_FILE = 'optimizer.safetensors';
const STATE_FILE = 'state.json';

/** The run's settings and progress; a resumed run reads them back. */
export interface RunState {
  step: number;
  /** everything that defines the run (preset, seed, batch, lr, schedule...), for an exact resume */
  options: Record<string, unknown>;
  samplesSeen: number;
  trainSeconds: number;
}

export interface RunFiles {
  configJson: Record<string, unknown>;
  preprocessorJson: Record<string, unknown>;
  tokenizerJson: Record<string, unknown>;
}

function writeJson(path: string, value: unknown): void {
  const tmp = `${path}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(value, null, 1)}\n`);
  fs.renameSync(tmp, path);
}

/** Write the model (bf16) and, unless `modelOnly`, the resume state. */
export function saveRun(dir: string, files: RunFiles, params: ParamStore, optimizer: AdamW | undefined, state: RunState): void {
  fs.mkdirSync(nodePath.join(dir, TRAINING_DIR), { recursive: true });
  const step = { step: String(state.step) };
  writeJson(nodePath.join(dir, 'config.json'), files.configJson);
  writeJson(nodePath.join(dir, 'preprocessor_config.json'), files.preprocessorJson);
  writeJson(nodePath.join(dir, 'tokenizer.json'), files.tokenizerJson);
  const bf16: Record<string, Tensor> = {};
  // training-only tensors (the auxiliary vision head, `aux_*`) live in the resume state, not in the model
  for (const [name, t] of params.tensors) if (!name.startsWith('aux_')) bf16[name] = castFloat(t, 'bf16');
  writeSafetensors(nodePath.join(dir, 'model.safetensors'), bf16, { format: 'pt', ...step });
  if (!optimizer) return;
  writeSafetensors(nodePath.join(dir, TRAINING_DIR, MASTER_FILE), Object.fromEntries(params.tensors), step);
  const moments: Record<string, Tensor> = {};
  for (const [name, m] of optimizer.state.m) {
    const shape = params.get(name).shape;
    moments[`m.${name}`] = Tensor.f32(shape, m);
    moments[`v.${name}`] = Tensor.f32(shape, optimizer.state.v.get(name)!);
  }
  writeSafetensors(nodePath.join(dir, TRAINING_DIR, OPTIMIZER_FILE), moments, { ...step, adam_step: String(optimizer.state.step) });
  writeJson(nodePath.join(dir, TRAINING_DIR, STATE_FILE), state);
}

export function hasResumeState(dir: string): boolean {
  return fs.existsSync(nodePath.join(dir, TRAINING_DIR, STATE_FILE));
}

export function readRunState(dir: string): RunState {
  const path = nodePath.join(dir, TRAINING_DIR, STATE_FILE);
  if (!fs.existsSync(path)) throw new UserError(`--resume: ${dir} has no training checkpoint (${nodePath.join(TRAINING_DIR, STATE_FILE)} is missing); start a new run without --resume`);
  return JSON.parse(fs.readFileSync(path, 'utf8')) as RunState;
}

/** Copy the saved master weights and AdamW moments into `params` / `optimizer` (checking they are from `step`). */
export function restoreRun(dir: string, params: ParamStore, optimizer: AdamW, step: number): void {
  const open = (file: string) => {
    const checkpoint = Checkpoint.open(nodePath.join(dir, TRAINING_DIR, file));
    return checkpoint;
  };
  const master = open(MASTER_FILE);
  const moments = open(OPTIMIZER_FILE);
  try {
    for (const [name, t] of params.tensors) t.data.set(master.read(name).toF32());
    optimizer.state.m.clear();
    optimizer.state.v.clear();
    for (const key of moments.keys()) {
      if (!key.startsWith('m.')) continue;
      const name = key.slice(2);
      optimizer.state.m.set(name, Float32Array.from(moments.read(key).toF32()));
      optimizer.state.v.set(name, Float32Array.from(moments.read(`v.${name}`).toF32()));
    }
  } finally {
    master.close();
    moments.close();
  }
  const stepOf = (file: string) => {
    const bytes = fs.readFileSync(nodePath.join(dir, TRAINING_DIR, file));
    const headerLength = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
    return JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLength))).__metadata__ as Record<string, string>;
  };
  const meta = [stepOf(MASTER_FILE), stepOf(OPTIMIZER_FILE)];
  if (meta.some((m) => Number(m.step) !== step)) {
    throw new UserError(`--resume: ${dir}/${TRAINING_DIR} mixes steps (state ${step}, weights ${meta[0].step}, optimizer ${meta[1].step}); the last save was interrupted`);
  }
  optimizer.state.step = Number(meta[1].adam_step);
}
