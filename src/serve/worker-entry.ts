// The thread that owns the model. Native kernels are synchronous, so a policy step runs here and never on the
// server's event loop: /health and /metrics keep answering during a step. Steps arrive one at a time (the
// server's queue holds the rest) and each runs to completion before the next message is read.
import { existsSync } from 'node:fs';
import nodePath from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { UserError } from '../errors.js';
import { decodeImage, type RgbImage } from '../io/image.js';
import { instructionInputIds } from '../models/prompt.js';
import { loadTokenizer, type Tokenizer } from '../models/tokenizer.js';
import { loadPolicy, type LoadedPolicy } from '../policy.js';
import { getBackend } from '../tensor/backends/index.js';
import type { ActJob } from './act-request.js';
import { imageBuffer, type FromWorker, type StepOutput, type ToWorker, type WorkerSettings } from './worker-protocol.js';

/** Llama-2's vocabulary size: the built-in tokenizer only fits checkpoints whose vocabulary starts with it. */
const LLAMA2_VOCAB_SIZE = 32000;

const port = parentPort;
if (!port) throw new Error('worker-entry.ts must run in a worker thread');
const settings = (workerData as { settings: WorkerSettings }).settings;

function post(message: FromWorker): void {
  port!.postMessage(message);
}

function load(): { policy: LoadedPolicy; tokenizer?: Tokenizer } {
  const start = performance.now();
  const backend = getBackend(settings.backend);
  const policy = loadPolicy(settings.modelDir, settings.variant, {
    backend,
    prune: settings.prune,
    calibration: settings.calibration,
    onProgress: (done, total) => post({ type: 'progress', done, total }),
  });
  const vocabSize = policy.model.llm.config.vocabSize;
  // A checkpoint without tokenizer.json gets the built-in Llama-2 tokenizer, which is only right for a Llama-2 vocabulary.
  const hasTokenizer = existsSync(nodePath.join(settings.modelDir, 'tokenizer.json')) || vocabSize >= LLAMA2_VOCAB_SIZE;
  const tokenizer = hasTokenizer ? loadTokenizer(settings.modelDir) : undefined;
  post({
    type: 'ready',
    modelName: nodePath.basename(nodePath.resolve(settings.modelDir)),
    variant: policy.variant.name,
    backend: backend.name,
    loadMs: performance.now() - start,
    vocabSize,
    unnormKeys: Object.keys(policy.model.config.normStats),
    hasTokenizer,
  });
  return { policy, tokenizer };
}

/** A control loop sends the same instruction step after step: its prompt ids are kept (a few instructions). */
const PROMPT_CACHE_SIZE = 16;
const promptCache = new Map<string, number[]>();

function promptIds(tokenizer: Tokenizer, instruction: string): number[] {
  let ids = promptCache.get(instruction);
  if (!ids) {
    if (promptCache.size >= PROMPT_CACHE_SIZE) promptCache.clear();
    ids = instructionInputIds(tokenizer, instruction);
    promptCache.set(instruction, ids);
  }
  return [...ids];
}

function step(job: ActJob, policy: LoadedPolicy, tokenizer: Tokenizer | undefined): StepOutput {
  const start = performance.now();
  const image: RgbImage = job.image.kind === 'rgb' ? job.image : decodeImage(job.image.bytes, `request image (${job.image.format})`);
  let inputIds = job.inputIds;
  if (!inputIds) {
    if (!tokenizer) throw new UserError('this checkpoint has no tokenizer; send the prompt as input_ids');
    inputIds = promptIds(tokenizer, job.instruction ?? ''); // as act --instruction builds them
  }
  const vocabSize = policy.model.llm.config.vocabSize;
  const outside = inputIds.find((id) => id >= vocabSize);
  if (outside !== undefined) throw new UserError(`token id ${outside} is outside this model's vocabulary of ${vocabSize}`);
  const imageDecodeMs = performance.now() - start;
  // the robot context (end effector) is what sqap pruning protects; variants without pruning ignore it
  const result = policy.predict({ image, inputIds, unnormKey: job.unnormKey, robot: job.robot });
  return {
    action: result.action,
    normalizedAction: result.normalizedAction,
    actionTokenIds: result.actionTokenIds,
    unnormKey: result.unnormKey,
    inputIds,
    timingsMs: { image_decode: imageDecodeMs, ...result.timingsMs, worker: performance.now() - start },
    pruning: result.pruning ?? null,
  };
}

try {
  const { policy, tokenizer } = load();
  port.on('message', (message: ToWorker) => {
    let reply: FromWorker;
    try {
      reply = { type: 'result', id: message.id, output: step(message.job, policy, tokenizer) };
    } catch (error) {
      const userError = error instanceof UserError;
      reply = { type: 'error', id: message.id, status: userError ? 400 : 500, message: userError ? error.message : String((error as Error)?.stack ?? error) };
    }
    // the image's memory goes back to the server's pool with the answer (nothing here holds on to it)
    const image = imageBuffer(message.job);
    port.postMessage({ ...reply, image }, [image]);
  });
} catch (error) {
  const userError = error instanceof UserError;
  post({ type: 'fatal', message: userError ? error.message : String((error as Error)?.stack ?? error), userError });
}
