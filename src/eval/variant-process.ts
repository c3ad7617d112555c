// A child process that runs one variant's episodes for runEval (run.ts): it loads the policy once, then runs the
// lockstep batches it is sent. One process per variant gives each variant a clean resident-memory measurement and
// frees the previous variant's weights completely. The parent's death (a killed run) ends it too.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../errors.js';
import { writePng } from '../io/image.js';
import { errorMessage } from '../sim/episode.js';
import { runLockstep, type CreateEnv, type LockstepEpisode, type LockstepJob } from './lockstep.js';
import { stripSteps } from './overlay.js';
import { loadEvalPolicy, type EvalPolicySource } from './policy-source.js';
import type { EpisodeRecord } from './results.js';

export interface VariantInit {
  type: 'init';
  source: EvalPolicySource;
  variant: string;
  imageSize?: number;
  maxSteps?: number;
  /** file: URL of a module exporting createEnv; default the MuJoCo testbed */
  envModule?: string;
  /** where to write the frame strip of jobs marked captureFrames */
  framesDir: string;
}

export type ToVariantProcess = VariantInit | { type: 'chunk'; id: number; jobs: LockstepJob[] } | { type: 'exit' };
export type FromVariantProcess =
  | { type: 'ready'; loadMs: number; modelRssMb: number; backend: string }
  | { type: 'episode'; success: boolean }
  | { type: 'chunk-done'; id: number; records: EpisodeRecord[] }
  | { type: 'bye'; rssPeakMb: number }
  | { type: 'fatal'; message: string; userError: boolean };

/** Frames of one episode in the report's strip. */
export const STRIP_FRAMES = 6;

export function variantSlug(variant: string): string {
  return variant.replace(/[^A-Za-z0-9.+@_-]/g, '_');
}

const mib = (bytes: number) => Math.round((bytes / 2 ** 20) * 10) / 10;

export function toRecord(variant: string, episode: LockstepEpisode): EpisodeRecord {
  return {
    type: 'episode',
    variant,
    task: episode.job.task,
    seed: episode.job.seed,
    success: episode.success,
    steps: episode.steps,
    init_hash: episode.initHash,
    step_ms: episode.stepMs,
    ...(episode.failureReason !== undefined ? { failure_reason: episode.failureReason } : {}),
  };
}

/** Writes the strip of frames (mask drawn) and strip.json describing it. */
export function writeStrip(dir: string, variant: string, episode: LockstepEpisode): void {
  if (!episode.frames?.length) return;
  mkdirSync(dir, { recursive: true });
  const frames = stripSteps(episode.frames.length, STRIP_FRAMES).map((step) => {
    const file = `step_${String(step).padStart(4, '0')}.png`;
    const overlay = episode.masks?.[step];
    writePng(join(dir, file), overlay ? overlay(episode.frames![step]) : episode.frames![step]);
    return { step, file, masked: Boolean(episode.masks?.[step]) };
  });
  const strip = { variant, task: episode.job.task, seed: episode.job.seed, success: episode.success, steps: episode.steps, frames };
  writeFileSync(join(dir, 'strip.json'), `${JSON.stringify(strip, null, 1)}\n`);
}

async function main(): Promise<void> {
  const send = (message: FromVariantProcess) => process.send!(message);
  let init: VariantInit | undefined;
  let policy: Awaited<ReturnType<typeof loadEvalPolicy>> | undefined;
  let createEnv: CreateEnv | undefined;
  // the parent went away (a killed run): stop at once, its results file already has every finished batch
  process.on('disconnect', () => process.exit(0));
  const fail = (error: unknown) => {
    send({ type: 'fatal', message: error instanceof UserError ? error.message : error instanceof Error ? (error.stack ?? error.message) : String(error), userError: error instanceof UserError });
  };
  let queue = Promise.resolve();
  process.on('message', (message: ToVariantProcess) => {
    queue = queue.then(async () => {
      if (message.type === 'init') {
        init = message;
        const before = process.memoryUsage().rss;
        const started = performance.now();
        createEnv = ((await import(init.envModule ?? '../sim/env.js')) as { createEnv: CreateEnv }).createEnv;
        policy = await loadEvalPolicy(init.source, init.variant);
        send({ type: 'ready', loadMs: Math.round(performance.now() - started), modelRssMb: mib(process.memoryUsage().rss - before), backend: policy.backend });
      } else if (message.type === 'chunk') {
        const episodes = await runLockstep(message.jobs, policy!.policy, createEnv!, {
          ...(init!.imageSize ? { imageSize: init!.imageSize } : {}),
          ...(init!.maxSteps ? { maxSteps: init!.maxSteps } : {}),
          onEpisode: (episode) => send({ type: 'episode', success: episode.success }),
        });
        for (const episode of episodes) if (episode.job.captureFrames) writeStrip(join(init!.framesDir, variantSlug(init!.variant)), init!.variant, episode);
        send({ type: 'chunk-done', id: message.id, records: episodes.map((episode) => toRecord(init!.variant, episode)) });
      } else {
        send({ type: 'bye', rssPeakMb: mib(process.resourceUsage().maxRSS * 1024) });
        process.disconnect();
      }
    }).catch((error) => {
      fail(error);
      process.exitCode = 1;
    });
  });
}

if (process.send) {
  main().catch((error) => {
    process.send!({ type: 'fatal', message: errorMessage(error), userError: false } satisfies FromVariantProcess);
  });
}
