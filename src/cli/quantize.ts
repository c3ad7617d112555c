// `sqap-vla quantize`: a float checkpoint -> a quantized (and/or rotated) checkpoint on disk, loadable by every
// command (docs/quantization.md, "Quantized checkpoints").
import { parseArgs } from 'node:util';
import { UserError } from '../errors.js';
import { loadPolicy, storedQuantization } from '../policy.js';
import { specName } from '../quant/apply.js';
import { saveQuantizedCheckpoint } from '../quant/checkpoint.js';
import { getBackend } from '../tensor/backends/index.js';
import { parseVariant } from '../variant.js';
import { parseBackendName } from './act.js';
import { calibrationIfNeeded } from './calibration.js';
import { progressBar } from './progress.js';

const HELP = `usage: sqap-vla quantize --model DIR --out DIR --variant w4a4+had[+gptq] [--calib DIR] [--group-size N]
                         [--clip-ratio R] [--lm-head stored|w8] [--backend auto|ref|native] [--json]

Quantizes (and/or rotates) the language model of a float OpenVLA-style checkpoint and writes a checkpoint in the
Hugging Face layout with integer codes and scales per linear and a quantization_config in config.json. Vision,
projector and embeddings are copied as stored; lm_head too unless --lm-head w8.
  --variant V       quantization parts: a scheme (w8a8, w4a8, w4a4, w4a16), had (Hadamard rotations), gptq
  --calib DIR       GPTQ calibration inputs: a 'sim record' dataset, or images with instructions (NAME.txt beside
                    each image, or instructions.json); default: 16 rendered testbed frames with their instructions
  --group-size N    input channels per weight scale (must divide every linear's input width); default 0 = per
                    output channel
  --clip-ratio R    activation clip ratio in (0, 1]; default 1
  --lm-head H       stored (default): lm_head copied as stored; w8: int8 codes per output channel (RTN, f32
                    activations), half a bf16 lm_head's bytes (OpenVLA-7B: 262 MB -> 131 MB, read every token)
  --json            print one JSON object as the last line`;

export async function runQuantizeCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string' },
      out: { type: 'string' },
      variant: { type: 'string' },
      calib: { type: 'string' },
      'group-size': { type: 'string', default: '0' },
      'clip-ratio': { type: 'string', default: '1' },
      'lm-head': { type: 'string', default: 'stored' },
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
  if (!values.model || !values.out || !values.variant) throw new UserError('quantize needs --model DIR, --out DIR and --variant (e.g. w4a4+had)');
  const variant = parseVariant(values.variant);
  if (variant.prune) throw new UserError(`variant '${variant.name}': pruning is chosen at run time, not stored; quantize with '${variant.name.replace(/\+?[a-z]+@[0-9.]+/, '') || 'had'}'`);
  if (!variant.quant && !variant.had) throw new UserError(`variant '${variant.name}' changes nothing to store (give a scheme such as w4a4, and/or had)`);
  if (storedQuantization(values.model)) throw new UserError(`${values.model} is already quantized; quantize its float checkpoint instead`);
  const groupSize = parseNumber(values['group-size']!, '--group-size');
  const clipRatio = parseNumber(values['clip-ratio']!, '--clip-ratio');
  if (values['lm-head'] !== 'stored' && values['lm-head'] !== 'w8') throw new UserError(`--lm-head must be 'stored' or 'w8', got '${values['lm-head']}'`);
  const lmHeadBits = values['lm-head'] === 'w8' ? (8 as const) : undefined;
  const backend = getBackend(parseBackendName(values.backend!));
  const start = performance.now();
  const calibration = await calibrationIfNeeded(values.model, [variant], values.calib);
  let loadBar: ReturnType<typeof progressBar> | undefined;
  const policy = loadPolicy(values.model, variant, {
    backend,
    calibration,
    groupSize,
    clipRatio,
    lmHeadBits,
    onProgress: (done, total) => (loadBar ??= progressBar('loading + quantizing', total, 'tensors')).update(done),
  });
  loadBar?.stop();
  let writeBar: ReturnType<typeof progressBar> | undefined;
  const spec = policy.quantization!;
  const result = saveQuantizedCheckpoint(policy.model, spec, values.out, {
    onProgress: (done, total) => (writeBar ??= progressBar('writing', total, 'tensors')).update(done),
  });
  writeBar?.stop();
  const seconds = (performance.now() - start) / 1000;
  if (values.json) {
    console.log(JSON.stringify({ out: values.out, variant: specName(spec), calibration_samples: calibration?.length ?? 0, group_size: spec.groupSize, clip_ratio: spec.clipRatio, lm_head: spec.lmHeadBits ? 'w8' : 'stored', ...result, seconds: Math.round(seconds * 100) / 100 }));
  } else {
    console.log(`wrote ${values.out}: ${specName(spec)}${spec.lmHeadBits ? ' with lm_head in int8' : ''}, ${result.shards} shard(s), ${(result.bytes / 2 ** 20).toFixed(2)} MiB (${seconds.toFixed(1)} s${calibration ? `, ${calibration.length} calibration samples` : ''})`);
  }
  return 0;
}

function parseNumber(text: string, flag: string): number {
  const value = Number(text);
  if (text.trim() === '' || !Number.isFinite(value)) throw new UserError(`${flag} must be a number, got '${text}'`);
  return value;
}
