// The server's handle on the model thread (worker-entry.ts): start it, run one job at a time on it, and restart
// it when it dies. A crash answers the request it was running with a 500 and the queue waits for the new thread;
// a thread that cannot load, or that crashes again and again, is fatal: the server fails loudly instead of hanging.
import { Worker } from 'node:worker_threads';
import { UserError } from '../errors.js';
import type { ActJob } from './act-request.js';
import { imageBuffers } from './buffer-pool.js';
import { HttpError } from './errors.js';
import { imageBuffer, type FromWorker, type ReadyInfo, type StepOutput, type ToWorker, type WorkerSettings } from './worker-protocol.js';

/** More crashes than this within CRASH_WINDOW_MS is fatal (a model that crashes on every step). */
export const MAX_CRASHES = 3;
export const CRASH_WINDOW_MS = 60_000;

const BOOTSTRAP_URL = new URL('../sim/worker-bootstrap.mjs', import.meta.url);
/** From TypeScript sources (tsx) the entry is .ts and needs tsx's loader; from the compiled dist/ it is plain JS. */
const FROM_SOURCE = import.meta.url.endsWith('.ts');
const ENTRY_URL = new URL(FROM_SOURCE ? './worker-entry.ts' : './worker-entry.js', import.meta.url);

export interface ModelWorkerEvents {
  onProgress?: (done: number, total: number) => void;
  /** the thread died; it is being restarted */
  onCrash?: (reason: string) => void;
  /** the model cannot be served (load failed, or a crash loop): the server must stop */
  onFatal: (error: Error) => void;
}

interface Pending {
  id: number;
  resolve: (output: StepOutput) => void;
  reject: (error: Error) => void;
}

export class ModelWorker {
  info: ReadyInfo | undefined;
  ready = false;
  restarts = 0;
  private worker: Worker | undefined;
  private readyPromise!: Promise<ReadyInfo>;
  private pending: Pending | undefined;
  private nextId = 1;
  private closing = false;
  private failed: Error | undefined;
  private readonly crashTimes: number[] = [];

  constructor(
    private readonly settings: WorkerSettings,
    private readonly events: ModelWorkerEvents,
  ) {
    this.spawn();
  }

  /** Resolves when the model is loaded (again, after a restart); rejects when it cannot be. */
  whenReady(): Promise<ReadyInfo> {
    return this.readyPromise;
  }

  /** One step; the caller (the queue) never runs two at once. */
  async run(job: ActJob): Promise<StepOutput> {
    if (this.pending) throw new Error('ModelWorker.run: a step is already running');
    await this.readyPromise;
    if (this.failed) throw new HttpError(500, `the model is unavailable: ${this.failed.message}`);
    const worker = this.worker!;
    return new Promise<StepOutput>((resolve, reject) => {
      const id = this.nextId++;
      this.pending = { id, resolve, reject };
      // the image bytes are this request's own (act-request.ts ownBytes): move them instead of copying; they come
      // back with the answer and go to the pool for the next request's image
      worker.postMessage({ type: 'act', id, job } satisfies ToWorker, [imageBuffer(job)]);
    });
  }

  /** End the thread as a crash would (for tests of the restart path). */
  kill(): void {
    void this.worker?.terminate();
  }

  async close(): Promise<void> {
    this.closing = true;
    this.readyPromise.catch(() => undefined);
    await this.worker?.terminate();
  }

  private spawn(): void {
    this.ready = false;
    const worker = new Worker(BOOTSTRAP_URL, {
      workerData: { tsxApi: FROM_SOURCE ? import.meta.resolve('tsx/esm/api') : undefined, entry: ENTRY_URL.href, settings: this.settings },
    });
    this.worker = worker;
    let lastError = '';
    this.readyPromise = new Promise<ReadyInfo>((resolve, reject) => {
      worker.on('message', (message: FromWorker) => {
        if (message.type === 'progress') this.events.onProgress?.(message.done, message.total);
        else if (message.type === 'ready') {
          const { type: _, ...info } = message;
          this.info = info;
          this.ready = true;
          resolve(info);
        } else if (message.type === 'fatal') {
          const error = message.userError ? new UserError(message.message) : new Error(message.message);
          this.fail(error);
          reject(error);
        } else this.settle(message);
      });
      worker.on('error', (error) => {
        lastError = error.message;
      });
      worker.on('exit', (code) => {
        if (this.worker !== worker) return;
        this.worker = undefined;
        this.ready = false;
        if (this.closing || this.failed) {
          reject(new Error('the model worker was closed'));
          return;
        }
        const reason = `the model worker exited (code ${code}${lastError ? `: ${lastError.split('\n')[0]}` : ''})`;
        this.pending?.reject(new HttpError(500, `${reason} while running this request; it is being restarted`));
        this.pending = undefined;
        if (!this.info) {
          const error = new Error(`${reason} before the model was loaded`);
          this.fail(error);
          reject(error);
          return;
        }
        this.restart(reason);
      });
    });
    this.readyPromise.catch(() => undefined); // observed through whenReady/run; no unhandled rejection here
  }

  private restart(reason: string): void {
    const now = Date.now();
    this.crashTimes.push(now);
    while (this.crashTimes.length && this.crashTimes[0] < now - CRASH_WINDOW_MS) this.crashTimes.shift();
    this.restarts++;
    if (this.crashTimes.length > MAX_CRASHES) {
      this.fail(new Error(`${reason}; it crashed ${this.crashTimes.length} times within ${CRASH_WINDOW_MS / 1000} s, so it is not restarted again`));
      return;
    }
    this.events.onCrash?.(reason);
    this.spawn();
  }

  private settle(message: Extract<FromWorker, { type: 'result' | 'error' }>): void {
    if (message.image) imageBuffers.release(message.image);
    const pending = this.pending;
    if (!pending || pending.id !== message.id) return;
    this.pending = undefined;
    if (message.type === 'result') pending.resolve(message.output);
    else pending.reject(new HttpError(message.status, message.message));
  }

  private fail(error: Error): void {
    if (this.failed) return;
    this.failed = error;
    this.pending?.reject(new HttpError(500, `the model is unavailable: ${error.message}`));
    this.pending = undefined;
    void this.worker?.terminate();
    this.events.onFatal(error);
  }
}
