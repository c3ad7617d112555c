// Demonstrations: record expert (or any policy's) episodes to disk in the format of docs/demonstrations.md, compute
// OpenVLA-style normalization statistics over the successful ones, and read them back one episode at a time.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../errors.js';
import {
  ACTION_NAMES,
  DEMO_FORMAT,
  DEMO_FORMAT_VERSION,
  PROPRIO_NAMES,
  readEpisode,
  type DemonstrationEpisode,
  type EpisodeIndexEntry,
} from './demo-format.js';
import { jobSettingsFor, planJobs, runJobs, summarize, workerCountFor, type RunSpec, type RunSummary } from './runner.js';
import { columnStatistics, type ColumnStatistics } from './statistics.js';
import type { CameraParams, TaskInfo } from './types.js';

export type { DemonstrationEpisode } from './demo-format.js';

/** OpenVLA un-normalizes actions with q01/q99 where mask is true; the gripper (last dim) stays as predicted. */
export const ACTION_NORMALIZATION_MASK = [true, true, true, true, true, true, false];

export interface NormStats extends ColumnStatistics {
  mask?: boolean[];
}

/** dataset_statistics.json: OpenVLA's `norm_stats` layout, keyed by dataset name (the model's `unnorm_key`). */
export type DatasetStatistics = Record<
  string,
  { action: NormStats; proprio: NormStats; num_transitions: number; num_trajectories: number }
>;

export interface DemoMeta {
  format: string;
  format_version: number;
  dataset_name: string;
  created: string;
  tasks: { id: string; suite: string; instruction: string; max_steps: number }[];
  seed: number;
  episodes_per_task: number;
  /** the scripted expert's approach ('hover' or 'funnel', src/sim/experts.ts); absent for other policies */
  expert_approach?: 'hover' | 'funnel';
  /**
   * A DAgger recording (sim record --policy model): a checkpoint drove, the scripted expert labelled every state
   * (expert_actions). Its failed episodes are training data too: they are the states the checkpoint's own mistakes
   * reach, with the expert's command from each (src/train/dataset.ts reads them).
   */
  dagger?: DaggerMeta;
  image: { width: number; height: number; channels: 3; dtype: 'uint8'; layout: 'THWC' };
  camera: CameraParams | null;
  action_space: { dims: 7; names: string[]; low: number; high: number; doc: string };
  proprio_space: { dims: 7; names: string[]; doc: string };
  num_episodes: number;
  num_successful: number;
  num_transitions: number;
  episodes: EpisodeIndexEntry[];
}

/** Statistics over the steps of the given episodes (the caller passes the successful ones). */
export function computeDatasetStatistics(
  datasetName: string,
  episodes: { actions: number[][]; proprio: number[][] }[],
): DatasetStatistics {
  const actions = episodes.flatMap((episode) => episode.actions);
  const proprio = episodes.flatMap((episode) => episode.proprio);
  return {
    [datasetName]: {
      action: { ...columnStatistics(actions), mask: [...ACTION_NORMALIZATION_MASK] },
      proprio: columnStatistics(proprio),
      num_transitions: actions.length,
      num_trajectories: episodes.length,
    },
  };
}

export interface DaggerMeta {
  /** the checkpoint that drove, as given */
  model: string;
  variant: string;
  /** per-step probability that the expert's command was executed instead of the model's action */
  expert_mix: number;
  /** the labelling expert's approach */
  label_approach: 'hover' | 'funnel';
}

export interface RecordSpec extends Omit<RunSpec, 'policy' | 'frames'> {
  out: string;
  /** default 'expert' */
  policy?: RunSpec['policy'];
  /** key of dataset_statistics.json (OpenVLA's unnorm_key); default 'sqap_sim' */
  datasetName?: string;
  /** written to meta.json when `policy` is the DAgger policy (src/eval/dagger-policy.ts) */
  dagger?: DaggerMeta;
}

export interface RecordSummary extends RunSummary {
  dir: string;
  dataset_name: string;
  num_transitions: number;
  /** false when no episode succeeded (no statistics can be computed) */
  statistics_written: boolean;
}

function assertEmptyOutput(dir: string): void {
  if (existsSync(dir) && readdirSync(dir).length > 0) {
    throw new UserError(`Output directory ${dir} is not empty; choose a new --out (recordings are never overwritten).`);
  }
}

function expertApproach(policy: RunSpec['policy']): Pick<DemoMeta, 'expert_approach'> {
  if (policy === 'expert') return { expert_approach: 'hover' };
  if (typeof policy === 'object' && 'expert' in policy) return { expert_approach: policy.expert.approach ?? 'hover' };
  return {};
}

/** Records spec.episodes episodes per task into spec.out (episodes in parallel, files identical for any worker count). */
export async function recordDemonstrations(spec: RecordSpec): Promise<RecordSummary> {
  const started = performance.now();
  assertEmptyOutput(spec.out);
  const runSpec: RunSpec = { ...spec, policy: spec.policy ?? 'expert' };
  const settings = jobSettingsFor(runSpec, { render: true, recordDir: spec.out });
  const jobs = planJobs(spec.tasks, spec.episodes, spec.seed);
  const workers = workerCountFor(settings, spec.workers, jobs.length);
  const createdOut = !existsSync(spec.out);
  mkdirSync(spec.out, { recursive: true });
  let outcomes: Awaited<ReturnType<typeof runJobs>>;
  try {
    outcomes = await runJobs(jobs, settings, workers, (outcome, done) =>
      spec.onProgress?.({ done, total: jobs.length, result: outcome.result }),
    );
  } catch (error) {
    // a run that ends in an error leaves no partial recording behind
    rmSync(spec.out, { recursive: true, force: true });
    if (!createdOut) mkdirSync(spec.out, { recursive: true });
    throw error;
  }

  const datasetName = spec.datasetName ?? 'sqap_sim';
  const recorded = outcomes.flatMap((outcome) => (outcome.recorded ? [outcome.recorded] : []));
  const successful = recorded.filter((episode) => episode.entry.success);
  if (successful.length > 0) {
    const statistics = computeDatasetStatistics(datasetName, successful);
    writeFileSync(join(spec.out, 'dataset_statistics.json'), `${JSON.stringify(statistics, null, 2)}\n`);
  }
  const tasks = new Map<string, TaskInfo>();
  for (const episode of recorded) if (!tasks.has(episode.task.id)) tasks.set(episode.task.id, episode.task);
  const first = recorded[0];
  const meta: DemoMeta = {
    format: DEMO_FORMAT,
    format_version: DEMO_FORMAT_VERSION,
    dataset_name: datasetName,
    created: new Date().toISOString(),
    tasks: [...tasks.values()].map((task) => ({ id: task.id, suite: task.suite, instruction: task.instruction, max_steps: task.maxSteps })),
    seed: spec.seed,
    episodes_per_task: spec.episodes,
    ...expertApproach(runSpec.policy),
    ...(spec.dagger ? { dagger: spec.dagger } : {}),
    image: {
      width: first?.imageSize[0] ?? 0,
      height: first?.imageSize[1] ?? 0,
      channels: 3,
      dtype: 'uint8',
      layout: 'THWC',
    },
    camera: first?.camera ?? null,
    action_space: {
      dims: 7,
      names: ACTION_NAMES,
      low: -1,
      high: 1,
      doc:
        'delta ee position (3), delta roll-pitch-yaw in the world frame (3), gripper (-1 open, +1 close); ' +
        'scaled to metres/radians per control step by src/sim/env.ts',
    },
    proprio_space: {
      dims: 7,
      names: PROPRIO_NAMES,
      doc: 'ee position (m, world), ee roll-pitch-yaw (rad), gripper opening (m between the fingers)',
    },
    num_episodes: recorded.length,
    num_successful: successful.length,
    num_transitions: recorded.reduce((sum, episode) => sum + episode.entry.steps, 0),
    episodes: recorded.map((episode) => episode.entry),
  };
  writeFileSync(join(spec.out, 'meta.json'), `${JSON.stringify(meta, null, 2)}\n`);

  const results = outcomes.map((outcome) => outcome.result);
  return {
    ...summarize(spec.tasks, results, (performance.now() - started) / 1000, workers),
    dir: spec.out,
    dataset_name: datasetName,
    num_transitions: meta.num_transitions,
    statistics_written: successful.length > 0,
  };
}

export interface Demonstrations {
  dir: string;
  meta: DemoMeta;
  /** undefined when no episode succeeded */
  statistics: DatasetStatistics | undefined;
  /** number of episodes in the index */
  length: number;
  /** Reads episode i of the index (frames included unless `frames: false`). */
  episode(i: number, options?: { frames?: boolean }): DemonstrationEpisode;
  /** Yields episodes in index order, one in memory at a time. */
  episodes(options?: { successfulOnly?: boolean; frames?: boolean }): Generator<DemonstrationEpisode>;
}

/** Opens a recording made by recordDemonstrations; reads only meta.json and the statistics up front. */
export function openDemonstrations(dir: string): Demonstrations {
  const metaPath = join(dir, 'meta.json');
  if (!existsSync(metaPath)) throw new UserError(`${dir} is not a demonstration directory (no meta.json).`);
  const meta = JSON.parse(readFileSync(metaPath, 'utf8')) as DemoMeta;
  if (meta.format !== DEMO_FORMAT || meta.format_version !== DEMO_FORMAT_VERSION) {
    throw new UserError(
      `${dir} holds format ${meta.format} v${meta.format_version}; this version reads ${DEMO_FORMAT} v${DEMO_FORMAT_VERSION}.`,
    );
  }
  const statisticsPath = join(dir, 'dataset_statistics.json');
  const statistics = existsSync(statisticsPath)
    ? (JSON.parse(readFileSync(statisticsPath, 'utf8')) as DatasetStatistics)
    : undefined;
  const episode = (i: number, options: { frames?: boolean } = {}): DemonstrationEpisode => {
    const entry = meta.episodes[i];
    if (!entry) throw new RangeError(`episode ${i} out of range (0..${meta.episodes.length - 1})`);
    return readEpisode(dir, entry.file, options);
  };
  return {
    dir,
    meta,
    statistics,
    length: meta.episodes.length,
    episode,
    *episodes(options = {}) {
      for (let i = 0; i < meta.episodes.length; i++) {
        if (options.successfulOnly && !meta.episodes[i].success) continue;
        yield episode(i, options);
      }
    },
  };
}
