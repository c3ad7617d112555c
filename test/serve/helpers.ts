// What the server tests share: the bundled model's reference request, a json-numpy client in Node, and ways to
// start the server (in this process, or as the `sqap-vla serve` command) on a free port of 127.0.0.1.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import fs from 'node:fs';
import nodePath from 'node:path';
import { fileURLToPath } from 'node:url';
import { readImageFile, type RgbImage } from '../../src/io/image.js';
import { startServer, type RunningServer, type ServeOptions } from '../../src/serve/server.js';

export const ROOT = nodePath.resolve(nodePath.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BIN = nodePath.join(ROOT, 'bin', 'sqap-vla.js');
export const MODEL_DIR = nodePath.join(ROOT, 'models', 'tiny-openvla');
export const IMAGE_PATH = nodePath.join(MODEL_DIR, 'image.png');
/** the reference fixture of the bundled checkpoint (PyTorch outputs) */
export const EXPECTED = JSON.parse(fs.readFileSync(nodePath.join(ROOT, 'test', 'fixtures', 'tiny-openvla', 'expected.json'), 'utf8')) as {
  input_ids: number[];
  action: number[];
  action_token_ids: number[];
};

export function referenceImage(): RgbImage {
  return readImageFile(IMAGE_PATH);
}

/** deploy.py's body: the image as json-numpy uint8 [H, W, 3] */
export function jsonNumpyBody(image: RgbImage, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    image: { __numpy__: Buffer.from(image.data).toString('base64'), dtype: '|u1', shape: [image.height, image.width, 3] },
    instruction: 'pick up the red cube',
    input_ids: EXPECTED.input_ids,
    ...extra,
  };
}

/** a json-numpy float64 response -> numbers */
export function decodeFloat64Reply(reply: { __numpy__: string; dtype: string; shape: number[] }): number[] {
  if (reply.dtype !== '<f8') throw new Error(`expected <f8, got ${reply.dtype}`);
  const bytes = Buffer.from(reply.__numpy__, 'base64');
  return Array.from({ length: reply.shape[0] }, (_, i) => bytes.readDoubleLE(i * 8));
}

export async function post(url: string, body: string | Record<string, unknown>, headers: Record<string, string> = { 'content-type': 'application/json' }) {
  const response = await fetch(`${url}/act`, { method: 'POST', headers, body: typeof body === 'string' ? body : JSON.stringify(body) });
  return { status: response.status, headers: response.headers, text: await response.text() };
}

export function testServerOptions(overrides: Partial<ServeOptions> = {}): ServeOptions {
  return {
    modelDir: MODEL_DIR,
    variant: 'base',
    backend: 'auto',
    host: '127.0.0.1',
    port: 0,
    maxQueue: 4,
    timeoutMs: 60_000,
    bodyLimitBytes: 1 << 20,
    jsonLogs: true,
    log: () => undefined,
    ...overrides,
  };
}

export function startTestServer(overrides: Partial<ServeOptions> = {}): Promise<RunningServer> {
  return startServer(testServerOptions(overrides));
}

export interface ServeProcess {
  child: ChildProcessWithoutNullStreams;
  url: string;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

/** `sqap-vla serve ... --port 0`, resolved once it prints the address it listens on. */
export function spawnServe(args: string[]): Promise<ServeProcess> {
  const child = spawn(process.execPath, [BIN, 'serve', '--model', MODEL_DIR, '--port', '0', ...args], { cwd: ROOT });
  let stdout = '';
  let stderr = '';
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
      const match = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(stdout) ?? /"url":"(http:\/\/127\.0\.0\.1:\d+)"/.exec(stdout);
      if (match) resolve({ child, url: match[1], stdout: () => stdout, stderr: () => stderr, exited });
    });
    void exited.then((code) => reject(new Error(`serve exited with ${code} before listening: ${stderr}`)));
  });
}

export async function metricValue(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ')[1]) : NaN;
}
