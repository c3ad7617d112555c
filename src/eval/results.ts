// The on-disk record of an evaluation, written as results come so a killed run resumes where it stopped:
//   DIR/results.jsonl      line 1: the run's header (what was asked); then one line per episode, in plan order
//                          (variant by variant, task by task, seed by seed; whole lockstep batches at a time).
//                          Deterministic for a deterministic policy: a resumed run writes the same file.
//   DIR/measurements.jsonl one line per variant load (load time, resident memory): measurements, not results.
// A folder holding another run's results is refused; the same command resumes.
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { UserError } from '../errors.js';

export const RESULTS_FILE = 'results.jsonl';
export const MEASUREMENTS_FILE = 'measurements.jsonl';

export interface EvalHeader {
  type: 'eval';
  version: 1;
  /** absolute checkpoint directory, or null for a policy module */
  model: string | null;
  /** 'model' or the policy module's path */
  policy: string;
  variants: string[];
  tasks: string[];
  episodes: number;
  seed: number;
  image_size: number | null;
}

/** Per-step latency of one episode: the median over its steps of each part (ms). */
export interface StepMs {
  vision: number;
  llm: number;
  total: number;
  prefill?: number;
  decode?: number;
  /** choosing and gathering kept tokens (inside prefill) */
  pruning?: number;
}

export interface EpisodeRecord {
  type: 'episode';
  variant: string;
  task: string;
  seed: number;
  success: boolean;
  steps: number;
  /** hash of the first observation (image, end-effector pose, proprioception): equal across variants when paired */
  init_hash: string;
  step_ms: StepMs;
  failure_reason?: string;
}

export interface VariantMeasurement {
  type: 'variant';
  variant: string;
  load_ms: number;
  /** peak resident set of the process that ran the variant (MiB) */
  rss_peak_mb: number;
  /** resident set added by loading the model (MiB) */
  model_rss_mb: number;
  backend: string;
}

export interface EvalResults {
  header: EvalHeader;
  episodes: EpisodeRecord[];
  /** the last measurement of each variant */
  measurements: Map<string, VariantMeasurement>;
}

export const episodeKey = (variant: string, task: string, seed: number): string => `${variant}\u0000${task}\u0000${seed}`;

function parseLines(path: string): { lines: unknown[]; completeBytes: number } {
  const text = readFileSync(path, 'utf8');
  const end = text.lastIndexOf('\n') + 1; // a line without its newline was cut by a kill: not a result
  const lines: unknown[] = [];
  for (const [i, line] of text.slice(0, end).split('\n').entries()) {
    if (!line.trim()) continue;
    try {
      lines.push(JSON.parse(line));
    } catch {
      throw new UserError(`${path} line ${i + 1} is not JSON; the results file is damaged (delete it to start over).`);
    }
  }
  return { lines, completeBytes: Buffer.byteLength(text.slice(0, end)) };
}

function describeDifference(old: EvalHeader, wanted: EvalHeader): string {
  const fields = (Object.keys(wanted) as (keyof EvalHeader)[]).filter((k) => !isDeepStrictEqual(old[k], wanted[k]));
  return fields.map((k) => `${k} ${JSON.stringify(old[k])} there, ${JSON.stringify(wanted[k])} now`).join('; ');
}

/**
 * Opens DIR for this run: a new or empty folder gets the header; a folder with the same run's results resumes
 * (a line cut by a kill is dropped); anything else is refused with one line. Returns the episodes already done.
 */
export function openResults(dir: string, header: EvalHeader): EpisodeRecord[] {
  if (existsSync(dir) && !statSync(dir).isDirectory()) throw new UserError(`--out ${dir} is a file, not a folder.`);
  mkdirSync(dir, { recursive: true });
  const path = join(dir, RESULTS_FILE);
  if (!existsSync(path)) {
    if (readdirSync(dir).length > 0) throw new UserError(`output folder ${dir} is not empty and holds no ${RESULTS_FILE}; choose a new or empty --out.`);
    writeFileSync(path, `${JSON.stringify(header)}\n`);
    return [];
  }
  const { lines, completeBytes } = parseLines(path);
  const old = lines[0] as EvalHeader | undefined;
  if (!old || old.type !== 'eval') throw new UserError(`${path} is not an eval results file; choose another --out.`);
  if (!isDeepStrictEqual(old, header)) {
    throw new UserError(`output folder ${dir} holds the results of another run (${describeDifference(old, header)}); choose another --out, or rerun that run's exact command to resume it.`);
  }
  if (completeBytes < statSync(path).size) truncateSync(path, completeBytes);
  return lines.slice(1).filter((line): line is EpisodeRecord => (line as EpisodeRecord).type === 'episode');
}

export function appendEpisodes(dir: string, records: EpisodeRecord[]): void {
  if (records.length) appendFileSync(join(dir, RESULTS_FILE), records.map((r) => `${JSON.stringify(r)}\n`).join(''));
}

export function appendMeasurement(dir: string, measurement: VariantMeasurement): void {
  appendFileSync(join(dir, MEASUREMENTS_FILE), `${JSON.stringify(measurement)}\n`);
}

/** Reads a results folder (for the report). */
export function readResults(dir: string): EvalResults {
  const path = join(dir, RESULTS_FILE);
  if (!existsSync(path)) throw new UserError(`${dir} holds no ${RESULTS_FILE}; run 'sqap-vla eval ... --out ${dir}' first.`);
  const { lines } = parseLines(path);
  const header = lines[0] as EvalHeader;
  if (!header || header.type !== 'eval') throw new UserError(`${path} is not an eval results file.`);
  const episodes = lines.slice(1).filter((line): line is EpisodeRecord => (line as EpisodeRecord).type === 'episode');
  const measurements = new Map<string, VariantMeasurement>();
  const measurementsPath = join(dir, MEASUREMENTS_FILE);
  if (existsSync(measurementsPath)) {
    for (const line of parseLines(measurementsPath).lines as VariantMeasurement[]) if (line.type === 'variant') measurements.set(line.variant, line);
  }
  return { header, episodes, measurements };
}
