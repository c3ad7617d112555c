// The backends the shared op and parity suites run on: always `ref`; `native` when the addon is built.
import fs from 'node:fs';
import type { Backend } from '../../src/tensor/backend.js';
import type { GradBackend } from '../../src/tensor/grad-backend.js';
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

/** Forward + backward backend pairs: always ref/ref; native/native when the addon (with its backward ops) is built. */
export async function testGradBackends(): Promise<{ backend: Backend; grad: GradBackend }[]> {
  const { refGradBackend } = await import('../../src/tensor/backends/ref-grad.js');
  const pairs: { backend: Backend; grad: GradBackend }[] = [{ backend: refBackend, grad: refGradBackend }];
  const index = new URL('../../src/tensor/backends/grad-index.ts', import.meta.url);
  if (fs.existsSync(index)) {
    const { availableGradBackends, getGradBackend } = await import(index.href);
    const { getBackend } = await import('../../src/tensor/backends/index.js');
    if ((availableGradBackends() as string[]).includes('native')) pairs.push({ backend: getBackend('native'), grad: getGradBackend('native') });
  }
  return pairs;
}
