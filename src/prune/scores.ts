// From layer K-1's attention to per-visual-token scores: what each criterion asks the attention kernel for (only
// the rows it needs, never the full [H, T, S] probabilities), and how the answer is reduced.
import type { AttentionScoreRequest, AttentionScores } from '../tensor/backend.js';
import type { PruneMethod } from '../variant.js';
import type { VisualScores } from './criteria.js';

/** Where the visual tokens sit in the prompt (structurally models/openvla.ts PromptLayout). */
export interface PromptLayout {
  tokens: number;
  visualStart: number;
  visualCount: number;
}

/**
 * The query rows: the last `queryTokens` prompt tokens. By default only the last one: in OpenVLA it is the token
 * whose output is the first action token's logits (the "space" token after "Out:"), the closest thing this
 * architecture has to CogACT's cognition query; it has read the whole instruction, unlike the visual tokens.
 */
export function queryRows(layout: PromptLayout, queryTokens = 1): Int32Array {
  const count = Math.min(Math.max(1, queryTokens), layout.tokens);
  return Int32Array.from({ length: count }, (_, i) => layout.tokens - count + i);
}

export function scoreRequest(method: PruneMethod, layout: PromptLayout, queryTokens = 1): AttentionScoreRequest {
  if (method === 'fastv') return { keyTotals: true };
  if (method === 'query' || method === 'sqap') return { queryRows: queryRows(layout, queryTokens) };
  return {}; // random, grid: no scores
}

/** AttentionScores (keys in prompt order) -> per-visual-token scores */
export function visualScores(scores: AttentionScores, layout: PromptLayout): VisualScores {
  const { visualStart, visualCount } = layout;
  const out: VisualScores = {};
  if (scores.keyTotals) {
    out.received = Float32Array.from({ length: visualCount }, (_, j) => scores.keyTotals![visualStart + j] / layout.tokens);
  }
  if (scores.queryProbs) {
    const [heads, rows, keys] = scores.queryProbs.shape;
    const p = scores.queryProbs.data;
    out.fromQuery = new Float32Array(visualCount);
    for (let j = 0; j < visualCount; j++) {
      let sum = 0;
      for (let hr = 0; hr < heads * rows; hr++) sum += p[hr * keys + visualStart + j];
      out.fromQuery[j] = sum / (heads * rows);
    }
  }
  return out;
}
