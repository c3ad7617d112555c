// The Llama-2-7B-shaped LLM part of an OpenVLA step, ours against llama.cpp Q4_0 on the same machine in the same run
// window: a prefill of 282 tokens (BOS, 256 visual, 25 text) and 7 decoded tokens.
//
//   ours       `sqap-vla bench --model DIR --variants V --steps N --input-ids IDS --json` per variant (SQAP_THREADS =
//              --threads); LLM part = prefill_ms + 7 x decode_ms_per_token. prefill_ms is the prompt pass up to the
//              first action token, decode_ms_per_token the mean of the 6 single-token passes after it (so the 7th
//              decode is extrapolated; llama.cpp's side times 7 real ones); the vision towers are excluded.
//   llama.cpp  llama-step.ts: the GGUF of gguf.ts (same layer count) through node-llama-cpp, --threads threads,
//              the 282-token prompt in one batch, then 7 greedy single-token evaluations, KV cache cleared per step.
//
// Each side runs in a child process of its own (one per variant), so memory is not shared and each reports its own
// peak resident set (VmHWM, polled from /proc while it runs). Rounds alternate the order (llama.cpp first, then
// ours last), medians over rounds per side. Prints a table and llama.cpp / ours (> 1: ours is faster); --json adds
// one JSON line last.
// Run: npx tsx bench/peers/llm-step.ts --gguf F.gguf --model DIR [--rounds 3] [--steps 1] [--threads 2]
//      [--variants base,w4a8+had,w4a4+had] [--wrap CMD] [--json]
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseIntegerFlag } from '../../src/cli/args.js';
import { UserError } from '../../src/errors.js';
import { parseVariantList } from '../../src/variant.js';
import { promptIds } from './llama-step.js';
import { parseFlags, runMain } from './flags.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const DECODE_TOKENS = 7; // OpenVLA's 7 action tokens
const VISUAL_TOKENS = 256; // the openvla-7b preset's 16 x 16 patch grid: our prompt is BOS + 256 patches + the rest of the ids

const HELP = `usage: npx tsx bench/peers/llm-step.ts --gguf F.gguf --model DIR [--rounds 3] [--steps 1] [--threads 2]
                                       [--variants base,w4a8+had,w4a4+had] [--prompt-tokens 282] [--wrap CMD] [--json]

The LLM part of a policy step (prefill of --prompt-tokens + 7 decoded tokens), our variants on a synthetic
OpenVLA-7B-shaped checkpoint (sqap-vla synth --preset openvla-7b --llm-layers N) against llama.cpp on a Llama-2-7B-
shaped Q4_0 GGUF with as many layers (bench/peers/gguf.ts --layers N), one child process per side and round.
  --gguf F          the llama.cpp model
  --model DIR       our checkpoint (same layer count)
  --rounds R        rounds, each running every side once (default 3); medians over rounds
  --steps N         timed steps per child after 1 untimed warm-up (default 1)
  --threads T       threads for both (SQAP_THREADS for ours; default 2)
  --variants LIST   our variants (default base,w4a8+had,w4a4+had), each run on --model (quantized at load), or
                    NAME=DIR to run one on a checkpoint written by 'sqap-vla quantize --variant NAME' (loads faster)
  --prompt-tokens P prefill length, ${VISUAL_TOKENS + 2}..2048 (default 282)
  --wrap CMD        run each child as CMD child... (e.g. a script that quiets the machine); split on spaces
  --json            last line: {"llama_cpp":{...},"variants":[{...,"llama_over_ours"}],...}`;

interface SideResult {
  prefill_ms: number;
  decode_ms_per_token: number;
  llm_ms: number;
  peak_rss_bytes: number;
}

/** Runs a child to its end; its stdout's last line parsed as JSON, its peak resident set from /proc polling. */
async function runChild(command: string[], env: NodeJS.ProcessEnv): Promise<{ json: Record<string, unknown>; peakRssBytes: number }> {
  const child = spawn(command[0], command.slice(1), { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString(); });
  // --wrap puts a process between us and the measured one: follow the process tree down to the deepest node
  let peak = 0;
  const poll = setInterval(() => { peak = Math.max(peak, treePeakRss(child.pid!)); }, 200);
  const code: number = await new Promise((resolve, reject) => { child.on('error', reject); child.on('close', (c) => resolve(c ?? 1)); });
  clearInterval(poll);
  if (code !== 0) throw new UserError(`child '${command.join(' ')}' exited with status ${code}`);
  const last = stdout.trim().split('\n').pop() ?? '';
  try {
    return { json: JSON.parse(last) as Record<string, unknown>, peakRssBytes: peak };
  } catch {
    throw new Error(`child '${command.join(' ')}' did not end with a JSON line: ${last.slice(0, 200)}`);
  }
}

/** The largest VmHWM (peak resident set) among a process and its descendants, in bytes; 0 once gone. */
function treePeakRss(pid: number): number {
  let peak = 0;
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const hwm = /^VmHWM:\s+(\d+) kB/m.exec(status);
    if (hwm) peak = Number(hwm[1]) * 1024;
    for (const task of fs.readdirSync(`/proc/${pid}/task`)) {
      const children = fs.readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim();
      for (const c of children ? children.split(/\s+/) : []) peak = Math.max(peak, treePeakRss(Number(c)));
    }
  } catch {
    // the process ended between two reads
  }
  return peak;
}

async function runLlama(gguf: string, threads: number, promptTokens: number, steps: number, wrap: string[]): Promise<SideResult & { info: Record<string, unknown> }> {
  const command = [...wrap, process.execPath, '--import', 'tsx', path.join(ROOT, 'bench/peers/llama-step.ts'),
    '--gguf', gguf, '--threads', String(threads), '--prompt-tokens', String(promptTokens), '--decode-tokens', String(DECODE_TOKENS), '--steps', String(steps)];
  const { json, peakRssBytes } = await runChild(command, process.env);
  const prefill = median(json.prefill_ms as number[]);
  const decode = median(json.decode_ms_per_token as number[]);
  const { prefill_ms: _p, decode_ms_per_token: _d, llm_ms: _l, ...info } = json;
  return { prefill_ms: prefill, decode_ms_per_token: decode, llm_ms: median(json.llm_ms as number[]), peak_rss_bytes: peakRssBytes, info };
}

async function runOurs(model: string, variant: string, threads: number, inputIds: number[], steps: number, wrap: string[]): Promise<SideResult & { bench_rss_bytes: number }> {
  const command = [...wrap, process.execPath, path.join(ROOT, 'bin/sqap-vla.js'), 'bench', '--model', model, '--variants', variant,
    '--steps', String(steps), '--input-ids', inputIds.join(','), '--json'];
  const { json, peakRssBytes } = await runChild(command, { ...process.env, SQAP_THREADS: String(threads) });
  const row = (json.variants as Array<{ prefill_ms: number; decode_ms_per_token: number; rss_bytes: number }>)[0];
  return {
    prefill_ms: row.prefill_ms,
    decode_ms_per_token: row.decode_ms_per_token,
    llm_ms: row.prefill_ms + DECODE_TOKENS * row.decode_ms_per_token,
    peak_rss_bytes: peakRssBytes,
    bench_rss_bytes: row.rss_bytes,
  };
}

/** medians over rounds of each field */
function summarize(rounds: SideResult[]): SideResult {
  return {
    prefill_ms: median(rounds.map((r) => r.prefill_ms)),
    decode_ms_per_token: median(rounds.map((r) => r.decode_ms_per_token)),
    llm_ms: median(rounds.map((r) => r.llm_ms)),
    peak_rss_bytes: Math.max(...rounds.map((r) => r.peak_rss_bytes)),
  };
}

function checkpointLayers(model: string): number {
  const configPath = path.join(model, 'config.json');
  if (!fs.existsSync(configPath)) throw new UserError(`--model: ${configPath} not found (make one with: sqap-vla synth --preset openvla-7b --llm-layers N --out DIR)`);
  const config = JSON.parse(fs.readFileSync(configPath, 'utf8')) as { text_config?: { num_hidden_layers?: number }; image_sizes?: number[] };
  if (config.image_sizes?.[0] !== 224) throw new UserError(`--model: expected an openvla-7b-shaped checkpoint (224 px, ${VISUAL_TOKENS} patches), got image_sizes ${JSON.stringify(config.image_sizes)}`);
  return config.text_config?.num_hidden_layers ?? -1;
}

async function ggufLayers(gguf: string): Promise<number> {
  const { readGgufFileInfo } = await import('node-llama-cpp');
  const info = await readGgufFileInfo(gguf, { readTensorInfo: false });
  return Number((info.metadata as { llama?: { block_count?: number } }).llama?.block_count ?? -1);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

const ms = (v: number) => v.toFixed(1);
const gib = (v: number) => (v / 2 ** 30).toFixed(2);

async function main(argv: string[]): Promise<number> {
  const values = parseFlags(argv, {
    gguf: { type: 'string' },
    model: { type: 'string' },
    rounds: { type: 'string' },
    steps: { type: 'string' },
    threads: { type: 'string' },
    variants: { type: 'string', default: 'base,w4a8+had,w4a4+had' },
    'prompt-tokens': { type: 'string' },
    wrap: { type: 'string' },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  }, 'llm-step.ts');
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (!values.gguf) throw new UserError('needs --gguf FILE.gguf (write one with: npx tsx bench/peers/gguf.ts --layers N --out FILE.gguf)');
  if (!fs.existsSync(values.gguf)) throw new UserError(`--gguf: ${values.gguf} not found`);
  if (!values.model) throw new UserError('needs --model DIR (a checkpoint of sqap-vla synth --preset openvla-7b --llm-layers N)');
  const rounds = parseIntegerFlag(values.rounds, 'rounds', 3, 1, 100);
  const steps = parseIntegerFlag(values.steps, 'steps', 1, 1, 100);
  const threads = parseIntegerFlag(values.threads, 'threads', 2, 1, 256);
  const promptTokens = parseIntegerFlag(values['prompt-tokens'], 'prompt-tokens', 282, VISUAL_TOKENS + 2, 2048);
  // NAME or NAME=DIR (a checkpoint written by `sqap-vla quantize --variant NAME`, which loads without quantizing)
  const entries = values.variants!.split(',').map((entry) => {
    const at = entry.indexOf('=');
    return at < 0 ? { name: entry.trim(), dir: values.model! } : { name: entry.slice(0, at).trim(), dir: entry.slice(at + 1).trim() };
  });
  const variants = parseVariantList(entries.map((e) => e.name).join(',')).map((v) => v.name); // checked before any child runs
  const modelOf = new Map(entries.map((e, i) => [variants[i], e.dir]));
  for (const dir of new Set(modelOf.values())) {
    if (checkpointLayers(dir) !== checkpointLayers(values.model)) throw new UserError(`--variants: ${dir} has ${checkpointLayers(dir)} decoder layers, --model ${checkpointLayers(values.model)}`);
  }
  const wrap = values.wrap ? values.wrap.trim().split(/\s+/) : [];
  const layers = checkpointLayers(values.model);
  const llamaLayers = await ggufLayers(values.gguf);
  if (layers !== llamaLayers) throw new UserError(`--model has ${layers} decoder layers but --gguf ${llamaLayers}: write both with the same count`);

  // our ids: BOS, text, the space token 29871; the prefill is BOS + 256 patches + the other ids
  const ourIds = promptIds(promptTokens - VISUAL_TOKENS).slice(0, -1).concat(29871);
  console.log(`LLM part, ${layers} Llama-2-7B-shaped layers: prefill ${promptTokens} tokens + ${DECODE_TOKENS} decoded, ${threads} threads, ${rounds} round(s) x ${steps} step(s) per side`);
  const llamaRounds: SideResult[] = [];
  const oursRounds = new Map<string, SideResult[]>(variants.map((v) => [v, []]));
  let llamaInfo: Record<string, unknown> = {};
  for (let round = 0; round < rounds; round++) {
    const sides = ['llama.cpp', ...variants];
    if (round % 2 === 1) sides.reverse(); // alternate: llama.cpp first, then last
    for (const side of sides) {
      if (side === 'llama.cpp') {
        const r = await runLlama(values.gguf, threads, promptTokens, steps, wrap);
        llamaInfo = r.info;
        llamaRounds.push(r);
        console.log(`  round ${round + 1}  llama.cpp Q4_0   prefill ${ms(r.prefill_ms)} ms  decode ${ms(r.decode_ms_per_token)} ms/token  LLM ${ms(r.llm_ms)} ms  peak RSS ${gib(r.peak_rss_bytes)} GiB`);
      } else {
        const r = await runOurs(modelOf.get(side)!, side, threads, ourIds, steps, wrap);
        oursRounds.get(side)!.push(r);
        console.log(`  round ${round + 1}  ours ${side.padEnd(11)} prefill ${ms(r.prefill_ms)} ms  decode ${ms(r.decode_ms_per_token)} ms/token  LLM ${ms(r.llm_ms)} ms  peak RSS ${gib(r.peak_rss_bytes)} GiB`);
      }
    }
  }

  const llama = summarize(llamaRounds);
  const rows = variants.map((name) => {
    const s = summarize(oursRounds.get(name)!);
    return { name, ...s, llama_over_ours: llama.llm_ms / s.llm_ms, prefill_llama_over_ours: llama.prefill_ms / s.prefill_ms, decode_llama_over_ours: llama.decode_ms_per_token / s.decode_ms_per_token };
  });
  console.log(`medians of ${rounds} round(s); LLM = prefill + ${DECODE_TOKENS} x decode; llama.cpp / ours > 1: ours is faster`);
  const header = ['side', 'prefill_ms', 'decode_ms/tok', `LLM_ms`, 'peak_RSS_GiB', 'llama.cpp/ours', 'prefill', 'decode'];
  const lines = [
    ['llama.cpp Q4_0', ms(llama.prefill_ms), ms(llama.decode_ms_per_token), ms(llama.llm_ms), gib(llama.peak_rss_bytes), '1.000', '1.000', '1.000'],
    ...rows.map((r) => [`ours ${r.name}`, ms(r.prefill_ms), ms(r.decode_ms_per_token), ms(r.llm_ms), gib(r.peak_rss_bytes), r.llama_over_ours.toFixed(3), r.prefill_llama_over_ours.toFixed(3), r.decode_llama_over_ours.toFixed(3)]),
  ];
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  for (const line of [header, ...lines]) console.log(line.map((cell, i) => cell.padEnd(widths[i])).join('  '));
  if (values.json) {
    const r3 = (v: number) => Math.round(v * 1000) / 1000;
    const roundSide = (s: SideResult) => ({ prefill_ms: r3(s.prefill_ms), decode_ms_per_token: r3(s.decode_ms_per_token), llm_ms: r3(s.llm_ms), peak_rss_bytes: s.peak_rss_bytes });
    console.log(JSON.stringify({
      layers, prompt_tokens: promptTokens, decode_tokens: DECODE_TOKENS, threads, rounds, steps,
      llama_cpp: { ...roundSide(llama), rounds: llamaRounds.map(roundSide), ...llamaInfo },
      variants: rows.map((r) => ({
        name: r.name, ...roundSide(r), rounds: oursRounds.get(r.name)!.map(roundSide),
        llama_over_ours: r3(r.llama_over_ours), prefill_llama_over_ours: r3(r.prefill_llama_over_ours), decode_llama_over_ours: r3(r.decode_llama_over_ours),
      })),
    }));
  }
  return 0;
}

await runMain('llm-step.ts', () => main(process.argv.slice(2)));
