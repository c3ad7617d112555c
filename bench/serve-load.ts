// Load on `sqap-vla serve` with the bundled policy, measured in one run against the bare policy step:
//   - the bare step (loadPolicy + predict on an RgbImage, what `act` runs) and the server at 1 client, interleaved
//     in rounds so that both see the same machine; overhead = server p50 latency / bare p50 step - 1 (target <= 5%);
//   - p50/p99 latency and throughput at 1, 4 and 16 closed-loop clients, each for a fixed time; a client that gets
//     503 waits its Retry-After, capped at --backoff-ms, and tries again; errors other than 503 must be 0, and
//     every request must be answered;
//   - resident memory of the server process before and after --memory-requests requests (target growth < 5%).
// The server runs as a child process (`bin/sqap-vla.js serve`), so its memory and event loop are its own.
// Run: npx tsx bench/serve-load.ts [--model DIR] [--image FILE] [--seconds 10] [--rounds 5] [--memory-requests 1000]
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import nodePath from 'node:path';
import { parseArgs } from 'node:util';
import { readImageFile } from '../src/io/image.js';
import { instructionInputIds } from '../src/models/prompt.js';
import { loadTokenizer } from '../src/models/tokenizer.js';
import { loadPolicy } from '../src/policy.js';
import { getBackend } from '../src/tensor/backends/index.js';

const TINY_INPUT_IDS = [1, 40, 77, 300, 9, 123, 56, 201, 88, 14, 3];
const BIN = nodePath.join(import.meta.dirname, '..', 'bin', 'sqap-vla.js');

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    variant: { type: 'string', default: 'base' },
    instruction: { type: 'string', default: 'pick up the red cube' },
    image: { type: 'string' },
    seconds: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '5' },
    'steps-per-round': { type: 'string', default: '20' },
    'memory-requests': { type: 'string', default: '1000' },
    'max-queue': { type: 'string', default: '4' },
    'backoff-ms': { type: 'string', default: '50' },
  },
});
const modelDir = values.model ?? (fs.existsSync('models/tabletop-policy/config.json') ? 'models/tabletop-policy' : 'models/tiny-openvla');
const hasTokenizer = fs.existsSync(nodePath.join(modelDir, 'tokenizer.json'));
const imagePath = values.image ?? nodePath.join(modelDir, 'image.png');
const image = readImageFile(fs.existsSync(imagePath) ? imagePath : 'models/tiny-openvla/image.png');
const body = JSON.stringify({
  image: { __numpy__: Buffer.from(image.data).toString('base64'), dtype: '|u1', shape: [image.height, image.width, 3] },
  instruction: values.instruction,
  ...(hasTokenizer ? {} : { input_ids: TINY_INPUT_IDS }),
});

function quantile(xs: number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}
const median = (xs: number[]) => quantile(xs, 0.5);

// ---- the server ----
const server = spawn(process.execPath, [BIN, 'serve', '--model', modelDir, '--variant', values.variant!, '--port', '0', '--max-queue', values['max-queue']!], { stdio: ['ignore', 'pipe', 'inherit'] });
process.on('exit', () => server.kill('SIGKILL')); // never leave the server behind, even when this script fails
let serverLog = '';
const url = await new Promise<string>((resolve, reject) => {
  server.stdout.on('data', (chunk) => {
    serverLog += chunk;
    const match = /listening on (http:\/\/[\d.]+:\d+)/.exec(serverLog);
    if (match) resolve(match[1]);
  });
  server.on('exit', (code) => reject(new Error(`serve exited with ${code}`)));
});
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

interface Reply {
  status: number;
  ms: number;
  retryAfterS: number;
}
function postAct(): Promise<Reply> {
  const start = performance.now();
  return new Promise((resolve, reject) => {
    const request = http.request(`${url}/act`, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (response) => {
      response.resume();
      response.on('end', () => resolve({ status: response.statusCode ?? 0, ms: performance.now() - start, retryAfterS: Number(response.headers['retry-after'] ?? 0) }));
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
  ok: number[];
  refused: number;
  otherErrors: Record<string, number>;
  unanswered: number;
  seconds: number;
}
async function runLevel(clients: number, seconds: number, maxRequests = Infinity): Promise<LevelResult> {
  const result: LevelResult = { clients, ok: [], refused: 0, otherErrors: {}, unanswered: 0, seconds: 0 };
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
          await new Promise((r) => setTimeout(r, Math.min(reply.retryAfterS * 1000, Number(values['backoff-ms']))));
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

// ---- bare step vs server at concurrency 1, interleaved ----
const policy = loadPolicy(modelDir, values.variant!, { backend: getBackend('auto') });
// the same prompt ids the server runs: given ids, or the instruction tokenized as the server (and act) does
const inputIds = hasTokenizer ? instructionInputIds(loadTokenizer(modelDir), values.instruction!) : TINY_INPUT_IDS;
const bareStep = () => {
  const t = performance.now();
  policy.predict({ image, inputIds });
  return performance.now() - t;
};
console.log(`serve-load: ${modelDir} (variant ${values.variant}, backend ${policy.model.backend.name}), ${image.width}x${image.height} image as json-numpy, ${url}`);
for (let i = 0; i < 5; i++) bareStep();
await runLevel(1, 2, 20); // warm-up of the server
const bare: number[] = [];
const served: number[] = [];
const rounds = Number(values.rounds);
const perRound = Number(values['steps-per-round']);
// each round's first WARM_PER_ROUND steps are dropped on both sides (the side that sat idle starts cold)
const WARM_PER_ROUND = 3;
for (let round = 0; round < rounds; round++) {
  bare.push(...Array.from({ length: perRound + WARM_PER_ROUND }, bareStep).slice(WARM_PER_ROUND));
  served.push(...(await runLevel(1, 3600, perRound + WARM_PER_ROUND)).ok.slice(WARM_PER_ROUND));
}
const overhead = median(served) / median(bare) - 1;
console.log(`\nbare policy step vs POST /act at 1 client, ${rounds} interleaved rounds of ${perRound} (after ${WARM_PER_ROUND} warm-up steps each):`);
console.log(`  bare step p50 ${median(bare).toFixed(2)} ms, server p50 ${median(served).toFixed(2)} ms -> overhead ${(overhead * 100).toFixed(1)}% (target <= 5%)`);

// ---- 1, 4, 16 clients ----
const seconds = Number(values.seconds);
const levels: LevelResult[] = [];
for (const clients of [1, 4, 16]) levels.push(await runLevel(clients, seconds));
console.log(`\nclosed-loop clients, ${seconds} s each, --max-queue ${values['max-queue']} (503 -> wait min(Retry-After, ${values['backoff-ms']} ms) and retry):`);
console.log('clients  answered 200  p50 ms  p99 ms  req/s (200)  503s  other errors  unanswered');
for (const r of levels) {
  const other = Object.values(r.otherErrors).reduce((a, b) => a + b, 0);
  console.log(
    `${String(r.clients).padStart(7)} ${String(r.ok.length).padStart(13)} ${median(r.ok).toFixed(1).padStart(7)} ${quantile(r.ok, 0.99).toFixed(1).padStart(7)} ${(r.ok.length / r.seconds).toFixed(1).padStart(12)} ${String(r.refused).padStart(5)} ${String(other).padStart(13)} ${String(r.unanswered).padStart(11)}`,
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

const otherErrors = [...levels, memoryRun].reduce((n, r) => n + Object.values(r.otherErrors).reduce((a, b) => a + b, 0), 0);
const unanswered = [...levels, memoryRun].reduce((n, r) => n + r.unanswered, 0);
console.log(`\nerrors other than 503: ${otherErrors} (must be 0); requests without an answer: ${unanswered} (must be 0)`);
server.kill('SIGTERM');
await new Promise((r) => server.on('exit', r));
agent.destroy();
process.exitCode = otherErrors === 0 && unanswered === 0 ? 0 : 1;
