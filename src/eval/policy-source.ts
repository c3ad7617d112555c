// Where an evaluation's policies come from: a checkpoint (each variant through loadPolicy, as everywhere), or a
// module exporting loadEvalPolicy(variant, options) => BatchPolicy (fakes for tests, custom policies).
import { UserError } from '../errors.js';
import type { BackendName } from '../tensor/backends/index.js';
import type { BatchPolicy } from './lockstep.js';

export type EvalPolicySource =
  | { kind: 'model'; model: string; backend: BackendName; unnormKey?: string }
  | { kind: 'module'; module: string; options?: unknown };

export interface LoadedEvalPolicy {
  policy: BatchPolicy;
  backend: string;
}

export async function loadEvalPolicy(source: EvalPolicySource, variant: string): Promise<LoadedEvalPolicy> {
  if (source.kind === 'model') {
    const { ModelPolicy } = await import('./model-policy.js');
    const model = ModelPolicy.load({ model: source.model, variant, backend: source.backend, ...(source.unnormKey ? { unnormKey: source.unnormKey } : {}) });
    return { policy: model.batchPolicy(), backend: model.loaded.model.backend.name };
  }
  const module = (await import(source.module)) as { loadEvalPolicy?: (variant: string, options: unknown) => BatchPolicy | Promise<BatchPolicy> };
  if (typeof module.loadEvalPolicy !== 'function') throw new UserError(`policy module ${source.module} has no exported function 'loadEvalPolicy'.`);
  return { policy: await module.loadEvalPolicy(variant, source.options), backend: 'module' };
}
