// Entry of the episode worker threads. Node 20 does not apply `--import tsx` from a Worker's execArgv to the
// worker's own entry module, so this plain-JS entry registers tsx's loader first, then imports the TypeScript entry.
// Registering again in a process already started by the tsx CLI is harmless.
import { workerData } from 'node:worker_threads';

const { register } = await import(workerData.tsxApi);
register();
await import(workerData.entry);
