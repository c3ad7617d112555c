import fs from 'node:fs';
import nodePath from 'node:path';
import { UserError } from '../errors.js';
import { readImageFile, writePng } from '../io/image.js';
import { oneLine, readJsonFile } from '../io/json.js';
import { checkOutputFile } from '../io/output-path.js';
import { instructionInputIds } from '../models/prompt.js';
import { loadPolicy } from '../policy.js';
import { readCameraFile, type RobotContext } from '../prune/index.js';
import { getBackend, type BackendName } from '../tensor/backends/index.js';
import { parseVariant } from '../variant.js';
import { parseOptions } from './args.js';
import { calibrationIfNeeded } from './calibration.js';
import { progressBar } from './progress.js';

/** Ids in the Llama-2 vocabulary (the built-in tokenizer's); a smaller model needs its own tokenizer.json. */
const LLAMA2_VOCAB_SIZE = 32000;

const HELP = `usage: sqap-vla act --model DIR --image FILE (--instruction TEXT | --input-ids 1,2,3)
                    [--variant V] [--prune-layer K] [--eef-pixel U,V | --eef X,Y,Z --camera FILE]
                    [--save-mask FILE.png] [--calib DIR] [--unnorm-key KEY] [--backend auto|ref|native] [--json]

Runs an OpenVLA-style checkpoint (Hugging Face layout) on one image and prints the 7-D action.
  --model DIR         checkpoint directory: config.json, preprocessor_config.json, model.safetensors(.index.json)
  --image FILE        PNG or JPEG, 1x1 to 16384x16384 pixels (64 MP at most)
  --instruction TEXT  task instruction; the prompt is "In: What action should the robot take to <text>?\\nOut:"
                      tokenized with the checkpoint's tokenizer.json (or the built-in Llama-2 tokenizer)
  --input-ids IDS     prompt token ids used verbatim instead (BOS first; must end with the space token); each id
                      below the model's vocabulary size, at most llm_max_length ids, and prompt + image patches +
                      7 action tokens within max_position_embeddings
                      (--instruction needs the checkpoint's tokenizer.json or a Llama-2 vocabulary)
  --unnorm-key KEY    dataset statistics for un-normalization (needed when the checkpoint has several)
  --backend NAME      auto (native if built, else ref), ref, native; default auto
  --json              print one JSON object as the last line
Variants, quantization (docs/quantization.md) and token pruning (docs/pruning.md):
  --variant V         e.g. base (default), w4a4+had, w8a8+had+gptq, sqap@0.5, w4a4+had+sqap@0.5; a float checkpoint
                      is quantized at load, a quantized one (sqap-vla quantize) runs as stored; pruning KEEP is the
                      fraction of the visual tokens kept, in (0, 1] (fastv, query, random, grid also)
  --calib DIR         GPTQ calibration inputs for a gptq variant (default: rendered testbed frames)
  --prune-layer K     layers 0..K-1 see every token, layers K.. only the kept ones; 1..layers-1, default 2
  --sqap-share F      share of the sqap budget chosen by query attention, in [0, 1]; default 0.5
  --sqap-radius R     sqap protects every patch within R patches of the end effector; default 2
  --prune-seed S      seed of the random method; default 0
  --eef-pixel U,V     the end effector's pixel in --image (u right, v down)
  --eef X,Y,Z         the end effector's world position (metres), projected with --camera
                      (write --eef=X,Y,Z when X is negative, as for any value starting with '-')
  --camera FILE       camera JSON as the testbed writes it (width, height, intrinsics 3x3, worldToCamera 4x4),
                      or a recorded episode JSON holding one under "camera"
  --save-mask FILE    write --image with dropped patches darkened and the protected ring outlined (PNG)

The checkpoint is checked before anything runs: every tensor's shape and dtype against config.json and
preprocessor_config.json, and config fields (head counts, rope_theta, n_action_bins, pad_to_multiple_of,
norm_stats) for type and range; a mistake is one line naming the file, the field or tensor, expected and found.`;

export async function runActCommand(argv: string[]): Promise<number> {
  const values = parseOptions(
    argv,
    {
      model: { type: 'string' },
      image: { type: 'string' },
      instruction: { type: 'string' },
      'input-ids': { type: 'string' },
      'unnorm-key': { type: 'string' },
      backend: { type: 'string', default: 'auto' },
      variant: { type: 'string', default: 'base' },
      'prune-layer': { type: 'string' },
      'sqap-share': { type: 'string' },
      'sqap-radius': { type: 'string' },
      'prune-seed': { type: 'string' },
      'eef-pixel': { type: 'string' },
      eef: { type: 'string' },
      camera: { type: 'string' },
      'save-mask': { type: 'string' },
      calib: { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    'act',
  );
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (!values.model) throw new UserError('act needs --model DIR (try --model models/tiny-openvla)');
  if (!values.image) throw new UserError('act needs --image FILE (PNG or JPEG)');
  if ((values.instruction === undefined) === (values['input-ids'] === undefined)) {
    throw new UserError('act needs exactly one of --instruction TEXT or --input-ids 1,2,3');
  }
  const variant = parseVariant(values.variant!);
  const pruneFlags = ['prune-layer', 'sqap-share', 'sqap-radius', 'prune-seed', 'eef-pixel', 'eef', 'camera', 'save-mask'] as const;
  const stray = pruneFlags.find((flag) => values[flag] !== undefined);
  if (!variant.prune && stray) throw new UserError(`--${stray} needs a pruning variant (e.g. --variant sqap@0.5)`);
  const robot = robotContext(values);
  if (values['save-mask'] !== undefined) checkOutputFile(values['save-mask'], '--save-mask');
  const backend = getBackend(parseBackendName(values.backend!));
  // Prompt and image are checked before the model loads, so a mistake in them costs no load time.
  const limits = readPromptLimits(values.model);
  const inputIds = values['input-ids'] !== undefined ? parseIds(values['input-ids']) : await instructionIds(values.model, values.instruction!, limits.vocabSize);
  if (limits.maxPromptTokens !== undefined && inputIds.length > limits.maxPromptTokens) {
    throw new UserError(`the prompt has ${inputIds.length} tokens, more than this model's llm_max_length of ${limits.maxPromptTokens}`);
  }
  const image = readImageFile(values.image);
  const loadStart = performance.now();
  let bar: ReturnType<typeof progressBar> | undefined;
  const calibration = await calibrationIfNeeded(values.model, [variant], values.calib);
  const policy = loadPolicy(values.model, variant, {
    backend,
    calibration,
    onProgress: (done, total) => (bar ??= progressBar('loading', total, 'tensors')).update(done),
    prune: {
      layer: optionalNumber(values['prune-layer'], '--prune-layer', true),
      queryShare: optionalNumber(values['sqap-share'], '--sqap-share'),
      ringRadius: optionalNumber(values['sqap-radius'], '--sqap-radius'),
      seed: optionalNumber(values['prune-seed'], '--prune-seed', true),
    },
  });
  bar?.stop();
  const model = policy.model;
  const loadMs = performance.now() - loadStart;
  const result = policy.predict({ image, inputIds, unnormKey: values['unnorm-key'], robot });
  if (values['save-mask'] !== undefined) writePng(values['save-mask'], result.pruningMask!(image));
  if (values.json) {
    console.log(
      JSON.stringify({
        action_token_ids: result.actionTokenIds,
        normalized_action: result.normalizedAction,
        action: result.action,
        unnorm_key: result.unnormKey,
        input_ids: inputIds,
        backend: backend.name,
        variant: policy.variant.name,
        ...(result.pruning ? { pruning: result.pruning } : {}),
        timings_ms: { load: round(loadMs), ...mapValues(result.timingsMs, round) },
      }),
    );
  } else {
    console.log(`action (${result.unnormKey}): ${result.action.map((v) => v.toFixed(4)).join(' ')}`);
    console.log(`action tokens: ${result.actionTokenIds.join(' ')}`);
    if (result.pruning) {
      const p = result.pruning;
      const eef = p.eef_patch === null ? 'no end effector in view' : `end effector in patch ${p.eef_patch}`;
      console.log(`pruning ${p.method}@${p.keep} at layer ${p.layer}: kept ${p.kept_indices.length}/${p.visual_tokens} visual tokens; ${eef}${p.note ? ` (${p.note})` : ''}`);
    }
    const t = result.timingsMs;
    console.log(`backend ${backend.name}, variant ${policy.variant.name}; vision ${t.vision.toFixed(1)} ms, prefill ${t.prefill.toFixed(1)} ms, decode ${t.decode.toFixed(1)} ms, total ${t.total.toFixed(1)} ms (load ${loadMs.toFixed(0)} ms)`);
  }
  return 0;
}

export function parseBackendName(name: string): BackendName {
  if (name === 'auto' || name === 'ref' || name === 'native') return name;
  throw new UserError(`unknown --backend '${name}' (choose auto, ref or native)`);
}

/** --eef-pixel U,V or --eef X,Y,Z with --camera FILE -> the robot context, or undefined */
function robotContext(values: { 'eef-pixel'?: string; eef?: string; camera?: string }): RobotContext | undefined {
  if (values['eef-pixel'] !== undefined && (values.eef !== undefined || values.camera !== undefined)) {
    throw new UserError('give either --eef-pixel U,V or --eef X,Y,Z with --camera FILE, not both');
  }
  if (values['eef-pixel'] !== undefined) return { eefPixel: numberList(values['eef-pixel'], 2, '--eef-pixel U,V') as [number, number] };
  if ((values.eef === undefined) !== (values.camera === undefined)) throw new UserError('--eef X,Y,Z and --camera FILE go together');
  if (values.eef === undefined) return undefined;
  return { eef: numberList(values.eef, 3, '--eef X,Y,Z') as [number, number, number], camera: readCameraFile(values.camera!) };
}

function numberList(text: string, count: number, usage: string): number[] {
  const parts = text.split(',').map((s) => s.trim());
  const values = parts.map(Number);
  if (parts.length !== count || parts.some((s) => s === '') || values.some((v) => !Number.isFinite(v))) {
    throw new UserError(`${usage} needs ${count} comma-separated numbers, got '${text}'`);
  }
  return values;
}

function optionalNumber(text: string | undefined, flag: string, integer = false): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value) || (integer && !Number.isInteger(value))) {
    throw new UserError(`${flag} must be ${integer ? 'an integer' : 'a number'}, got '${text}'`);
  }
  return value;
}

/** Most ids --input-ids takes before the model's own limit is known (the model's limit is checked after). */
const MAX_INPUT_IDS = 1 << 20;

export function parseIds(text: string): number[] {
  const ids = text.split(',').map((s) => s.trim());
  if (ids.length > MAX_INPUT_IDS) throw new UserError(`--input-ids has ${ids.length} ids, more than any model's context`);
  const bad = ids.find((s) => !/^\d{1,9}$/.test(s));
  if (bad !== undefined) {
    throw new UserError(`--input-ids must be comma-separated non-negative integers, got '${oneLine(bad, 40)}' in '${oneLine(text, 60)}'`);
  }
  return ids.map(Number);
}

/** What act checks before loading the model: vocabulary size and prompt limits from config.json. */
function readPromptLimits(modelDir: string): { vocabSize?: number; maxPromptTokens?: number } {
  const configPath = nodePath.join(modelDir, 'config.json');
  if (!fs.existsSync(modelDir) || !fs.statSync(modelDir).isDirectory()) throw new UserError(`model directory not found: ${modelDir}`);
  const config = readJsonFile(configPath, 'model config') as { text_config?: { vocab_size?: unknown }; llm_max_length?: unknown } | null;
  const vocab = config?.text_config?.vocab_size;
  const maxLength = config?.llm_max_length;
  return {
    ...(typeof vocab === 'number' ? { vocabSize: vocab } : {}),
    ...(typeof maxLength === 'number' && Number.isInteger(maxLength) && maxLength > 0 ? { maxPromptTokens: maxLength } : {}),
  };
}

async function instructionIds(modelDir: string, instruction: string, vocabSize: number | undefined): Promise<number[]> {
  if (!instruction.trim()) throw new UserError('--instruction is empty');
  const hasTokenizer = fs.existsSync(nodePath.join(modelDir, 'tokenizer.json'));
  if (!hasTokenizer && vocabSize !== undefined && vocabSize < LLAMA2_VOCAB_SIZE) {
    throw new UserError(
      `${modelDir} has no tokenizer.json and its vocabulary (${vocabSize} ids) is not Llama-2's (${LLAMA2_VOCAB_SIZE}), so --instruction cannot be tokenized; give the prompt as --input-ids 1,2,3 instead`,
    );
  }
  const { loadTokenizer } = await import('../models/tokenizer.js');
  const tokenizer = loadTokenizer(modelDir);
  const ids = instructionInputIds(tokenizer, instruction);
  const outside = vocabSize !== undefined ? ids.find((id) => id >= vocabSize) : undefined;
  if (outside !== undefined) {
    throw new UserError(`the tokenizer of ${modelDir} gives token id ${outside}, outside the model's vocabulary of ${vocabSize}; give the prompt as --input-ids instead`);
  }
  return ids;
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}

function mapValues<T extends Record<string, number>>(o: T, f: (v: number) => number): T {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, f(v)])) as T;
}
