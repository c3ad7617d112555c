// Episodes in lockstep: B environments step together and one policy call serves all of them each control step
// (a batched forward where the policy has one; the model policy today runs its B sequences one after another,
// see docs/evaluation.md for the measurement). Finished episodes leave the batch; the batch ends when all have.
import { createHash } from 'node:crypto';
import { copyImage, errorMessage, invalidActionReason } from '../sim/episode.js';
import type { Action, Env, Observation, RgbImage } from '../sim/types.js';
import { median } from './stats.js';
import type { StepMs } from './results.js';

/**
 * What a pruned policy looked at in one step, drawn on a frame: the frame with the dropped patches darkened and
 * the protected ring outlined (src/prune's pruningMask, bound to that step's decision).
 */
export type PatchOverlay = (image: RgbImage) => RgbImage;

export interface BatchItem {
  observation: Observation;
  task: string;
  seed: number;
}

export interface BatchStep {
  actions: Action[];
  timingsMs: StepMs[];
  masks?: (PatchOverlay | undefined)[];
}

/** A policy that acts for several episodes at once (one observation each); results in the same order. */
export interface BatchPolicy {
  actBatch(items: BatchItem[]): BatchStep | Promise<BatchStep>;
}

export interface LockstepJob {
  task: string;
  seed: number;
  /** keep every frame the policy saw, with its patch mask (for the report's frame strip, the demo) */
  captureFrames?: boolean;
}

export interface LockstepEpisode {
  job: LockstepJob;
  success: boolean;
  steps: number;
  initHash: string;
  /** medians over the episode's steps */
  stepMs: StepMs;
  /** every step's timings (the demo prints them) */
  stepTimings: StepMs[];
  failureReason?: string;
  frames?: RgbImage[];
  masks?: (PatchOverlay | undefined)[];
}

export type CreateEnv = (taskId: string, seed: number, options: { render?: boolean; imageSize?: number }) => Promise<Env>;

/** Hash of what a policy sees first: equal for two variants exactly when they start from the same state. */
export function observationHash(observation: Observation): string {
  return createHash('sha256')
    .update(observation.image.data)
    .update(new Uint8Array(Float64Array.from([...observation.eePosition, ...observation.eeQuaternion, ...observation.proprio]).buffer))
    .update(observation.instruction)
    .digest('hex')
    .slice(0, 16);
}

function medianTimings(timings: StepMs[]): StepMs {
  const part = (key: keyof StepMs) => median(timings.map((t) => t[key] ?? Number.NaN));
  const result: StepMs = { vision: part('vision'), llm: part('llm'), total: part('total') };
  for (const key of ['prefill', 'decode', 'pruning'] as const) {
    const value = part(key);
    if (Number.isFinite(value)) result[key] = value;
  }
  for (const key of Object.keys(result) as (keyof StepMs)[]) {
    const value = result[key]!;
    result[key] = Number.isFinite(value) ? Math.round(value * 1000) / 1000 : 0;
  }
  return result;
}

interface Running {
  job: LockstepJob;
  env: Env;
  initHash?: string;
  timings: StepMs[];
  frames?: RgbImage[];
  masks?: (PatchOverlay | undefined)[];
  success: boolean;
  failureReason?: string;
  done: boolean;
}

/**
 * Runs the jobs together until every episode has succeeded, reached its step limit (or maxSteps) or failed.
 * A policy that throws fails the episodes of that step's batch; an invalid action fails its own episode.
 * `onEpisode` is told as each one ends. Results come back in job order.
 */
export async function runLockstep(
  jobs: LockstepJob[],
  policy: BatchPolicy,
  createEnv: CreateEnv,
  options: { imageSize?: number; maxSteps?: number; onEpisode?: (episode: LockstepEpisode) => void } = {},
): Promise<LockstepEpisode[]> {
  const running: Running[] = [];
  const finished: LockstepEpisode[] = new Array(jobs.length);
  const finish = (index: number): void => {
    const r = running[index];
    r.done = true;
    const episode: LockstepEpisode = {
      job: r.job,
      success: r.success,
      steps: r.env.stepCount,
      initHash: r.initHash ?? '',
      stepMs: medianTimings(r.timings),
      stepTimings: r.timings,
      ...(r.failureReason !== undefined ? { failureReason: r.failureReason } : {}),
      ...(r.frames ? { frames: r.frames, masks: r.masks } : {}),
    };
    finished[index] = episode;
    options.onEpisode?.(episode);
  };
  try {
    for (const job of jobs) {
      const env = await createEnv(job.task, job.seed, { render: true, ...(options.imageSize ? { imageSize: options.imageSize } : {}) });
      running.push({ job, env, timings: [], success: false, done: false, ...(job.captureFrames ? { frames: [], masks: [] } : {}) });
    }
    for (let step = 0; ; step++) {
      const active = running.map((r, index) => ({ r, index })).filter(({ r }) => !r.done);
      if (active.length === 0) break;
      const items: BatchItem[] = [];
      for (const { r, index } of active) {
        try {
          const observation = r.env.observe({ render: true });
          r.initHash ??= observationHash(observation);
          items.push({ observation, task: r.job.task, seed: r.job.seed });
        } catch (error) {
          r.failureReason = `env observe failed at step ${step}: ${errorMessage(error)}`;
          finish(index);
        }
      }
      const acting = active.filter(({ r }) => !r.done);
      if (acting.length === 0) continue;
      let batch: BatchStep;
      try {
        batch = await policy.actBatch(items);
        if (batch.actions.length !== items.length) throw new Error(`returned ${batch.actions.length} actions for ${items.length} observations`);
      } catch (error) {
        for (const { r, index } of acting) {
          r.failureReason = `policy error at step ${step}: ${errorMessage(error)}`;
          finish(index);
        }
        continue;
      }
      acting.forEach(({ r, index }, i) => {
        const action = batch.actions[i];
        const invalid = invalidActionReason(action);
        if (invalid) {
          r.failureReason = `invalid action at step ${step}: ${invalid}`;
          finish(index);
          return;
        }
        r.timings.push(batch.timingsMs[i]);
        r.frames?.push(copyImage(items[i].observation.image));
        r.masks?.push(batch.masks?.[i]);
        try {
          const result = r.env.step(action);
          r.success ||= result.success;
          if (result.success || result.done || (options.maxSteps !== undefined && r.env.stepCount >= options.maxSteps)) finish(index);
        } catch (error) {
          r.failureReason = `env step failed at step ${step}: ${errorMessage(error)}`;
          finish(index);
        }
      });
    }
  } finally {
    for (const r of running) r.env.close();
  }
  return finished;
}
