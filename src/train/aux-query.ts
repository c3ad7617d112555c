// Auxiliary query readout: a linear head on the decoder's final-norm output at the rows that predict the action
// tokens, regressing the scene's privileged state (the aux-vision.ts targets) and the demonstrated action as
// continuous numbers, by mean squared error (`train --query-aux-weight W`).
//
// Why: with the vision readout alone, the ViTs' features learned where the gripper and the objects are (readout
// MSE 0.13 of the standardized variance), yet the policy still answered the constant action: the decoder had not
// learned to route what the patches say to the prompt's last row, and the 256-way action cross-entropy gives that
// routing (the query-key attention to the right patches) a weak, second-order gradient. Asking the same rows to
// say, linearly, where things are and what the action is gives it a dense first-order one; lm_head then reads the
// action from a row that already holds it. The head is training-only (`aux_*`, dropped from model.safetensors).
export const QUERY_PREFIX = 'aux_query_head.';

/** Names of the query head's outputs: the state targets, then the 7 action dimensions. */
export function queryTargetNames(stateNames: string[]): string[] {
  return [...stateNames, ...['x', 'y', 'z', 'roll', 'pitch', 'yaw', 'gripper'].map((d) => `action.${d}`)];
}

/**
 * The targets and mask [R·K] of one sample's `rows` loss rows: the first `rows - 1` rows (those predicting the action
 * tokens) get the standardized state values [S] (masked by `stateMask`) and the normalized action [7]; the last row
 * (predicting `</s>`) is masked out.
 */
export function queryRowTargets(stateValues: Float32Array, stateMask: Float32Array, action: number[], rows: number): { values: Float32Array; mask: Float32Array } {
  const k = stateValues.length + action.length;
  const values = new Float32Array(rows * k);
  const mask = new Float32Array(rows * k);
  for (let r = 0; r < rows - 1; r++) {
    values.set(stateValues, r * k);
    mask.set(stateMask, r * k);
    values.set(action, r * k + stateValues.length);
    mask.fill(1, r * k + stateValues.length, (r + 1) * k);
  }
  return { values, mask };
}
