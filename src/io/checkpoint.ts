// A model checkpoint in the Hugging Face layout: a directory holding either `model.safetensors` or
// `model.safetensors.index.json` ({"weight_map": {tensor name: shard file name}}) plus its shards.
// Shards are opened lazily (header only) the first time one of their tensors is asked for, so listing the
// names of a 7B checkpoint touches only the index.

import fs from 'node:fs';
import nodePath from 'node:path';
import { UserError } from '../errors.js';
import type { DType } from '../tensor/dtype.js';
import type { Tensor } from '../tensor/tensor.js';
import { oneLine, readJsonFile } from './json.js';
import { quote, SafetensorsFile, type FileIO, type TensorInfo } from './safetensors.js';

export const SINGLE_FILE_NAME = 'model.safetensors';
export const INDEX_FILE_NAME = 'model.safetensors.index.json';

export class Checkpoint {
  /** The directory (or the single .safetensors file) this checkpoint was opened from. */
  readonly path: string;
  /** Tensor name -> shard path. */
  private readonly shardOf: ReadonlyMap<string, string>;
  /** Where the name -> shard map came from (the index file, or the single file), for messages. */
  private readonly source: string;
  private readonly openShards = new Map<string, SafetensorsFile>();
  private readonly io: FileIO | undefined;

  private constructor(path: string, source: string, shardOf: ReadonlyMap<string, string>, io: FileIO | undefined) {
    this.path = path;
    this.source = source;
    this.shardOf = shardOf;
    this.io = io;
  }

  /**
   * Open a checkpoint directory: `model.safetensors` if present (as transformers prefers it), else
   * `model.safetensors.index.json`. A path to a single `.safetensors` file is accepted too.
   * Only the index (or the single file's header) is read here.
   */
  static open(path: string, io?: FileIO): Checkpoint {
    let stat: fs.Stats;
    try {
      stat = fs.statSync(path);
    } catch {
      throw new UserError(`checkpoint not found: ${path} does not exist (expected a model directory with ${SINGLE_FILE_NAME} or ${INDEX_FILE_NAME}).`);
    }
    if (stat.isFile()) return Checkpoint.fromSingleFile(path, path, io);
    const single = nodePath.join(path, SINGLE_FILE_NAME);
    if (fs.existsSync(single)) return Checkpoint.fromSingleFile(path, single, io);
    const index = nodePath.join(path, INDEX_FILE_NAME);
    if (fs.existsSync(index)) return new Checkpoint(path, index, readIndex(index, path), io);
    const hint = fs.existsSync(nodePath.join(path, 'pytorch_model.bin')) ? ' (found pytorch_model.bin: convert it to safetensors first)' : '';
    throw new UserError(`no checkpoint in ${path}: expected ${SINGLE_FILE_NAME} or ${INDEX_FILE_NAME}${hint}.`);
  }

  private static fromSingleFile(path: string, file: string, io: FileIO | undefined): Checkpoint {
    const opened = SafetensorsFile.open(file, io);
    const checkpoint = new Checkpoint(path, file, new Map(opened.keys().map((name) => [name, file])), io);
    checkpoint.openShards.set(file, opened);
    return checkpoint;
  }

  /** Tensor names, sorted. */
  keys(): string[] {
    return [...this.shardOf.keys()].sort();
  }

  has(name: string): boolean {
    return this.shardOf.has(name);
  }

  /** Shard files in first-use order of the index (or the one file). */
  files(): string[] {
    return [...new Set(this.shardOf.values())];
  }

  info(name: string): TensorInfo {
    const file = this.shardOf.get(name);
    if (file === undefined) throw new UserError(`tensor ${quote(name)} not found in checkpoint ${this.path} (${this.shardOf.size} tensors).`);
    const shard = this.shard(file);
    if (!shard.has(name)) {
      throw new UserError(`${this.source} maps tensor ${quote(name)} to ${file}, but that shard has no such tensor.`);
    }
    return shard.info(name);
  }

  /** One tensor (SafetensorsFile.read: `map: false` copies instead of mapping). */
  read(name: string, options: { map?: boolean } = {}): Tensor {
    const info = this.info(name);
    return this.shard(info.file).read(name, options);
  }

  /** Bytes of tensor data over all tensors (opens every shard's header). */
  totalBytes(): number {
    return this.keys().reduce((sum, name) => sum + this.info(name).byteLength, 0);
  }

  /** Number of tensors stored in each dtype (opens every shard's header). */
  dtypeCounts(): Partial<Record<DType, number>> {
    const counts: Partial<Record<DType, number>> = {};
    for (const name of this.keys()) {
      const { dtype } = this.info(name);
      counts[dtype] = (counts[dtype] ?? 0) + 1;
    }
    return counts;
  }

  close(): void {
    for (const shard of this.openShards.values()) shard.close();
    this.openShards.clear();
  }

  private shard(file: string): SafetensorsFile {
    let shard = this.openShards.get(file);
    if (!shard) {
      shard = SafetensorsFile.open(file, this.io);
      this.openShards.set(file, shard);
    }
    return shard;
  }
}

/** Parse and check an index: every value a plain file name in `dir` that exists. Returns name -> shard path. */
function readIndex(indexPath: string, dir: string): Map<string, string> {
  const json = readJsonFile(indexPath, 'checkpoint index');
  const weightMap = isObject(json) ? json.weight_map : undefined;
  if (!isObject(weightMap)) {
    throw new UserError(`checkpoint index ${indexPath} has no "weight_map" object (expected {"weight_map": {tensor name: shard file}}).`);
  }
  const shardOf = new Map<string, string>();
  const checked = new Set<string>();
  for (const [name, file] of Object.entries(weightMap)) {
    if (typeof file !== 'string' || file === '' || file === '.' || file === '..' || /[\\/]/.test(file)) {
      throw new UserError(`checkpoint index ${indexPath} maps tensor ${quote(name)} to ${oneLine(JSON.stringify(file) ?? String(file), 80)}, expected a shard file name in the same directory.`);
    }
    const shardPath = nodePath.join(dir, file);
    if (!checked.has(shardPath)) {
      if (!fs.existsSync(shardPath)) {
        throw new UserError(`checkpoint index ${indexPath} names shard ${quote(file)} (for tensor ${quote(name)}), but ${shardPath} is missing.`);
      }
      checked.add(shardPath);
    }
    shardOf.set(name, shardPath);
  }
  return shardOf;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
