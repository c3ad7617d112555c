// Behaviour-cloning targets as OpenVLA builds them: normalize each action with the dataset's q01/q99 (where the
// mask is true; the gripper stays as recorded), clip to [-1, 1], np.digitize into 256 uniform bins over [-1, 1],
// token id = realVocabSize - digitize index (so the bins are the last 256 ids of the real vocabulary), then </s>.
// Inverse of models/action-tokenizer.ts detokenizeActions.
import type { ActionStats } from '../models/action-tokenizer.js';

/** OpenVLA's normalization: clip(2 (x - q01) / (q99 - q01 + 1e-8) - 1, -1, 1) where mask, else x. */
export function normalizeAction(action: readonly number[], stats: ActionStats): number[] {
  return action.map((x, i) => {
    const value = (stats.mask?.[i] ?? true) ? (2 * (x - stats.q01[i])) / (stats.q99[i] - stats.q01[i] + 1e-8) - 1 : x;
    return Math.min(1, Math.max(-1, value));
  });
}

/**
 * Widens each normalized dimension's [q01, q99] about its midpoint to at least `minRange` (in action units; the
 * mask's false dimensions are left alone). The experts' roll and pitch commands are small corrections towards level
 * (q01/q99 about +-0.08 of the env's +-1 range): OpenVLA's q01/q99 stretch them over all 256 bins, so a policy's
 * error of a few bins there is a rotation the arm integrates step after step (docs/training.md, run g: the arm
 * tilted out of view). With a range of 1 the same labels span about 40 bins and a few bins of error is a fraction of
 * a degree. 0 keeps OpenVLA's statistics unchanged.
 */
export function widenActionStats<S extends ActionStats>(stats: S, minRange: number): S {
  if (!(minRange > 0)) return stats;
  const q01 = [...stats.q01];
  const q99 = [...stats.q99];
  for (let i = 0; i < q01.length; i++) {
    if (!(stats.mask?.[i] ?? true) || q99[i] - q01[i] >= minRange) continue;
    const mid = (q01[i] + q99[i]) / 2;
    q01[i] = mid - minRange / 2;
    q99[i] = mid + minRange / 2;
  }
  return { ...stats, q01, q99 };
}

/** normalized [-1, 1] -> token ids: realVocabSize - digitize(x, linspace(-1, 1, nBins)) */
export function actionTokenIds(normalized: readonly number[], realVocabSize: number, nBins: number): number[] {
  const step = 2 / (nBins - 1);
  return normalized.map((x) => {
    // np.digitize(x, bins): the number of bin edges <= x (edges are -1 + i·step, the last exactly 1)
    let index = 0;
    for (let i = 0; i < nBins; i++) if ((i === nBins - 1 ? 1 : -1 + i * step) <= x) index = i + 1;
    return realVocabSize - index;
  });
}
