// POST /act end to end: a standard-library Python client and a Node client in deploy.py's json-numpy wire format
// (plain and double-encoded) get the action `sqap-vla act` prints for the same image and prompt ids, and the
// reference action of the fixture; /health, /metrics, the body limit, and a model thread that dies mid-request.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import nodePath from 'node:path';
import type { RunningServer } from '../../src/serve/server.js';
import { makeTinyInstructionModel } from '../eval/tiny-model.js';
import { ACTION_MAX_ABS } from '../tolerances.js';
import { maxAbsDiff } from '../support/fixtures.js';
import { BIN, decodeFloat64Reply, EXPECTED, IMAGE_PATH, jsonNumpyBody, MODEL_DIR, post, referenceImage, ROOT, spawnServe, startTestServer } from './helpers.js';

let server: RunningServer;
const logs: string[] = [];
let actAction: number[];

before(async () => {
  server = await startTestServer({ log: (line) => logs.push(line) });
  const act = spawnSync(process.execPath, [BIN, 'act', '--model', MODEL_DIR, '--image', IMAGE_PATH, '--input-ids', EXPECTED.input_ids.join(','), '--json'], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(act.status, 0, act.stderr);
  actAction = JSON.parse(act.stdout.trim().split('\n').pop()!).action;
  assert.ok(maxAbsDiff(actAction, EXPECTED.action) <= ACTION_MAX_ABS);
});

after(async () => {
  await server?.close();
});

test('a standard-library Python client (json-numpy wire format, plain and double-encoded) gets the action of `sqap-vla act`', async (t) => {
  const probe = spawnSync('python3', ['--version']);
  if (probe.error) return t.skip('python3 is not installed');
  const image = referenceImage();
  const rawPath = nodePath.join(fs.mkdtempSync(nodePath.join(os.tmpdir(), 'serve-')), 'image.rgb');
  fs.writeFileSync(rawPath, image.data);
  for (const form of ['plain', 'encoded']) {
    // asynchronously: the server runs in this process and must keep answering
    const client = await promisify(execFile)('python3', [nodePath.join(ROOT, 'test', 'serve', 'client.py'), server.url, rawPath, String(image.height), String(image.width), EXPECTED.input_ids.join(','), form], { encoding: 'utf8' });
    const action = JSON.parse(client.stdout) as number[];
    assert.deepEqual(action, actAction, `${form}: the server's step is the same computation as act's`);
    assert.ok(maxAbsDiff(action, EXPECTED.action) <= ACTION_MAX_ABS, `${form}: ${action}`);
  }
});

test('a Node client gets the same action in each form: json-numpy, double-encoded, base64 PNG, return_details', async () => {
  const body = jsonNumpyBody(referenceImage());
  const plain = await post(server.url, body);
  assert.equal(plain.status, 200, plain.text);
  assert.match(plain.headers.get('content-type')!, /^application\/json/);
  // FastAPI's JSONResponse through json_numpy: compact separators
  assert.match(plain.text, /^\{"__numpy__":"[A-Za-z0-9+/=]+","dtype":"<f8","shape":\[7\]\}$/);
  assert.deepEqual(decodeFloat64Reply(JSON.parse(plain.text)), actAction);

  const encoded = await post(server.url, { encoded: JSON.stringify(body) });
  assert.equal(encoded.status, 200, encoded.text);
  const inner = JSON.parse(encoded.text) as string; // a JSON string holding json_numpy.dumps(action)
  assert.equal(typeof inner, 'string');
  assert.match(inner, /^\{"__numpy__": "[A-Za-z0-9+/=]+", "dtype": "<f8", "shape": \[7\]\}$/);
  assert.deepEqual(decodeFloat64Reply(JSON.parse(inner)), actAction);

  const png = await post(server.url, { image: fs.readFileSync(IMAGE_PATH).toString('base64'), input_ids: EXPECTED.input_ids, unnorm_key: 'tiny_dataset' });
  assert.equal(png.status, 200, png.text);
  assert.deepEqual(decodeFloat64Reply(JSON.parse(png.text)), actAction);

  const details = await post(server.url, { ...body, return_details: true, eef_pixel: [30, 40] });
  assert.equal(details.status, 200, details.text);
  const d = JSON.parse(details.text);
  assert.deepEqual(d.action, actAction);
  assert.deepEqual(d.action_token_ids, EXPECTED.action_token_ids);
  assert.deepEqual(d.input_ids, EXPECTED.input_ids);
  assert.equal(d.variant, 'base');
  assert.equal(d.pruning, null);
  for (const key of ['queue', 'step', 'vision', 'llm']) assert.equal(typeof d.timings_ms[key], 'number', key);
});

test('GET /health names the model and variant; GET /metrics is Prometheus text with requests, latency, queue and load time', async () => {
  const health = await fetch(`${server.url}/health`);
  assert.equal(health.status, 200);
  assert.deepEqual(
    { ...(await health.json()), queue_depth: 0, busy: false },
    { model: 'tiny-openvla', variant: 'base', backend: server.worker.info!.backend, ready: true, queue_depth: 0, busy: false, worker_restarts: server.worker.restarts },
  );
  await post(server.url, '{"image": 1}');
  const metrics = await (await fetch(`${server.url}/metrics`)).text();
  assert.match(metrics, /^sqap_vla_requests_total\{route="\/act",status="200"\} \d+$/m);
  assert.match(metrics, /^sqap_vla_requests_total\{route="\/act",status="400"\} \d+$/m);
  assert.match(metrics, /^# TYPE sqap_vla_act_latency_seconds histogram$/m);
  assert.match(metrics, /^sqap_vla_act_latency_seconds_bucket\{le="\+Inf"\} \d+$/m);
  assert.match(metrics, /^sqap_vla_queue_depth 0$/m);
  assert.match(metrics, /^sqap_vla_model_load_seconds \d+(\.\d+)?(e-\d+)?$/m);
  // every line is a comment or `name{labels} value`
  for (const line of metrics.trim().split('\n')) assert.match(line, /^(# (HELP|TYPE) .+|[a-z_]+(\{[^}]*\})? -?[\d.e+-]+|[a-z_]+(\{[^}]*\})? \+Inf)$/, line);
});

test('a chunked body (no Content-Length) is read as a whole, and one over the limit gets 413', async () => {
  const LIMIT = 50_000; // small, so that the refused body fits the socket buffers and the client reads the 413
  const small = await startTestServer({ bodyLimitBytes: LIMIT });
  const body = Buffer.from(JSON.stringify(jsonNumpyBody(referenceImage())));
  assert.ok(body.length < LIMIT);
  const send = (chunks: Buffer[]) =>
    new Promise<{ status: number; text: string }>((resolve, reject) => {
      const request = http.request(`${small.url}/act`, { method: 'POST', headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' } }, (response) => {
        let text = '';
        response.on('data', (chunk) => (text += chunk)).on('end', () => resolve({ status: response.statusCode ?? 0, text }));
      });
      request.on('error', reject);
      for (const chunk of chunks) request.write(chunk);
      request.end();
    });
  try {
    const whole = await send([body.subarray(0, 3000), body.subarray(3000, 9000), body.subarray(9000)]);
    assert.equal(whole.status, 200, whole.text);
    assert.ok(maxAbsDiff(decodeFloat64Reply(JSON.parse(whole.text)), EXPECTED.action) <= ACTION_MAX_ABS);
    const big = await send([Buffer.alloc(LIMIT + 1, 0x20)]);
    assert.equal(big.status, 413, big.text);
  } finally {
    await small.close();
  }
});

test('a body over the limit gets 413, an unknown route 404, and each request one log line', async () => {
  const before = logs.length;
  const big = await post(server.url, JSON.stringify({ image: 'A'.repeat(2 << 20) }));
  assert.equal(big.status, 413);
  assert.equal((await fetch(`${server.url}/nope`)).status, 404);
  assert.equal(logs.length - before, 2);
  const line = JSON.parse(logs[logs.length - 1]);
  assert.equal(line.status, 404);
  assert.equal(line.path, '/nope');
});

test('a model thread that dies mid-request answers that request with 500, is restarted, and later requests succeed', async () => {
  const body = jsonNumpyBody(referenceImage());
  let crashed: Awaited<ReturnType<typeof post>> | undefined;
  for (let attempt = 0; attempt < 20 && !crashed; attempt++) {
    const request = post(server.url, body);
    // kill the thread once the step is running (the step is short, so poll; retry if it finished first)
    for (let i = 0; i < 500; i++) {
      const health = (await (await fetch(`${server.url}/health`)).json()) as { busy: boolean };
      if (health.busy) {
        server.worker.kill();
        break;
      }
      if (await Promise.race([request.then(() => true), new Promise((r) => setImmediate(() => r(false)))])) break;
    }
    const reply = await request;
    if (reply.status === 500) crashed = reply;
    else assert.equal(reply.status, 200, reply.text);
  }
  assert.ok(crashed, 'never caught a step running');
  assert.match(JSON.parse(crashed.text).error, /model worker exited .* it is being restarted/);
  assert.ok(logs.some((line) => /worker_crash/.test(line)));
  const after = await post(server.url, body); // waits in the queue for the new thread
  assert.equal(after.status, 200, after.text);
  assert.deepEqual(decodeFloat64Reply(JSON.parse(after.text)), actAction);
  assert.equal(server.worker.restarts, 1);
  assert.match(await (await fetch(`${server.url}/metrics`)).text(), /^sqap_vla_worker_restarts_total 1$/m);
});

test("the README's Python client and curl example work against the server", async (t) => {
  const readme = fs.readFileSync(nodePath.join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Serve'), readme.indexOf('## Library'));
  const python = /```python\n([\s\S]*?)```/.exec(section)![1].replaceAll('http://127.0.0.1:8000', server.url);
  assert.ok(python.trim().split('\n').length <= 12, 'about ten lines');
  const run = promisify(execFile);
  if (spawnSync('python3', ['--version']).error) t.diagnostic('python3 is not installed: Python snippet skipped');
  else {
    const { stdout } = await run('python3', ['-c', python], { encoding: 'utf8' });
    const action = stdout.trim().replace(/^\(|\)$/g, '').split(',').map(Number);
    assert.equal(action.length, 7, stdout);
    assert.ok(action.every(Number.isFinite), stdout);
  }
  if (spawnSync('curl', ['--version']).error) return t.skip('curl is not installed');
  const curl = /```sh\n([\s\S]*?)```/.exec(section)![1].split('\n').filter((l) => !l.includes('sqap-vla serve')).join('\n').replaceAll('http://127.0.0.1:8000', server.url);
  const { stdout } = await run('bash', ['-c', curl], { cwd: ROOT, encoding: 'utf8' });
  const [details, health] = stdout.trim().replace(/\}\s*\{/, '}\n{').split('\n').map((l) => JSON.parse(l)); // curl prints no newline after a body
  assert.deepEqual(details.action, actAction);
  assert.equal(health.ready, true);
});

test('a pruning variant gets the robot context: the action and kept tokens equal `act --variant sqap@0.5 --eef-pixel`', async () => {
  const pruned = await startTestServer({ variant: 'sqap@0.5' });
  try {
    const run = promisify(execFile);
    const act = await run(process.execPath, [BIN, 'act', '--model', MODEL_DIR, '--image', IMAGE_PATH, '--input-ids', EXPECTED.input_ids.join(','), '--variant', 'sqap@0.5', '--eef-pixel', '30,40', '--json'], { cwd: ROOT, encoding: 'utf8' });
    const expected = JSON.parse(act.stdout.trim().split('\n').pop()!) as { action: number[]; pruning: { kept_indices: number[]; eef_patch: number | null } };
    const reply = await post(pruned.url, jsonNumpyBody(referenceImage(), { eef_pixel: [30, 40], return_details: true }));
    assert.equal(reply.status, 200, reply.text);
    const details = JSON.parse(reply.text);
    assert.equal(details.variant, 'sqap@0.5');
    assert.deepEqual(details.action, expected.action);
    assert.equal(details.pruning.method, 'sqap');
    assert.deepEqual(details.pruning.kept_indices, expected.pruning.kept_indices);
    assert.equal(details.pruning.eef_patch, expected.pruning.eef_patch);
    assert.notEqual(details.pruning.eef_patch, null);
    // without a robot context sqap degrades to query + FPS and says so
    const bare = JSON.parse((await post(pruned.url, jsonNumpyBody(referenceImage(), { return_details: true }))).text);
    assert.equal(bare.pruning.eef_patch, null);
    assert.match(bare.pruning.note, /no robot context/);
  } finally {
    await pruned.close();
  }
});

test('serve --prune-layer --sqap-share --sqap-radius tune pruning as act does: same kept tokens and action', async () => {
  const tuning = ['--variant', 'sqap@0.5', '--prune-layer', '1', '--sqap-share', '0.25', '--sqap-radius', '1'];
  const served = await spawnServe(tuning);
  try {
    const act = await promisify(execFile)(process.execPath, [BIN, 'act', '--model', MODEL_DIR, '--image', IMAGE_PATH, '--input-ids', EXPECTED.input_ids.join(','), ...tuning, '--eef-pixel', '30,40', '--json'], { cwd: ROOT, encoding: 'utf8' });
    const expected = JSON.parse(act.stdout.trim().split('\n').pop()!) as { action: number[]; pruning: { layer: number; kept_indices: number[]; query_share: number; ring_radius: number } };
    const reply = await post(served.url, jsonNumpyBody(referenceImage(), { eef_pixel: [30, 40], return_details: true }));
    assert.equal(reply.status, 200, reply.text);
    const details = JSON.parse(reply.text);
    assert.equal(details.pruning.layer, 1);
    assert.equal(details.pruning.query_share, 0.25);
    assert.equal(details.pruning.ring_radius, 1);
    assert.deepEqual(details.pruning.kept_indices, expected.pruning.kept_indices);
    assert.deepEqual(details.action, expected.action);
  } finally {
    served.child.kill('SIGTERM');
    await served.exited;
  }
});

test('a checkpoint with a tokenizer takes the instruction alone: same prompt ids and action as `act --instruction`', async () => {
  const dir = makeTinyInstructionModel();
  const withTokenizer = await startTestServer({ modelDir: dir });
  try {
    const act = await promisify(execFile)(process.execPath, [BIN, 'act', '--model', dir, '--image', IMAGE_PATH, '--instruction', 'Pick up the red cube', '--json'], { cwd: ROOT, encoding: 'utf8' });
    const expected = JSON.parse(act.stdout.trim().split('\n').pop()!) as { action: number[]; input_ids: number[] };
    const { input_ids: _, ...body } = jsonNumpyBody(referenceImage(), { instruction: 'Pick up the red cube', return_details: true });
    const reply = await post(withTokenizer.url, body);
    assert.equal(reply.status, 200, reply.text);
    const details = JSON.parse(reply.text);
    assert.deepEqual(details.input_ids, expected.input_ids);
    assert.deepEqual(details.action, expected.action);
  } finally {
    await withTokenizer.close();
  }
});
