// `sqap-vla synth`: write a random-weight OpenVLA checkpoint with real shapes and key names (src/models/synthetic.ts),
// so speed and memory can be measured (bench) without downloading weights.
import fs from 'node:fs';
import { UserError } from '../errors.js';
import { parseOptions } from './args.js';
import type { FloatDType } from '../io/convert.js';
import { OPENVLA_7B_SIZES, TINY_SIZES, writeSyntheticOpenVla, type SyntheticSizes } from '../models/synthetic.js';
import { progressBar } from './progress.js';

const HELP = `usage: sqap-vla synth --preset openvla-7b|tiny|tiny-224 --out DIR [--llm-layers N] [--vision-layers N]
                      [--dtype bf16|f16|f32] [--seed S] [--json]

Writes a random-weight (seeded) OpenVLA checkpoint in the Hugging Face layout: config.json,
preprocessor_config.json, model.safetensors (sharded at 2 GB). Weights are random: actions are meaningless,
speed and memory are real.
  --preset NAME       openvla-7b: DINOv2-L/14-reg4 + SigLIP-SO400M/14 at 224 px (256 patches), Llama-2-7B
                      (32 layers, hidden 4096, vocab 32064); about 15 GB in bf16.
                      tiny: the shapes of the bundled test checkpoint (56 px, 16 patches, 3 LLM layers, hidden 64)
                      tiny-224: tiny widths at OpenVLA's 224 px (256 patches) with the Llama-2 vocabulary (32064), so
                      --instruction and the 16 x 16 patch grid work as on the real model
  --out DIR           new or empty directory
  --llm-layers N      decoder layers instead of the preset's (shortens a benchmark; pruning needs N >= 2)
  --vision-layers N   blocks of each vision tower instead of the preset's (the penultimate one feeds the projector)
  --dtype NAME        stored dtype; default bf16 for openvla-7b, f32 for tiny
  --seed S            weight seed; default 1
  --json              print one JSON object as the last line`;

const PRESETS: Record<string, { sizes: SyntheticSizes; dtype: FloatDType }> = {
  'openvla-7b': { sizes: OPENVLA_7B_SIZES, dtype: 'bf16' },
  tiny: { sizes: TINY_SIZES, dtype: 'f32' },
  // OpenVLA's input size and vocabulary on tiny widths: the real 16 x 16 patch grid and Llama-2 prompt ids in seconds
  'tiny-224': { sizes: { ...TINY_SIZES, imageSize: 224, vocabSize: 32064 }, dtype: 'f32' },
};

export async function runSynthCommand(argv: string[]): Promise<number> {
  const values = parseOptions(argv, {
      preset: { type: 'string' },
      out: { type: 'string' },
      'llm-layers': { type: 'string' },
      'vision-layers': { type: 'string' },
      dtype: { type: 'string' },
      seed: { type: 'string', default: '1' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    }, 'synth');
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const preset = PRESETS[values.preset ?? ''];
  if (!preset) throw new UserError(`synth needs --preset NAME (${Object.keys(PRESETS).join(', ')})${values.preset ? `, got '${values.preset}'` : ''}`);
  if (!values.out) throw new UserError('synth needs --out DIR');
  if (fs.existsSync(values.out) && (!fs.statSync(values.out).isDirectory() || fs.readdirSync(values.out).length > 0)) {
    throw new UserError(`--out ${values.out} exists and is not an empty directory`);
  }
  const dtype = (values.dtype ?? preset.dtype) as FloatDType;
  if (!['bf16', 'f16', 'f32'].includes(dtype)) throw new UserError(`unknown --dtype '${values.dtype}' (choose bf16, f16 or f32)`);
  const sizes: SyntheticSizes = { ...preset.sizes };
  if (values['llm-layers'] !== undefined) sizes.llmLayers = positiveInteger(values['llm-layers'], '--llm-layers');
  if (values['vision-layers'] !== undefined) {
    const depth = positiveInteger(values['vision-layers'], '--vision-layers');
    sizes.vitDepths = [depth, depth];
  }
  const seed = Number(values.seed);
  if (!Number.isInteger(seed)) throw new UserError(`--seed must be an integer, got '${values.seed}'`);
  const bar = progressBar('synth', 100, '%');
  writeSyntheticOpenVla(values.out, sizes, { dtype, seed, onProgress: (done, total) => bar.update(Math.floor((100 * done) / total)) });
  bar.stop();
  const bytes = fs.readdirSync(values.out).reduce((sum, f) => sum + fs.statSync(`${values.out}/${f}`).size, 0);
  const summary = { out: values.out, preset: values.preset, dtype, llm_layers: sizes.llmLayers, vision_layers: sizes.vitDepths, bytes };
  if (values.json) console.log(JSON.stringify(summary));
  else console.log(`wrote ${values.out}: ${values.preset}, ${sizes.llmLayers} LLM layers, vision ${sizes.vitDepths.join('+')} blocks, ${dtype}, ${(bytes / 2 ** 30).toFixed(2)} GiB`);
  return 0;
}

function positiveInteger(text: string, flag: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) throw new UserError(`${flag} must be a positive integer, got '${text}'`);
  return value;
}
