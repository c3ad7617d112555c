// One prediction's visual-token pruner: a pruning spec (METHOD@KEEP, layer K, SQAP options), the robot context and
// the image size -> the object models/openvla.ts calls inside the prefill (structurally its VisualTokenPruner), and
// afterwards the report `act --json` prints.
import { UserError } from '../errors.js';
import type { AttentionScoreRequest, AttentionScores } from '../tensor/backend.js';
import type { PruneMethod } from '../variant.js';
import { fastv, grid as gridCriterion, keepBudget, query, random, sqap, SQAP_DEFAULTS, type Selection, type SqapOptions } from './criteria.js';
import { patchAt, squareGrid, type ImagePoint, type PatchGrid } from './grid.js';
import { eefImagePoint, type RobotContext } from './robot.js';
import { scoreRequest, visualScores, type PromptLayout } from './scores.js';

/** FastV's choice, and ours: two full layers are enough for attention to single out the tokens that matter. */
export const DEFAULT_PRUNE_LAYER = 2;

export interface PruneConfig extends SqapOptions {
  method: PruneMethod;
  /** fraction of visual tokens kept, in (0, 1] */
  keep: number;
  /** K: layers 0 .. K-1 see every token */
  layer: number;
  /** seed of `random` */
  seed: number;
  /** query tokens: the last N prompt tokens (default 1) */
  queryTokens: number;
}

export function pruneConfig(method: PruneMethod, keep: number, overrides: Partial<Omit<PruneConfig, 'method' | 'keep'>> = {}): PruneConfig {
  const defined = Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined));
  const config: PruneConfig = { method, keep, layer: DEFAULT_PRUNE_LAYER, seed: 0, queryTokens: 1, ...SQAP_DEFAULTS, ...defined };
  if (!(config.keep > 0 && config.keep <= 1)) throw new UserError(`keep ratio ${config.keep} is outside (0, 1]`);
  if (!(config.queryShare >= 0 && config.queryShare <= 1)) throw new UserError(`sqap query share ${config.queryShare} is outside [0, 1]`);
  if (!(config.ringRadius >= 0 && Number.isFinite(config.ringRadius))) throw new UserError(`sqap ring radius ${config.ringRadius} must be a finite number >= 0 (patches)`);
  if (!(Number.isInteger(config.queryTokens) && config.queryTokens >= 1)) throw new UserError(`query tokens ${config.queryTokens} must be an integer >= 1`);
  if (!Number.isInteger(config.seed)) throw new UserError(`pruning seed ${config.seed} must be an integer`);
  return config;
}

/** K must leave at least one layer before and one after the cut. */
export function checkPruneLayer(layer: number, layers: number): void {
  if (!(Number.isInteger(layer) && layer >= 1 && layer <= layers - 1)) {
    throw new UserError(`prune layer ${layer} is outside 1..${layers - 1} (this model has ${layers} decoder layers)`);
  }
}

/** What `act --json` prints under "pruning" (snake_case keys, as the CLI's JSON). */
export interface PruningReport {
  method: PruneMethod;
  layer: number;
  keep: number;
  visual_tokens: number;
  kept_indices: number[];
  /** the patch containing the end effector; null without a robot context or when it is out of view */
  eef_patch: number | null;
  /** sqap only: the protected patches around the end effector */
  ring?: number[];
  query_share?: number;
  ring_radius?: number;
  /** set when sqap ran without a robot context (query + FPS only) */
  note?: string;
}

export interface VisualPruner {
  readonly layer: number;
  request(layout: PromptLayout): AttentionScoreRequest;
  choose(scores: AttentionScores, layout: PromptLayout): Int32Array;
  /** after a prediction: what was kept and why; undefined before */
  report(): PruningReport | undefined;
  /** after a prediction: the patch grid, kept tokens and ring (for --save-mask) */
  selection(): { grid: PatchGrid; selection: Selection; eef: ImagePoint | null } | undefined;
}

/**
 * A pruner for one prediction. `imageSize` is the input image's (an end-effector pixel is relative to it); the
 * robot context is optional (sqap then degrades to query + FPS and says so in the report).
 */
export function createPruner(config: PruneConfig, robot: RobotContext | undefined, imageSize: { width: number; height: number }): VisualPruner {
  let last: { grid: PatchGrid; selection: Selection; eef: ImagePoint | null; report: PruningReport } | undefined;
  return {
    layer: config.layer,
    request: (layout) => scoreRequest(config.method, layout, config.queryTokens),
    choose(scores, layout) {
      const grid = squareGrid(layout.visualCount);
      const budget = keepBudget(config.keep, layout.visualCount);
      const eef = robot ? eefImagePoint(robot, imageSize) : null;
      const visual = visualScores(scores, layout);
      const selection = select(config, visual, grid, budget, layout.visualCount, eef);
      const report: PruningReport = {
        method: config.method,
        layer: config.layer,
        keep: config.keep,
        visual_tokens: layout.visualCount,
        kept_indices: selection.kept,
        eef_patch: eef ? patchAt(grid, eef) : null,
      };
      if (config.method === 'sqap') {
        Object.assign(report, { ring: selection.ring, query_share: config.queryShare, ring_radius: config.ringRadius });
        if (!robot) report.note = 'no robot context (--eef-pixel or --eef with --camera): sqap ran as query + farthest-point sampling';
      }
      last = { grid, selection, eef, report };
      return Int32Array.from(selection.kept);
    },
    report: () => last?.report,
    selection: () => last && { grid: last.grid, selection: last.selection, eef: last.eef },
  };
}

function select(config: PruneConfig, scores: ReturnType<typeof visualScores>, grid: PatchGrid, budget: number, count: number, eef: ImagePoint | null): Selection {
  switch (config.method) {
    case 'fastv':
      return fastv(scores, budget);
    case 'query':
      return query(scores, budget);
    case 'sqap':
      return sqap(scores, grid, budget, eef, config);
    case 'random':
      return random(count, budget, config.seed);
    case 'grid':
      return gridCriterion(count, budget);
  }
}
