// The report's plots as Vega-Lite specs rendered to SVG in Node (vega's headless View: no canvas, no browser, no
// network). The SVG is inlined in report.html and written beside report.md.
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { EvalSummary } from './summary.js';

const WIDTH = 420;
const HEIGHT = 260;

async function toSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  // the namespace attributes are identifiers, not links; inline SVG in HTML needs none, and without them the page
  // holds no URL at all
  return svg.replace(/ xmlns(:xlink)?="[^"]*"/g, '');
}

/** Success rate (Wilson 95% bars) against the median per-step policy time, one point per variant. */
export function successVersusStepTime(summary: EvalSummary): Promise<string> {
  const values = summary.variants.map((v) => ({
    variant: v.name,
    step_ms: round(v.step_ms.total),
    success: v.success_rate,
    low: v.ci95[0],
    high: v.ci95[1],
  }));
  return toSvg({
    width: WIDTH,
    height: HEIGHT,
    data: { values },
    encoding: {
      x: { field: 'step_ms', type: 'quantitative', title: 'median policy step (ms)', scale: { zero: true } },
      color: { field: 'variant', type: 'nominal', sort: null, legend: null },
    },
    layer: [
      { mark: { type: 'rule', strokeWidth: 1.5 }, encoding: { y: { field: 'low', type: 'quantitative', title: 'success rate', scale: { domain: [0, 1] } }, y2: { field: 'high' } } },
      { mark: { type: 'point', filled: true, size: 80 }, encoding: { y: { field: 'success', type: 'quantitative' } } },
      { mark: { type: 'text', align: 'left', dx: 7, dy: -7, fontSize: 11 }, encoding: { y: { field: 'success', type: 'quantitative' }, text: { field: 'variant' } } },
    ],
  } as TopLevelSpec);
}

/** Variants that are one pruning method at several keep ratios (same quantization): their sweep lines. */
export function keepSweepGroups(names: string[]): Map<string, { variant: string; keep: number }[]> {
  const groups = new Map<string, { variant: string; keep: number }[]>();
  for (const variant of names) {
    const match = /^(.*?)(?:\+)?([a-z]+)@([0-9.]+)$/.exec(variant);
    if (!match) continue;
    const key = `${match[1] ? `${match[1]}+` : ''}${match[2]}`;
    groups.set(key, [...(groups.get(key) ?? []), { variant, keep: Number(match[3]) }]);
  }
  for (const [key, members] of groups) if (new Set(members.map((m) => m.keep)).size < 2) groups.delete(key);
  return groups;
}

/** Success against the keep ratio, one line per method (with its quantization), when the variants sweep one. */
export function keepSweep(summary: EvalSummary): Promise<string> | undefined {
  const groups = keepSweepGroups(summary.variants.map((v) => v.name));
  if (groups.size === 0) return undefined;
  const byName = new Map(summary.variants.map((v) => [v.name, v]));
  const values = [...groups].flatMap(([method, members]) =>
    members.map(({ variant, keep }) => {
      const v = byName.get(variant)!;
      return { method, keep, success: v.success_rate, low: v.ci95[0], high: v.ci95[1], step_ms: round(v.step_ms.total) };
    }),
  );
  return toSvg({
    width: WIDTH,
    height: HEIGHT,
    data: { values },
    encoding: {
      x: { field: 'keep', type: 'quantitative', title: 'fraction of visual tokens kept', scale: { domain: [0, 1] } },
      color: { field: 'method', type: 'nominal', title: 'method' },
    },
    layer: [
      { mark: { type: 'rule' }, encoding: { y: { field: 'low', type: 'quantitative', title: 'success rate', scale: { domain: [0, 1] } }, y2: { field: 'high' } } },
      { mark: { type: 'line', point: true }, encoding: { y: { field: 'success', type: 'quantitative' } } },
    ],
  } as TopLevelSpec);
}

/** Success per task, a bar per variant, with Wilson 95% intervals. */
export function perTaskSuccess(summary: EvalSummary): Promise<string> {
  const values = summary.variants.flatMap((v) =>
    v.tasks.map((t) => ({ variant: v.name, task: t.task, success: t.success_rate, low: t.ci95[0], high: t.ci95[1] })),
  );
  const order = summary.variants.map((v) => v.name);
  return toSvg({
    width: Math.max(WIDTH, summary.tasks.length * summary.variants.length * 12),
    height: HEIGHT,
    data: { values },
    encoding: {
      x: { field: 'task', type: 'nominal', sort: summary.tasks, title: null, axis: { labelAngle: -35, labelLimit: 240 } },
      xOffset: { field: 'variant', type: 'nominal', sort: order },
      color: { field: 'variant', type: 'nominal', sort: order, title: 'variant' },
    },
    layer: [
      { mark: { type: 'bar' }, encoding: { y: { field: 'success', type: 'quantitative', title: 'success rate', scale: { domain: [0, 1] } } } },
      { mark: { type: 'rule', color: 'black' }, encoding: { y: { field: 'low', type: 'quantitative' }, y2: { field: 'high' } } },
    ],
  } as TopLevelSpec);
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
