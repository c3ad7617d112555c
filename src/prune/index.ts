// Visual-token pruning: criteria (fastv, query, sqap, random, grid), the robot context SQAP protects, and the pruner
// that models/openvla.ts runs inside the prefill. See docs/pruning.md.
export type { RobotContext, PinholeCamera } from './robot.js';
export { eefImagePoint, projectToPixel, readCameraFile, parseCamera } from './robot.js';
export { squareGrid, patchAt, patchesWithin, coverageRadius, type PatchGrid, type ImagePoint } from './grid.js';
export { farthestPointSampling } from './fps.js';
export { fastv, query, sqap, random, grid, topK, topkOverlap, keepBudget, SQAP_DEFAULTS, type VisualScores, type Selection, type SqapOptions } from './criteria.js';
export { scoreRequest, visualScores, queryRows, type PromptLayout } from './scores.js';
export { createPruner, pruneConfig, checkPruneLayer, DEFAULT_PRUNE_LAYER, type PruneConfig, type PruningReport, type VisualPruner } from './pruner.js';
export { pruningMask } from './mask.js';
