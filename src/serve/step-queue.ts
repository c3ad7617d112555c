// One policy step at a time (a step uses every core), a bounded line of waiting requests, and a deadline per
// request. Past the bound a request is refused at once with 503 and a Retry-After estimated from recent step
// times; a request whose deadline passes gets 504 (if its step is already running, the step finishes and its
// result is dropped: native work cannot be interrupted).
import { HttpError } from './errors.js';

interface Entry<J, R> {
  job: J;
  enqueuedAt: number;
  resolve: (value: { result: R; queueMs: number; stepMs: number }) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
  settled: boolean;
}

export class StepQueue<J, R> {
  private readonly waiting: Entry<J, R>[] = [];
  private running: Entry<J, R> | undefined;
  private idleWaiters: (() => void)[] = [];
  /** exponential moving average of step wall time, for Retry-After */
  private stepMsAverage = 0;
  private closed = false;

  constructor(
    private readonly maxQueue: number,
    private readonly timeoutMs: number,
    private readonly runStep: (job: J) => Promise<R>,
  ) {}

  /** requests waiting (not counting the one running) */
  get depth(): number {
    return this.waiting.length;
  }

  get busy(): boolean {
    return this.running !== undefined;
  }

  /** Seconds a refused client should wait: the expected time to drain the queue, at least 1. */
  retryAfterSeconds(): number {
    return Math.max(1, Math.ceil((this.stepMsAverage * (this.waiting.length + 1)) / 1000));
  }

  /** The 503 a new request would get now, or undefined when it would be accepted. */
  refusal(): HttpError | undefined {
    if (this.closed) return new HttpError(503, 'the server is shutting down', { 'retry-after': '1' });
    if (this.running && this.waiting.length >= this.maxQueue) {
      return new HttpError(503, `busy: ${this.waiting.length} requests are already waiting (--max-queue ${this.maxQueue})`, { 'retry-after': String(this.retryAfterSeconds()) });
    }
    return undefined;
  }

  submit(job: J): Promise<{ result: R; queueMs: number; stepMs: number }> {
    const refusal = this.refusal();
    if (refusal) return Promise.reject(refusal);
    return new Promise((resolve, reject) => {
      const entry: Entry<J, R> = { job, enqueuedAt: performance.now(), resolve, reject, settled: false, timer: undefined as unknown as NodeJS.Timeout };
      entry.timer = setTimeout(() => this.expire(entry), this.timeoutMs);
      this.waiting.push(entry);
      this.pump();
    });
  }

  /** Refuse new requests; those already accepted still run. */
  close(): void {
    this.closed = true;
  }

  /** Resolves when nothing is running or waiting. */
  idle(): Promise<void> {
    if (!this.running && this.waiting.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private expire(entry: Entry<J, R>): void {
    if (entry.settled) return;
    entry.settled = true;
    const index = this.waiting.indexOf(entry);
    const where = index >= 0 ? 'waiting in the queue' : 'while its step was running';
    if (index >= 0) this.waiting.splice(index, 1);
    entry.reject(new HttpError(504, `timed out after ${this.timeoutMs} ms ${where}`));
    this.notifyIdle();
  }

  private pump(): void {
    if (this.running) return;
    const entry = this.waiting.shift();
    if (!entry) {
      this.notifyIdle();
      return;
    }
    this.running = entry;
    const startedAt = performance.now();
    const finish = (): number => {
      const stepMs = performance.now() - startedAt;
      this.stepMsAverage = this.stepMsAverage === 0 ? stepMs : 0.8 * this.stepMsAverage + 0.2 * stepMs;
      clearTimeout(entry.timer);
      this.running = undefined;
      return stepMs;
    };
    this.runStep(entry.job).then(
      (result) => {
        const stepMs = finish();
        if (!entry.settled) {
          entry.settled = true;
          entry.resolve({ result, queueMs: startedAt - entry.enqueuedAt, stepMs });
        }
        this.pump();
      },
      (error: Error) => {
        finish();
        if (!entry.settled) {
          entry.settled = true;
          entry.reject(error);
        }
        this.pump();
      },
    );
  }

  private notifyIdle(): void {
    if (this.running || this.waiting.length > 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}
