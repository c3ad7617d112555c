// Re-save a checkpoint directory with float weights cast to another dtype and split into shards of bounded size,
// in the Hugging Face layout (model-0000i-of-0000n.safetensors + model.safetensors.index.json). Tensors are read
// and written one shard at a time, so converting a 7B checkpoint needs about one shard of memory.
import fs from 'node:fs';
import nodePath from 'node:path';
import { UserError } from '../errors.js';
import { f32ToBf16, f32ToF16 } from '../tensor/dtype.js';
import { Tensor } from '../tensor/tensor.js';
import { Checkpoint, INDEX_FILE_NAME, SINGLE_FILE_NAME } from './checkpoint.js';
import { OutputDir, checkOutputDir } from './output-path.js';
import { writeSafetensors } from './safetensors.js';

export type FloatDType = 'f32' | 'bf16' | 'f16';

/** Cast a float tensor (f32/bf16/f16) to `dtype`, round-to-nearest-even; other dtypes pass through unchanged. */
export function castFloat(t: Tensor, dtype: FloatDType): Tensor {
  if (t.dtype === dtype || !['f32', 'bf16', 'f16'].includes(t.dtype)) return t;
  const values = t.toF32();
  if (dtype === 'f32') return Tensor.f32(t.shape, values);
  const bits = new Uint16Array(values.length);
  const encode = dtype === 'bf16' ? f32ToBf16 : f32ToF16;
  for (let i = 0; i < values.length; i++) bits[i] = encode(values[i]);
  return new Tensor(dtype, t.shape, bits);
}

export interface ConvertOptions {
  dtype: FloatDType;
  /** largest shard in bytes; one shard holds at least one tensor */
  maxShardBytes: number;
  onProgress?: (done: number, total: number) => void;
}

/** Files copied next to the weights when present (configs, tokenizer, statistics). */
export const SIDE_FILES = ['config.json', 'preprocessor_config.json', 'tokenizer.json', 'tokenizer.model', 'tokenizer_config.json', 'special_tokens_map.json', 'dataset_statistics.json', 'generation_config.json'];

export function convertCheckpoint(fromDir: string, toDir: string, options: ConvertOptions): { shards: number; bytes: number } {
  if (nodePath.resolve(fromDir) === nodePath.resolve(toDir)) throw new UserError('--out must differ from --model');
  checkOutputDir(toDir);
  refuseEarlierConversion(toDir);
  const checkpoint = Checkpoint.open(fromDir);
  let out: OutputDir | undefined;
  try {
    out = new OutputDir(toDir);
    const output = out;
    const names = checkpoint.keys();
    const bytesOf = (name: string) => {
      const info = checkpoint.info(name);
      const scale = ['f32', 'bf16', 'f16'].includes(info.dtype) ? (options.dtype === 'f32' ? 4 : 2) / (info.dtype === 'f32' ? 4 : 2) : 1;
      return info.byteLength * scale;
    };
    const shards: string[][] = [[]];
    let size = 0;
    for (const name of names) {
      const bytes = bytesOf(name);
      if (shards[shards.length - 1].length > 0 && size + bytes > options.maxShardBytes) {
        shards.push([]);
        size = 0;
      }
      shards[shards.length - 1].push(name);
      size += bytes;
    }
    const weightMap: Record<string, string> = {};
    let total = 0;
    let done = 0;
    shards.forEach((shard, i) => {
      const file = shards.length === 1 ? SINGLE_FILE_NAME : `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`;
      const tensors: Record<string, Tensor> = {};
      for (const name of shard) {
        tensors[name] = castFloat(checkpoint.read(name), options.dtype);
        weightMap[name] = file;
        total += tensors[name].data.byteLength;
        options.onProgress?.(++done, names.length);
      }
      writeSafetensors(output.file(file), tensors, { format: 'pt' });
    });
    if (shards.length > 1) {
      fs.writeFileSync(output.file(INDEX_FILE_NAME), JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2));
    }
    const sourceDir = fs.statSync(fromDir).isDirectory() ? fromDir : nodePath.dirname(fromDir);
    for (const side of SIDE_FILES) {
      const src = nodePath.join(sourceDir, side);
      if (fs.existsSync(src)) copySideFile(src, output.file(side));
    }
    return { shards: shards.length, bytes: total };
  } catch (error) {
    out?.discard();
    throw error;
  } finally {
    checkpoint.close();
  }
}

const SHARD_NAME = /^model-\d{5}-of-\d{5}\.safetensors$/;

/** An output folder holding weights of an earlier conversion is refused (old shards would sit beside new ones). */
function refuseEarlierConversion(dir: string): void {
  if (!fs.existsSync(dir)) return;
  const weights = fs.readdirSync(dir).filter((name) => name === SINGLE_FILE_NAME || name === INDEX_FILE_NAME || SHARD_NAME.test(name));
  if (weights.length > 0) {
    const shown = weights.length > 3 ? `${weights.slice(0, 3).join(', ')} and ${weights.length - 3} more` : weights.join(', ');
    throw new UserError(`--out ${dir} already holds a checkpoint from an earlier conversion (${shown}); remove those files or choose a new folder (nothing was written).`);
  }
}

function copySideFile(from: string, to: string): void {
  try {
    fs.copyFileSync(from, to);
  } catch (error) {
    throw new UserError(`cannot copy ${from} to ${to} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}).`);
  }
}
