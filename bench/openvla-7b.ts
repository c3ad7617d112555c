// One policy step of an OpenVLA-7B-shaped checkpoint on this machine: DINOv2-L/14-reg4 + SigLIP-SO400M/14 at
// 224 px, the projector, Llama-2-7B (32 layers, 4096 wide, vocab 32064), BF16 weights kept BF16 in memory.
// The checkpoint is synthetic (seeded random weights, real shapes and key names; written once, ~15 GB), so speed
// and memory can be measured without downloading weights. Prints load time, resident memory against the
// checkpoint's bytes (BF16 must not be widened to float32: ratio ~1, not ~2), and the step split into vision,
// prefill and decode.
// Run: npx tsx bench/openvla-7b.ts [--dir /tmp/sqap-openvla-7b-bf16] [--backend native] [--llm-layers 32]
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { Checkpoint } from '../src/io/checkpoint.js';
import { readImageFile } from '../src/io/image.js';
import { argmax } from '../src/models/llama.js';
import { OpenVla } from '../src/models/openvla.js';
import { openVlaPrompt, withTrailingSpaceToken } from '../src/models/prompt.js';
import { OPENVLA_7B_SIZES, writeSyntheticOpenVla } from '../src/models/synthetic.js';
import { builtinLlama2Tokenizer } from '../src/models/tokenizer.js';
import { getBackend, type BackendName } from '../src/tensor/backends/index.js';

const { values } = parseArgs({
  options: {
    dir: { type: 'string', default: '/tmp/sqap-openvla-7b-bf16' },
    backend: { type: 'string', default: 'native' },
    'llm-layers': { type: 'string', default: String(OPENVLA_7B_SIZES.llmLayers) },
  },
});
const dir = values.dir!;
const GiB = 2 ** 30;
const rssGiB = () => process.memoryUsage().rss / GiB;

if (!fs.existsSync(`${dir}/config.json`)) {
  const sizes = { ...OPENVLA_7B_SIZES, llmLayers: Number(values['llm-layers']) };
  console.log(`writing a synthetic OpenVLA-7B-shaped bf16 checkpoint to ${dir} (once) ...`);
  const start = performance.now();
  let lastTenth = -1;
  writeSyntheticOpenVla(dir, sizes, {
    dtype: 'bf16',
    onProgress: (done, total) => {
      const tenth = Math.floor((10 * done) / total);
      if (tenth !== lastTenth) console.log(`  ${10 * tenth}%  (${(done / GiB).toFixed(1)} of ${(total / GiB).toFixed(1)} GiB)`);
      lastTenth = tenth;
    },
  });
  console.log(`  written in ${((performance.now() - start) / 1000).toFixed(0)} s`);
}

const checkpoint = Checkpoint.open(dir);
const checkpointGiB = checkpoint.totalBytes() / GiB;
checkpoint.close();
const backend = getBackend(values.backend as BackendName);
const rssBefore = rssGiB();
let start = performance.now();
const model = OpenVla.load(dir, backend);
const loadS = (performance.now() - start) / 1000;
const rssLoaded = rssGiB();

const image = readImageFile('models/tiny-openvla/image.png');
const inputIds = withTrailingSpaceToken(builtinLlama2Tokenizer().encode(openVlaPrompt('pick up the red cube and place it on the plate'), { addBos: true }));
start = performance.now();
const projected = model.projector.forward(model.visionPatches(model.preprocess(image)));
const visionMs = performance.now() - start;
start = performance.now();
const prefix = model.prefixEmbeds(inputIds, projected);
const cache = model.llm.newCache();
let { logits } = model.llm.forward(prefix, cache, { logits: 'last' });
const prefillMs = performance.now() - start;
start = performance.now();
const tokens = [argmax(logits!.data)];
for (let i = 1; i < 7; i++) {
  ({ logits } = model.llm.forward(model.llm.embed(Int32Array.of(tokens[i - 1])), cache, { logits: 'last' }));
  tokens.push(argmax(logits!.data));
}
const decodeMs = performance.now() - start;
const peakGiB = (process.resourceUsage().maxRSS * 1024) / GiB;

console.log(`OpenVLA-7B-shaped step, ${backend.name} backend, prompt ${inputIds.length} ids -> prefix ${prefix.shape[0]} tokens`);
console.log(`  checkpoint (bf16)          ${checkpointGiB.toFixed(2)} GiB`);
console.log(`  load                       ${loadS.toFixed(1)} s`);
console.log(`  resident after load        ${rssLoaded.toFixed(2)} GiB (${(rssLoaded - rssBefore).toFixed(2)} GiB for the model = ${((rssLoaded - rssBefore) / checkpointGiB).toFixed(2)}x the checkpoint; float32 weights would be 2.00x)`);
console.log(`  peak resident              ${peakGiB.toFixed(2)} GiB`);
console.log(`  vision + projector         ${visionMs.toFixed(0)} ms`);
console.log(`  LLM prefill + 1st token    ${prefillMs.toFixed(0)} ms`);
console.log(`  LLM decode (6 tokens)      ${decodeMs.toFixed(0)} ms (${(decodeMs / 6).toFixed(0)} ms/token)`);
console.log(`  step                       ${(visionMs + prefillMs + decodeMs).toFixed(0)} ms`);
console.log(`  action tokens              ${tokens.join(' ')}`);
