import { parseArgs } from 'node:util';
import { UserError } from '../errors.js';
import { readImageFile, writePng } from '../io/image.js';
import { instructionInputIds } from '../models/prompt.js';
import { loadPolicy } from '../policy.js';
import { readCameraFile, type RobotContext } from '../prune/index.js';
import { getBackend, type BackendName } from '../tensor/backends/index.js';
import { parseVariant } from '../variant.js';
import { calibrationIfNeeded } from './calibration.js';
import { progressBar } from './progress.js';

const HELP = `usage: sqap-vla act --model DIR --image FILE (--instruction TEXT | --input-ids 1,2,3)
                    [--variant V] [--prune-layer K] [--eef-pixel U,V | --eef X,Y,Z --camera FILE]
                    [--save-mask FILE.png] [--calib DIR] [--unnorm-key KEY] [--backend auto|ref|native] [--json]

Runs an OpenVLA-style checkpoint (Hugging Face layout) on one image and prints the 7-D action.
  --model DIR         checkpoint directory: config.json, preprocessor_config.json, model.safetensors(.index.json)
  --image FILE        PNG or JPEG
  --instruction TEXT  task instruction; the prompt is "In: What action should the robot take to <text>?\\nOut:"
                      tokenized with the checkpoint's tokenizer.json (or the built-in Llama-2 tokenizer)
  --input-ids IDS     prompt token ids used verbatim instead (BOS first; must end with the space token)
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
  --save-mask FILE    write --image with dropped patches darkened and the protected ring outlined (PNG)`;

export async function runActCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
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
    strict: true,
  });
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
  const backend = getBackend(parseBackendName(values.backend!));
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
  const image = readImageFile(values.image);
  const inputIds = values['input-ids'] !== undefined ? parseIds(values['input-ids']) : await instructionIds(values.model, values.instruction!);
  const vocab = model.llm.config.vocabSize;
  const outside = inputIds.find((id) => id >= vocab);
  if (outside !== undefined) {
    throw new UserError(`token id ${outside} is outside this model's vocabulary of ${vocab}; give --input-ids that fit it`);
  }
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

export function parseIds(text: string): number[] {
  const ids = text.split(',').map((s) => s.trim());
  if (ids.length === 0 || ids.some((s) => !/^\d+$/.test(s))) {
    throw new UserError(`--input-ids must be comma-separated non-negative integers, got '${text}'`);
  }
  return ids.map(Number);
}

async function instructionIds(modelDir: string, instruction: string): Promise<number[]> {
  if (!instruction.trim()) throw new UserError('--instruction is empty');
  const { loadTokenizer } = await import('../models/tokenizer.js');
  const tokenizer = loadTokenizer(modelDir);
  return instructionInputIds(tokenizer, instruction);
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}

function mapValues<T extends Record<string, number>>(o: T, f: (v: number) => number): T {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, f(v)])) as T;
}
