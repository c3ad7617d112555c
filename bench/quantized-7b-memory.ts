// Resident memory of a W4 OpenVLA-7B-shaped quantized checkpoint (issue #6 target: <= 5 GiB), without quantizing
// 15 GB of bf16 weights first: vision towers, projector, embeddings, final norm and lm_head are copied (bf16, as
// stored) from a `sqap-vla synth --preset openvla-7b` checkpoint (any --llm-layers), and all 32 decoder layers are
// written in the quantized layout of docs/quantization.md with random int4 codes and plausible scales. Codes are
// random, so actions mean nothing; the bytes, the loader and the kernels are the real ones.
// With --lm-head w8, lm_head is the synth checkpoint's own, quantized to int8 per output channel (quantize --lm-head w8).
// Run: npx tsx bench/quantized-7b-memory.ts --from SYNTH_DIR --out DIR [--layers 32] [--variant w4a8+had] [--lm-head w8]
//      then measure: flock /work/bigmem.lock /usr/bin/time -v npx sqap-vla bench --model DIR --variants base --steps 1
import fs from 'node:fs';
import nodePath from 'node:path';
import { parseArgs } from 'node:util';
import { randomFillSync } from 'node:crypto';
import { Checkpoint, INDEX_FILE_NAME } from '../src/io/checkpoint.js';
import { writeSafetensors } from '../src/io/safetensors.js';
import { specFromVariant } from '../src/quant/apply.js';
import { quantizationConfig, RESIDUAL_SIGNS_TENSOR } from '../src/quant/checkpoint.js';
import { quantizeWeight, type FloatWeight } from '../src/tensor/formats.js';
import { Tensor } from '../src/tensor/tensor.js';
import { parseVariant } from '../src/variant.js';

const { values } = parseArgs({ options: { from: { type: 'string' }, out: { type: 'string' }, layers: { type: 'string', default: '32' }, variant: { type: 'string', default: 'w4a8+had' }, 'lm-head': { type: 'string', default: 'stored' } } });
if (!values.from || !values.out) throw new Error('usage: --from SYNTH_DIR --out DIR [--layers 32] [--variant w4a8+had]');
const spec = specFromVariant(parseVariant(values.variant!), { lmHeadBits: values['lm-head'] === 'w8' ? 8 : undefined })!;
if (spec.weightBits !== 4 && spec.weightBits !== 8) throw new Error('needs a weight-quantized variant');
const layers = Number(values.layers);
const source = Checkpoint.open(values.from);
const config = JSON.parse(fs.readFileSync(nodePath.join(values.from, 'config.json'), 'utf8'));
const hidden = source.info('language_model.model.embed_tokens.weight').shape[1];
const intermediate = source.info('language_model.model.layers.0.mlp.gate_proj.weight').shape[0];
const kvWidth = source.info('language_model.model.layers.0.self_attn.k_proj.weight').shape[0];
const linears: [string, number, number][] = [
  ['self_attn.q_proj', hidden, hidden], ['self_attn.k_proj', kvWidth, hidden], ['self_attn.v_proj', kvWidth, hidden],
  ['self_attn.o_proj', hidden, hidden], ['mlp.gate_proj', intermediate, hidden], ['mlp.up_proj', intermediate, hidden],
  ['mlp.down_proj', hidden, intermediate],
];

fs.mkdirSync(values.out, { recursive: true });
const weightMap: Record<string, string> = {};
let shard: Record<string, Tensor> = {};
let shardBytes = 0;
let shardIndex = 0;
const flush = () => {
  if (shardBytes === 0) return;
  const file = `model-${String(++shardIndex).padStart(5, '0')}.safetensors`;
  writeSafetensors(nodePath.join(values.out!, file), shard, { format: 'pt' });
  for (const name of Object.keys(shard)) weightMap[name] = file;
  console.log(`wrote ${file} (${(shardBytes / 2 ** 30).toFixed(2)} GiB)`);
  shard = {};
  shardBytes = 0;
};
const add = (name: string, t: Tensor) => {
  if (shardBytes + t.data.byteLength > 1e9) flush(); // shards of ~1 GB keep this writer under 2 GiB resident
  shard[name] = t;
  shardBytes += t.data.byteLength;
};
const LM_HEAD = 'language_model.lm_head.weight';
for (const name of source.keys()) {
  if (name.startsWith('language_model.model.layers.')) continue;
  if (name !== LM_HEAD || !spec.lmHeadBits) {
    add(name, source.read(name));
    continue;
  }
  const q = quantizeWeight(source.read(name) as FloatWeight, 'i8');
  add(LM_HEAD, new Tensor('i8', [...q.shape], q.codes as Int8Array));
  add(`${LM_HEAD}_scale`, Tensor.f32([q.shape[0], 1], q.scales));
}
const ones = Tensor.f32([hidden], new Float32Array(hidden).fill(1));
for (let i = 0; i < layers; i++) {
  const p = `language_model.model.layers.${i}`;
  add(`${p}.input_layernorm.weight`, ones);
  add(`${p}.post_attention_layernorm.weight`, ones);
  for (const [path, n, k] of linears) {
    const scales = Tensor.f32([n, 1], new Float32Array(n).fill(0.02 / 7));
    if (spec.weightBits === 4) {
      const codes = new Uint8Array(n * Math.ceil(k / 2));
      randomFillSync(codes);
      for (let j = 0; j < codes.length; j++) if ((codes[j] & 15) === 8 || codes[j] >> 4 === 8) codes[j] ^= 0x11; // keep codes in [-7, 7]
      add(`${p}.${path}.weight_packed`, new Tensor('u8', [n, Math.ceil(k / 2)], codes));
      add(`${p}.${path}.weight_shape`, new Tensor('i64', [2], BigInt64Array.of(BigInt(n), BigInt(k))));
    } else {
      const codes = new Int8Array(n * k);
      randomFillSync(codes);
      for (let j = 0; j < codes.length; j++) if (codes[j] === -128) codes[j] = -127;
      add(`${p}.${path}.weight`, new Tensor('i8', [n, k], codes));
    }
    add(`${p}.${path}.weight_scale`, scales);
  }
}
if (spec.had) add(`language_model.${RESIDUAL_SIGNS_TENSOR}`, Tensor.f32([hidden], Float32Array.from({ length: hidden }, (_, i) => (i % 3 === 0 ? -1 : 1))));
flush();
source.close();
fs.writeFileSync(nodePath.join(values.out, INDEX_FILE_NAME), JSON.stringify({ metadata: {}, weight_map: weightMap }, null, 2));
config.quantization_config = quantizationConfig(spec);
if (config.text_config) config.text_config.num_hidden_layers = layers;
fs.writeFileSync(nodePath.join(values.out, 'config.json'), JSON.stringify(config, null, 2));
for (const f of ['preprocessor_config.json', 'tokenizer.json', 'tokenizer_config.json']) {
  if (fs.existsSync(nodePath.join(values.from, f))) fs.copyFileSync(nodePath.join(values.from, f), nodePath.join(values.out, f));
}
console.log(`${values.out}: ${values.variant}, ${layers} decoder layers (random codes), lm_head ${spec.lmHeadBits ? 'int8' : 'as stored'}`);
