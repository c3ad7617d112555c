// `act` with pruning variants, `--save-mask`, the robot-context flags and their errors; `synth` and `bench`, end to
// end through bin/sqap-vla.js.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import nodePath from 'node:path';
import { fileURLToPath } from 'node:url';
import { readImageFile } from '../../src/io/image.js';
import { fixturePath } from '../support/fixtures.js';

const ROOT = nodePath.resolve(nodePath.dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = nodePath.join(ROOT, 'bin', 'sqap-vla.js');
const expected = JSON.parse(fs.readFileSync(fixturePath('tiny-openvla', 'expected.json'), 'utf8')) as { action_token_ids: number[]; input_ids: number[] };
const IMAGE = fixturePath('tiny-openvla', 'image.png'); // 64 wide, 80 high; the model sees 56 x 56, 4 x 4 patches
const { width: W, height: H } = readImageFile(IMAGE);
const ACT = ['act', '--model', fixturePath('tiny-openvla'), '--image', IMAGE, '--input-ids', expected.input_ids.join(','), '--json'];

function cli(args: string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: ROOT, encoding: 'utf8' });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function lastJson(stdout: string): Record<string, unknown> {
  const lines = stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]);
}

function errorLines(stderr: string): string[] {
  return stderr.trim().split('\n').filter((line) => !line.startsWith('sqap-vla: the native addon is not built'));
}

interface Pruning {
  method: string;
  layer: number;
  keep: number;
  visual_tokens: number;
  kept_indices: number[];
  eef_patch: number | null;
  ring?: number[];
  note?: string;
}

test('act --variant sqap@0.5 --eef-pixel reports the pruning decision; @1.0 gives the base action', () => {
  const r = cli([...ACT, '--variant', 'sqap@0.5', '--eef-pixel', '20,48']);
  assert.equal(r.status, 0, r.stderr);
  const out = lastJson(r.stdout) as { pruning: Pruning; variant: string; timings_ms: Record<string, number> };
  assert.equal(out.variant, 'sqap@0.5');
  const p = out.pruning;
  assert.deepEqual([p.method, p.layer, p.keep, p.visual_tokens], ['sqap', 2, 0.5, 16]);
  assert.equal(p.kept_indices.length, 8);
  // pixel (20, 48) of a 64 x 80 image: column floor(20/64*4) = 1, row floor(48/80*4) = 2 -> patch 9
  assert.deepEqual([W, H], [64, 80]);
  assert.equal(p.eef_patch, 9);
  assert.ok(p.ring!.includes(9) && p.kept_indices.includes(9));
  assert.equal(p.note, undefined);
  for (const key of ['vision', 'prefill', 'decode', 'pruning']) assert.equal(typeof out.timings_ms[key], 'number');

  const all = lastJson(cli([...ACT, '--variant', 'fastv@1.0']).stdout) as { action_token_ids: number[]; pruning: Pruning };
  assert.deepEqual(all.action_token_ids, expected.action_token_ids);
  assert.equal(all.pruning.kept_indices.length, 16);
});

test('sqap without a robot context says it ran as query + FPS; an end effector out of view is not an error', () => {
  const blind = lastJson(cli([...ACT, '--variant', 'sqap@0.5']).stdout) as { pruning: Pruning };
  assert.equal(blind.pruning.eef_patch, null);
  assert.match(blind.pruning.note!, /query \+ farthest-point sampling/);
  const away = cli([...ACT, '--variant', 'sqap@0.5', '--eef-pixel', '500,-20']);
  assert.equal(away.status, 0, away.stderr);
  const p = (lastJson(away.stdout) as { pruning: Pruning }).pruning;
  assert.equal(p.eef_patch, null);
  assert.deepEqual(p.ring, []);
  assert.equal(p.kept_indices.length, 8);
});

test('--eef with --camera projects the end effector; --save-mask writes a readable PNG with dropped patches darkened', () => {
  const dir = fs.mkdtempSync(nodePath.join(os.tmpdir(), 'sqap-mask-'));
  // a camera 1 m above the origin looking down (x right, y down in the image), 64 x 80 px
  const camera = { width: 64, height: 80, intrinsics: [40, 0, 32, 0, 40, 40, 0, 0, 1], worldToCamera: [1, 0, 0, 0, 0, -1, 0, 0, 0, 0, -1, 1, 0, 0, 0, 1] };
  fs.writeFileSync(nodePath.join(dir, 'camera.json'), JSON.stringify(camera));
  const mask = nodePath.join(dir, 'mask.png');
  // world (0.5, 0.4, 0) -> camera (0.5, -0.4, 1) -> pixel (52, 24): column floor(52/64*4) = 3, row floor(24/80*4) = 1 -> patch 7
  const r = cli([...ACT, '--variant', 'sqap@0.5', '--eef', '0.5,0.4,0', '--camera', nodePath.join(dir, 'camera.json'), '--save-mask', mask]);
  assert.equal(r.status, 0, r.stderr);
  const p = (lastJson(r.stdout) as { pruning: Pruning }).pruning;
  assert.equal(p.eef_patch, 7);
  const input = readImageFile(IMAGE);
  const picture = readImageFile(mask);
  assert.deepEqual([picture.width, picture.height], [input.width, input.height]);
  // a dropped patch's pixel is darkened to 30%; a kept one off the outline is unchanged
  const dropped = [...Array(16).keys()].find((j) => !p.kept_indices.includes(j))!;
  const keptInside = p.kept_indices.find((j) => !p.ring!.includes(j))!;
  const pixelOf = (j: number) => (Math.floor(((Math.floor(j / 4) + 0.5) * H) / 4) * W + Math.floor((((j % 4) + 0.5) * W) / 4)) * 3;
  const [a, b] = [pixelOf(dropped), pixelOf(keptInside)];
  assert.equal(picture.data[a], Math.round(input.data[a] * 0.3));
  assert.equal(picture.data[b], input.data[b]);
  fs.rmSync(dir, { recursive: true });
});

test('pruning errors are one line and exit 2', () => {
  const dir = fs.mkdtempSync(nodePath.join(os.tmpdir(), 'sqap-prune-err-'));
  fs.writeFileSync(nodePath.join(dir, 'broken.json'), '{ not json');
  const cases: [string[], RegExp][] = [
    [[...ACT, '--variant', 'sqap@0'], /keep ratio 0 is outside \(0, 1\]/],
    [[...ACT, '--variant', 'sqap@1.5'], /keep ratio 1\.5 is outside \(0, 1\]/],
    [[...ACT, '--variant', 'topk@0.5'], /unknown pruning method 'topk'/],
    [[...ACT, '--variant', 'sqap@0.5', '--prune-layer', '3'], /prune layer 3 is outside 1\.\.2/],
    [[...ACT, '--variant', 'sqap@0.5', '--prune-layer', '0'], /prune layer 0 is outside 1\.\.2/],
    [[...ACT, '--variant', 'sqap@0.5', '--eef', '0,0,0', '--camera', nodePath.join(dir, 'missing.json')], /cannot read camera file .*missing\.json/],
    [[...ACT, '--variant', 'sqap@0.5', '--eef', '0,0,0', '--camera', nodePath.join(dir, 'broken.json')], /cannot read camera file .*broken\.json/],
    [[...ACT, '--variant', 'sqap@0.5', '--eef', '0,0,0'], /--eef X,Y,Z and --camera FILE go together/],
    [[...ACT, '--variant', 'sqap@0.5', '--eef-pixel', '3'], /--eef-pixel U,V needs 2 comma-separated numbers/],
    [[...ACT, '--variant', 'sqap@0.5', '--sqap-share', '2'], /query share 2 is outside \[0, 1\]/],
    [[...ACT, '--save-mask', nodePath.join(dir, 'm.png')], /--save-mask needs a pruning variant/],
  ];
  for (const [args, pattern] of cases) {
    const r = cli(args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    const lines = errorLines(r.stderr);
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], pattern);
  }
  fs.rmSync(dir, { recursive: true });
});

test('synth --preset tiny writes a checkpoint act and bench run; bench --json has every variant', () => {
  const dir = fs.mkdtempSync(nodePath.join(os.tmpdir(), 'sqap-synth-'));
  const out = nodePath.join(dir, 'tiny');
  const s = cli(['synth', '--preset', 'tiny', '--out', out, '--json']);
  assert.equal(s.status, 0, s.stderr);
  assert.equal((lastJson(s.stdout) as { llm_layers: number }).llm_layers, 3);
  const b = cli(['bench', '--model', out, '--variants', 'base,sqap@0.5,grid@0.25', '--steps', '1', '--warmup', '0', '--json']);
  assert.equal(b.status, 0, b.stderr);
  const rows = (lastJson(b.stdout) as { variants: Record<string, number | string>[] }).variants;
  assert.deepEqual(rows.map((r) => r.name), ['base', 'sqap@0.5', 'grid@0.25']);
  for (const row of rows) {
    for (const key of ['vision_ms', 'prefill_ms', 'decode_ms_per_token', 'step_ms', 'rss_bytes']) assert.ok((row[key] as number) > 0, `${row.name} ${key}`);
  }
  assert.equal(rows[1].kept_visual_tokens, 8);
  assert.equal(rows[2].kept_visual_tokens, 4);
  assert.ok((rows[1].pruning_overhead_ms as number) >= 0);
  const again = cli(['synth', '--preset', 'tiny', '--out', out]);
  assert.equal(again.status, 2);
  assert.match(errorLines(again.stderr)[0], /exists and is not an empty directory/);
  assert.match(errorLines(cli(['synth', '--preset', 'huge', '--out', out]).stderr)[0], /--preset NAME \(openvla-7b, tiny, tiny-224\), got 'huge'/);
  assert.match(errorLines(cli(['bench', '--model', out]).stderr)[0], /--variants/);
  fs.rmSync(dir, { recursive: true });
});

test('compare reports topk_overlap: 1 for a pruned variant against itself, null without a pruning part', () => {
  const r = cli(['compare', '--model', fixturePath('tiny-openvla'), '--image', IMAGE, '--input-ids', expected.input_ids.join(','), '--variants', 'query@0.5,w4a4+had+query@0.5,w8a8+had', '--json']);
  assert.equal(r.status, 0, r.stderr);
  const rows = (lastJson(r.stdout) as { variants: { name: string; topk_overlap: number | null }[] }).variants;
  assert.deepEqual(rows.map((v) => v.name), ['query@0.5', 'w4a4+had+query@0.5', 'w8a8+had']);
  assert.equal(rows[0].topk_overlap, 1);
  assert.ok(rows[1].topk_overlap! >= 0 && rows[1].topk_overlap! <= 1 && rows[1].topk_overlap! * 8 === Math.round(rows[1].topk_overlap! * 8));
  assert.equal(rows[2].topk_overlap, null);
});
