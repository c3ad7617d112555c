// DIR/report.html (self-contained: inline SVG plots, frames as data: URIs, no script, no network) and DIR/report.md
// (the same table, the plots as DIR/plots/*.svg), from DIR/results.jsonl alone.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { keepSweep, perTaskSuccess, successVersusStepTime } from './plots.js';
import { readResults } from './results.js';
import { summarizeEval, type EvalSummary, type VariantSummary } from './summary.js';
import { variantSlug } from './variant-process.js';

export interface ReportFiles {
  html: string;
  markdown: string;
  summary: EvalSummary;
}

interface Strip {
  variant: string;
  task: string;
  seed: number;
  success: boolean;
  steps: number;
  frames: { step: number; file: string; masked: boolean }[];
}

const percent = (x: number) => `${(100 * x).toFixed(1)}%`;
const interval = ([lo, hi]: [number, number]) => `[${(100 * lo).toFixed(1)}, ${(100 * hi).toFixed(1)}]`;
const ms = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? '—' : x.toFixed(1));
const mb = (x: number | undefined) => (x === undefined ? '—' : `${x.toFixed(0)}`);

export function formatP(p: number | undefined): string {
  if (p === undefined) return '—';
  return p < 0.001 ? p.toExponential(1) : p.toFixed(3);
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** The headline table: variant, success [CI], paired difference and p vs the first, step time split, speedup, memory. */
export function headlineRows(summary: EvalSummary): string[][] {
  const header = ['variant', 'success', '95% CI', 'Δ vs first', 'p (McNemar)', 'step ms', 'vision', 'prefill', 'decode', 'speedup', 'RSS MiB', 'model MiB', 'mean steps'];
  const rows = summary.variants.map((v: VariantSummary) => [
    v.name,
    `${percent(v.success_rate)} (${v.successes}/${v.episodes})`,
    interval(v.ci95),
    v.vs_first ? `${v.vs_first.difference >= 0 ? '+' : ''}${(100 * v.vs_first.difference).toFixed(1)} pts` : '—',
    formatP(v.vs_first?.p),
    ms(v.step_ms.total),
    ms(v.step_ms.vision),
    ms(v.step_ms.prefill ?? (v.step_ms.decode === undefined ? v.step_ms.llm : undefined)),
    ms(v.step_ms.decode),
    Number.isFinite(v.speedup) ? `${v.speedup.toFixed(2)}x` : '—',
    mb(v.rss_peak_mb),
    mb(v.model_rss_mb),
    v.mean_steps.toFixed(1),
  ]);
  return [header, ...rows];
}

function readStrip(dir: string, variant: string): Strip | undefined {
  const path = join(dir, 'frames', variantSlug(variant), 'strip.json');
  return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as Strip) : undefined;
}

function notes(summary: EvalSummary, title: string | undefined): string[] {
  const lines = [
    `${summary.tasks.length} task(s) x ${summary.episodes_per_task} episode(s), seeds ${summary.seed}..${summary.seed + summary.episodes_per_task - 1}; every variant runs the same episodes (paired).`,
    `Step ms: median over episodes of each episode's median policy step (vision = both ViTs + projector; the LLM split into prefill/decode where the model reports it, else all of it under prefill). Speedup: first variant's step ms / this one's. RSS: peak resident memory of the process that ran the variant; model MiB: resident memory added by loading it.`,
    `p: exact McNemar test (two-sided binomial on the discordant pairs) against the first variant.`,
  ];
  if (!summary.complete) lines.unshift('INCOMPLETE: some episodes have not run yet (rerun the same command to resume).');
  if (title) lines.unshift(title);
  return lines;
}

/** Writes report.html, report.md, plots/*.svg and summary.json into dir; returns their paths and the summary. */
export async function writeReport(dir: string, options: { title?: string } = {}): Promise<ReportFiles> {
  const results = readResults(dir);
  const summary = summarizeEval(results);
  const plots: [string, string, string][] = [
    ['success-vs-step-time', 'Success versus policy step time', await successVersusStepTime(summary)],
  ];
  const sweep = keepSweep(summary);
  if (sweep) plots.push(['keep-sweep', 'Keep-ratio sweep', await sweep]);
  plots.push(['per-task-success', 'Success per task', await perTaskSuccess(summary)]);
  mkdirSync(join(dir, 'plots'), { recursive: true });
  for (const [name, , svg] of plots) writeFileSync(join(dir, 'plots', `${name}.svg`), svg);
  const strips = summary.variants.map((v) => ({ variant: v.name, strip: readStrip(dir, v.name) }));
  const rows = headlineRows(summary);
  const title = `sqap-vla evaluation${summary.model ? `: ${summary.model}` : ''}`;
  const noteLines = notes(summary, options.title);

  const md = [
    `# ${title}`,
    '',
    ...noteLines.map((line) => `- ${line}`),
    '',
    `| ${rows[0].join(' | ')} |`,
    `| ${rows[0].map(() => '---').join(' | ')} |`,
    ...rows.slice(1).map((row) => `| ${row.join(' | ')} |`),
    '',
    '## Success per task',
    '',
    `| task | ${summary.variants.map((v) => v.name).join(' | ')} |`,
    `| --- | ${summary.variants.map(() => '---').join(' | ')} |`,
    ...summary.tasks.map((task, t) => `| ${task} | ${summary.variants.map((v) => `${percent(v.tasks[t].success_rate)} ${interval(v.tasks[t].ci95)}`).join(' | ')} |`),
    '',
    ...plots.flatMap(([name, heading]) => [`## ${heading}`, '', `![${heading}](plots/${name}.svg)`, '']),
    '## What the policy looked at',
    '',
    ...strips.flatMap(({ variant, strip }) =>
      strip
        ? [
            `**${variant}** — ${strip.task}, seed ${strip.seed}, ${strip.success ? 'success' : 'failure'} in ${strip.steps} steps${strip.frames.some((f) => f.masked) ? ' (dropped patches darkened, protected ring in yellow)' : ''}:`,
            '',
            strip.frames.map((f) => `![step ${f.step}](frames/${variantSlug(variant)}/${f.file})`).join(' '),
            '',
          ]
        : [`**${variant}**: no frames recorded.`, ''],
    ),
  ].join('\n');

  const table = (body: string[][]) =>
    `<table><thead><tr>${body[0].map((c) => `<th>${escapeHtml(c)}</th>`).join('')}</tr></thead><tbody>${body
      .slice(1)
      .map((row) => `<tr>${row.map((c) => `<td>${escapeHtml(c)}</td>`).join('')}</tr>`)
      .join('')}</tbody></table>`;
  const taskTable = [
    ['task', ...summary.variants.map((v) => v.name)],
    ...summary.tasks.map((task, t) => [task, ...summary.variants.map((v) => `${percent(v.tasks[t].success_rate)} ${interval(v.tasks[t].ci95)}`)]),
  ];
  const stripHtml = strips
    .map(({ variant, strip }) => {
      if (!strip) return `<h3>${escapeHtml(variant)}</h3><p>No frames recorded.</p>`;
      const images = strip.frames
        .map((f) => {
          const data = readFileSync(join(dir, 'frames', variantSlug(variant), f.file)).toString('base64');
          return `<figure><img alt="step ${f.step}" src="data:image/png;base64,${data}"><figcaption>step ${f.step}</figcaption></figure>`;
        })
        .join('');
      const what = strip.frames.some((f) => f.masked) ? ' Dropped patches darkened; protected ring in yellow.' : '';
      return `<h3>${escapeHtml(variant)}</h3><p>${escapeHtml(`${strip.task}, seed ${strip.seed}: ${strip.success ? 'success' : 'failure'} in ${strip.steps} steps.${what}`)}</p><div class="strip">${images}</div>`;
    })
    .join('\n');
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<style>
body{font-family:system-ui,sans-serif;margin:24px auto;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:12px 0;font-size:14px}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}thead{background:#f3f3f3}
.plots{display:flex;flex-wrap:wrap;gap:24px}.plot h3{margin:8px 0}
.strip{display:flex;gap:6px;flex-wrap:wrap}figure{margin:0}figure img{width:160px;height:160px;image-rendering:pixelated}
figcaption{font-size:12px;text-align:center}ul{font-size:14px}
</style></head><body>
<h1>${escapeHtml(title)}</h1>
<ul>${noteLines.map((line) => `<li>${escapeHtml(line)}</li>`).join('')}</ul>
<h2>Headline</h2>
${table(rows)}
<div class="plots">${plots.map(([name, heading, svg]) => `<div class="plot" id="${name}"><h3>${escapeHtml(heading)}</h3>${svg}</div>`).join('\n')}</div>
<h2>Success per task</h2>
${table(taskTable)}
<h2>What the policy looked at</h2>
${stripHtml}
</body></html>
`;
  const htmlPath = join(dir, 'report.html');
  const markdownPath = join(dir, 'report.md');
  writeFileSync(htmlPath, html);
  writeFileSync(markdownPath, md);
  writeFileSync(join(dir, 'summary.json'), `${JSON.stringify(summary, null, 1)}\n`);
  return { html: htmlPath, markdown: markdownPath, summary };
}
