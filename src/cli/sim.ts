// `sqap-vla sim ...`: list tasks, run a policy over tasks x seeds, render a frame, record demonstrations.
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { ParseArgsConfig } from 'node:util';
import { UserError } from '../errors.js';
import { checkOutputDir, checkOutputFile } from '../io/output-path.js';
import { parseIntegerFlag, parseOptions } from './args.js';
import { closedLoopImageSize } from './camera-size.js';
import { progressBar } from './progress.js';
import type { DaggerMeta, RecordSummary } from '../sim/record.js';
import type { PolicySpec, RunProgress, RunSummary } from '../sim/runner.js';
import type { TaskInfo } from '../sim/types.js';
import type { BackendName } from '../tensor/backends/index.js';

const USAGE = `usage: sqap-vla sim <subcommand> [options]

subcommands:
  tasks     list the tasks (id, suite, max steps, instruction)
  run       run a policy on tasks x seeds and report success rates
  render    write the first agent-view frame of a task as PNG
  record    record expert demonstrations for training (docs/demonstrations.md)

Run 'sqap-vla sim <subcommand> --help' for its options.`;

/** Bounds of the numeric flags (a run keeps one result per episode in memory; a frame is IMAGE_SIZE^2 x 3 bytes). */
export const MAX_EPISODES = 100_000;
export const MAX_SEED = 2 ** 32 - 1;
export const MAX_WORKERS = 256;
export const MIN_IMAGE_SIZE = 8;
export const MAX_IMAGE_SIZE = 2048;

const TASKS_USAGE = `usage: sqap-vla sim tasks [--suite NAME] [--json]

  --suite NAME   only the tasks of one suite
  --json         print one JSON object {"tasks": [{id, suite, max_steps, instruction}, ...]}`;

const SELECTION_HELP = `  --task ID        a task id (repeatable); see 'sqap-vla sim tasks'
  --suite NAME     all tasks of a suite (repeatable), or 'all' for every task
  --episodes N     episodes per task (default 10), at most ${MAX_EPISODES} over all tasks; episode i uses seed S + i
  --seed S         first seed, 0 to ${MAX_SEED} (default 0)
  --workers W      worker threads, 1 to ${MAX_WORKERS} (default: one per core, at most one per episode)
  --image-size PX  camera image side in pixels, ${MIN_IMAGE_SIZE} to ${MAX_IMAGE_SIZE} (default: with --policy model the size
                   the checkpoint was trained on, config.json's sqap_vla_camera_image_size; else the env's, 224)`;

const RUN_USAGE = `usage: sqap-vla sim run (--task ID | --suite NAME | --suite all) --policy expert --episodes N [options]
       sqap-vla sim run (--task ID | --suite NAME | --suite all) --policy model --model DIR [--variant V] [options]

${SELECTION_HELP}
  --policy P       'expert' (scripted, privileged state; default), 'model' (a checkpoint, see --model), or a
                   module path exporting createPolicyFactory(options) => (env) => Policy
  --model DIR      with --policy model: the checkpoint; it sees the instruction, the agent-view image and the
                   robot's own end-effector position and camera, never object poses. Loaded once per thread:
                   with the default --workers 1 in this process (the native kernels already use every core);
                   --workers W loads one copy per worker thread
  --variant V      with --policy model: the variant (default base), e.g. w4a4+had+sqap@0.5
  --backend NAME   with --policy model: auto (default), ref, native
  --unnorm-key KEY with --policy model: dataset statistics, when the checkpoint has several
  --instruction T  with --policy model: give the model T instead of each task's own instruction (the
                   instruction-swap test: success should drop where the instruction picks the object or goal)
  --policy-options JSON  options passed to the policy module's createPolicyFactory
  --frames DIR     write every episode's agent-view frames as DIR/<task>/seed_<seed>/step_NNNN.png
  --json           print the summary as one JSON object on the last stdout line`;

const RENDER_USAGE = `usage: sqap-vla sim render --task ID [--seed S] --out FILE.png [--image-size PX]

  --task ID        a task id; see 'sqap-vla sim tasks'
  --seed S         scene seed, 0 to ${MAX_SEED} (default 0)
  --out FILE.png   where to write the first agent-view frame (its folder is created if needed)
  --image-size PX  image side in pixels, ${MIN_IMAGE_SIZE} to ${MAX_IMAGE_SIZE} (default 224)`;

const RECORD_USAGE = `usage: sqap-vla sim record (--task ID | --suite NAME | --suite all) --episodes N [--seed S] --out DIR [options]

${SELECTION_HELP}
  --out DIR        new (or empty) directory for meta.json, episode_NNNNNN.{json,rgb}, dataset_statistics.json
  --name NAME      dataset name, the key in dataset_statistics.json (default sqap_sim)
  --expert-approach hover|funnel  how the expert comes down to objects and place points (default hover):
                   'funnel' descends while it centres, a height that is a continuous function of the image,
                   which a learned single-frame policy imitates better (docs/demonstrations.md); with
                   --policy model, the labelling expert's approach (default funnel there)
  --policy model --model DIR  DAgger: the checkpoint drives, the scripted expert (no noise) labels every state it
                   reaches with its own command (expert_actions); train on it with 'train --add-demos DIR'
                   (docs/training.md). --variant V and --backend NAME as in 'sim run'
  --expert-mix B   with --policy model: per-step probability of executing the expert's command instead (0 to 1,
                   default 0)
  --json           print the summary as one JSON object on the last stdout line

Episodes come from the scripted expert (or, with --policy model, the checkpoint); all are written, statistics use
the successful ones.`;

/** The flags that name a checkpoint policy, shared by run and record. */
const MODEL_POLICY_OPTIONS = {
  policy: { type: 'string' },
  model: { type: 'string' },
  variant: { type: 'string' },
  backend: { type: 'string' },
} as const satisfies ParseArgsConfig['options'];

const SELECTION_OPTIONS = {
  task: { type: 'string', multiple: true },
  suite: { type: 'string', multiple: true },
  episodes: { type: 'string' },
  seed: { type: 'string' },
  workers: { type: 'string' },
  'image-size': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

export async function runSimCommand(argv: string[]): Promise<number> {
  const [subcommand, ...rest] = argv;
  switch (subcommand) {
    case 'tasks':
      return tasksCommand(rest);
    case 'run':
      return runCommand(rest);
    case 'render':
      return renderCommand(rest);
    case 'record':
      return recordCommand(rest);
    case undefined:
    case '--help':
    case '-h':
    case 'help':
      console.log(USAGE);
      return subcommand ? 0 : 2;
    default:
      throw new UserError(`unknown sim subcommand '${subcommand}' (subcommands: tasks, run, render, record)`);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Arguments

function checkEpisodeTotal(tasks: number, episodes: number): void {
  if (tasks * episodes > MAX_EPISODES) {
    throw new UserError(`--episodes ${episodes} on ${tasks} task(s) is ${tasks * episodes} episodes, more than ${MAX_EPISODES} in one run; split the run.`);
  }
}

async function loadTasks(): Promise<TaskInfo[]> {
  const { listTasks } = await import('../sim/tasks.js');
  return listTasks();
}

function suitesOf(tasks: TaskInfo[]): string[] {
  return [...new Set(tasks.map((task) => task.suite))];
}

/** Task ids from --task and --suite, in suite order then --task order, without duplicates. */
export function selectTasks(all: TaskInfo[], taskIds: string[] = [], suites: string[] = []): string[] {
  if (taskIds.length === 0 && suites.length === 0) {
    throw new UserError("choose tasks with --task ID or --suite NAME (or --suite all); 'sqap-vla sim tasks' lists them.");
  }
  const known = suitesOf(all);
  const selected: string[] = [];
  for (const suite of suites) {
    if (suite !== 'all' && !known.includes(suite)) {
      throw new UserError(`unknown suite '${suite}' (suites: ${[...known, 'all'].join(', ')})`);
    }
    for (const task of all) if (suite === 'all' || task.suite === suite) selected.push(task.id);
  }
  for (const id of taskIds) {
    if (!all.some((task) => task.id === id)) {
      throw new UserError(`unknown task '${id}' (tasks: ${all.map((task) => task.id).join(', ')})`);
    }
    selected.push(id);
  }
  return [...new Set(selected)];
}

interface ModelFlags {
  model?: string;
  variant?: string;
  backend?: string;
  'unnorm-key'?: string;
  instruction?: string;
}

function checkInstruction(text: string): string {
  if (text.trim() === '') throw new UserError('--instruction must not be empty');
  return text;
}

/** --model, --variant and --backend as a checkpoint policy's options (model-policy.ts), each checked. */
async function checkpointPolicyOptions(model: string, flags: ModelFlags): Promise<{ model: string; variant: string; backend: BackendName }> {
  const { parseVariant } = await import('../variant.js');
  const { parseBackendName } = await import('./act.js');
  return { model: resolve(model), variant: parseVariant(flags.variant ?? 'base').name, backend: parseBackendName(flags.backend ?? 'auto') };
}

async function parsePolicy(name: string | undefined, optionsJson: string | undefined, flags: ModelFlags): Promise<PolicySpec> {
  const policy = name ?? 'expert';
  const modelFlag = (['model', 'variant', 'backend', 'unnorm-key', 'instruction'] as const).find((flag) => flags[flag] !== undefined);
  if (policy !== 'model' && modelFlag) throw new UserError(`--${modelFlag} applies to --policy model.`);
  if (policy === 'model') {
    if (optionsJson !== undefined) throw new UserError("--policy-options applies to a policy module, not 'model' (use --model, --variant).");
    if (!flags.model) throw new UserError('--policy model needs --model DIR (a checkpoint directory).');
    const { MODEL_POLICY_MODULE } = await import('../eval/model-policy.js');
    const options = {
      ...(await checkpointPolicyOptions(flags.model, flags)),
      ...(flags['unnorm-key'] !== undefined ? { unnormKey: flags['unnorm-key'] } : {}),
      ...(flags.instruction !== undefined ? { instruction: checkInstruction(flags.instruction) } : {}),
    };
    return { module: MODEL_POLICY_MODULE, options };
  }
  if (policy === 'expert') {
    if (optionsJson !== undefined) throw new UserError("--policy-options applies to a policy module, not 'expert'.");
    return 'expert';
  }
  if (!/\.(ts|mts|js|mjs)$/.test(policy)) {
    throw new UserError(`unknown policy '${policy}' (use 'expert', 'model' or the path of a .ts/.js module exporting createPolicyFactory).`);
  }
  let options: unknown;
  if (optionsJson !== undefined) {
    try {
      options = JSON.parse(optionsJson);
    } catch (error) {
      throw new UserError(`--policy-options is not valid JSON: ${(error as Error).message}.`);
    }
  }
  return { module: resolve(policy), ...(options !== undefined ? { options } : {}) };
}

/** The episode progress bar of run and record (see progress.ts: stderr terminals only). */
function episodeProgress(label: string, total: number): { onProgress: (progress: RunProgress) => void; stop: () => void } {
  const bar = progressBar(label, total, 'episodes', ' | {successes} succeeded', { successes: 0 });
  let successes = 0;
  return {
    onProgress: ({ done, result }) => {
      if (result.success) successes++;
      bar.update(done, { successes });
    },
    stop: () => bar.stop(),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Output

function percent(rate: number): string {
  return `${(100 * rate).toFixed(1)}%`;
}

function interval([low, high]: [number, number]): string {
  return `[${(100 * low).toFixed(1)}, ${(100 * high).toFixed(1)}]`;
}

function printTable(rows: string[][]): void {
  const widths = rows[0].map((_, column) => Math.max(...rows.map((row) => row[column].length)));
  for (const row of rows) console.log(row.map((cell, column) => cell.padEnd(widths[column])).join('  ').trimEnd());
}

function printRunSummary(summary: RunSummary): void {
  const rows = [['task', 'success', 'rate', '95% CI', 'mean steps']];
  for (const [taskId, task] of Object.entries(summary.tasks)) {
    rows.push([taskId, `${task.successes}/${task.episodes}`, percent(task.success_rate), interval(task.ci95), task.mean_steps.toFixed(1)]);
  }
  const meanSteps = summary.results.reduce((sum, result) => sum + result.steps, 0) / Math.max(1, summary.results.length);
  rows.push(['overall', `${summary.successes}/${summary.episodes}`, percent(summary.success_rate), interval(summary.ci95), meanSteps.toFixed(1)]);
  printTable(rows);
  const reasons = new Map<string, number>();
  for (const result of summary.results) {
    // group reasons by their kind: the text before the step number or the first colon
    if (result.failureReason) {
      const kind = result.failureReason.replace(/ at step \d+:.*$/, '').replace(/:.*$/, '');
      reasons.set(kind, (reasons.get(kind) ?? 0) + 1);
    }
  }
  if (reasons.size > 0) {
    const first = summary.results.find((result) => result.failureReason);
    console.log(`episodes ended by an error: ${[...reasons].map(([kind, count]) => `${count} ${kind}`).join(', ')}`);
    console.log(`  first: ${first?.taskId} seed ${first?.seed}: ${first?.failureReason}`);
  }
  console.log(`${summary.episodes} episodes in ${summary.wall_s.toFixed(1)} s on ${summary.workers} worker thread(s)`);
}

/** The summary as the JSON line, results last and compact (no per-episode wall time). */
function summaryJson(summary: RunSummary, extra: Record<string, unknown>): string {
  const { results, ...rest } = summary;
  return JSON.stringify({
    ...rest,
    ...extra,
    results: results.map(({ wallMs: _, ...result }) => result),
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Subcommands

async function tasksCommand(argv: string[]): Promise<number> {
  const values = parseOptions(argv, { suite: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, 'sim tasks');
  if (values.help) {
    console.log(TASKS_USAGE);
    return 0;
  }
  const all = await loadTasks();
  const tasks = values.suite ? all.filter((task) => selectTasks(all, [], [values.suite!]).includes(task.id)) : all;
  if (values.json) {
    console.log(JSON.stringify({ tasks: tasks.map((task) => ({ id: task.id, suite: task.suite, max_steps: task.maxSteps, instruction: task.instruction })) }));
    return 0;
  }
  printTable([['id', 'suite', 'max steps', 'instruction'], ...tasks.map((task) => [task.id, task.suite, String(task.maxSteps), task.instruction])]);
  return 0;
}

async function runCommand(argv: string[]): Promise<number> {
  const values = parseOptions(
    argv,
    {
      ...SELECTION_OPTIONS,
      ...MODEL_POLICY_OPTIONS,
      'policy-options': { type: 'string' },
      frames: { type: 'string' },
      'unnorm-key': { type: 'string' },
      instruction: { type: 'string' },
    },
    'sim run',
  );
  if (values.help) {
    console.log(RUN_USAGE);
    return 0;
  }
  const tasks = selectTasks(await loadTasks(), values.task, values.suite);
  const policy = await parsePolicy(values.policy, values['policy-options'], values);
  const episodes = parseIntegerFlag(values.episodes, 'episodes', 10, 1, MAX_EPISODES);
  checkEpisodeTotal(tasks.length, episodes);
  const seed = parseIntegerFlag(values.seed, 'seed', 0, 0, MAX_SEED);
  // a model runs in this process unless asked otherwise: one copy of the weights, all cores in its kernels
  const workers = values.workers === undefined ? (values.policy === 'model' ? 1 : undefined) : parseIntegerFlag(values.workers, 'workers', 1, 1, MAX_WORKERS);
  const imageSize = closedLoopImageSize(
    values['image-size'] === undefined ? undefined : parseIntegerFlag(values['image-size'], 'image-size', 224, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE),
    values.policy === 'model' ? values.model : undefined,
    { min: MIN_IMAGE_SIZE, max: MAX_IMAGE_SIZE },
  );
  const frames = values.frames === undefined ? undefined : checkOutputDir(values.frames, '--frames');
  if (frames) mkdirSync(frames, { recursive: true });

  const { runEpisodes } = await import('../sim/runner.js');
  const progress = episodeProgress('sim run', tasks.length * episodes);
  let summary: RunSummary;
  try {
    summary = await runEpisodes({
      tasks,
      episodes,
      seed,
      policy,
      ...(workers !== undefined ? { workers } : {}),
      ...(imageSize !== undefined ? { imageSize } : {}),
      ...(frames !== undefined ? { frames } : {}),
      ...(progress.onProgress ? { onProgress: progress.onProgress } : {}),
    });
  } finally {
    progress.stop();
  }
  const policyName = typeof policy === 'string' ? policy : values.policy;
  const modelInfo = values.policy === 'model' && typeof policy === 'object' && 'options' in policy ? { model: (policy.options as { model: string }).model, variant: (policy.options as { variant: string }).variant } : {};
  if (values.json) {
    const { DEFAULT_IMAGE_SIZE } = await import('../sim/env.js');
    console.log(summaryJson(summary, { policy: policyName, ...modelInfo, seed, image_size: imageSize ?? DEFAULT_IMAGE_SIZE, ...(frames ? { frames_dir: frames } : {}) }));
  } else {
    printRunSummary(summary);
    if (frames) console.log(`frames: ${frames}/<task>/seed_<seed>/step_NNNN.png`);
  }
  return 0;
}

async function renderCommand(argv: string[]): Promise<number> {
  const values = parseOptions(
    argv,
    { task: { type: 'string' }, seed: { type: 'string' }, out: { type: 'string' }, 'image-size': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    'sim render',
  );
  if (values.help) {
    console.log(RENDER_USAGE);
    return 0;
  }
  if (!values.task) throw new UserError("sim render needs --task ID; 'sqap-vla sim tasks' lists them.");
  if (!values.out) throw new UserError('sim render needs --out FILE.png.');
  const [taskId] = selectTasks(await loadTasks(), [values.task]);
  const seed = parseIntegerFlag(values.seed, 'seed', 0, 0, MAX_SEED);
  const imageSize = values['image-size'] === undefined ? undefined : parseIntegerFlag(values['image-size'], 'image-size', 224, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE);
  const out = checkOutputFile(values.out);
  const { createEnv } = await import('../sim/env.js');
  const { writePng } = await import('../io/image.js');
  const env = await createEnv(taskId, seed, { render: true, ...(imageSize !== undefined ? { imageSize } : {}) });
  try {
    const { image } = env.observe({ render: true });
    mkdirSync(dirname(out), { recursive: true });
    writePng(out, image);
    console.log(`wrote ${out} (${image.width}x${image.height}, task ${taskId}, seed ${seed})`);
  } finally {
    env.close();
  }
  return 0;
}

/** `sim record --policy model`: the DAgger policy spec and its meta.json description; undefined for the expert. */
async function parseRecordLearner(
  values: ModelFlags & { policy?: string; 'expert-mix'?: string },
  approach: 'hover' | 'funnel' | undefined,
): Promise<{ policy: PolicySpec; dagger: DaggerMeta } | undefined> {
  const policy = values.policy ?? 'expert';
  if (policy !== 'expert' && policy !== 'model') throw new UserError(`sim record --policy must be 'expert' or 'model', got '${policy}'.`);
  const modelFlag = (['model', 'variant', 'backend', 'expert-mix'] as const).find((flag) => values[flag] !== undefined);
  if (policy === 'expert') {
    if (modelFlag) throw new UserError(`--${modelFlag} applies to --policy model.`);
    return undefined;
  }
  if (!values.model) throw new UserError('sim record --policy model needs --model DIR (the checkpoint that drives).');
  let expertMix = 0;
  if (values['expert-mix'] !== undefined) {
    expertMix = Number(values['expert-mix']);
    if (values['expert-mix'].trim() === '' || !Number.isFinite(expertMix) || expertMix < 0 || expertMix > 1) {
      throw new UserError(`--expert-mix must be a number from 0 to 1, got '${values['expert-mix']}'.`);
    }
  }
  const { DAGGER_POLICY_MODULE } = await import('../eval/dagger-policy.js');
  const model = await checkpointPolicyOptions(values.model, values);
  const labelApproach = approach ?? 'funnel';
  return {
    policy: { module: DAGGER_POLICY_MODULE, options: { ...model, expertMix, approach: labelApproach } },
    dagger: { model: values.model, variant: model.variant, expert_mix: expertMix, label_approach: labelApproach },
  };
}

async function recordCommand(argv: string[]): Promise<number> {
  const values = parseOptions(
    argv,
    {
      ...SELECTION_OPTIONS,
      out: { type: 'string' },
      name: { type: 'string' },
      'expert-approach': { type: 'string' },
      ...MODEL_POLICY_OPTIONS,
      'expert-mix': { type: 'string' },
    },
    'sim record',
  );
  if (values.help) {
    console.log(RECORD_USAGE);
    return 0;
  }
  const tasks = selectTasks(await loadTasks(), values.task, values.suite);
  if (!values.out) throw new UserError('sim record needs --out DIR (a new or empty directory).');
  const episodes = parseIntegerFlag(values.episodes, 'episodes', 10, 1, MAX_EPISODES);
  checkEpisodeTotal(tasks.length, episodes);
  const seed = parseIntegerFlag(values.seed, 'seed', 0, 0, MAX_SEED);
  const workers = values.workers === undefined ? undefined : parseIntegerFlag(values.workers, 'workers', 1, 1, MAX_WORKERS);
  const imageSize = closedLoopImageSize(
    values['image-size'] === undefined ? undefined : parseIntegerFlag(values['image-size'], 'image-size', 224, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE),
    values.policy === 'model' ? values.model : undefined,
    { min: MIN_IMAGE_SIZE, max: MAX_IMAGE_SIZE },
  );
  const approach = values['expert-approach'];
  if (approach !== undefined && approach !== 'hover' && approach !== 'funnel') {
    throw new UserError(`--expert-approach must be 'hover' or 'funnel', got '${approach}'.`);
  }
  const learner = await parseRecordLearner(values, approach);
  const out = checkOutputDir(values.out);

  const { recordDemonstrations } = await import('../sim/record.js');
  const progress = episodeProgress('sim record', tasks.length * episodes);
  let summary: RecordSummary;
  try {
    summary = await recordDemonstrations({
      tasks,
      episodes,
      seed,
      out,
      ...(learner ? learner : approach !== undefined ? { policy: { expert: { approach } } } : {}),
      ...(values.name !== undefined ? { datasetName: values.name } : {}),
      ...(workers !== undefined ? { workers } : {}),
      ...(imageSize !== undefined ? { imageSize } : {}),
      ...(progress.onProgress ? { onProgress: progress.onProgress } : {}),
    });
  } finally {
    progress.stop();
  }
  if (values.json) {
    console.log(summaryJson(summary, { policy: learner ? 'model' : 'expert', seed }));
    return 0;
  }
  printRunSummary(summary);
  console.log(`recorded ${summary.episodes} episodes (${summary.successes} successful, ${summary.num_transitions} steps) to ${out}`);
  if (summary.statistics_written) {
    console.log(`action statistics of the successful episodes: ${out}/dataset_statistics.json, key '${summary.dataset_name}'`);
  } else {
    console.log('no episode succeeded, so no dataset_statistics.json was written');
  }
  return 0;
}
