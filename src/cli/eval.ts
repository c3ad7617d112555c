// `sqap-vla eval`: closed-loop success of several variants of one checkpoint on the same episodes, with a report.
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { UserError } from '../errors.js';
import { progressBar } from './progress.js';

const HELP = `usage: sqap-vla eval --model DIR --variants V1,V2,... (--suite NAME | --suite all | --task ID) --episodes N
                     --out DIR [--seed S] [--workers W] [--batch B] [--json]

Runs every variant on the same episodes (same tasks and seeds: the same initial states), so the comparison with the
first variant is paired, and writes DIR/results.jsonl as episodes finish, DIR/report.html and DIR/report.md.
Rerunning the same command resumes where it stopped; a folder holding another run's results is refused.
  --model DIR        checkpoint directory (Hugging Face layout, with tokenizer.json)
  --variants LIST    comma-separated variants, the first is the baseline (e.g. base,w4a4+had,w4a4+had+sqap@0.5)
  --task ID          a task (repeatable); see 'sqap-vla sim tasks'
  --suite NAME       all tasks of a suite (repeatable), or 'all'
  --episodes N       episodes per task and variant; episode i uses seed S + i
  --seed S           first seed (default 0)
  --out DIR          results folder (new, empty, or this same run's to resume)
  --workers W        processes per variant, each with its own copy of the model (default 1: the native kernels
                     already use every core)
  --batch B          episodes stepped together in lockstep, one policy call per step for all (default 4)
  --backend NAME     auto (default), ref, native
  --unnorm-key KEY   dataset statistics, when the checkpoint has several
  --image-size PX    camera image side (default: with --model the size the checkpoint was trained on,
                     config.json's sqap_vla_camera_image_size; else the testbed's 224)
  --policy-module F  instead of --model: a module exporting loadEvalPolicy(variant, options) (tests, custom policies)
  --policy-options J JSON options for --policy-module
  --title TEXT       a line at the top of the report (e.g. what made it)
  --json             print {"variants":[{name, success_rate, ci95, step_ms, speedup, ...}], "report"} last`;

function parseInteger(value: string | undefined, flag: string, fallback: number | undefined, minimum: number): number {
  if (value === undefined) {
    if (fallback === undefined) throw new UserError(`eval needs --${flag}.`);
    return fallback;
  }
  const parsed = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(parsed) || parsed < minimum) {
    throw new UserError(`--${flag} must be an integer >= ${minimum}, got '${value}'.`);
  }
  return parsed;
}

export async function runEvalCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string' },
      variants: { type: 'string' },
      task: { type: 'string', multiple: true },
      suite: { type: 'string', multiple: true },
      episodes: { type: 'string' },
      seed: { type: 'string' },
      out: { type: 'string' },
      workers: { type: 'string' },
      batch: { type: 'string' },
      backend: { type: 'string' },
      'unnorm-key': { type: 'string' },
      'image-size': { type: 'string' },
      'policy-module': { type: 'string' },
      'policy-options': { type: 'string' },
      title: { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if ((values.model === undefined) === (values['policy-module'] === undefined)) {
    throw new UserError('eval needs --model DIR (or, for a custom policy, --policy-module FILE instead).');
  }
  if (!values.variants) throw new UserError('eval needs --variants V1,V2,... (e.g. base,w4a4+had+sqap@0.5).');
  if (!values.out) throw new UserError('eval needs --out DIR (a new folder, or this run\'s folder to resume).');
  const { parseVariantList } = await import('../variant.js');
  const variants = parseVariantList(values.variants).map((v) => v.name);
  const { listTasks } = await import('../sim/tasks.js');
  const { selectTasks } = await import('./sim.js');
  const tasks = selectTasks(listTasks(), values.task, values.suite);
  const episodes = parseInteger(values.episodes, 'episodes', undefined, 0);
  if (episodes === 0) throw new UserError('--episodes must be at least 1 (0 episodes measure nothing).');
  const seed = parseInteger(values.seed, 'seed', 0, 0);
  const workers = parseInteger(values.workers, 'workers', 1, 1);
  const batch = parseInteger(values.batch, 'batch', 4, 1);
  const { closedLoopImageSize } = await import('./camera-size.js');
  const { MIN_IMAGE_SIZE, MAX_IMAGE_SIZE } = await import('./sim.js');
  const imageSize = closedLoopImageSize(
    values['image-size'] === undefined ? undefined : parseInteger(values['image-size'], 'image-size', 224, MIN_IMAGE_SIZE),
    values.model !== undefined ? resolve(values.model) : undefined,
    { min: MIN_IMAGE_SIZE, max: MAX_IMAGE_SIZE },
  );
  const out = resolve(values.out);

  let source: import('../eval/policy-source.js').EvalPolicySource;
  if (values.model !== undefined) {
    const { parseBackendName } = await import('./act.js');
    const { existsSync, statSync } = await import('node:fs');
    const model = resolve(values.model);
    if (!existsSync(model) || !statSync(model).isDirectory()) throw new UserError(`model directory not found: ${values.model}`);
    source = { kind: 'model', model, backend: parseBackendName(values.backend ?? 'auto'), ...(values['unnorm-key'] ? { unnormKey: values['unnorm-key'] } : {}) };
  } else {
    const { resolveModulePath } = await import('../sim/runner.js');
    const { fileURLToPath } = await import('node:url');
    let options: unknown;
    if (values['policy-options'] !== undefined) {
      try {
        options = JSON.parse(values['policy-options']);
      } catch (error) {
        throw new UserError(`--policy-options is not valid JSON: ${(error as Error).message}.`);
      }
    }
    source = { kind: 'module', module: fileURLToPath(resolveModulePath(values['policy-module']!, 'Policy module')), ...(options !== undefined ? { options } : {}) };
  }

  const { runEval } = await import('../eval/run.js');
  const { writeReport, headlineRows } = await import('../eval/report.js');
  const bar = progressBar('eval', tasks.length * episodes * variants.length, 'episodes', ' | {rates}', { rates: '' });
  let outcome;
  try {
    outcome = await runEval({
      out,
      source,
      variants,
      tasks,
      episodes,
      seed,
      batch,
      workers,
      ...(imageSize !== undefined ? { imageSize } : {}),
      onProgress: (progress) =>
        bar.update(progress.done, {
          rates: progress.variants.map((v) => `${v.name} ${v.episodes ? `${Math.round((100 * v.successes) / v.episodes)}%` : '-'}`).join(' · '),
        }),
    });
  } finally {
    bar.stop();
  }
  const report = await writeReport(out, values.title !== undefined ? { title: values.title } : {});
  if (values.json) {
    console.log(
      JSON.stringify({
        variants: report.summary.variants.map((v) => ({
          name: v.name,
          success_rate: v.success_rate,
          ci95: v.ci95,
          step_ms: v.step_ms.total,
          speedup: v.speedup,
          episodes: v.episodes,
          successes: v.successes,
          step_ms_parts: v.step_ms,
          p_vs_first: v.vs_first?.p ?? null,
          difference_vs_first: v.vs_first?.difference ?? null,
          rss_peak_mb: v.rss_peak_mb ?? null,
          model_rss_mb: v.model_rss_mb ?? null,
          mean_steps: v.mean_steps,
        })),
        report: report.html,
        results: resolve(out, 'results.jsonl'),
        episodes_run: outcome.ran,
        episodes_resumed: outcome.resumed,
        wall_s: Math.round(outcome.wallSeconds * 10) / 10,
      }),
    );
    return 0;
  }
  const rows = headlineRows(report.summary);
  const widths = rows[0].map((_, c) => Math.max(...rows.map((row) => row[c].length)));
  for (const row of rows) console.log(row.map((cell, c) => cell.padEnd(widths[c])).join('  ').trimEnd());
  console.log(`${outcome.ran} episodes run, ${outcome.resumed} resumed, in ${outcome.wallSeconds.toFixed(1)} s`);
  console.log(`report: ${report.html}`);
  console.log(`        ${report.markdown}`);
  return 0;
}
