// Backward-kernel selection, as index.ts selects the forward backend: training code asks by name.
import type { GradBackend } from '../grad-backend.js';
import { nativeGradBackend } from './native-grad.js';
import { refGradBackend } from './ref-grad.js';
import type { BackendName } from './index.js';

/**
 * 'ref': the float64 oracle. 'native': the C++ kernels. 'auto': native when the addon has them, else ref. Asking for
 * native when it is missing falls back to ref (index.ts's getBackend prints the one warning about the addon).
 */
export function getGradBackend(name: BackendName = 'auto'): GradBackend {
  if (name === 'ref') return refGradBackend;
  if (name !== 'native' && name !== 'auto') throw new Error(`unknown backend '${String(name)}' (expected ref, native or auto)`);
  return nativeGradBackend ?? refGradBackend;
}

/** Names of the backward backends this process can run. */
export function availableGradBackends(): Array<'ref' | 'native'> {
  return nativeGradBackend ? ['ref', 'native'] : ['ref'];
}
