// The backends the shared op and parity suites run on: always `ref`; `native` when the addon is built.
import fs from 'node:fs';
import type { Backend } from '../../src/tensor/backend.js';
import { refBackend } from '../../src/tensor/backends/ref.js';

export async function testBackends(): Promise<Backend[]> {
  const backends: Backend[] = [refBackend];
  const index = new URL('../../src/tensor/backends/index.ts', import.meta.url);
  if (fs.existsSync(index)) {
    const { availableBackends, getBackend } = await import(index.href);
    if ((availableBackends() as string[]).includes('native')) backends.push(getBackend('native'));
  }
  return backends;
}
