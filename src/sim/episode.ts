// One episode of any policy: observe -> act -> step until success or the step limit. Nothing a policy or the env
// does escapes: an invalid action, a throwing policy or a throwing env ends the episode as failed with the reason.
import { ACTION_DIMS, type Action, type Env, type EpisodeResult, type Observation, type Policy, type RgbImage, type StepResult } from './types.js';

export interface StepInfo {
  /** index of the action just applied (0-based) */
  step: number;
  observation: Observation;
  action: Action;
  /** the policy's label for this step (Policy.label), when it gives one */
  label?: Action;
  result: StepResult;
}

export interface RunEpisodeOptions {
  /** keep a copy of each agent-view image the policy saw (one per action) */
  recordFrames?: boolean;
  /** render camera images in observe(); default true (scripted experts can do without) */
  render?: boolean;
  onStep?: (info: StepInfo) => void;
  /** called with each observation before the policy sees it (the state the frame shows; recorders read it here) */
  onObserve?: (step: number, observation: Observation) => void;
}

/** Why an action is unusable, or undefined when it is exactly ACTION_DIMS finite numbers. */
export function invalidActionReason(action: unknown): string | undefined {
  const ok =
    Array.isArray(action) &&
    action.length === ACTION_DIMS &&
    action.every((value) => typeof value === 'number' && Number.isFinite(value));
  return ok ? undefined : `expected ${ACTION_DIMS} finite numbers, got ${describeValue(action)}`;
}

function describeValue(value: unknown): string {
  if (Array.isArray(value)) {
    const shown = value.slice(0, 10).map((item) => (typeof item === 'number' ? String(item) : safeJson(item)));
    return `[${shown.join(', ')}${value.length > 10 ? `, ... (${value.length} items)` : ''}]`;
  }
  if (ArrayBuffer.isView(value)) return `${value.constructor.name} (use a plain number[])`;
  return typeof value === 'number' ? String(value) : safeJson(value);
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export function copyImage(image: RgbImage): RgbImage {
  return { width: image.width, height: image.height, data: new Uint8Array(image.data) };
}

/**
 * Runs one episode on a freshly created env. A policy that throws or returns an invalid action ends this episode as
 * failed with `failureReason`; so does an env that throws. Nothing escapes, so one bad episode never stops a run.
 * The caller owns the env (and closes it).
 */
export async function runEpisode(
  env: Env,
  policy: Policy,
  options: RunEpisodeOptions = {},
): Promise<EpisodeResult & { frames?: RgbImage[] }> {
  const started = performance.now();
  const frames: RgbImage[] | undefined = options.recordFrames ? [] : undefined;
  const render = options.render ?? true;
  let success = false;
  let failureReason: string | undefined;
  try {
    await policy.reset?.(env.task.id, env.seed);
  } catch (error) {
    failureReason = `policy reset failed: ${errorMessage(error)}`;
  }
  for (let step = 0; failureReason === undefined && step < env.task.maxSteps; step++) {
    let observation: Observation;
    try {
      observation = env.observe({ render: render || frames !== undefined });
    } catch (error) {
      failureReason = `env observe failed at step ${step}: ${errorMessage(error)}`;
      break;
    }
    options.onObserve?.(step, observation);
    let action: unknown;
    try {
      action = await policy.act(observation);
    } catch (error) {
      failureReason = `policy error at step ${step}: ${errorMessage(error)}`;
      break;
    }
    const invalid = invalidActionReason(action);
    if (invalid) {
      failureReason = `invalid action at step ${step}: ${invalid}`;
      break;
    }
    frames?.push(copyImage(observation.image));
    let result: StepResult;
    try {
      result = env.step(action as Action);
    } catch (error) {
      failureReason = `env step failed at step ${step}: ${errorMessage(error)}`;
      break;
    }
    const label = policy.label?.();
    options.onStep?.({ step, observation, action: action as Action, ...(label ? { label: [...label] } : {}), result });
    if (result.success) success = true;
    if (result.success || result.done) break;
  }
  return {
    taskId: env.task.id,
    seed: env.seed,
    success,
    steps: env.stepCount,
    ...(failureReason !== undefined ? { failureReason } : {}),
    wallMs: performance.now() - started,
    ...(frames ? { frames } : {}),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Many episodes
