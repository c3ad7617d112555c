import fs from 'node:fs';
import nodePath from 'node:path';
import { UserError } from '../errors.js';
import { readImageFile } from '../io/image.js';
import { oneLine, readJsonFile } from '../io/json.js';
import { OpenVla } from '../models/openvla.js';
import { openVlaPrompt, withTrailingSpaceToken } from '../models/prompt.js';
import { getBackend, type BackendName } from '../tensor/backends/index.js';
import { parseOptions } from './args.js';
import { progressBar } from './progress.js';

/** Ids in the Llama-2 vocabulary (the built-in tokenizer's); a smaller model needs its own tokenizer.json. */
const LLAMA2_VOCAB_SIZE = 32000;

const HELP = `usage: sqap-vla act --model DIR --image FILE (--instruction TEXT | --input-ids 1,2,3)
                    [--unnorm-key KEY] [--backend auto|ref|native] [--json]

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

The checkpoint is checked before anything runs: every tensor's shape and dtype against config.json and
preprocessor_config.json, and config fields (head counts, rope_theta, n_action_bins, pad_to_multiple_of,
norm_stats) for type and range; a mistake is one line naming the file, the field or tensor, expected and found.`

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
  const model = OpenVla.load(values.model, backend, { onProgress: (done, total) => (bar ??= progressBar('loading', total, 'tensors')).update(done) });
  bar?.stop();
  const loadMs = performance.now() - loadStart;
  const result = model.predictAction({ image, inputIds, unnormKey: values['unnorm-key'] });
  if (values.json) {
    console.log(
      JSON.stringify({
        action_token_ids: result.actionTokenIds,
        normalized_action: result.normalizedAction,
        action: result.action,
        unnorm_key: result.unnormKey,
        input_ids: inputIds,
        backend: backend.name,
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

/** Most ids --input-ids takes before the model's own limit is known (the model's limit is checked after). */
const MAX_INPUT_IDS = 1 << 20;

function parseIds(text: string): number[] {
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
  const ids = withTrailingSpaceToken(tokenizer.encode(openVlaPrompt(instruction), { addBos: true }));
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
