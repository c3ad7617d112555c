// Ordinal soft labels for the action tokens: the cross-entropy against a discretized Gaussian over the neighbouring
// action bins instead of a one-hot on the demonstrated bin (`train --label-sigma S`, S in bins; 0 = OpenVLA's hard
// labels).
//
// Why: the 256 bins are ordered, but a one-hot cross-entropy treats bin 131 as just as wrong as bin 3 when the label
// is 130. OpenVLA gets away with it because its backbones are pretrained and its data is large; trained from
// scratch on 60 k steps of proportional-control actions, each bin is seen a few hundred times and the gradient says
// nothing about "a bit more to the left". Spreading the target over ±3σ bins gives nearby bins credit, so the
// model learns the action as a quantity. Greedy decoding is unchanged (the argmax of the predicted distribution),
// and so is every checkpoint a run writes: only the training loss differs. Tokens outside the action range (`</s>`)
// keep a one-hot target.
import { allocF32 } from '../tensor/arena.js';

/** Which token ids form the ordered action bins (contiguous, `first` .. `last`), and the Gaussian's width in bins. */
export interface SoftLabels {
  sigma: number;
  first: number;
  last: number;
}

/**
 * Cross-entropy of logits [R, V] (row-major) against soft targets around `labels` [R], divided by `divisor`.
 * Returns the loss, its gradient dLogits [R, V] and the hard-label negative log-likelihood (same divisor), the
 * number a one-hot run reports, so runs with and without soft labels compare.
 */
export function softCrossEntropy(
  logits: Float32Array,
  vocab: number,
  labels: Int32Array,
  divisor: number,
  soft: SoftLabels,
): { loss: number; nll: number; dLogits: Float32Array } {
  const rows = labels.length;
  if (logits.length !== rows * vocab) throw new Error(`softCrossEntropy: ${rows} labels for ${logits.length / vocab} rows`);
  const dLogits = allocF32(rows * vocab);
  const reach = Math.ceil(3 * soft.sigma);
  const p = new Float64Array(vocab);
  let loss = 0;
  let nll = 0;
  for (let r = 0; r < rows; r++) {
    const row = logits.subarray(r * vocab, (r + 1) * vocab);
    let max = -Infinity;
    for (let j = 0; j < vocab; j++) max = Math.max(max, row[j]);
    let sum = 0;
    for (let j = 0; j < vocab; j++) sum += (p[j] = Math.exp(row[j] - max));
    const logSum = Math.log(sum) + max;
    for (let j = 0; j < vocab; j++) p[j] /= sum;
    const label = labels[r];
    nll += logSum - row[label];
    const grad = dLogits.subarray(r * vocab, (r + 1) * vocab);
    for (let j = 0; j < vocab; j++) grad[j] = p[j];
    if (soft.sigma > 0 && label >= soft.first && label <= soft.last) {
      const lo = Math.max(soft.first, label - reach);
      const hi = Math.min(soft.last, label + reach);
      let z = 0;
      for (let j = lo; j <= hi; j++) z += Math.exp(-((j - label) ** 2) / (2 * soft.sigma ** 2));
      for (let j = lo; j <= hi; j++) {
        const q = Math.exp(-((j - label) ** 2) / (2 * soft.sigma ** 2)) / z;
        loss += q * (logSum - row[j]);
        grad[j] -= q;
      }
    } else {
      loss += logSum - row[label];
      grad[label] -= 1;
    }
  }
  for (let i = 0; i < dLogits.length; i++) dLogits[i] /= divisor;
  return { loss: loss / divisor, nll: nll / divisor, dLogits };
}
