// `sqap-vla eval`: every variant on the same episodes (tasks x seeds: the same initial states, so comparisons are
// paired), variant by variant, each in its own process that loads the policy once and runs lockstep batches of B
// episodes; W processes per variant split the batches. Results are appended to DIR/results.jsonl in plan order
// as whole batches finish, so a killed run resumes where it stopped and writes the same file.
import { fork, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError } from '../errors.js';
import { appendEpisodes, appendMeasurement, episodeKey, openResults, type EpisodeRecord, type EvalHeader } from './results.js';
import type { LockstepJob } from './lockstep.js';
import type { EvalPolicySource } from './policy-source.js';
import type { FromVariantProcess, ToVariantProcess } from './variant-process.js';

export interface EvalSpec {
  out: string;
  source: EvalPolicySource;
  /** canonical variant names; the first is the baseline of every comparison */
  variants: string[];
  tasks: string[];
  episodes: number;
  seed: number;
  /** lockstep batch size B */
  batch: number;
  /** processes per variant */
  workers: number;
  imageSize?: number;
  /** stop episodes after this many steps (the demo and quick looks; not part of a comparable result) */
  maxSteps?: number;
  /** file: URL of a module exporting createEnv (tests) */
  envModule?: string;
  onProgress?: (progress: EvalProgress) => void;
}

export interface EvalProgress {
  done: number;
  total: number;
  /** per variant, in spec order: successes and episodes so far (resumed ones included) */
  variants: { name: string; successes: number; episodes: number }[];
}

export interface EvalOutcome {
  header: EvalHeader;
  /** episodes run by this invocation (the rest were resumed) */
  ran: number;
  resumed: number;
  wallSeconds: number;
}

const BOOTSTRAP = fileURLToPath(new URL('./process-bootstrap.mjs', import.meta.url));
const VARIANT_ENTRY = new URL('./variant-process.ts', import.meta.url).href;

export function evalHeader(spec: EvalSpec): EvalHeader {
  return {
    type: 'eval',
    version: 1,
    model: spec.source.kind === 'model' ? spec.source.model : null,
    policy: spec.source.kind === 'model' ? 'model' : spec.source.module,
    variants: spec.variants,
    tasks: spec.tasks,
    episodes: spec.episodes,
    seed: spec.seed,
    image_size: spec.imageSize ?? null,
  };
}

/** The plan: for each variant, tasks in order, seeds seed..seed+episodes-1 (identical across variants). */
export function planEpisodes(tasks: string[], episodes: number, seed: number): { task: string; seed: number }[] {
  return tasks.flatMap((task) => Array.from({ length: episodes }, (_, i) => ({ task, seed: seed + i })));
}

export async function runEval(spec: EvalSpec): Promise<EvalOutcome> {
  if (!Number.isInteger(spec.episodes) || spec.episodes < 1) throw new UserError(`--episodes must be at least 1, got ${spec.episodes}.`);
  if (spec.variants.length === 0) throw new UserError('--variants lists no variant.');
  const started = performance.now();
  const header = evalHeader(spec);
  const done = openResults(spec.out, header);
  const doneKeys = new Set(done.map((r) => episodeKey(r.variant, r.task, r.seed)));
  const plan = planEpisodes(spec.tasks, spec.episodes, spec.seed);
  const tally = spec.variants.map((name) => {
    const own = done.filter((r) => r.variant === name);
    return { name, successes: own.filter((r) => r.success).length, episodes: own.length };
  });
  const total = plan.length * spec.variants.length;
  let finished = done.length;
  const report = () => spec.onProgress?.({ done: finished, total, variants: tally.map((t) => ({ ...t })) });
  report();
  let ran = 0;
  for (const [v, variant] of spec.variants.entries()) {
    const first = plan[0];
    const jobs: LockstepJob[] = plan
      .filter((e) => !doneKeys.has(episodeKey(variant, e.task, e.seed)))
      .map((e) => ({ ...e, ...(e === first ? { captureFrames: true } : {}) }));
    if (jobs.length === 0) continue;
    const chunks: LockstepJob[][] = [];
    for (let i = 0; i < jobs.length; i += spec.batch) chunks.push(jobs.slice(i, i + spec.batch));
    await runVariant(spec, variant, chunks, (records) => {
      appendEpisodes(spec.out, records);
      ran += records.length;
    }, (success) => {
      finished++;
      tally[v].episodes++;
      if (success) tally[v].successes++;
      report();
    });
  }
  return { header, ran, resumed: done.length, wallSeconds: (performance.now() - started) / 1000 };
}

/** Runs one variant's chunks on min(workers, chunks) processes; `write` gets whole chunks in chunk order. */
async function runVariant(
  spec: EvalSpec,
  variant: string,
  chunks: LockstepJob[][],
  write: (records: EpisodeRecord[]) => void,
  onEpisode: (success: boolean) => void,
): Promise<void> {
  const completed = new Map<number, EpisodeRecord[]>();
  let nextToWrite = 0;
  let nextToSend = 0;
  const measurements: { loadMs: number; modelRssMb: number; backend: string; rssPeakMb: number }[] = [];
  const processes = Math.max(1, Math.min(spec.workers, chunks.length));
  const children: ChildProcess[] = [];
  try {
    await Promise.all(
      Array.from({ length: processes }, () =>
        new Promise<void>((resolve, reject) => {
          const child = fork(BOOTSTRAP, [VARIANT_ENTRY], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced' });
          children.push(child);
          let ready: { loadMs: number; modelRssMb: number; backend: string } | undefined;
          let settled = false;
          const send = (message: ToVariantProcess) => child.send(message);
          const sendNext = () => {
            if (nextToSend < chunks.length) {
              const id = nextToSend++;
              send({ type: 'chunk', id, jobs: chunks[id] });
            } else {
              send({ type: 'exit' });
            }
          };
          child.on('message', (message: FromVariantProcess) => {
            if (message.type === 'ready') {
              ready = message;
              sendNext();
            } else if (message.type === 'episode') {
              onEpisode(message.success);
            } else if (message.type === 'chunk-done') {
              completed.set(message.id, message.records);
              while (completed.has(nextToWrite)) {
                write(completed.get(nextToWrite)!);
                completed.delete(nextToWrite++);
              }
              sendNext();
            } else if (message.type === 'bye') {
              if (ready) measurements.push({ ...ready, rssPeakMb: message.rssPeakMb });
              settled = true;
              resolve();
            } else if (message.type === 'fatal') {
              settled = true;
              reject(message.userError ? new UserError(message.message) : new Error(`variant ${variant}: ${message.message}`));
            }
          });
          child.on('error', (error) => {
            if (!settled) reject(error);
            settled = true;
          });
          child.on('exit', (code) => {
            if (!settled) reject(new Error(`the process running variant ${variant} exited with code ${code} before its episodes were done`));
            settled = true;
          });
          send({
            type: 'init',
            source: spec.source,
            variant,
            framesDir: join(spec.out, 'frames'),
            ...(spec.imageSize ? { imageSize: spec.imageSize } : {}),
            ...(spec.maxSteps ? { maxSteps: spec.maxSteps } : {}),
            ...(spec.envModule ? { envModule: spec.envModule } : {}),
          });
        }),
      ),
    );
  } finally {
    for (const child of children) if (child.exitCode === null && child.connected) child.kill();
  }
  if (measurements.length) {
    appendMeasurement(spec.out, {
      type: 'variant',
      variant,
      load_ms: Math.max(...measurements.map((m) => m.loadMs)),
      rss_peak_mb: Math.max(...measurements.map((m) => m.rssPeakMb)),
      model_rss_mb: Math.max(...measurements.map((m) => m.modelRssMb)),
      backend: measurements[0].backend,
    });
  }
}
