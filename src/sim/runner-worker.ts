// A worker thread of runJobs (runner.ts): builds the policy once, then runs the jobs it is sent, one at a time.
import { parentPort, workerData } from 'node:worker_threads';
import { UserError } from '../errors.js';
import { executeJob, loadPolicyFactory, type FromWorker, type JobSettings, type ToWorker } from './runner.js';

const port = parentPort;
if (!port) throw new Error('runner-worker.ts must run in a worker thread');
const settings = (workerData as { settings: JobSettings }).settings;

function post(message: FromWorker): void {
  port!.postMessage(message);
}

function fatal(error: unknown): void {
  const message = error instanceof Error ? (error instanceof UserError ? error.message : (error.stack ?? error.message)) : String(error);
  post({ type: 'fatal', message, userError: error instanceof UserError });
}

try {
  const factory = await loadPolicyFactory(settings.policy);
  port.on('message', (message: ToWorker) => {
    executeJob(message.job, factory, settings).then(
      (outcome) => post({ type: 'outcome', index: message.job.index, outcome }),
      fatal,
    );
  });
  post({ type: 'ready' });
} catch (error) {
  fatal(error);
}
