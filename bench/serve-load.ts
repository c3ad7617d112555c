// Load on `sqap-vla serve` with the bundled policy, measured in one run against the bare policy step:
//   - the bare step (loadPolicy + predict on an RgbImage, what `act` runs, same model, variant, backend, image and
//     prompt) and POST /act at 1 client, alternated one by one so that both see the same machine;
//     overhead = (server p50 latency - bare step p50) / bare step p50 (target <= 5%), with the server's side split
//     by its Server-Timing header (parse, queue, model-thread round trip, the step inside the model thread), and the
//     HTTP floor: the same POST to a plain node:http server that does nothing but read it, alternated too; and per
//     request, its latency minus the step inside the model thread (what the server adds to that very step);
//   - p50/p99 latency and throughput at 1, 4 and 16 closed-loop clients, each for a fixed time; a client that gets
//     503 waits its Retry-After, capped at --backoff-ms, and tries again (and 16 clients once more waiting the whole
//     Retry-After); errors other than 503 must be 0, and every request must be answered;
//   - resident memory of the server process before and after --memory-requests requests (target growth < 5%).
// The server runs as a child process (`bin/sqap-vla.js serve`), so its memory and event loop are its own.
// Run: npx tsx bench/serve-load.ts [--model DIR] [--image FILE] [--seconds 10] [--samples 80] [--memory-requests 1000]
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import nodePath from 'node:path';
import { parseArgs } from 'node:util';
import { readImageFile } from '../src/io/image.js';

const TINY_INPUT_IDS = [1, 40, 77, 300, 9, 123, 56, 201, 88, 14, 3];
const BIN = nodePath.join(import.meta.dirname, '..', 'bin', 'sqap-vla.js');

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    variant: { type: 'string', default: 'base' },
    instruction: { type: 'string', default: 'pick up the red cube' },
    image: { type: 'string' },
    seconds: { type: 'string', default: '10' },
    samples: { type: 'string', default: '80' },
    'memory-requests': { type: 'string', default: '1000' },
    'max-queue': { type: 'string', default: '4' },
    'backoff-ms': { type: 'string', default: '50' },
  },
});
const modelDir = values.model ?? (fs.existsSync('models/tabletop-policy/config.json') ? 'models/tabletop-policy' : 'models/tiny-openvla');
const hasTokenizer = fs.existsSync(nodePath.join(modelDir, 'tokenizer.json'));
// the model's own camera frame (224x224 for tabletop-policy: a ~200 KB json-numpy body), else the tiny test image
const imagePath = values.image ?? ['frame.png', 'image.png'].map((f) => nodePath.join(modelDir, f)).find((f) => fs.existsSync(f)) ?? 'models/tiny-openvla/image.png';
const image = readImageFile(imagePath);
// encoded once: building the body is the client's work, not the server's
const body = Buffer.from(JSON.stringify({
  image: { __numpy__: Buffer.from(image.data).toString('base64'), dtype: '|u1', shape: [image.height, image.width, 3] },
  instruction: values.instruction,
  ...(hasTokenizer ? {} : { input_ids: TINY_INPUT_IDS }),
}));

function quantile(xs: number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}
const median = (xs: number[]) => quantile(xs, 0.5);

// ---- the server ----
const server = spawn(process.execPath, [BIN, 'serve', '--model', modelDir, '--variant', values.variant!, '--port', '0', '--max-queue', values['max-queue']!], { stdio: ['ignore', 'pipe', 'inherit'] });
process.on('exit', () => server.kill('SIGKILL')); // never leave the server behind, even when this script fails
// the server's log (one line per request) is read and dropped once it says where it listens
let serverLog = '';
const { url, serverVariant, serverBackend } = await new Promise<{ url: string; serverVariant: string; serverBackend: string }>((resolve, reject) => {
  const onData = (chunk: Buffer) => {
    serverLog += chunk;
    const match = /listening on (http:\/\/[\d.]+:\d+) \(model \S+, variant (\S+), backend (\w+)/.exec(serverLog);
    if (!match) return;
    server.stdout.off('data', onData);
    server.stdout.resume();
    serverLog = '';
    resolve({ url: match[1], serverVariant: match[2], serverBackend: match[3] });
  };
  server.stdout.on('data', onData);
  server.on('exit', (code) => reject(new Error(`serve exited with ${code}`)));
});
// The HTTP floor: a plain node:http server (same node, same nice) that reads the body and answers the action the
// policy server answers. What any Node HTTP server pays for this exchange on this machine, with no parsing at all.
const FLOOR_SERVER = `
const http = require('node:http');
const answer = JSON.stringify({ __numpy__: Buffer.alloc(56).toString('base64'), dtype: '<f8', shape: [7] });
const server = http.createServer((request, response) => {
  request.on('data', () => undefined);
  request.on('end', () => response.writeHead(200, { 'content-type': 'application/json' }).end(answer));
});
server.listen(0, '127.0.0.1', () => console.log('floor listening on http://127.0.0.1:' + server.address().port));
`;
const floorServer = spawn(process.execPath, ['-e', FLOOR_SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
process.on('exit', () => floorServer.kill('SIGKILL'));
const floorUrl = await new Promise<string>((resolve) => floorServer.stdout.once('data', (chunk: Buffer) => resolve(/(http:\S+)/.exec(String(chunk))![1])));

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

interface Reply {
  status: number;
  ms: number;
  retryAfterS: number;
  /** the Server-Timing header's durations by name */
  timing: Record<string, number>;
}
function parseServerTiming(header: string | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of (header ?? '').matchAll(/(\w+);dur=([\d.]+)/g)) out[m[1]] = Number(m[2]);
  return out;
}
function postAct(to = url): Promise<Reply> {
  const start = performance.now();
  return new Promise((resolve, reject) => {
    const request = http.request(`${to}/act`, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': body.length } }, (response) => {
      response.resume();
      response.on('end', () => resolve({ status: response.statusCode ?? 0, ms: performance.now() - start, retryAfterS: Number(response.headers['retry-after'] ?? 0), timing: parseServerTiming(response.headers['server-timing'] as string | undefined) }));
    });
    request.setTimeout(120_000, () => request.destroy(new Error('client timeout')));
    request.on('error', reject);
    request.end(body);
  });
}
async function serverRss(): Promise<number> {
  const text = await new Promise<string>((resolve, reject) =>
    http.get(`${url}/metrics`, { agent }, (r) => {
      let t = '';
      r.on('data', (c) => (t += c)).on('end', () => resolve(t));
    }).on('error', reject),
  );
  return Number(/^process_resident_memory_bytes (\d+)/m.exec(text)![1]);
}

// ---- load at a concurrency ----
interface LevelResult {
  clients: number;
  /** a refused client waits min(Retry-After, backoffMs) before it tries again */
  backoffMs: number;
  ok: number[];
  refused: number;
  otherErrors: Record<string, number>;
  unanswered: number;
  seconds: number;
}
async function runLevel(clients: number, seconds: number, maxRequests = Infinity, backoffMs = Number(values['backoff-ms'])): Promise<LevelResult> {
  const result: LevelResult = { clients, backoffMs, ok: [], refused: 0, otherErrors: {}, unanswered: 0, seconds: 0 };
  const deadline = performance.now() + seconds * 1000;
  let sent = 0;
  const start = performance.now();
  const client = async () => {
    while (performance.now() < deadline && sent < maxRequests) {
      sent++;
      try {
        const reply = await postAct();
        if (reply.status === 200) result.ok.push(reply.ms);
        else if (reply.status === 503) {
          result.refused++;
          await new Promise((r) => setTimeout(r, Math.min(reply.retryAfterS * 1000, backoffMs)));
        } else result.otherErrors[reply.status] = (result.otherErrors[reply.status] ?? 0) + 1;
      } catch {
        result.unanswered++;
      }
    }
  };
  await Promise.all(Array.from({ length: clients }, client));
  result.seconds = (performance.now() - start) / 1000;
  return result;
}

// ---- bare step vs server at concurrency 1, alternated ----
// the bare step runs in a process of its own (serve-bare-step.ts): same model, variant, backend, image and prompt
const bareChild = spawn(process.execPath, [...process.execArgv, nodePath.join(import.meta.dirname, 'serve-bare-step.ts'), modelDir, values.variant!, imagePath, hasTokenizer ? values.instruction! : '', TINY_INPUT_IDS.join(',')], {
  stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
});
process.on('exit', () => bareChild.kill('SIGKILL'));
const policy = await new Promise<{ backend: string; variant: string }>((resolve, reject) => {
  bareChild.once('message', (m) => resolve(m as { backend: string; variant: string }));
  bareChild.once('exit', (code) => reject(new Error(`the bare-step process exited with ${code}`)));
});
const bareStep = () =>
  new Promise<number>((resolve) => {
    bareChild.once('message', (m) => resolve((m as { ms: number }).ms));
    bareChild.send('step');
  });
console.log(`serve-load: ${modelDir} (variant ${values.variant}), ${image.width}x${image.height} image ${nodePath.basename(imagePath)} as json-numpy (${(body.length / 1024).toFixed(0)} KiB body), ${url}`);
console.log(`  bare step: a process of its own (policy.predict timed inside it), backend ${policy.backend}, variant ${policy.variant}; server: model thread, backend ${serverBackend}, variant ${serverVariant}`);
if (serverBackend !== policy.backend || serverVariant !== policy.variant) throw new Error('the server runs another backend or variant than the bare step');
const WARM_UP = 10;
for (let i = 0; i < WARM_UP; i++) {
  await bareStep();
  await postAct();
  await postAct(floorUrl);
}
// One at a time, in the order bare, server, bare, floor: every side runs with the same duty cycle (on a shared
// machine the scheduler favours a thread that has been idle, so blocks of steps back to back would make one side
// look slower than it is).
const bare: number[] = [];
const served: number[] = [];
const floor: number[] = [];
const timings: Record<string, number>[] = [];
while (served.length < Number(values.samples)) {
  bare.push(await bareStep());
  const reply = await postAct();
  if (reply.status !== 200) throw new Error(`POST /act answered ${reply.status} at 1 client`);
  served.push(reply.ms);
  timings.push(reply.timing);
  bare.push(await bareStep());
  floor.push((await postAct(floorUrl)).ms);
}
const bareP50 = median(bare);
const servedP50 = median(served);
const floorP50 = median(floor);
const overhead = (servedP50 - bareP50) / bareP50;
const part = (name: string) => median(timings.map((t) => t[name]));
const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
console.log(`\nbare policy step vs POST /act at 1 client: ${bare.length} bare steps, ${served.length} requests, ${floor.length} floor requests, alternated one by one (after ${WARM_UP} warm-up rounds):`);
console.log(`  bare step p50 ${bareP50.toFixed(2)} ms, server p50 ${servedP50.toFixed(2)} ms`);
console.log(`  overhead = (server p50 - bare step p50) / bare step p50 = ${pct(overhead)} (target <= 5%)`);
console.log(
  `  server side, p50 of its Server-Timing: parse ${part('parse').toFixed(2)} ms (body read, JSON, base64; of which waiting for the body's bytes ${part('read').toFixed(2)} ms), queue ${part('queue').toFixed(2)} ms, ` +
    `model-thread round trip ${part('step').toFixed(2)} ms (of which the step inside the thread ${part('worker').toFixed(2)} ms, the policy ${part('policy').toFixed(2)} ms); ` +
    `the rest of the latency (HTTP in and out, client) ${(servedP50 - part('parse') - part('queue') - part('step')).toFixed(2)} ms`,
);
// The same request's latency against the step inside the model thread: what the server adds, free of the
// difference between this process's step and the server thread's step from one moment to the next.
const added = median(served.map((ms, i) => ms - timings[i].worker));
const workerP50 = part('worker');
console.log(`  per request: latency - the step inside the model thread, p50 ${added.toFixed(2)} ms = ${pct(added / workerP50)} of that step's p50 (${workerP50.toFixed(2)} ms)`);
console.log(
  `  HTTP floor: the same POST to a plain node:http server that only reads the body and answers the same action: p50 ${floorP50.toFixed(2)} ms = ${pct(floorP50 / bareP50)} of the bare step; ` +
    `server overhead beyond that floor ${pct((servedP50 - bareP50 - floorP50) / bareP50)}`,
);

// ---- 1, 4, 16 clients ----
const seconds = Number(values.seconds);
const levels: LevelResult[] = [];
for (const clients of [1, 4, 16]) levels.push(await runLevel(clients, seconds));
// 16 clients again, now as clients that wait the whole Retry-After the server asks for: a refused request costs the
// server an upload it reads and drops, so how often refused clients come back decides what overload costs
const patient = await runLevel(16, seconds, Infinity, Infinity);
console.log(`\nclosed-loop clients, ${seconds} s each, --max-queue ${values['max-queue']} (503 -> wait min(Retry-After, ${values['backoff-ms']} ms) and retry; 16* waits the whole Retry-After):`);
console.log('clients  answered 200  p50 ms  p99 ms  req/s (200)  503s  other errors  unanswered');
for (const r of [...levels, patient]) {
  const other = Object.values(r.otherErrors).reduce((a, b) => a + b, 0);
  console.log(
    `${`${r.clients}${r.backoffMs === Infinity ? '*' : ''}`.padStart(7)} ${String(r.ok.length).padStart(13)} ${median(r.ok).toFixed(1).padStart(7)} ${quantile(r.ok, 0.99).toFixed(1).padStart(7)} ${(r.ok.length / r.seconds).toFixed(1).padStart(12)} ${String(r.refused).padStart(5)} ${String(other).padStart(13)} ${String(r.unanswered).padStart(11)}`,
  );
}
console.log(`  ratio: throughput at 16 clients / 1 client = ${(levels[2].ok.length / levels[2].seconds / (levels[0].ok.length / levels[0].seconds)).toFixed(2)}x (one step at a time: ~1x expected)`);

// ---- resident memory over N requests ----
const memoryRequests = Number(values['memory-requests']);
const rssBefore = await serverRss();
const memoryRun = await runLevel(4, 3600, memoryRequests);
const rssAfter = await serverRss();
const memoryAnswered = memoryRun.ok.length + memoryRun.refused + Object.values(memoryRun.otherErrors).reduce((a, b) => a + b, 0);
console.log(`\nserver resident memory over ${memoryAnswered} requests at 4 clients (${memoryRun.ok.length} answered 200): ${(rssBefore / 2 ** 20).toFixed(1)} MiB -> ${(rssAfter / 2 ** 20).toFixed(1)} MiB, growth ${(((rssAfter - rssBefore) / rssBefore) * 100).toFixed(2)}% (target < 5%)`);

const otherErrors = [...levels, patient, memoryRun].reduce((n, r) => n + Object.values(r.otherErrors).reduce((a, b) => a + b, 0), 0);
const unanswered = [...levels, patient, memoryRun].reduce((n, r) => n + r.unanswered, 0);
console.log(`\nerrors other than 503: ${otherErrors} (must be 0); requests without an answer: ${unanswered} (must be 0)`);
console.log(
  JSON.stringify({
    model: modelDir,
    variant: policy.variant,
    backend: policy.backend,
    image: `${image.width}x${image.height}`,
    body_bytes: body.length,
    bare_step_p50_ms: bareP50,
    server_p50_ms: servedP50,
    overhead: overhead,
    http_floor_p50_ms: floorP50,
    added_per_request_p50_ms: added,
    worker_step_p50_ms: workerP50,
    server_timing_p50_ms: Object.fromEntries(['parse', 'read', 'queue', 'step', 'worker', 'policy'].map((k) => [k, part(k)])),
    levels: [...levels, patient].map((r) => ({
      clients: r.clients,
      retry: r.backoffMs === Infinity ? 'Retry-After' : `min(Retry-After, ${r.backoffMs} ms)`,
      ok: r.ok.length,
      p50_ms: median(r.ok),
      p99_ms: quantile(r.ok, 0.99),
      req_per_s: r.ok.length / r.seconds,
      refused_503: r.refused,
      other_errors: Object.values(r.otherErrors).reduce((x, y) => x + y, 0),
      unanswered: r.unanswered,
    })),
    memory: { requests: memoryAnswered, rss_before_bytes: rssBefore, rss_after_bytes: rssAfter, growth: (rssAfter - rssBefore) / rssBefore },
  }),
);
server.kill('SIGTERM');
floorServer.kill('SIGTERM');
bareChild.disconnect();
await new Promise((r) => server.on('exit', r));
agent.destroy();
process.exitCode = otherErrors === 0 && unanswered === 0 ? 0 : 1;
