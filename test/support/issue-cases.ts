// The reproductions of issue #11, one or more per class: each is a command line (often `act` on a copy of
// tiny-openvla with one edit) and what must happen. Used by scripts/robustness-repro.ts (as CLI calls with a
// timeout and a memory cap) and by test/robustness/issue-classes.test.ts (in-process).
import fs from 'node:fs';
import nodePath from 'node:path';
import { castFloat } from '../../src/io/convert.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { overridesKey, randomF32, rawPng, TINY_IMAGE, TINY_INPUT_IDS, TINY_MODEL, writeEditedModel, type ModelEdit } from './broken-models.js';

export type IssueClass = 'shapes' | 'missing fields' | 'unbounded sizes' | 'silent garbage' | 'output paths' | 'arguments';

export interface IssueCase {
  klass: IssueClass;
  name: string;
  /** builds what the case needs under `dir` (a fresh folder) and returns the CLI arguments */
  setup(dir: string): string[];
  /** 'error': one clean `sqap-vla:` line and exit 2; 'ok': exit 0 */
  expect: 'error' | 'ok';
  /** the error message must match this */
  message?: RegExp;
  /** after the command: a problem left on disk (leftover files), or undefined */
  after?(dir: string): string | undefined;
}

const IDS = TINY_INPUT_IDS.join(',');

function act(edit: ModelEdit, extra: string[] = []): (dir: string) => string[] {
  return (dir) => ['act', '--model', writeEditedModel(nodePath.join(dir, 'M'), edit), '--image', TINY_IMAGE, '--input-ids', IDS, '--json', ...extra];
}

const bins = (n: unknown) => act({ config: (c) => void (c.n_action_bins = n) });
const padTo = (n: unknown) => act({ config: (c) => void (c.pad_to_multiple_of = n) });
const inputSize = (side: number) =>
  act({ preprocessor: (p) => void (p.input_sizes = [[3, side, side], [3, side, side]]) });

function emptyAfterFailure(path: string): (dir: string) => string | undefined {
  return (dir) => {
    const full = nodePath.join(dir, path);
    return fs.existsSync(full) ? `left ${path} behind` : undefined;
  };
}

export const ISSUE_CASES: IssueCase[] = [
  // --- shapes not checked against the config
  { klass: 'shapes', name: 'lm_head has more rows than embed_tokens', expect: 'error', message: /lm_head/, setup: act({ tensors: (t) => void (t['language_model.lm_head.weight'] = randomF32([640, 64])) }) },
  { klass: 'shapes', name: 'ViT mlp.fc1.weight of another shape', expect: 'error', message: /fc1/, setup: act({ tensors: (t) => void (t['vision_backbone.featurizer.blocks.1.mlp.fc1.weight'] = randomF32([256, 60])) }) },
  { klass: 'shapes', name: 'ViT mlp.fc1.weight of another dtype (i32)', expect: 'error', message: /fc1/, setup: act({ tensors: (t) => void (t['vision_backbone.featurizer.blocks.0.mlp.fc1.weight'] = new Tensor('i32', [256, 64], new Int32Array(256 * 64))) }) },
  { klass: 'shapes', name: 'projector fc2.weight with the wrong row count', expect: 'error', message: /fc2/, setup: act({ tensors: (t) => void (t['projector.fc2.weight'] = randomF32([60, 544])) }) },
  { klass: 'shapes', name: 'ViT width not divisible by the head count', expect: 'error', message: /head/, setup: act({ config: (c) => void (c[overridesKey(c)][0].num_heads = 5) }) },
  { klass: 'shapes', name: 'input_sizes do not match the ViT patch grid', expect: 'error', message: /input_sizes/, setup: inputSize(70) },
  { klass: 'shapes', name: 'negative head counts whose product is right', expect: 'error', message: /heads|head_dim/, setup: act({ config: (c) => Object.assign(c.text_config, { num_attention_heads: -4, num_key_value_heads: -4, head_dim: -16 }) }) },
  { klass: 'shapes', name: 'fractional head counts', expect: 'error', message: /heads|head_dim/, setup: act({ config: (c) => Object.assign(c.text_config, { num_attention_heads: 2.5, num_key_value_heads: 2.5, head_dim: 25.6 }) }) },
  { klass: 'shapes', name: 'rope_theta 0', expect: 'error', message: /rope_theta/, setup: act({ config: (c) => void (c.text_config.rope_parameters.rope_theta = 0) }) },
  { klass: 'shapes', name: 'rope_theta negative', expect: 'error', message: /rope_theta/, setup: act({ config: (c) => void (c.text_config.rope_parameters.rope_theta = -10000) }) },
  { klass: 'shapes', name: 'timm_model_ids not strings', expect: 'error', message: /timm_model_ids/, setup: act({ config: (c) => void (c.timm_model_ids = [1, 2]) }) },
  { klass: 'shapes', name: 'a bf16 projector weight (mixed float dtypes are fine)', expect: 'ok', setup: act({ tensors: (t) => void (t['projector.fc1.weight'] = castFloat(t['projector.fc1.weight'], 'bf16')) }) },

  // --- missing or null fields
  { klass: 'missing fields', name: 'norm_stats.<key>.action missing', expect: 'error', message: /norm_stats/, setup: act({ config: (c) => void delete c.norm_stats.tiny_dataset.action }) },
  { klass: 'missing fields', name: 'norm_stats.<key>.action.q01 missing', expect: 'error', message: /q01/, setup: act({ config: (c) => void delete c.norm_stats.tiny_dataset.action.q01 }) },
  { klass: 'missing fields', name: 'norm_stats.<key>.action.q01 null', expect: 'error', message: /q01/, setup: act({ config: (c) => void (c.norm_stats.tiny_dataset.action.q01 = null) }) },
  { klass: 'missing fields', name: 'norm_stats.<key> null', expect: 'error', message: /norm_stats/, setup: act({ config: (c) => void (c.norm_stats.tiny_dataset = null) }) },
  { klass: 'missing fields', name: 'norm_stats q99 with a NaN-like string', expect: 'error', message: /q99/, setup: act({ config: (c) => void (c.norm_stats.tiny_dataset.action.q99[2] = 'NaN') }) },
  { klass: 'missing fields', name: 'norm_stats mask of the wrong length', expect: 'error', message: /mask/, setup: act({ config: (c) => void (c.norm_stats.tiny_dataset.action.mask = [true]) }) },
  { klass: 'missing fields', name: 'text_config missing', expect: 'error', message: /text_config/, setup: act({ config: (c) => void delete c.text_config }) },

  // --- unbounded sizes
  { klass: 'unbounded sizes', name: 'n_action_bins 1e9', expect: 'error', message: /n_action_bins/, setup: bins(1e9) },
  { klass: 'unbounded sizes', name: 'input_sizes 30000', expect: 'error', message: /input_sizes/, setup: inputSize(30000) },
  { klass: 'unbounded sizes', name: 'input_sizes 100000', expect: 'error', message: /input_sizes/, setup: inputSize(100000) },
  { klass: 'unbounded sizes', name: 'sim render --image-size 100000', expect: 'error', message: /image-size/, setup: (dir) => ['sim', 'render', '--task', 'spatial-left-cube-to-plate', '--out', nodePath.join(dir, 'f.png'), '--image-size', '100000'] },
  { klass: 'unbounded sizes', name: 'sim render --image-size 20000', expect: 'error', message: /image-size/, setup: (dir) => ['sim', 'render', '--task', 'spatial-left-cube-to-plate', '--out', nodePath.join(dir, 'f.png'), '--image-size', '20000'] },
  { klass: 'unbounded sizes', name: 'sim run --episodes 1000000000', expect: 'error', message: /episodes/, setup: () => ['sim', 'run', '--suite', 'all', '--policy', 'expert', '--episodes', '1000000000'] },
  { klass: 'unbounded sizes', name: 'sim record --episodes 1000000000', expect: 'error', message: /episodes/, setup: (dir) => ['sim', 'record', '--suite', 'all', '--episodes', '1000000000', '--out', nodePath.join(dir, 'rec')], after: emptyAfterFailure('rec') },
  { klass: 'unbounded sizes', name: '--input-ids with 10,000 ids (max 2048 positions)', expect: 'error', message: /2048/, setup: (dir) => ['act', '--model', TINY_MODEL, '--image', TINY_IMAGE, '--input-ids', [1, ...Array(9999).fill(5)].join(',')] },
  { klass: 'unbounded sizes', name: 'a 40000x40000 PNG header', expect: 'error', message: /40000/, setup: (dir) => ['act', '--model', TINY_MODEL, '--image', writeFile(dir, 'huge.png', rawPng(40000, 1).subarray(0, 33)), '--input-ids', IDS] },

  // --- silent garbage
  { klass: 'silent garbage', name: 'n_action_bins 0', expect: 'error', message: /n_action_bins/, setup: bins(0) },
  { klass: 'silent garbage', name: 'n_action_bins 1', expect: 'error', message: /n_action_bins/, setup: bins(1) },
  { klass: 'silent garbage', name: 'n_action_bins -1', expect: 'error', message: /n_action_bins/, setup: bins(-1) },
  { klass: 'silent garbage', name: 'n_action_bins 2.5', expect: 'error', message: /n_action_bins/, setup: bins(2.5) },
  { klass: 'silent garbage', name: 'a 0x5 PNG', expect: 'error', message: /0x5/, setup: (dir) => ['act', '--model', TINY_MODEL, '--image', writeFile(dir, 'empty.png', rawPng(0, 5)), '--input-ids', IDS] },
  { klass: 'silent garbage', name: 'pad_to_multiple_of 576', expect: 'error', message: /pad_to_multiple_of/, setup: padTo(576) },
  { klass: 'silent garbage', name: 'pad_to_multiple_of -64', expect: 'error', message: /pad_to_multiple_of/, setup: padTo(-64) },
  { klass: 'silent garbage', name: 'pad_to_multiple_of 1e9', expect: 'error', message: /pad_to_multiple_of/, setup: padTo(1e9) },

  // --- output paths
  { klass: 'output paths', name: 'convert --out an existing file', expect: 'error', message: /not a directory|is a file/, setup: (dir) => ['convert', '--model', TINY_MODEL, '--out', writeFile(dir, 'file', 'x')] },
  { klass: 'output paths', name: 'convert --out /dev/null', expect: 'error', message: /\/dev\/null/, setup: () => ['convert', '--model', TINY_MODEL, '--out', '/dev/null'] },
  { klass: 'output paths', name: 'convert --out /proc/x', expect: 'error', message: /\/proc/, setup: () => ['convert', '--model', TINY_MODEL, '--out', '/proc/x'] },
  { klass: 'output paths', name: 'sim render --out /dev/null/x.png', expect: 'error', message: /\/dev\/null/, setup: () => ['sim', 'render', '--task', 'spatial-left-cube-to-plate', '--out', '/dev/null/x.png'] },
  { klass: 'output paths', name: 'sim run --frames /dev/null/x', expect: 'error', message: /\/dev\/null/, setup: () => ['sim', 'run', '--task', 'spatial-left-cube-to-plate', '--policy', 'expert', '--episodes', '1', '--frames', '/dev/null/x'] },
  { klass: 'output paths', name: 'sim record --out /dev/null', expect: 'error', message: /\/dev\/null/, setup: () => ['sim', 'record', '--task', 'spatial-left-cube-to-plate', '--episodes', '1', '--out', '/dev/null'] },
  {
    klass: 'output paths',
    name: 'a failed convert leaves no output folder',
    expect: 'error',
    setup: (dir) => {
      const model = writeEditedModel(nodePath.join(dir, 'M'));
      fs.mkdirSync(nodePath.join(model, 'tokenizer.json')); // the weights convert, then copying the side files fails
      return ['convert', '--model', model, '--out', nodePath.join(dir, 'out')];
    },
    after: emptyAfterFailure('out'),
  },
  {
    klass: 'output paths',
    name: 'convert into a folder holding an earlier sharded conversion',
    expect: 'error',
    message: /earlier conversion|already holds/,
    setup: (dir) => {
      const out = nodePath.join(dir, 'out');
      fs.mkdirSync(out);
      for (const f of ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']) fs.writeFileSync(nodePath.join(out, f), 'old');
      fs.writeFileSync(nodePath.join(out, 'model.safetensors.index.json'), '{"weight_map":{}}');
      return ['convert', '--model', TINY_MODEL, '--out', out];
    },
  },

  // --- arguments
  { klass: 'arguments', name: '--input-ids -1,2,3', expect: 'error', message: /input-ids/, setup: () => ['act', '--model', TINY_MODEL, '--image', TINY_IMAGE, '--input-ids', '-1,2,3'] },
  { klass: 'arguments', name: 'sim run --episodes -1', expect: 'error', message: /episodes/, setup: () => ['sim', 'run', '--task', 'spatial-left-cube-to-plate', '--episodes', '-1'] },
  { klass: 'arguments', name: 'sim render --seed -1', expect: 'error', message: /seed/, setup: (dir) => ['sim', 'render', '--task', 'spatial-left-cube-to-plate', '--seed', '-1', '--out', nodePath.join(dir, 'f.png')] },
  { klass: 'arguments', name: 'an option missing its value', expect: 'error', message: /--model/, setup: () => ['act', '--image', TINY_IMAGE, '--model'] },
  {
    klass: 'arguments',
    name: 'a policy module whose createPolicyFactory throws fails its episodes',
    expect: 'ok',
    setup: (dir) => ['sim', 'run', '--task', 'spatial-left-cube-to-plate', '--episodes', '2', '--workers', '1', '--policy', writeFile(dir, 'bad-policy.mjs', "export function createPolicyFactory() { throw new Error('no weights'); }\n"), '--json'],
  },
  { klass: 'arguments', name: 'act --instruction on a checkpoint without a Llama-2 vocabulary', expect: 'error', message: /tokenizer.*--input-ids/, setup: () => ['act', '--model', TINY_MODEL, '--image', TINY_IMAGE, '--instruction', 'pick up the cube'] },
];

function writeFile(dir: string, name: string, content: string | Uint8Array): string {
  const path = nodePath.join(dir, name);
  fs.writeFileSync(path, content);
  return path;
}
