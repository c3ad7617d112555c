// `sqap-vla inspect`: the architecture of a checkpoint from its config and tensor headers only (no weights are
// read, so it is instant on a 15 GB checkpoint).
import nodePath from 'node:path';
import { UserError } from '../errors.js';
import { Checkpoint } from '../io/checkpoint.js';
import { readJsonFile } from '../io/json.js';
import { parseOpenVlaConfig } from '../models/openvla.js';
import { checkpointSource, countBlocks } from '../models/weights.js';
import { specName } from '../quant/apply.js';
import { readQuantizationConfig } from '../quant/checkpoint.js';
import { shapeSize } from '../tensor/tensor.js';
import { parseOptions } from './args.js';

const HELP = `usage: sqap-vla inspect --model DIR [--json]

Prints the components of an OpenVLA-style checkpoint: vision backbones, projector and language model with their
layers, widths, heads, parameter counts, dtypes and memory, read from config.json and the safetensors headers.`;

const COMPONENTS: [string, string][] = [
  ['vision_backbone.featurizer.', 'vision backbone 1'],
  ['vision_backbone.fused_featurizer.', 'vision backbone 2'],
  ['projector.', 'projector'],
  ['language_model.', 'language model'],
];

interface ComponentSummary {
  name: string;
  parameters: number;
  bytes: number;
  dtypes: Record<string, number>;
  details: Record<string, number | string | boolean>;
}

export async function runInspectCommand(argv: string[]): Promise<number> {
  const values = parseOptions(argv, { model: { type: 'string' }, json: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false } }, 'inspect');
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (!values.model) throw new UserError('inspect needs --model DIR');
  const configPath = nodePath.join(values.model, 'config.json');
  const configJson = readJsonFile(configPath, 'model config');
  const config = parseOpenVlaConfig(configJson, configPath);
  const quantization = readQuantizationConfig(configJson as Record<string, unknown>, configPath);
  const checkpoint = Checkpoint.open(values.model);
  const source = checkpointSource(checkpoint);
  try {
    const components = COMPONENTS.map(([prefix, name]) => summarize(checkpoint, prefix, name)).filter((c) => c.parameters > 0);
    const vitDetails = (c: ComponentSummary, i: number) => {
      const prefix = COMPONENTS[i][0];
      const conv = checkpoint.info(`${prefix}patch_embed.proj.weight`).shape;
      const pos = checkpoint.info(`${prefix}pos_embed`).shape;
      const depth = countBlocks(source, `${prefix}blocks`, 'norm1.weight');
      const prefixTokens = (checkpoint.has(`${prefix}cls_token`) ? 1 : 0) + (checkpoint.has(`${prefix}reg_token`) ? checkpoint.info(`${prefix}reg_token`).shape[1] : 0);
      c.details = {
        timm_id: config.timmModelIds[i],
        width: conv[0],
        depth,
        blocks_run: depth - 1,
        heads: config.vitHeads[i],
        patch_size: conv[2],
        patches: pos[1] - (Math.sqrt(pos[1]) % 1 === 0 ? 0 : prefixTokens),
        prefix_tokens: prefixTokens,
        mlp_hidden: checkpoint.info(`${prefix}blocks.0.mlp.fc1.weight`).shape[0],
      };
    };
    components.forEach((c) => {
      if (c.name === 'vision backbone 1') vitDetails(c, 0);
      if (c.name === 'vision backbone 2') vitDetails(c, 1);
      if (c.name === 'projector') {
        c.details = { layers: 3, input_width: checkpoint.info('projector.fc1.weight').shape[1], hidden_width: checkpoint.info('projector.fc1.weight').shape[0], output_width: checkpoint.info('projector.fc3.weight').shape[0], activation: 'gelu' };
      }
      if (c.name === 'language model') {
        const t = config.textConfig;
        const layers = countBlocks(source, 'language_model.model.layers', 'input_layernorm.weight');
        const [vocab, hidden] = checkpoint.info('language_model.model.embed_tokens.weight').shape;
        c.details = {
          layers,
          hidden,
          heads: Number(t.num_attention_heads),
          kv_heads: Number(t.num_key_value_heads ?? t.num_attention_heads),
          head_dim: Number(t.head_dim ?? hidden / Number(t.num_attention_heads)),
          // a quantized int4 checkpoint stores gate_proj as weight_packed [N, K/2] (docs/quantization.md)
          intermediate: checkpoint.info(`language_model.model.layers.0.mlp.gate_proj.${checkpoint.has('language_model.model.layers.0.mlp.gate_proj.weight') ? 'weight' : 'weight_packed'}`).shape[0],
          vocab,
          action_bins: config.nActionBins,
          tied_lm_head: !checkpoint.has('language_model.lm_head.weight'),
          ...(quantization ? { quantization: specName(quantization) } : {}),
        };
      }
    });
    const total = { parameters: components.reduce((a, c) => a + c.parameters, 0), bytes: checkpoint.totalBytes() };
    const summary = { model: values.model, files: checkpoint.files().length, components, total, dtypes: checkpoint.dtypeCounts(), unnorm_keys: Object.keys(config.normStats) };
    if (values.json) {
      console.log(JSON.stringify(summary));
      return 0;
    }
    console.log(`${values.model}: ${formatCount(total.parameters)} parameters, ${formatBytes(total.bytes)} in ${summary.files} file(s)`);
    for (const c of components) {
      console.log(`\n${c.name}: ${formatCount(c.parameters)} parameters, ${formatBytes(c.bytes)}, dtypes ${Object.entries(c.dtypes).map(([d, n]) => `${d}x${n}`).join(' ')}`);
      for (const [k, v] of Object.entries(c.details)) console.log(`  ${k.padEnd(14)} ${v}`);
    }
    console.log(`\nun-normalization datasets: ${summary.unnorm_keys.join(', ') || '(none)'}`);
    return 0;
  } finally {
    checkpoint.close();
  }
}

function summarize(checkpoint: Checkpoint, prefix: string, name: string): ComponentSummary {
  const summary: ComponentSummary = { name, parameters: 0, bytes: 0, dtypes: {}, details: {} };
  for (const key of checkpoint.keys()) {
    if (!key.startsWith(prefix)) continue;
    const info = checkpoint.info(key);
    summary.parameters += shapeSize(info.shape);
    summary.bytes += info.byteLength;
    summary.dtypes[info.dtype] = (summary.dtypes[info.dtype] ?? 0) + 1;
  }
  return summary;
}

function formatCount(n: number): string {
  return n >= 1e9 ? `${(n / 1e9).toFixed(2)}B` : n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}K` : String(n);
}

function formatBytes(n: number): string {
  return n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(2)} GiB` : n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(2)} MiB` : `${(n / 2 ** 10).toFixed(1)} KiB`;
}
