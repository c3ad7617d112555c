// Backend selection. Model code asks for a backend by name and never imports a backend file directly.
import type { Backend } from '../backend.js';
import { nativeBackend, nativeInfo, nativeLoadError, NATIVE_ISAS, type NativeIsa } from './native.js';
import { refBackend } from './ref.js';

export type BackendName = 'ref' | 'native' | 'auto';

let warnedMissing = false;
let warnedIsa = false;

function warnOnce(kind: 'missing' | 'isa', line: string): void {
  if (kind === 'missing' ? warnedMissing : warnedIsa) return;
  if (kind === 'missing') warnedMissing = true;
  else warnedIsa = true;
  process.stderr.write(`${line}\n`);
}

/** Warn (once) when SQAP_NATIVE_ISA names a path that is unknown or that this CPU cannot run. */
function checkRequestedIsa(): void {
  const requested = process.env.SQAP_NATIVE_ISA;
  const info = nativeInfo();
  if (!requested || !info) return;
  if (!NATIVE_ISAS.includes(requested as NativeIsa)) {
    warnOnce('isa', `sqap-vla: SQAP_NATIVE_ISA=${requested} is not one of ${NATIVE_ISAS.join(', ')}; using ${info.isa}.`);
  } else if (requested !== info.isa) {
    warnOnce('isa', `sqap-vla: SQAP_NATIVE_ISA=${requested} is not supported by this CPU; using ${info.isa}.`);
  }
}

/**
 * 'ref': the pure-TypeScript oracle. 'native': the C++ addon. 'auto' (default): native when it is built, else ref.
 * When native is asked for (or auto) but the addon is missing, one line on stderr says so and how to build it, and
 * ref is used, so a machine without a compiler still runs (slowly).
 */
export function getBackend(name: BackendName = 'auto'): Backend {
  if (name === 'ref') return refBackend;
  if (name !== 'native' && name !== 'auto') {
    throw new Error(`unknown backend '${String(name)}' (expected ref, native or auto)`);
  }
  if (nativeBackend) {
    checkRequestedIsa();
    return nativeBackend;
  }
  warnOnce(
    'missing',
    `sqap-vla: the native addon is not built (${nativeLoadError()}); using the slow 'ref' backend. ` +
      'Build it with `npm rebuild` (or `npx node-gyp rebuild`) in the sqap-vla package.',
  );
  return refBackend;
}

/** Names of the backends that can run in this process ('ref' always; 'native' when its addon loaded). */
export function availableBackends(): Array<'ref' | 'native'> {
  return nativeBackend ? ['ref', 'native'] : ['ref'];
}
