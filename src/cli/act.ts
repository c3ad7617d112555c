import { parseArgs } from 'node:util';
import { UserError } from '../errors.js';
import { readImageFile } from '../io/image.js';
import { instructionInputIds } from '../models/prompt.js';
import { loadPolicy } from '../policy.js';
import { parseVariant } from '../variant.js';
import { calibrationIfNeeded } from './calibration.js';
import { getBackend, type BackendName } from '../tensor/backends/index.js';
import { progressBar } from './progress.js';

const HELP = `usage: sqap-vla act --model DIR --image FILE (--instruction TEXT | --input-ids 1,2,3)
                    [--variant V] [--calib DIR] [--unnorm-key KEY] [--backend auto|ref|native] [--json]

Runs an OpenVLA-style checkpoint (Hugging Face layout) on one image and prints the 7-D action.
  --model DIR         checkpoint directory: config.json, preprocessor_config.json, model.safetensors(.index.json)
  --image FILE        PNG or JPEG
  --instruction TEXT  task instruction; the prompt is "In: What action should the robot take to <text>?\\nOut:"
                      tokenized with the checkpoint's tokenizer.json (or the built-in Llama-2 tokenizer)
  --input-ids IDS     prompt token ids used verbatim instead (BOS first; must end with the space token)
  --variant V         configuration to run (default base): e.g. w4a4+had, w8a8+had+gptq (docs/quantization.md);
                      a float checkpoint is quantized at load, a quantized one runs as stored
  --calib DIR         GPTQ calibration inputs for a gptq variant (default: rendered testbed frames)
  --unnorm-key KEY    dataset statistics for un-normalization (needed when the checkpoint has several)
  --backend NAME      auto (native if built, else ref), ref, native; default auto
  --json              print one JSON object as the last line`;

export async function runActCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string' },
      image: { type: 'string' },
      instruction: { type: 'string' },
      'input-ids': { type: 'string' },
      'unnorm-key': { type: 'string' },
      variant: { type: 'string', default: 'base' },
      calib: { type: 'string' },
      backend: { type: 'string', default: 'auto' },
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
  const backend = getBackend(parseBackendName(values.backend!));
  const loadStart = performance.now();
  let bar: ReturnType<typeof progressBar> | undefined;
  const variant = parseVariant(values.variant!);
  const calibration = await calibrationIfNeeded(values.model, [variant], values.calib);
  const policy = loadPolicy(values.model, variant, { backend, calibration, onProgress: (done, total) => (bar ??= progressBar('loading', total, 'tensors')).update(done) });
  const model = policy.model;
  bar?.stop();
  const loadMs = performance.now() - loadStart;
  const image = readImageFile(values.image);
  const inputIds = values['input-ids'] !== undefined ? parseIds(values['input-ids']) : await instructionIds(values.model, values.instruction!);
  const vocab = model.llm.config.vocabSize;
  const outside = inputIds.find((id) => id >= vocab);
  if (outside !== undefined) {
    throw new UserError(`token id ${outside} is outside this model's vocabulary of ${vocab}; give --input-ids that fit it`);
  }
  const result = policy.predict({ image, inputIds, unnormKey: values['unnorm-key'] });
  if (values.json) {
    console.log(
      JSON.stringify({
        action_token_ids: result.actionTokenIds,
        normalized_action: result.normalizedAction,
        action: result.action,
        unnorm_key: result.unnormKey,
        input_ids: inputIds,
        backend: backend.name,
        variant: variant.name,
        timings_ms: { load: round(loadMs), ...mapValues(result.timingsMs, round) },
      }),
    );
  } else {
    console.log(`action (${result.unnormKey}): ${result.action.map((v) => v.toFixed(4)).join(' ')}`);
    console.log(`action tokens: ${result.actionTokenIds.join(' ')}`);
    console.log(`backend ${backend.name}; vision ${result.timingsMs.vision.toFixed(1)} ms, llm ${result.timingsMs.llm.toFixed(1)} ms, total ${result.timingsMs.total.toFixed(1)} ms (load ${loadMs.toFixed(0)} ms)`);
  }
  return 0;
}

export function parseBackendName(name: string): BackendName {
  if (name === 'auto' || name === 'ref' || name === 'native') return name;
  throw new UserError(`unknown --backend '${name}' (choose auto, ref or native)`);
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
