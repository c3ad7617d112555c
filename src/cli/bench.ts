// `sqap-vla bench`: time variants of one checkpoint side by side, in one process, on the same input: per variant
// the median vision, prefill and per-token decode time, the whole step, resident memory, and ratios to the first
// variant. Pruned variants also report the pruning overhead (choosing + gathering tokens, measured inside the
// prefill, plus the extra scoring work of layer K-1's attention, measured on that attention's shapes).
import v8 from 'node:v8';
import vm from 'node:vm';
import { UserError } from '../errors.js';
import { parseOptions } from './args.js';
import { readImageFile, type RgbImage } from '../io/image.js';
import { ACTION_DIMS } from '../models/openvla.js';
import { loadPolicy, weightsKey, type LoadedPolicy, type PolicyResult } from '../policy.js';
import { scoreRequest, type RobotContext } from '../prune/index.js';
import { mulberry32 } from '../random.js';
import type { Backend } from '../tensor/backend.js';
import { getBackend } from '../tensor/backends/index.js';
import { Tensor } from '../tensor/tensor.js';
import { parseVariantList } from '../variant.js';
import { parseBackendName } from './act.js';
import { progressBar } from './progress.js';

const HELP = `usage: sqap-vla bench --model DIR --variants V1,V2,... [--steps N] [--warmup N] [--image FILE]
                     [--input-ids IDS] [--eef-pixel U,V] [--backend auto|ref|native] [--json]

Runs each variant (docs: README "Variants") in this process, one after another, freeing the previous one, on the
same input (consecutive variants that differ only in pruning, e.g. w4a8+had,w4a8+had+sqap@0.5, share one load), and prints per variant the medians of vision_ms (towers + projector), prefill_ms (the prompt pass),
decode_ms_per_token (each of the ${ACTION_DIMS - 1} single-token passes), step_ms (one whole predict), rss_bytes (largest resident
set seen while the variant ran), and each one's ratio to the first variant.
  --steps N         timed steps per variant (default 3); --warmup N untimed steps first (default 1)
  --image FILE      input image (default: a seeded noise image of the model's input size)
  --input-ids IDS   prompt ids (default: BOS, 32 seeded ids, the space token: 1 + 256 + 33 prompt tokens on an
                    OpenVLA-7B-shaped model, as OpenVLA's prompts are)
  --eef-pixel U,V   end-effector pixel for sqap variants (default: the image centre)
  --json            last line: {"variants":[{"name","vision_ms","prefill_ms","decode_ms_per_token","step_ms","rss_bytes",...}]}`;

interface VariantRow {
  name: string;
  vision_ms: number;
  prefill_ms: number;
  decode_ms_per_token: number;
  step_ms: number;
  rss_bytes: number;
  /** pruned variants: median of choosing + gathering kept tokens, plus the scoring work in layer K-1's attention */
  pruning_overhead_ms?: number;
  pruning_overhead_share?: number;
  kept_visual_tokens?: number;
  ratio: { vision: number; prefill: number; decode_per_token: number; step: number; rss: number };
}

export async function runBenchCommand(argv: string[]): Promise<number> {
  const values = parseOptions(argv, {
      model: { type: 'string' },
      variants: { type: 'string' },
      steps: { type: 'string', default: '3' },
      warmup: { type: 'string', default: '1' },
      image: { type: 'string' },
      'input-ids': { type: 'string' },
      'eef-pixel': { type: 'string' },
      backend: { type: 'string', default: 'auto' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    }, 'bench');
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (!values.model) throw new UserError('bench needs --model DIR (make one with: sqap-vla synth --preset openvla-7b --out DIR)');
  if (!values.variants) throw new UserError('bench needs --variants V1,V2,... (e.g. base,sqap@0.5)');
  const variants = parseVariantList(values.variants);
  const steps = count(values.steps!, '--steps', 1);
  const warmup = count(values.warmup!, '--warmup', 0);
  const backend = getBackend(parseBackendName(values.backend!));
  const userImage = values.image ? readImageFile(values.image) : undefined;
  const gc = exposeGc();
  const rows: VariantRow[] = [];
  // consecutive variants that differ only in pruning share one load (quantizing a 7B at load takes minutes)
  let previous: LoadedPolicy | undefined;
  for (const [index, variant] of variants.entries()) {
    const reuse = previous && weightsKey(previous.variant) === weightsKey(variant) ? previous : undefined;
    previous = undefined;
    if (!reuse) await releaseMemory(gc);
    let bar: ReturnType<typeof progressBar> | undefined;
    let policy: LoadedPolicy | undefined = loadPolicy(values.model, variant, { backend, reuse, onProgress: (done, total) => (bar ??= progressBar(`load ${variant.name}`, total, 'tensors')).update(done) });
    bar?.stop();
    const image = userImage ?? noiseImage(policy.model.preprocessor.backbones[0]);
    const inputIds = values['input-ids'] ? parseIdList(values['input-ids']) : defaultPromptIds(policy.model.llm.config.vocabSize);
    const robot: RobotContext = { eefPixel: values['eef-pixel'] ? parsePixel(values['eef-pixel']) : [image.width / 2, image.height / 2] };
    const results: PolicyResult[] = [];
    let rss = process.memoryUsage().rss;
    const stepBar = progressBar(`bench ${variant.name}`, warmup + steps, 'steps');
    for (let i = 0; i < warmup + steps; i++) {
      const start = performance.now();
      const result = policy.predict({ image, inputIds, robot });
      result.timingsMs.total = performance.now() - start;
      if (i >= warmup) results.push(result);
      rss = Math.max(rss, process.memoryUsage().rss);
      stepBar.update(i + 1);
    }
    stepBar.stop();
    const row: VariantRow = {
      name: variant.name,
      vision_ms: median(results.map((r) => r.timingsMs.vision)),
      prefill_ms: median(results.map((r) => r.timingsMs.prefill)),
      decode_ms_per_token: median(results.map((r) => r.timingsMs.decode / (ACTION_DIMS - 1))),
      step_ms: median(results.map((r) => r.timingsMs.total)),
      rss_bytes: rss,
      ratio: { vision: 1, prefill: 1, decode_per_token: 1, step: 1, rss: 1 },
    };
    if (policy.prune) {
      const scoring = scoringOverheadMs(backend, policy, inputIds.length + (results[0].pruning?.visual_tokens ?? 0));
      row.pruning_overhead_ms = median(results.map((r) => r.timingsMs.pruning)) + scoring;
      row.pruning_overhead_share = row.pruning_overhead_ms / row.step_ms;
      row.kept_visual_tokens = results[0].keptVisualTokens?.length;
    }
    rows.push(row);
    const next = variants[index + 1];
    if (next && weightsKey(next) === weightsKey(variant)) previous = policy;
    policy = undefined; // free the weights before the next variant loads, unless it shares them
  }
  const base = rows[0];
  for (const row of rows) {
    row.ratio = {
      vision: row.vision_ms / base.vision_ms,
      prefill: row.prefill_ms / base.prefill_ms,
      decode_per_token: row.decode_ms_per_token / base.decode_ms_per_token,
      step: row.step_ms / base.step_ms,
      rss: row.rss_bytes / base.rss_bytes,
    };
  }
  printTable(rows, steps, backend.name);
  if (values.json) console.log(JSON.stringify({ model: values.model, backend: backend.name, steps, warmup, variants: rows.map(rounded) }));
  return 0;
}

/**
 * The scoring work pruning adds to layer K-1's attention: the same attention call on the prefill's shapes (random
 * q, k, v) with and without the variant's score request; median of 5 of each.
 */
function scoringOverheadMs(backend: Backend, policy: LoadedPolicy, tokens: number): number {
  const { heads, kvHeads, headDim } = policy.model.llm.config;
  const next = mulberry32(7);
  const tensor = (shape: number[]) => Tensor.f32(shape, Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => next() - 0.5));
  const q = tensor([tokens, heads, headDim]);
  const k = tensor([tokens, kvHeads, headDim]);
  const v = tensor([tokens, kvHeads, headDim]);
  const layout = { tokens, visualStart: 1, visualCount: tokens - 1 };
  const request = scoreRequest(policy.prune!.method, layout, policy.prune!.queryTokens);
  const time = (withScores: boolean) => {
    const samples: number[] = [];
    for (let i = 0; i < 5; i++) {
      const start = performance.now();
      backend.attention(q, k, v, { causal: true, scores: withScores ? request : undefined });
      samples.push(performance.now() - start);
    }
    return median(samples);
  };
  time(true); // warm
  return Math.max(0, time(true) - time(false));
}

function printTable(rows: VariantRow[], steps: number, backendName: string): void {
  console.log(`medians of ${steps} step(s), backend ${backendName}; ratios (x) are to ${rows[0].name}`);
  const header = ['variant', 'vision_ms', 'prefill_ms', 'decode_ms/tok', 'step_ms', 'rss_GiB', 'prefill x', 'decode x', 'step x', 'prune overhead'];
  const lines = rows.map((r) => [
    r.name,
    r.vision_ms.toFixed(1),
    r.prefill_ms.toFixed(1),
    r.decode_ms_per_token.toFixed(1),
    r.step_ms.toFixed(1),
    (r.rss_bytes / 2 ** 30).toFixed(2),
    r.ratio.prefill.toFixed(3),
    r.ratio.decode_per_token.toFixed(3),
    r.ratio.step.toFixed(3),
    r.pruning_overhead_ms === undefined ? '-' : `${r.pruning_overhead_ms.toFixed(2)} ms (${(100 * r.pruning_overhead_share!).toFixed(2)}%)`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  for (const line of [header, ...lines]) console.log(line.map((cell, i) => cell.padEnd(widths[i])).join('  '));
}

function rounded(row: VariantRow): VariantRow {
  const r3 = (v: number) => Math.round(v * 1000) / 1000;
  return {
    ...row,
    vision_ms: r3(row.vision_ms),
    prefill_ms: r3(row.prefill_ms),
    decode_ms_per_token: r3(row.decode_ms_per_token),
    step_ms: r3(row.step_ms),
    ...(row.pruning_overhead_ms !== undefined ? { pruning_overhead_ms: r3(row.pruning_overhead_ms), pruning_overhead_share: Math.round(row.pruning_overhead_share! * 1e5) / 1e5 } : {}),
    ratio: Object.fromEntries(Object.entries(row.ratio).map(([k, v]) => [k, Math.round(v * 1e4) / 1e4])) as VariantRow['ratio'],
  };
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** BOS, 32 seeded ids from the ordinary text range, the space token (or the last id on a small vocabulary) */
function defaultPromptIds(vocab: number): number[] {
  const next = mulberry32(3);
  const textIds = Math.min(vocab - 256, 32000); // below the action bins (the last 256 ids of the real vocabulary)
  const space = vocab > 29871 ? 29871 : textIds - 1;
  return [1, ...Array.from({ length: 32 }, () => 3 + Math.floor(next() * (textIds - 4))), space];
}

function noiseImage(size: { width: number; height: number }): RgbImage {
  const next = mulberry32(5);
  return { width: size.width, height: size.height, data: Uint8Array.from({ length: size.width * size.height * 3 }, () => Math.floor(next() * 256)) };
}

function count(text: string, flag: string, min: number): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < min) throw new UserError(`${flag} must be an integer >= ${min}, got '${text}'`);
  return value;
}

function parseIdList(text: string): number[] {
  const ids = text.split(',').map((s) => s.trim());
  if (ids.some((s) => !/^\d+$/.test(s))) throw new UserError(`--input-ids must be comma-separated non-negative integers, got '${text}'`);
  return ids.map(Number);
}

function parsePixel(text: string): [number, number] {
  const parts = text.split(',').map(Number);
  if (parts.length !== 2 || parts.some((v) => !Number.isFinite(v))) throw new UserError(`--eef-pixel needs U,V (two numbers), got '${text}'`);
  return [parts[0], parts[1]];
}

/**
 * Collect garbage and let the event loop turn: V8 frees large ArrayBuffer backing stores (the previous variant's
 * weights) only after the current task, so a synchronous gc() alone leaves them counted in the next variant's RSS.
 */
async function releaseMemory(gc: () => void): Promise<void> {
  gc();
  await new Promise((resolve) => setTimeout(resolve, 50));
  gc();
}

/** A gc() to call between variants (so one variant's freed weights do not count in the next one's RSS). */
function exposeGc(): () => void {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as (() => void) | undefined;
  return () => gc?.();
}
