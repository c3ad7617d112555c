// The llama.cpp side of bench/peers/llm-step.ts, run as a child process of its own: loads a GGUF through
// node-llama-cpp's prebuilt CPU binaries (CPU only, no build, no download), then per step, on a cleared KV cache,
// evaluates a prompt of --prompt-tokens ids in one batch (prefill: up to the first sampled token) and --decode-tokens
// more single-token evaluations (greedy), each timed on the wall clock. --warmup untimed steps first.
// Last line of stdout: {"prefill_ms":[...], "decode_ms_per_token":[...], "llm_ms":[...], "threads", "batch_size",
// "flash_attention", "system_info"} with one entry per timed step (llm = prefill + decode-tokens x decode per token).
// Run: npx tsx bench/peers/llama-step.ts --gguf F.gguf [--threads 2] [--prompt-tokens 282] [--decode-tokens 7]
//      [--steps 1] [--warmup 1]
import * as fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { getLlama, LlamaLogLevel, type Token } from 'node-llama-cpp';
import { parseIntegerFlag } from '../../src/cli/args.js';
import { UserError } from '../../src/errors.js';
import { mulberry32 } from '../../src/random.js';
import { parseFlags, runMain } from './flags.js';

/** BOS (1), then seeded ids from the ordinary range of a 32000-token Llama vocabulary [tokens] */
export function promptIds(tokens: number, seed = 3): number[] {
  const next = mulberry32(seed);
  return [1, ...Array.from({ length: tokens - 1 }, () => 3 + Math.floor(next() * 31000))];
}

async function main(argv: string[]): Promise<number> {
  const values = parseFlags(argv, {
    gguf: { type: 'string' },
    threads: { type: 'string' },
    'prompt-tokens': { type: 'string' },
    'decode-tokens': { type: 'string' },
    steps: { type: 'string' },
    warmup: { type: 'string' },
  }, 'llama-step.ts');
  if (!values.gguf) throw new UserError('needs --gguf FILE.gguf (write one with bench/peers/gguf.ts)');
  if (!fs.existsSync(values.gguf)) throw new UserError(`GGUF file not found: ${values.gguf}`);
  const threads = parseIntegerFlag(values.threads, 'threads', 2, 1, 256);
  const promptTokens = parseIntegerFlag(values['prompt-tokens'], 'prompt-tokens', 282, 2, 4096);
  const decodeTokens = parseIntegerFlag(values['decode-tokens'], 'decode-tokens', 7, 1, 256);
  const steps = parseIntegerFlag(values.steps, 'steps', 1, 1, 1000);
  const warmup = parseIntegerFlag(values.warmup, 'warmup', 1, 0, 1000);

  // maxThreads 0: the context's thread count is then the count used, not a hint shared with other contexts
  const llama = await getLlama({ gpu: false, build: 'never', skipDownload: true, maxThreads: 0, logLevel: LlamaLogLevel.error });
  const model = await llama.loadModel({ modelPath: values.gguf, gpuLayers: 0 });
  const contextSize = promptTokens + decodeTokens + 1;
  // batch >= the prompt: the prefill is one llama_decode of all its tokens, as ours is one pass
  const context = await model.createContext({ contextSize, batchSize: Math.max(512, promptTokens), threads: { ideal: threads, min: threads } });
  if (context.batchSize < promptTokens) throw new Error(`llama-step: batch ${context.batchSize} < prompt ${promptTokens}`);
  const sequence = context.getSequence();
  const prompt = promptIds(promptTokens) as Token[];

  const prefillMs: number[] = [];
  const decodeMsPerToken: number[] = [];
  for (let step = 0; step < warmup + steps; step++) {
    await sequence.clearHistory(); // a fresh KV cache every step
    const start = performance.now();
    let prefillDone = start;
    let sampled = 0;
    // each next() evaluates what is pending (the prompt, then the last sampled token) and samples one token
    for await (const _token of sequence.evaluate(prompt, { temperature: 0 })) {
      sampled++;
      if (sampled === 1) prefillDone = performance.now();
      if (sampled === 1 + decodeTokens) break;
    }
    const end = performance.now();
    if (sampled !== 1 + decodeTokens) throw new Error(`llama-step: ${sampled} tokens sampled, expected ${1 + decodeTokens}`);
    if (step >= warmup) {
      prefillMs.push(prefillDone - start);
      decodeMsPerToken.push((end - prefillDone) / decodeTokens);
    }
  }
  console.log(JSON.stringify({
    prefill_ms: prefillMs,
    decode_ms_per_token: decodeMsPerToken,
    llm_ms: prefillMs.map((p, i) => p + decodeTokens * decodeMsPerToken[i]),
    threads: context.currentThreads,
    batch_size: context.batchSize,
    context_size: context.contextSize,
    flash_attention: context.flashAttention,
    system_info: llama.systemInfo.trim(),
  }));
  await context.dispose();
  await model.dispose();
  await llama.dispose();
  return 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === fs.realpathSync(process.argv[1])) {
  await runMain('llama-step.ts', () => main(process.argv.slice(2)));
}
