// Entry of the episode worker threads. Node 20 does not apply `--import tsx` from a Worker's execArgv to the
// worker's own entry module, so when the entry (running from sources) or a user's policy/env module is TypeScript,
// this plain-JS entry registers tsx's loader first; from the compiled dist/ with JS modules it imports directly.
// Registering again in a process already started by the tsx CLI is harmless.
import { workerData } from 'node:worker_threads';

if (workerData.tsxApi) {
  const { register } = await import(workerData.tsxApi);
  register();
}
await import(workerData.entry);
