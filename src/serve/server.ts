// The HTTP policy server: POST /act (OpenVLA deploy.py compatible), GET /health, GET /metrics, on Fastify. The
// model lives on its own thread (model-worker.ts); the event loop only parses, validates, queues and answers.
import type { Readable } from 'node:stream';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { LoadPolicyOptions } from '../policy.js';
import { pruneConfig } from '../prune/index.js';
import { parseVariant } from '../variant.js';
import type { BackendName } from '../tensor/backends/index.js';
import { parseActBody, type ActJob, type SchemaCheck } from './act-request.js';
import { cutBase64Values, readBody, releaseBody } from './body-parser.js';
import { HttpError } from './errors.js';
import { formatRequestLog, type RequestLogFields } from './request-log.js';
import { Metrics } from './metrics.js';
import { ModelWorker } from './model-worker.js';
import { encodeFloat64, pythonJsonDumps } from './ndarray.js';
import { ACT_BODY_SCHEMA } from './schema.js';
import { StepQueue } from './step-queue.js';
import type { StepOutput } from './worker-protocol.js';

export interface ServeOptions {
  modelDir: string;
  variant: string;
  backend: BackendName;
  /** pruning tuning (act's --prune-layer, --sqap-share, --sqap-radius, --prune-seed); pruning variants only */
  prune?: LoadPolicyOptions['prune'];
  /** GPTQ calibration samples for a gptq variant quantized at load */
  calibration?: LoadPolicyOptions['calibration'];
  host: string;
  port: number;
  /** requests that may wait while a step runs; more get 503 */
  maxQueue: number;
  /** deadline of one /act request, queue wait included */
  timeoutMs: number;
  bodyLimitBytes: number;
  jsonLogs: boolean;
  /** one line per request and per server event (default: stdout) */
  log?: (line: string) => void;
  onProgress?: (done: number, total: number) => void;
  /** the model cannot be served any more (load failure after start, crash loop) */
  onFatal?: (error: Error) => void;
}

export interface RunningServer {
  url: string;
  app: FastifyInstance;
  worker: ModelWorker;
  /** Stop listening, answer every accepted request, then end the model thread. */
  close(): Promise<void>;
  /** totals for the closing summary */
  stats(): { requests: number; byStatus: Record<string, number>; workerRestarts: number };
}

interface RequestTimings {
  /** headers received -> job ready: body read, JSON parse, validation, base64 decode */
  parseMs?: number;
  /** headers received -> the body's last byte read (the part of parseMs spent waiting for the client's bytes) */
  readMs?: number;
  queueMs?: number;
  stepMs?: number;
  error?: string;
}

declare module 'fastify' {
  interface FastifyRequest {
    timings: RequestTimings;
    /** base64 values cut out of the body before parsing (body-parser.ts) */
    base64Slices: Buffer[];
    /** the raw body, a pooled buffer given back when the answer is sent */
    bodyBuffer: Buffer | null;
    /** performance.now() when the headers arrived */
    receivedAt: number;
  }
}

export async function startServer(options: ServeOptions): Promise<RunningServer> {
  // a bad variant string or pruning option fails here, before any thread starts
  const parsedVariant = parseVariant(options.variant);
  if (parsedVariant.prune) pruneConfig(parsedVariant.prune.method, parsedVariant.prune.keep, options.prune);
  const variant = parsedVariant.name;
  const log = options.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  const metrics = new Metrics();
  const byStatus: Record<string, number> = {};
  let fatal: Error | undefined;
  let started = false;
  const worker = new ModelWorker(
    { modelDir: options.modelDir, variant, backend: options.backend, prune: options.prune, calibration: options.calibration },
    {
      onProgress: options.onProgress,
      onCrash: (reason) => log(event(options.jsonLogs, 'worker_crash', `${reason}; restarting it`)),
      onFatal: (error) => {
        fatal = error;
        if (!started) return; // a failed first load is thrown by startServer instead
        log(event(options.jsonLogs, 'fatal', error.message.split('\n')[0]));
        options.onFatal?.(error);
      },
    },
  );
  try {
    await worker.whenReady();
  } catch (error) {
    await worker.close();
    throw error;
  }
  started = true;
  const queue = new StepQueue<ActJob, StepOutput>(options.maxQueue, options.timeoutMs, (job) => worker.run(job));
  let inFlight = 0;

  const app = Fastify({
    logger: false,
    bodyLimit: options.bodyLimitBytes,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    ajv: { customOptions: { allowUnionTypes: true, coerceTypes: false, removeAdditional: false, useDefaults: false, allErrors: false } },
  });
  // Bodies are read into pooled buffers and the big base64 values cut out before the JSON parse (body-parser.ts);
  // the rest goes through Fastify's own JSON parser, so errors and prototype-poisoning checks are Fastify's.
  // deploy.py (FastAPI) parses a body without a Content-Type as JSON; so do we, and any other type too.
  const jsonParser = app.getDefaultJsonParser('error', 'error');
  const parseJsonBody = (request: FastifyRequest, payload: Readable | undefined, done: (error: Error | null, body?: unknown) => void) => {
    readBody(payload ?? request.raw, request.headers['content-length'], options.bodyLimitBytes, (error, body) => {
      if (error || !body) return done(error);
      request.bodyBuffer = body;
      request.timings.readMs = performance.now() - request.receivedAt;
      const { text, slices } = cutBase64Values(body);
      request.base64Slices = slices;
      jsonParser(request, text, done);
    });
  };
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', parseJsonBody);
  app.addContentTypeParser('*', parseJsonBody);
  app.decorateRequest('timings', null as unknown as RequestTimings);
  app.decorateRequest('base64Slices', null as unknown as Buffer[]);
  app.decorateRequest('bodyBuffer', null as unknown as Buffer);
  app.decorateRequest('receivedAt', 0);
  app.addHook('onRequest', async (request) => {
    request.timings = {};
    request.receivedAt = performance.now();
    // Under overload, refuse before reading and parsing the body: a 503 should cost the server almost nothing.
    if (request.method === 'POST' && request.routeOptions.url === '/act') {
      const refusal = queue.refusal();
      if (refusal) throw refusal;
    }
  });
  // While shutting down, each answer ends its connection, so that keep-alive clients do not hold the close up.
  let closingDown = false;
  app.addHook('onSend', async (_request, reply, payload) => {
    if (closingDown) void reply.header('connection', 'close');
    return payload;
  });
  app.addHook('onResponse', async (request, reply) => {
    if (request.bodyBuffer) {
      releaseBody(request.bodyBuffer);
      request.bodyBuffer = null;
      request.base64Slices = [];
    }
    const route = request.routeOptions.url ?? 'unknown';
    metrics.countRequest(route, reply.statusCode);
    byStatus[reply.statusCode] = (byStatus[reply.statusCode] ?? 0) + 1;
    const fields: RequestLogFields = {
      method: request.method,
      path: request.url.slice(0, 200),
      status: reply.statusCode,
      durationMs: reply.elapsedTime,
      remote: request.ip,
      ...request.timings,
    };
    if (route === '/act') metrics.actLatency.observe(reply.elapsedTime / 1000);
    log(formatRequestLog(fields, options.jsonLogs));
  });
  app.setErrorHandler((error: Error & { statusCode?: number; validation?: unknown }, request, reply) => {
    const status = error instanceof HttpError ? error.status : error.statusCode && error.statusCode >= 400 ? error.statusCode : 500;
    const message = (status >= 500 && !(error instanceof HttpError) ? `internal error: ${error.message}` : error.message).split('\n')[0];
    if (status >= 500 && (!(error instanceof HttpError) || error.message.includes('\n'))) process.stderr.write(`${error.stack ?? error.message}\n`);
    if (request.timings) request.timings.error = message;
    if (error instanceof HttpError) void reply.headers(error.headers);
    void reply.code(status).send({ error: message });
  });
  app.setNotFoundHandler((request, reply) => {
    request.timings.error = 'no such route';
    void reply.code(404).send({ error: `no route ${request.method} ${request.url.slice(0, 100)} (routes: POST /act, GET /health, GET /metrics)` });
  });

  app.post('/act', { schema: { body: ACT_BODY_SCHEMA } }, async (request: FastifyRequest, reply: FastifyReply) => {
    const parsed = parseActBody(request.body, schemaCheck(request), worker.info, request.base64Slices);
    const parseMs = performance.now() - request.receivedAt;
    request.timings.parseMs = parseMs;
    inFlight++;
    try {
      const { result, queueMs, stepMs } = await queue.submit(parsed.job);
      Object.assign(request.timings, { queueMs, stepMs });
      metrics.stepDuration.observe(stepMs / 1000);
      void reply.type('application/json');
      void reply.header('server-timing', serverTiming(parseMs, request.timings.readMs, queueMs, stepMs, result.timingsMs));
      if (parsed.returnDetails) return detailsJson(result, worker.info?.variant ?? variant, parseMs, queueMs, stepMs);
      const action = encodeFloat64(result.action);
      // deploy.py: JSONResponse(action) through json_numpy -> a json-numpy object; the double-encoded form gets
      // JSONResponse(json_numpy.dumps(action)) -> a JSON string holding that object in Python's default layout.
      return parsed.encoded ? JSON.stringify(pythonJsonDumps(action)) : JSON.stringify(action);
    } finally {
      inFlight--;
    }
  });

  app.get('/health', async (_request, reply) => {
    const info = worker.info;
    const ready = worker.ready && !fatal;
    void reply.code(ready ? 200 : 503);
    return {
      model: info?.modelName ?? null,
      variant: info?.variant ?? variant,
      backend: info?.backend ?? null,
      ready,
      queue_depth: queue.depth,
      busy: queue.busy,
      worker_restarts: worker.restarts,
    };
  });

  app.get('/metrics', async (_request, reply) => {
    void reply.type('text/plain; version=0.0.4; charset=utf-8');
    return metrics.render({
      queueDepth: queue.depth,
      busy: queue.busy,
      inFlight,
      ready: worker.ready && !fatal,
      modelLoadSeconds: (worker.info?.loadMs ?? 0) / 1000,
      workerRestarts: worker.restarts,
    });
  });

  try {
    await app.listen({ host: options.host, port: options.port });
  } catch (error) {
    await worker.close();
    throw error;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  const url = `http://${options.host.includes(':') ? `[${options.host}]` : options.host}:${port}`;
  let closing: Promise<void> | undefined;
  return {
    url,
    app,
    worker,
    close: () =>
      (closing ??= (async () => {
        closingDown = true;
        await app.close(); // stops listening; waits for the requests already received
        queue.close();
        await queue.idle();
        await worker.close();
      })()),
    stats: () => ({ requests: Object.values(byStatus).reduce((a, b) => a + b, 0), byStatus: { ...byStatus }, workerRestarts: worker.restarts }),
  };
}

/** The double-encoded form's inner body is checked against the same schema Fastify checks the outer one with. */
function schemaCheck(request: FastifyRequest): SchemaCheck {
  return (body) => {
    const validate = request.compileValidationSchema(ACT_BODY_SCHEMA);
    if (validate(body)) return undefined;
    const error = validate.errors?.[0];
    return error ? `body${error.instancePath.replace(/^\//, '/')} ${error.message}` : 'the body does not match the schema';
  };
}

/**
 * The Server-Timing header (W3C) of an answered /act: parse (headers received -> job ready; read: of that, until the
 * body's last byte arrived), queue, step (the model thread's round trip), worker (the step inside the model thread),
 * policy (the policy's own total). A client can tell from it how much of its latency is the server's and how much
 * the policy's.
 */
function serverTiming(parseMs: number, readMs: number | undefined, queueMs: number, stepMs: number, worker: Record<string, number>): string {
  const entry = (name: string, ms: number | undefined) => (ms === undefined ? [] : [`${name};dur=${ms.toFixed(3)}`]);
  return [...entry('parse', parseMs), ...entry('read', readMs), ...entry('queue', queueMs), ...entry('step', stepMs), ...entry('worker', worker.worker), ...entry('policy', worker.total)].join(', ');
}

function detailsJson(result: StepOutput, variant: string, parseMs: number, queueMs: number, stepMs: number): Record<string, unknown> {
  const round = (ms: number) => Math.round(ms * 1000) / 1000;
  return {
    action: result.action,
    normalized_action: result.normalizedAction,
    action_token_ids: result.actionTokenIds,
    unnorm_key: result.unnormKey,
    input_ids: result.inputIds,
    variant,
    pruning: result.pruning,
    timings_ms: { parse: round(parseMs), queue: round(queueMs), step: round(stepMs), ...Object.fromEntries(Object.entries(result.timingsMs).map(([k, v]) => [k, round(v)])) },
  };
}

function event(json: boolean, kind: string, message: string): string {
  return json ? JSON.stringify({ time: new Date().toISOString(), event: kind, message }) : `${new Date().toISOString()} ${kind}: ${message}`;
}
