// From a results file to the comparison: per variant and task success with Wilson intervals, mean episode length,
// median step latency by part, memory; per variant against the first, the paired difference with its exact McNemar
// p-value and the speedup (first variant's median step time / this variant's).
import type { EvalResults, EpisodeRecord, StepMs } from './results.js';
import { median, pairedComparison, wilsonInterval, type PairedComparison } from './stats.js';

export interface TaskRow {
  task: string;
  episodes: number;
  successes: number;
  success_rate: number;
  ci95: [number, number];
  mean_steps: number;
}

export interface VariantSummary {
  name: string;
  episodes: number;
  successes: number;
  success_rate: number;
  ci95: [number, number];
  mean_steps: number;
  /** median over episodes of each episode's median step time, per part (ms) */
  step_ms: StepMs;
  /** first variant's total step time / this variant's */
  speedup: number;
  /** paired with the first variant (undefined for the first itself) */
  vs_first?: PairedComparison;
  rss_peak_mb?: number;
  model_rss_mb?: number;
  load_ms?: number;
  backend?: string;
  tasks: TaskRow[];
  /** episodes that ended with an error (policy, env, invalid action) */
  errors: number;
}

export interface EvalSummary {
  tasks: string[];
  episodes_per_task: number;
  seed: number;
  model: string | null;
  complete: boolean;
  variants: VariantSummary[];
}

function rate(records: EpisodeRecord[]): { successes: number; success_rate: number; ci95: [number, number]; mean_steps: number } {
  const successes = records.filter((r) => r.success).length;
  return {
    successes,
    success_rate: records.length ? successes / records.length : 0,
    ci95: wilsonInterval(successes, records.length),
    mean_steps: records.length ? records.reduce((sum, r) => sum + r.steps, 0) / records.length : 0,
  };
}

function medianStepMs(records: EpisodeRecord[]): StepMs {
  const part = (key: keyof StepMs) => median(records.map((r) => r.step_ms[key] ?? Number.NaN));
  const result: StepMs = { vision: part('vision'), llm: part('llm'), total: part('total') };
  for (const key of ['prefill', 'decode', 'pruning'] as const) {
    const value = part(key);
    if (Number.isFinite(value)) result[key] = value;
  }
  return result;
}

export function summarizeEval(results: EvalResults): EvalSummary {
  const { header } = results;
  const byVariant = new Map(header.variants.map((v) => [v, results.episodes.filter((r) => r.variant === v)]));
  const firstRecords = byVariant.get(header.variants[0]) ?? [];
  const firstStep = medianStepMs(firstRecords).total;
  const variants = header.variants.map((name, index): VariantSummary => {
    const own = byVariant.get(name)!;
    const step = medianStepMs(own);
    const measurement = results.measurements.get(name);
    return {
      name,
      episodes: own.length,
      ...rate(own),
      step_ms: step,
      speedup: firstStep > 0 && step.total > 0 ? firstStep / step.total : Number.NaN,
      ...(index > 0 ? { vs_first: pairedComparison(firstRecords, own) } : {}),
      ...(measurement
        ? { rss_peak_mb: measurement.rss_peak_mb, model_rss_mb: measurement.model_rss_mb, load_ms: measurement.load_ms, backend: measurement.backend }
        : {}),
      tasks: header.tasks.map((task) => {
        const records = own.filter((r) => r.task === task);
        return { task, episodes: records.length, ...rate(records) };
      }),
      errors: own.filter((r) => r.failure_reason !== undefined).length,
    };
  });
  return {
    tasks: header.tasks,
    episodes_per_task: header.episodes,
    seed: header.seed,
    model: header.model,
    complete: variants.every((v) => v.episodes === header.tasks.length * header.episodes),
    variants,
  };
}
