import fs from 'node:fs';
import { UserError } from '../errors.js';
import { startServer } from '../serve/server.js';
import { parseVariant } from '../variant.js';
import { parseBackendName } from './act.js';
import { parseIntegerFlag, parseNumberFlag, parseOptions } from './args.js';
import { calibrationIfNeeded } from './calibration.js';
import { progressBar } from './progress.js';

const HELP = `usage: sqap-vla serve --model DIR [--variant V] [--host 127.0.0.1] [--port 8000] [--max-queue N]
                      [--timeout-ms MS] [--max-body-mb MB] [--backend auto|ref|native] [--json-logs] [--json]
                      [--prune-layer K] [--sqap-share F] [--sqap-radius R] [--prune-seed S] [--calib DIR]

Serves a policy over HTTP, compatible with OpenVLA's vla-scripts/deploy.py clients.
  POST /act      {"image": <json-numpy uint8 [H,W,3]> | "<base64 PNG/JPEG>", "instruction": "...",
                  "unnorm_key": "..."} -> the 7-D action as a json-numpy float64 array (as deploy.py returns it);
                  {"encoded": "<that JSON as a string>"} -> the action double-encoded the same way.
                  Optional: "input_ids" (prompt ids, for checkpoints without a tokenizer), "eef_pixel": [u, v] or
                  "eef": [x, y, z] + "camera" (robot context for pruning), "return_details": true (plain JSON with
                  action tokens, timings and pruning info).
  GET  /health   model, variant, ready (503 while the model thread is restarting)
  GET  /metrics  Prometheus text: requests by status, latency histogram, queue depth, model load time
  --model DIR        checkpoint directory
  --variant V        variant string (default base), e.g. w4a4+had+sqap@0.5
  --host HOST        address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)
  --port N           TCP port (default 8000; 0 picks a free one)
  --max-queue N      requests that may wait while a step runs (default 4); more get 503 with Retry-After
  --timeout-ms MS    deadline of one request, queue wait included (default 30000); past it 504
  --max-body-mb MB   largest request body (default 16)
  --backend NAME     auto (native if built, else ref), ref, native; default auto
  --prune-layer K    pruning variants: layers 0..K-1 see every token, layers K.. only the kept ones;
                     1..layers-1, default 2 (as act --prune-layer)
  --sqap-share F     share of the sqap budget chosen by query attention, in [0, 1]; default 0.5
  --sqap-radius R    sqap protects every patch within R patches of the end effector; default 2
  --prune-seed S     seed of the random pruning method; default 0
  --calib DIR        GPTQ calibration inputs for a gptq variant (default: rendered testbed frames)
  --json-logs        one JSON object per log line instead of text
  --json             on shutdown, print a JSON summary as the last line
SIGTERM or SIGINT stops listening, answers every accepted request, then exits.`;

export async function runServeCommand(argv: string[]): Promise<number> {
  const values = parseOptions(
    argv,
    {
      model: { type: 'string' },
      variant: { type: 'string', default: 'base' },
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string' },
      'max-queue': { type: 'string' },
      'timeout-ms': { type: 'string' },
      'max-body-mb': { type: 'string' },
      backend: { type: 'string', default: 'auto' },
      'prune-layer': { type: 'string' },
      'sqap-share': { type: 'string' },
      'sqap-radius': { type: 'string' },
      'prune-seed': { type: 'string' },
      calib: { type: 'string' },
      'json-logs': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    'serve',
  );
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (!values.model) throw new UserError('serve needs --model DIR (try --model models/tiny-openvla)');
  const port = parseIntegerFlag(values.port, 'port', 8000, 0, 65535);
  const maxQueue = parseIntegerFlag(values['max-queue'], 'max-queue', 4, 0, 100000);
  const timeoutMs = parseIntegerFlag(values['timeout-ms'], 'timeout-ms', 30000, 1, 24 * 3600 * 1000);
  const bodyMb = parseIntegerFlag(values['max-body-mb'], 'max-body-mb', 16, 1, 1024);
  const backend = parseBackendName(values.backend!);
  const variant = parseVariant(values.variant!);
  const pruneFlags = ['prune-layer', 'sqap-share', 'sqap-radius', 'prune-seed'] as const;
  const stray = pruneFlags.find((flag) => values[flag] !== undefined);
  if (!variant.prune && stray) throw new UserError(`--${stray} needs a pruning variant (e.g. --variant sqap@0.5)`);
  // as act: the model's own layer count is checked when it loads (prune layer K is outside 1..layers-1)
  const prune = {
    layer: values['prune-layer'] === undefined ? undefined : parseIntegerFlag(values['prune-layer'], 'prune-layer', 0, 1, 4096),
    queryShare: parseNumberFlag(values['sqap-share'], 'sqap-share', undefined, 0, 1),
    ringRadius: parseNumberFlag(values['sqap-radius'], 'sqap-radius', undefined, 0, 1000),
    seed: values['prune-seed'] === undefined ? undefined : parseIntegerFlag(values['prune-seed'], 'prune-seed', 0, -(2 ** 31), 2 ** 31 - 1),
  };
  if (!fs.existsSync(values.model) || !fs.statSync(values.model).isDirectory()) throw new UserError(`model directory not found: ${values.model}`);
  const calibration = await calibrationIfNeeded(values.model, [variant], values.calib);
  const jsonLogs = values['json-logs']!;
  const log = (line: string) => process.stdout.write(`${line}\n`);
  const event = (kind: string, fields: Record<string, unknown>, text: string) =>
    log(jsonLogs ? JSON.stringify({ time: new Date().toISOString(), event: kind, ...fields }) : `${new Date().toISOString()} ${text}`);

  let bar: ReturnType<typeof progressBar> | undefined;
  let exitCode = 0;
  let resolveFatal: () => void = () => undefined;
  const fatal = new Promise<void>((resolve) => (resolveFatal = resolve));
  const server = await startServer({
    modelDir: values.model,
    variant: values.variant!,
    backend,
    prune,
    calibration,
    host: values.host!,
    port,
    maxQueue,
    timeoutMs,
    bodyLimitBytes: bodyMb * 1024 * 1024,
    jsonLogs,
    log,
    onProgress: (done, total) => (bar ??= progressBar('loading', total, 'tensors')).update(done),
    onFatal: () => {
      exitCode = 1;
      resolveFatal();
    },
  });
  bar?.stop();
  const info = server.worker.info!;
  event('listening', { url: server.url, model: info.modelName, variant: info.variant, backend: info.backend, load_ms: Math.round(info.loadMs) },
    `listening on ${server.url} (model ${info.modelName}, variant ${info.variant}, backend ${info.backend}, loaded in ${Math.round(info.loadMs)} ms)`);

  // Wait for a signal (graceful stop) or a fatal model error (fail loudly: exit 1 after answering what we can).
  let signals = 0;
  const stopped = new Promise<string>((resolve) => {
    const onSignal = (signal: string) => {
      if (++signals > 1) {
        event('forced_exit', { signal }, `${signal} again: exiting without waiting`);
        process.exit(130);
      }
      resolve(signal);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
    void fatal.then(() => resolve('fatal model error'));
  });
  const reason = await stopped;
  event('stopping', { reason }, `stopping (${reason}): answering accepted requests`);
  await server.close();
  const stats = server.stats();
  event('stopped', { requests: stats.requests }, `stopped after ${stats.requests} requests`);
  if (values.json) {
    console.log(JSON.stringify({ url: server.url, model: info.modelName, variant: info.variant, stopped_by: reason, requests: stats.requests, by_status: stats.byStatus, worker_restarts: stats.workerRestarts }));
  }
  if (exitCode !== 0) console.error('sqap-vla: the model could not be served any more (see the fatal line above)');
  return exitCode;
}
