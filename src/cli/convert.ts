import { UserError } from '../errors.js';
import { convertCheckpoint, type FloatDType } from '../io/convert.js';
import { parseOptions } from './args.js';
import { progressBar } from './progress.js';

const HELP = `usage: sqap-vla convert --model DIR --out DIR [--dtype bf16|f16|f32] [--max-shard-size 5GB] [--json]

Re-saves a checkpoint with its float weights cast to --dtype (default bf16, round-to-nearest-even) and split into
Hugging Face style shards (model-0000i-of-0000n.safetensors + model.safetensors.index.json). Configs and tokenizer
files are copied alongside.

  --out DIR              a new folder, or one without weights: a folder that already holds model.safetensors,
                         an index or shards of an earlier conversion is refused (remove them first). A failed
                         conversion removes what it wrote.
  --max-shard-size SIZE  largest shard (decimal units: 5GB, 200MB, 64KB, or bytes); default 5GB`;

export async function runConvertCommand(argv: string[]): Promise<number> {
  const values = parseOptions(
    argv,
    {
      model: { type: 'string' },
      out: { type: 'string' },
      dtype: { type: 'string', default: 'bf16' },
      'max-shard-size': { type: 'string', default: '5GB' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    'convert',
  );
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (!values.model || !values.out) throw new UserError('convert needs --model DIR and --out DIR');
  const dtype = values.dtype as FloatDType;
  if (!['bf16', 'f16', 'f32'].includes(dtype)) throw new UserError(`unknown --dtype '${values.dtype}' (choose bf16, f16 or f32)`);
  const maxShardBytes = parseSize(values['max-shard-size']!);
  let bar: ReturnType<typeof progressBar> | undefined;
  const result = convertCheckpoint(values.model, values.out, {
    dtype,
    maxShardBytes,
    onProgress: (done, total) => (bar ??= progressBar('convert', total, 'tensors')).update(done),
  });
  bar?.stop();
  if (values.json) console.log(JSON.stringify({ out: values.out, dtype, ...result }));
  else console.log(`wrote ${values.out}: ${result.shards} shard(s), ${(result.bytes / 2 ** 20).toFixed(2)} MiB of ${dtype} weights`);
  return 0;
}

/** "5GB", "200MB", "64KB", "1024" (bytes) -> bytes (decimal units, as transformers' max_shard_size) */
export function parseSize(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*(B|KB|MB|GB)?$/i.exec(text.trim());
  if (!match) throw new UserError(`cannot read size '${text}' (examples: 5GB, 200MB, 64KB)`);
  const unit = { B: 1, KB: 1e3, MB: 1e6, GB: 1e9 }[(match[2] ?? 'B').toUpperCase() as 'B'];
  return Math.max(1, Math.floor(Number(match[1]) * unit));
}
