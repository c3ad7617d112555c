// `sqap-vla serve` as a user runs it: the queue limit answers 503 with Retry-After and later requests succeed;
// /health answers during a step; SIGTERM during requests still answers them and exits 0; flag errors are UserErrors.
// The server runs on the slow `ref` backend so that a step lasts long enough to overlap requests reliably.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { UserError } from '../../src/errors.js';
import { runServeCommand } from '../../src/cli/serve.js';
import { decodeFloat64Reply, EXPECTED, jsonNumpyBody, metricValue, MODEL_DIR, post, referenceImage, spawnServe, type ServeProcess } from './helpers.js';
import { ACTION_MAX_ABS } from '../tolerances.js';
import { maxAbsDiff } from '../support/fixtures.js';

let serve: ServeProcess;
const body = jsonNumpyBody(referenceImage());

before(async () => {
  serve = await spawnServe(['--backend', 'ref', '--max-queue', '1', '--json']);
});
after(() => {
  if (serve.child.exitCode === null) serve.child.kill('SIGKILL');
});

async function waitFor(condition: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error(`timed out waiting for ${what}`);
}

test('past --max-queue requests get 503 with Retry-After, /health answers during a step, and later requests succeed', async () => {
  const replies = Array.from({ length: 6 }, () => post(serve.url, body));
  await waitFor(async () => (await metricValue(serve.url, 'sqap_vla_step_running')) === 1, 'a running step');
  const health = await fetch(`${serve.url}/health`);
  assert.equal(health.status, 200);
  assert.equal(((await health.json()) as { busy: boolean }).busy, true, 'health answered while the step ran');
  const results = await Promise.all(replies);
  const statuses = results.map((r) => r.status).sort();
  const refused = results.filter((r) => r.status === 503);
  assert.ok(refused.length >= 1, `statuses ${statuses}`);
  assert.ok(results.every((r) => r.status === 200 || r.status === 503), `statuses ${statuses}`);
  for (const r of refused) {
    assert.ok(Number(r.headers.get('retry-after')) >= 1, 'Retry-After in seconds');
    assert.match(JSON.parse(r.text).error, /--max-queue 1/);
  }
  for (const r of results.filter((x) => x.status === 200)) assert.ok(maxAbsDiff(decodeFloat64Reply(JSON.parse(r.text)), EXPECTED.action) <= ACTION_MAX_ABS);
  const later = await post(serve.url, body);
  assert.equal(later.status, 200, later.text);
});

test('SIGTERM while requests run and wait: both are answered, new connections are refused, exit 0 with a summary', async () => {
  const inFlight = [post(serve.url, body), post(serve.url, body)];
  await waitFor(async () => (await metricValue(serve.url, 'sqap_vla_act_in_flight')) === 2, 'two accepted requests');
  serve.child.kill('SIGTERM');
  const results = await Promise.all(inFlight);
  assert.deepEqual(results.map((r) => r.status), [200, 200], results.map((r) => r.text).join('\n'));
  await assert.rejects(fetch(`${serve.url}/health`), 'no new connections after SIGTERM');
  assert.equal(await serve.exited, 0, serve.stderr());
  const lines = serve.stdout().trim().split('\n');
  assert.ok(lines.some((l) => /stopping \(SIGTERM\)/.test(l)), serve.stdout());
  const summary = JSON.parse(lines[lines.length - 1]);
  assert.equal(summary.stopped_by, 'SIGTERM');
  assert.ok(summary.by_status['503'] >= 1 && summary.by_status['200'] >= 3, JSON.stringify(summary));
  // one log line per request: every answered request appears once
  const requestLines = lines.filter((l) => / (POST|GET) \//.test(l));
  assert.equal(requestLines.length, summary.requests);
});

test('serve --help, and flag errors are UserErrors (one line, exit status 2 through the CLI)', async () => {
  const printed: string[] = [];
  const log = console.log;
  console.log = (line: string) => printed.push(line);
  try {
    assert.equal(await runServeCommand(['--help']), 0);
  } finally {
    console.log = log;
  }
  assert.match(printed.join('\n'), /--max-queue N/);
  const cases: [string[], RegExp][] = [
    [[], /serve needs --model/],
    [['--model', '/nonexistent'], /model directory not found/],
    [['--model', MODEL_DIR, '--variant', 'w9a9'], /variant/],
    [['--model', MODEL_DIR, '--port', 'http'], /--port must be an integer/],
    [['--model', MODEL_DIR, '--max-queue=-1'], /--max-queue must be an integer/],
    [['--model', MODEL_DIR, '--backend', 'gpu'], /unknown --backend/],
    [['--model', MODEL_DIR, '--max-queue', '-1'], /--max-queue must be an integer from 0 to 100000, got '-1'/],
    [['--model', MODEL_DIR, '--prune-layer', '1'], /--prune-layer needs a pruning variant/],
    [['--model', MODEL_DIR, '--variant', 'sqap@0.5', '--prune-layer', '-1'], /--prune-layer must be an integer from 1 to \d+, got '-1'/],
    [['--model', MODEL_DIR, '--variant', 'sqap@0.5', '--sqap-share', '1.5'], /--sqap-share must be a number from 0 to 1, got '1.5'/],
    [['--model', MODEL_DIR, '--variant', 'sqap@0.5', '--sqap-radius', '-2'], /--sqap-radius must be a number from 0 to \d+, got '-2'/],
    [['--model', MODEL_DIR, '--variant', 'sqap@0.5', '--prune-seed', 'x'], /--prune-seed must be an integer/],
    // the model's own layer count is checked when it loads (tiny-openvla has 3 decoder layers)
    [['--model', MODEL_DIR, '--variant', 'sqap@0.5', '--prune-layer', '3'], /prune layer 3 is outside 1\.\.2/],
  ];
  for (const [args, pattern] of cases) {
    await assert.rejects(runServeCommand(args), (e: Error) => e instanceof UserError && pattern.test(e.message) && !e.message.includes('\n'), args.join(' '));
  }
});
