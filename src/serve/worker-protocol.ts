// Messages between the server (model-worker.ts) and the thread that owns the model (worker-entry.ts).
import type { LoadPolicyOptions } from '../policy.js';
import type { PruningReport } from '../prune/index.js';
import type { BackendName } from '../tensor/backends/index.js';
import type { ActJob, ModelFacts } from './act-request.js';

export interface WorkerSettings {
  modelDir: string;
  variant: string;
  backend: BackendName;
  prune?: LoadPolicyOptions['prune'];
  calibration?: LoadPolicyOptions['calibration'];
}

/** What one step returns to the server: the policy's result plus the prompt ids it ran on. */
export interface StepOutput {
  action: number[];
  normalizedAction: number[];
  actionTokenIds: number[];
  unnormKey: string;
  inputIds: number[];
  timingsMs: Record<string, number>;
  /** the pruning variant's report (kept tokens, end-effector patch), null for variants that do not prune */
  pruning: PruningReport | null;
}

export interface ReadyInfo extends ModelFacts {
  modelName: string;
  variant: string;
  backend: string;
  loadMs: number;
}

export type ToWorker = { type: 'act'; id: number; job: ActJob };

export type FromWorker =
  | { type: 'progress'; done: number; total: number }
  | ({ type: 'ready' } & ReadyInfo)
  | { type: 'result'; id: number; output: StepOutput; image?: ArrayBuffer }
  | { type: 'error'; id: number; status: number; message: string; image?: ArrayBuffer }
  | { type: 'fatal'; message: string; userError: boolean };

/** The ArrayBuffer that holds a job's image, which the job owns alone: it moves to the model thread and back. */
export function imageBuffer(job: ActJob): ArrayBuffer {
  return (job.image.kind === 'rgb' ? job.image.data : job.image.bytes).buffer as ArrayBuffer;
}
