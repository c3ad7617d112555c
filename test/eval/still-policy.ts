// An eval policy that holds still (zero motion, gripper open): for tests that only need episodes to start.
import type { BatchPolicy } from '../../src/eval/lockstep.js';

export function loadEvalPolicy(): BatchPolicy {
  return {
    actBatch: (items) => ({
      actions: items.map(() => [0, 0, 0, 0, 0, 0, -1]),
      timingsMs: items.map(() => ({ vision: 1, llm: 1, total: 2 })),
    }),
  };
}
