// The run's log: one JSON object per logged step in loss.jsonl (step, loss, lr, grad norm, samples/s, and eval
// results when an evaluation ran), and loss.png, the training loss (and eval token accuracy) against step.
import fs from 'node:fs';
import { PNG } from 'pngjs';

export interface LogRecord {
  step: number;
  loss?: number;
  lr?: number;
  grad_norm?: number;
  samples_per_s?: number;
  elapsed_s?: number;
  /** offline: greedy action-token accuracy on held-out demonstrations */
  eval_token_accuracy?: number;
  /** offline: mean absolute error of the greedy normalized action */
  eval_action_mae?: number;
  /** [7] per action dimension, and what a constant answer (the targets' median) scores */
  eval_action_mae_per_dim?: number[];
  eval_constant_mae_per_dim?: number[];
  eval_loss?: number;
  /** with auxiliary vision targets: 'vision' (ViTs on the readout alone) or 'bc', and the readout's mean squared error */
  phase?: 'vision' | 'bc';
  aux_mse?: number;
  /** with the query readout (aux-query.ts): its mean squared error */
  query_mse?: number;
  /** the per-patch heatmap cross-entropy (nats), with --heatmap-weight */
  heatmap_ce?: number;
  /** with soft labels (soft-labels.ts): the hard-label cross-entropy, comparable with a one-hot run's loss */
  nll?: number;
  /** closed loop: success rate in the testbed */
  eval_success_rate?: number;
}

export function readLog(path: string): LogRecord[] {
  if (!fs.existsSync(path)) return [];
  return fs
    .readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => line.trim())
    .map((line) => JSON.parse(line) as LogRecord);
}

/** Keep only records up to `step` (a resumed run rewrites what came after its checkpoint). */
export function truncateLog(path: string, step: number): void {
  const kept = readLog(path).filter((r) => r.step <= step);
  fs.writeFileSync(path, kept.map((r) => `${JSON.stringify(r)}\n`).join(''));
}

export function appendLog(path: string, record: LogRecord): void {
  fs.appendFileSync(path, `${JSON.stringify(record)}\n`);
}

const WIDTH = 640;
const HEIGHT = 360;
const MARGIN = 40;

/**
 * loss.png: training loss (blue, log scale, 0.1..max) and eval token accuracy (orange, 0..1 on the same height)
 * against step; light grid lines at each power of ten of the loss.
 */
export function plotLog(path: string, records: LogRecord[]): void {
  const png = new PNG({ width: WIDTH, height: HEIGHT });
  png.data.fill(255);
  const set = (x: number, y: number, rgb: [number, number, number]) => {
    if (x < 0 || y < 0 || x >= WIDTH || y >= HEIGHT) return;
    const i = (Math.round(y) * WIDTH + Math.round(x)) * 4;
    png.data[i] = rgb[0];
    png.data[i + 1] = rgb[1];
    png.data[i + 2] = rgb[2];
    png.data[i + 3] = 255;
  };
  const line = (x0: number, y0: number, x1: number, y1: number, rgb: [number, number, number]) => {
    const n = Math.max(1, Math.ceil(Math.max(Math.abs(x1 - x0), Math.abs(y1 - y0))));
    for (let i = 0; i <= n; i++) set(x0 + ((x1 - x0) * i) / n, y0 + ((y1 - y0) * i) / n, rgb);
  };
  const losses = records.filter((r) => r.loss !== undefined && r.loss > 0);
  const maxStep = Math.max(1, ...records.map((r) => r.step));
  const hiLog = Math.log10(Math.max(1, ...losses.map((r) => r.loss!)));
  const loLog = Math.min(-1, ...losses.map((r) => Math.log10(r.loss!)));
  const x = (step: number) => MARGIN + ((WIDTH - 2 * MARGIN) * step) / maxStep;
  const yLoss = (loss: number) => HEIGHT - MARGIN - ((HEIGHT - 2 * MARGIN) * (Math.log10(loss) - loLog)) / Math.max(1e-9, hiLog - loLog);
  const yUnit = (v: number) => HEIGHT - MARGIN - (HEIGHT - 2 * MARGIN) * v;
  for (let p = Math.ceil(loLog); p <= Math.floor(hiLog); p++) line(MARGIN, yLoss(10 ** p), WIDTH - MARGIN, yLoss(10 ** p), [225, 225, 225]);
  line(MARGIN, HEIGHT - MARGIN, WIDTH - MARGIN, HEIGHT - MARGIN, [0, 0, 0]);
  line(MARGIN, MARGIN, MARGIN, HEIGHT - MARGIN, [0, 0, 0]);
  for (let i = 1; i < losses.length; i++) {
    line(x(losses[i - 1].step), yLoss(losses[i - 1].loss!), x(losses[i].step), yLoss(losses[i].loss!), [31, 119, 180]);
  }
  const evals = records.filter((r) => r.eval_token_accuracy !== undefined);
  for (let i = 0; i < evals.length; i++) {
    const px = x(evals[i].step);
    const py = yUnit(evals[i].eval_token_accuracy!);
    for (let d = -2; d <= 2; d++) {
      set(px + d, py, [255, 127, 14]);
      set(px, py + d, [255, 127, 14]);
    }
    if (i > 0) line(x(evals[i - 1].step), yUnit(evals[i - 1].eval_token_accuracy!), px, py, [255, 127, 14]);
  }
  fs.writeFileSync(path, PNG.sync.write(png));
}
