// eval and demo on the command line: one-line errors (exit 2) for user mistakes; demo on a tiny model.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { makeTinyInstructionModel } from '../eval/tiny-model.js';

const BIN = fileURLToPath(new URL('../../bin/sqap-vla.js', import.meta.url));
const scratch = mkdtempSync(join(tmpdir(), 'sqap-cli-eval-'));
after(() => rmSync(scratch, { recursive: true, force: true }));
const model = makeTinyInstructionModel(scratch);

function cli(...args: string[]) {
  const run = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 180_000 });
  return { code: run.status, stdout: run.stdout, stderr: run.stderr };
}

/** Image descriptors in a GIF, walking its blocks (GIF89a spec: extensions and images are sub-block chains). */
function countGifFrames(gif: Buffer): number {
  let i = 13 + (gif[10] & 0x80 ? 3 * 2 ** ((gif[10] & 7) + 1) : 0);
  const skipSubBlocks = () => {
    while (gif[i] !== 0) i += gif[i] + 1;
    i++;
  };
  let frames = 0;
  while (i < gif.length && gif[i] !== 0x3b) {
    if (gif[i] === 0x21) {
      i += 2;
      skipSubBlocks();
    } else if (gif[i] === 0x2c) {
      frames++;
      const packed = gif[i + 9];
      i += 10 + (packed & 0x80 ? 3 * 2 ** ((packed & 7) + 1) : 0) + 1; // descriptor, local palette, LZW code size
      skipSubBlocks();
    } else {
      throw new Error(`unexpected GIF block 0x${gif[i].toString(16)} at ${i}`);
    }
  }
  assert.equal(gif[i], 0x3b, 'GIF trailer');
  return frames;
}

function assertOneLineError(run: ReturnType<typeof cli>, message: RegExp): void {
  assert.equal(run.code, 2, run.stderr);
  assert.equal(run.stderr.trim().split('\n').length, 1, run.stderr);
  assert.match(run.stderr, /^sqap-vla: /);
  assert.match(run.stderr, message);
}

test('eval: unknown variant, zero episodes, missing flags are one line with exit 2', () => {
  const common = ['eval', '--model', model, '--task', 'goal-red-cube-on-plate', '--out', join(scratch, 'errors')];
  assertOneLineError(cli(...common, '--variants', 'base,w4a4+turbo', '--episodes', '1'), /unknown part 'turbo'/);
  assertOneLineError(cli(...common, '--variants', 'base,w5a5', '--episodes', '1'), /unknown part 'w5a5'/);
  assertOneLineError(cli(...common, '--variants', 'base', '--episodes', '0'), /--episodes must be at least 1/);
  assertOneLineError(cli(...common, '--variants', 'base'), /eval needs --episodes/);
  assertOneLineError(cli('eval', '--model', model, '--variants', 'base', '--episodes', '1', '--out', join(scratch, 'x')), /choose tasks with --task/);
  assertOneLineError(cli(...common, '--variants', 'base,base', '--episodes', '1'), /listed twice/);
});

test("eval: a folder holding another run's results (or anything else) is refused before anything runs", () => {
  const other = join(scratch, 'other-run');
  mkdirSync(other);
  const header = { type: 'eval', version: 1, model, policy: 'model', variants: ['base'], tasks: ['goal-red-cube-on-plate'], episodes: 9, seed: 0, image_size: null };
  writeFileSync(join(other, 'results.jsonl'), `${JSON.stringify(header)}\n`);
  const run = cli('eval', '--model', model, '--variants', 'base', '--task', 'goal-red-cube-on-plate', '--episodes', '2', '--out', other);
  assertOneLineError(run, /holds the results of another run \(episodes 9 there, 2 now\)/);
  assert.equal(readFileSync(join(other, 'results.jsonl'), 'utf8'), `${JSON.stringify(header)}\n`, 'left untouched');
  const busy = join(scratch, 'busy');
  mkdirSync(busy);
  writeFileSync(join(busy, 'notes.txt'), 'mine');
  assertOneLineError(cli('eval', '--model', model, '--variants', 'base', '--task', 'goal-red-cube-on-plate', '--episodes', '1', '--out', busy), /not empty and holds no results\.jsonl/);
});

test('demo runs on a tiny model and writes an animated GIF with the per-step times', () => {
  const out = join(scratch, 'demo');
  const run = cli('demo', '--model', model, '--out', out, '--max-steps', '3', '--variant', 'base', '--json');
  assert.equal(run.code, 0, run.stderr);
  const summary = JSON.parse(run.stdout.trim().split('\n').at(-1)!);
  assert.equal(summary.gif, join(out, 'demo.gif'));
  assert.deepEqual(summary.panels.map((p: { variant: string }) => p.variant), ['base', 'base']);
  for (const panel of summary.panels) assert.equal(panel.steps, 3);
  const gif = readFileSync(summary.gif);
  assert.equal(gif.subarray(0, 6).toString('latin1'), 'GIF89a');
  // frames: 3 steps + the outcome frame
  assert.equal(countGifFrames(gif), 4);
  const times = JSON.parse(readFileSync(join(out, 'demo.json'), 'utf8'));
  for (const panel of times.panels) assert.equal(panel.stepMs.length, 3);
  assertOneLineError(cli('demo', '--model', join(scratch, 'nope')), /model directory not found/);
  assertOneLineError(cli('demo', '--model', model, '--task', 'nope'), /unknown task 'nope'/);
});
