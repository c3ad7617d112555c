// Runs many episodes (tasks x seeds) of any policy, spread over worker threads, with results merged in job order,
// so the same seeds give the same results whatever the worker count. One episode is episode.ts's runEpisode.
//
// A policy that is a JS function (PolicyFactory) cannot cross a thread and runs in the main thread; policies named
// by a string ('expert') or by a module path (PolicyModuleSpec) are constructed inside each worker.
import { existsSync, mkdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { UserError } from '../errors.js';
import { writeEpisode, type EpisodeIndexEntry, type EpisodeRecording } from './demo-format.js';
import { wilsonInterval } from './statistics.js';
import { copyImage, errorMessage, runEpisode, type StepInfo } from './episode.js';
import type { CameraParams, Env, EpisodeResult, Observation, Policy, RgbImage, TaskInfo } from './types.js';
import type { SimEnv } from './env.js';
import type { ExpertOptions } from './experts.js';

/** Builds the policy for one episode; it may use the env's privileged state (scripted experts do). */
export type PolicyFactory = (env: Env) => Policy | Promise<Policy>;

/**
 * A policy that a worker thread can construct: `module` (a path, relative to the working directory, or a file: URL)
 * exports `exportName` (default `createPolicyFactory`): `(options) => PolicyFactory | Promise<PolicyFactory>`, called
 * once per thread (load weights there), whose result is called once per episode.
 */
export interface PolicyModuleSpec {
  module: string;
  exportName?: string;
  options?: unknown;
}

/** The scripted expert with options (structured-cloneable, so it crosses to worker threads). */
export interface ExpertPolicySpec {
  expert: ExpertOptions;
}

export type PolicySpec = 'expert' | ExpertPolicySpec | PolicyModuleSpec | PolicyFactory;

export interface RunProgress {
  done: number;
  total: number;
  result: EpisodeResult;
}

export interface RunSpec {
  tasks: string[];
  /** episodes per task; episode i of a task uses seed + i */
  episodes: number;
  seed: number;
  policy: PolicySpec;
  /** write each episode's agent-view frames as PNGs to DIR/<task>/seed_<seed>/step_NNNN.png */
  frames?: string;
  /** default min(os.availableParallelism(), jobs); 1 runs in the main thread */
  workers?: number;
  /** camera image side in pixels, passed to createEnv */
  imageSize?: number;
  /** module exporting createEnv (default ./env.ts); for tests and other testbeds */
  envModule?: string;
  onProgress?: (progress: RunProgress) => void;
}

export interface TaskSummary {
  success_rate: number;
  episodes: number;
  successes: number;
  mean_steps: number;
  /** Wilson 95% interval of the success rate */
  ci95: [number, number];
}

export interface RunSummary {
  success_rate: number;
  episodes: number;
  successes: number;
  ci95: [number, number];
  tasks: Record<string, TaskSummary>;
  /** in job order: task by task, seeds ascending */
  results: EpisodeResult[];
  wall_s: number;
  workers: number;
}

/** One unit of work: episode `index` of the run (tasks x seeds, task-major). */
export interface EpisodeJob {
  index: number;
  taskId: string;
  seed: number;
}

/** A recorded episode as the recorder needs it after the files are written (the low-dim data, for statistics). */
export interface RecordedEpisode {
  entry: EpisodeIndexEntry;
  task: TaskInfo;
  /** the actions a policy is trained to imitate: the policy's labels when it gave them (expert_actions), else those taken */
  actions: number[][];
  proprio: number[][];
  camera: CameraParams;
  imageSize: [number, number];
}

export interface JobOutcome {
  result: EpisodeResult;
  recorded?: RecordedEpisode;
}

/** Everything a thread needs to run jobs; must be structured-cloneable except a function policy. */
export interface JobSettings {
  policy: PolicySpec;
  render: boolean;
  imageSize?: number;
  framesDir?: string;
  /** write episodes in the demonstration format into this directory (see record.ts) */
  recordDir?: string;
  /** file: URL of a module exporting createEnv; default ./env.ts */
  envModule?: string;
}

export function planJobs(tasks: string[], episodes: number, seed: number): EpisodeJob[] {
  const jobs: EpisodeJob[] = [];
  for (const taskId of tasks) {
    for (let i = 0; i < episodes; i++) jobs.push({ index: jobs.length, taskId, seed: seed + i });
  }
  return jobs;
}

/** Turns 'expert' or a module spec into a factory; a function passes through. */
export async function loadPolicyFactory(policy: PolicySpec): Promise<PolicyFactory> {
  if (typeof policy === 'function') return policy;
  if (policy === 'expert' || (typeof policy === 'object' && 'expert' in policy)) {
    const options = policy === 'expert' ? {} : policy.expert;
    const { createExpert } = await import('./experts.js');
    return (env) => createExpert(env, env.seed, options);
  }
  let module: Record<string, unknown>;
  try {
    module = await importUserModule(policy.module);
  } catch (error) {
    throw new UserError(`Policy module ${policy.module} could not be loaded: ${errorMessage(error).split('\n')[0]}`);
  }
  const exportName = policy.exportName ?? 'createPolicyFactory';
  const make = module[exportName];
  if (typeof make !== 'function') {
    throw new UserError(`Policy module ${policy.module} has no exported function '${exportName}'.`);
  }
  try {
    const factory = await make(policy.options);
    if (typeof factory !== 'function') throw new Error(`${exportName} returned ${typeof factory}, not a function (env) => Policy`);
    return factory as PolicyFactory;
  } catch (error) {
    // A UserError (a missing checkpoint, a bad option) ends the run with its one line; any other throw is the
    // policy's failure, and a throwing policy fails its episodes (README): each episode says why.
    if (error instanceof UserError) throw error;
    const reason = `${exportName} threw: ${errorMessage(error).split('\n')[0]}`;
    return () => {
      throw new Error(reason);
    };
  }
}

/** A module path as a file: URL, checked to exist, so that every thread resolves it the same way. */
export function resolveModulePath(module: string, what = 'Module'): string {
  if (module.startsWith('file:')) return module;
  const path = isAbsolute(module) ? module : resolve(process.cwd(), module);
  if (!existsSync(path)) throw new UserError(`${what} ${module} does not exist.`);
  return pathToFileURL(path).href;
}

function isExpert(policy: PolicySpec): boolean {
  return policy === 'expert' || (typeof policy === 'object' && 'expert' in policy);
}

function resolvePolicy(policy: PolicySpec): PolicySpec {
  return typeof policy === 'object' && 'module' in policy ? { ...policy, module: resolveModulePath(policy.module, 'Policy module') } : policy;
}

/** Checks the spec shared by run and record; returns the policy with its module resolved. */
export function jobSettingsFor(spec: RunSpec, extra: { render?: boolean; recordDir?: string }): JobSettings {
  if (!Number.isInteger(spec.episodes) || spec.episodes < 1) {
    throw new UserError(`episodes must be a positive integer, got ${spec.episodes}.`);
  }
  if (spec.workers !== undefined && (!Number.isInteger(spec.workers) || spec.workers < 1)) {
    throw new UserError(`workers must be a positive integer, got ${spec.workers}.`);
  }
  const policy = resolvePolicy(spec.policy);
  return {
    policy,
    // scripted experts read privileged state; only image policies and frame dumps need rendering
    render: extra.render ?? (!isExpert(policy) || spec.frames !== undefined),
    ...(spec.imageSize ? { imageSize: spec.imageSize } : {}),
    ...(spec.frames !== undefined ? { framesDir: spec.frames } : {}),
    ...(extra.recordDir !== undefined ? { recordDir: extra.recordDir } : {}),
    ...(spec.envModule !== undefined ? { envModule: resolveModulePath(spec.envModule, 'Env module') } : {}),
  };
}

export function episodeFramesDir(framesDir: string, taskId: string, seed: number): string {
  return join(framesDir, taskId, `seed_${seed}`);
}

/** Runs one job in the current thread: create the env and the policy, run, write frames/recordings, close. */
export async function executeJob(job: EpisodeJob, factory: PolicyFactory, settings: JobSettings): Promise<JobOutcome> {
  const started = performance.now();
  const failed = (reason: string): JobOutcome => ({
    result: { taskId: job.taskId, seed: job.seed, success: false, steps: 0, failureReason: reason, wallMs: 0 },
  });
  const { createEnv } = (settings.envModule ? await importUserModule(settings.envModule) : await import('./env.js')) as typeof import('./env.js');
  let env: Env;
  try {
    env = await createEnv(job.taskId, job.seed, {
      render: settings.render,
      ...(settings.imageSize ? { imageSize: settings.imageSize } : {}),
    });
  } catch (error) {
    return failed(`env creation failed: ${errorMessage(error)}`);
  }
  try {
    let policy: Policy;
    try {
      policy = await factory(env);
    } catch (error) {
      return failed(`policy construction failed: ${errorMessage(error)}`);
    }
    const recording = settings.recordDir ? startRecording(job, env) : undefined;
    const { frames, ...result } = await runEpisode(env, policy, {
      recordFrames: Boolean(settings.framesDir || settings.recordDir),
      render: settings.render,
      ...(recording ? { onStep: recording.onStep, onObserve: recording.onObserve } : {}),
    });
    result.wallMs = performance.now() - started;
    if (settings.framesDir && frames) await writeEpisodePngs(settings.framesDir, job, frames);
    if (!recording || !settings.recordDir) return { result };
    return { result, recorded: recording.finish(settings.recordDir, result, frames ?? []) };
  } finally {
    env.close();
  }
}

async function writeEpisodePngs(framesDir: string, job: EpisodeJob, frames: RgbImage[]): Promise<void> {
  const { writePng } = await import('../io/image.js');
  const dir = episodeFramesDir(framesDir, job.taskId, job.seed);
  mkdirSync(dir, { recursive: true });
  frames.forEach((frame, t) => writePng(join(dir, `step_${String(t).padStart(4, '0')}.png`), frame));
}

function startRecording(job: EpisodeJob, env: Env) {
  const actions: number[][] = [];
  const labels: number[][] = [];
  const proprio: number[][] = [];
  const eePosition: number[][] = [];
  const eeQuaternion: number[][] = [];
  const wristFrames: RgbImage[] = [];
  // privileged object positions at each observation (envs that expose them: the testbed's SimEnv); never given to a
  // policy, recorded for diagnostics and for train's auxiliary vision targets (docs/demonstrations.md)
  const privileged = (env as Partial<Pick<SimEnv, 'privileged'>>).privileged?.bind(env);
  const objectPositions: Record<string, number[][]> = {};
  let fixturePositions: Record<string, number[]> | undefined;
  let first: Observation | undefined;
  return {
    onObserve(_step: number): void {
      if (!privileged) return;
      const state = privileged();
      for (const [name, o] of Object.entries(state.objects)) (objectPositions[name] ??= []).push([...o.position]);
      fixturePositions ??= Object.fromEntries(state.fixtures.map((f) => [f.name, [f.position[0], f.position[1], 0]]));
    },
    onStep({ observation, action, label }: StepInfo): void {
      first ??= observation;
      actions.push([...action]);
      if (label) labels.push([...label]);
      proprio.push([...observation.proprio]);
      eePosition.push([...observation.eePosition]);
      eeQuaternion.push([...observation.eeQuaternion]);
      if (observation.wristImage) wristFrames.push(copyImage(observation.wristImage));
    },
    finish(dir: string, result: EpisodeResult, frames: RgbImage[]): RecordedEpisode {
      const observation = first ?? env.observe({ render: true });
      const withWrist = observation.wristCamera && wristFrames.length === frames.length && frames.length > 0;
      const recording: EpisodeRecording = {
        index: job.index,
        taskId: job.taskId,
        suite: env.task.suite,
        seed: job.seed,
        instruction: env.task.instruction,
        success: result.success,
        ...(result.failureReason !== undefined ? { failureReason: result.failureReason } : {}),
        camera: observation.camera,
        ...(withWrist ? { wristCamera: observation.wristCamera, wristFrames } : {}),
        actions,
        ...(labels.length === actions.length && labels.length > 0 ? { expertActions: labels } : {}),
        proprio,
        eePosition,
        eeQuaternion,
        frames,
        ...(privileged && Object.keys(objectPositions).length > 0
          ? {
              objectPositions: Object.fromEntries(Object.entries(objectPositions).map(([k, v]) => [k, v.slice(0, actions.length)])),
              fixturePositions: fixturePositions ?? {},
            }
          : {}),
      };
      const entry = writeEpisode(dir, recording);
      return {
        entry,
        task: { ...env.task },
        actions: recording.expertActions ?? actions,
        proprio,
        camera: observation.camera,
        imageSize: [observation.camera.width, observation.camera.height],
      };
    },
  };
}

/** Runs all jobs, in the main thread or in `workers` worker threads; outcomes come back in job order. */
export async function runJobs(
  jobs: EpisodeJob[],
  settings: JobSettings,
  workers: number,
  onOutcome?: (outcome: JobOutcome, done: number) => void,
): Promise<JobOutcome[]> {
  const outcomes: JobOutcome[] = new Array(jobs.length);
  let done = 0;
  const store = (outcome: JobOutcome, index: number): void => {
    outcomes[index] = outcome;
    onOutcome?.(outcome, ++done);
  };
  if (typeof settings.policy === 'function' || workers <= 1 || jobs.length <= 1) {
    const factory = await loadPolicyFactory(settings.policy);
    for (const job of jobs) store(await executeJob(job, factory, settings), job.index);
    return outcomes;
  }
  const queue = [...jobs];
  const threads = Array.from({ length: Math.min(workers, jobs.length) }, () => runWorker(queue, settings, store));
  await Promise.all(threads);
  return outcomes;
}

/** Message protocol between runJobs and runner-worker.ts. */
export type ToWorker = { type: 'job'; job: EpisodeJob };
export type FromWorker =
  | { type: 'ready' }
  | { type: 'outcome'; index: number; outcome: JobOutcome }
  | { type: 'fatal'; message: string; userError: boolean };

const BOOTSTRAP_URL = new URL('./worker-bootstrap.mjs', import.meta.url);
/** Running from TypeScript sources (tsx) or from the compiled dist/ (plain node). */
const FROM_SOURCE = import.meta.url.endsWith('.ts');
const WORKER_ENTRY_URL = new URL(FROM_SOURCE ? './runner-worker.ts' : './runner-worker.js', import.meta.url);
const TYPESCRIPT_MODULE = /\.[mc]?ts$/;

function needsTypeScript(settings: JobSettings): boolean {
  return FROM_SOURCE || (typeof settings.policy === 'object' && 'module' in settings.policy && TYPESCRIPT_MODULE.test(settings.policy.module)) || TYPESCRIPT_MODULE.test(settings.envModule ?? '');
}

let typeScriptLoader: Promise<void> | undefined;

/** Imports a user module; a .ts one (a policy or env written in TypeScript) gets tsx's loader first under plain node. */
async function importUserModule(url: string): Promise<Record<string, unknown>> {
  if (!FROM_SOURCE && TYPESCRIPT_MODULE.test(url)) {
    typeScriptLoader ??= import('tsx/esm/api').then(({ register }) => void register());
    await typeScriptLoader;
  }
  return (await import(url)) as Record<string, unknown>;
}

/** One worker thread pulling jobs from the shared queue until it is empty. */
function runWorker(
  queue: EpisodeJob[],
  settings: JobSettings,
  store: (outcome: JobOutcome, index: number) => void,
): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const worker = new Worker(BOOTSTRAP_URL, {
      workerData: { tsxApi: needsTypeScript(settings) ? import.meta.resolve('tsx/esm/api') : undefined, entry: WORKER_ENTRY_URL.href, settings },
    });
    let finished = false;
    const fail = (error: Error): void => {
      if (finished) return;
      finished = true;
      void worker.terminate();
      reject(error);
    };
    const sendNext = (): void => {
      const job = queue.shift();
      if (job) {
        worker.postMessage({ type: 'job', job } satisfies ToWorker);
      } else {
        // nothing is in flight (each env is closed after its job), so ending the thread loses nothing
        finished = true;
        worker.terminate().then(() => resolvePromise(), reject);
      }
    };
    worker.on('message', (message: FromWorker) => {
      if (message.type === 'fatal') {
        fail(message.userError ? new UserError(message.message) : new Error(message.message));
      } else if (message.type === 'outcome') {
        store(message.outcome, message.index);
        sendNext();
      } else {
        sendNext();
      }
    });
    worker.on('error', fail);
    worker.on('exit', (code) => {
      if (!finished) fail(new Error(`episode worker exited with code ${code} before its jobs were done`));
    });
  });
}

/** Per-task and overall success with Wilson intervals; tasks in the order given. */
export function summarize(tasks: string[], results: EpisodeResult[], wallSeconds: number, workers: number): RunSummary {
  const perTask: Record<string, TaskSummary> = {};
  for (const taskId of tasks) {
    const own = results.filter((result) => result.taskId === taskId);
    const successes = own.filter((result) => result.success).length;
    perTask[taskId] = {
      success_rate: own.length ? successes / own.length : 0,
      episodes: own.length,
      successes,
      mean_steps: own.length ? own.reduce((sum, result) => sum + result.steps, 0) / own.length : 0,
      ci95: wilsonInterval(successes, own.length),
    };
  }
  const successes = results.filter((result) => result.success).length;
  return {
    success_rate: results.length ? successes / results.length : 0,
    episodes: results.length,
    successes,
    ci95: wilsonInterval(successes, results.length),
    tasks: perTask,
    results,
    wall_s: wallSeconds,
    workers,
  };
}

/** Threads a run uses: 1 for a function policy (it cannot cross a thread), else min(cores, jobs) by default. */
export function workerCountFor(settings: JobSettings, requested: number | undefined, jobs: number): number {
  if (typeof settings.policy === 'function') return 1;
  return Math.max(1, Math.min(requested ?? availableParallelism(), jobs));
}

/** Runs spec.episodes episodes of each task (seeds spec.seed, spec.seed + 1, ...) and summarizes them. */
export async function runEpisodes(spec: RunSpec): Promise<RunSummary> {
  const started = performance.now();
  const settings = jobSettingsFor(spec, {});
  const jobs = planJobs(spec.tasks, spec.episodes, spec.seed);
  const workers = workerCountFor(settings, spec.workers, jobs.length);
  const outcomes = await runJobs(jobs, settings, workers, (outcome, done) =>
    spec.onProgress?.({ done, total: jobs.length, result: outcome.result }),
  );
  const results = outcomes.map((outcome) => outcome.result);
  return summarize(spec.tasks, results, (performance.now() - started) / 1000, workers);
}
