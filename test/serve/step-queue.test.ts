// The server's step queue with a controllable fake step: one step at a time, a bounded queue (503 + Retry-After),
// per-request deadlines (504), and idle() for graceful shutdown.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HttpError } from '../../src/serve/errors.js';
import { StepQueue } from '../../src/serve/step-queue.js';

/** A step that finishes when the test says so. */
function manualSteps() {
  const pending: { job: number; finish: (value: number) => void; fail: (e: Error) => void }[] = [];
  let concurrent = 0;
  let maxConcurrent = 0;
  const run = (job: number) =>
    new Promise<number>((resolve, reject) => {
      concurrent++;
      maxConcurrent = Math.max(maxConcurrent, concurrent);
      const done = () => concurrent--;
      pending.push({ job, finish: (v) => (done(), resolve(v)), fail: (e) => (done(), reject(e)) });
    });
  return { run, pending, maxConcurrent: () => maxConcurrent };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

test('one step at a time, in arrival order; past max-queue waiting requests a 503 with Retry-After', async () => {
  const steps = manualSteps();
  const queue = new StepQueue<number, number>(2, 10_000, steps.run);
  const accepted = [1, 2, 3].map((job) => queue.submit(job));
  await assert.rejects(queue.submit(4), (e: HttpError) => e.status === 503 && /2 requests are already waiting/.test(e.message) && Number(e.headers['retry-after']) >= 1);
  assert.equal(queue.depth, 2);
  assert.equal(queue.busy, true);
  for (let i = 0; i < 3; i++) {
    await tick();
    assert.equal(steps.pending.length, i + 1, 'the next step starts only when the previous one ended');
    steps.pending[i].finish(steps.pending[i].job * 10);
  }
  const results = await Promise.all(accepted);
  assert.deepEqual(results.map((r) => r.result), [10, 20, 30]);
  assert.equal(steps.maxConcurrent(), 1);
  // once drained, new requests are accepted again
  const later = queue.submit(5);
  await tick();
  steps.pending[3].finish(50);
  assert.equal((await later).result, 50);
});

test('max-queue 0 runs one request and refuses the rest', async () => {
  const steps = manualSteps();
  const queue = new StepQueue<number, number>(0, 10_000, steps.run);
  const first = queue.submit(1);
  await assert.rejects(queue.submit(2), (e: HttpError) => e.status === 503);
  await tick();
  steps.pending[0].finish(1);
  assert.equal((await first).result, 1);
});

test('a request past its deadline gets 504, waiting or running; the queue moves on', async () => {
  const steps = manualSteps();
  const queue = new StepQueue<number, number>(4, 30, steps.run);
  const running = queue.submit(1);
  const waiting = queue.submit(2);
  await assert.rejects(running, (e: HttpError) => e.status === 504 && /while its step was running/.test(e.message));
  await assert.rejects(waiting, (e: HttpError) => e.status === 504 && /waiting in the queue/.test(e.message));
  assert.equal(queue.depth, 0);
  steps.pending[0].finish(1); // the late result is dropped
  await tick();
  assert.equal(steps.pending.length, 1, 'the expired waiting request never ran');
  assert.equal(queue.busy, false);
});

test('a failed step rejects its request only; close() refuses new ones and idle() waits for accepted ones', async () => {
  const steps = manualSteps();
  const queue = new StepQueue<number, number>(4, 10_000, steps.run);
  const failing = queue.submit(1);
  const next = queue.submit(2);
  await tick();
  steps.pending[0].fail(new HttpError(500, 'worker died'));
  await assert.rejects(failing, /worker died/);
  queue.close();
  await assert.rejects(queue.submit(3), (e: HttpError) => e.status === 503 && /shutting down/.test(e.message));
  let idle = false;
  const idlePromise = queue.idle().then(() => (idle = true));
  await tick();
  assert.equal(idle, false);
  steps.pending[1].finish(2);
  assert.equal((await next).result, 2);
  await idlePromise;
  assert.equal(idle, true);
});
