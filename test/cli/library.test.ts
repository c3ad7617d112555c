// The package as a plain npm library: the compiled dist/ (JavaScript + declarations) imports in plain Node 20
// without tsx, the README's example runs with `node`, the CLI runs from dist/, worker threads start from dist/
// (also with a TypeScript policy module), and `npm pack` ships what a user needs and nothing else.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import nodePath from 'node:path';
import { fileURLToPath } from 'node:url';
import { fixturePath } from '../support/fixtures.js';

const ROOT = nodePath.resolve(nodePath.dirname(fileURLToPath(import.meta.url)), '..', '..');
const expected = JSON.parse(fs.readFileSync(fixturePath('tiny-openvla', 'expected.json'), 'utf8')) as { action_token_ids: number[]; input_ids: number[] };

function newestMtimeMs(dir: string): number {
  let newest = 0;
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = nodePath.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtimeMs(full) : fs.statSync(full).mtimeMs);
  }
  return newest;
}

/** plain node, with nothing preloaded (the test runner's tsx loader must not leak into the child) */
function plainNode(args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, args, { cwd: ROOT, encoding: 'utf8', env: { PATH: process.env.PATH ?? '', ...env } });
}

before(() => {
  // dist/ is built by `npm ci` (prepare); rebuild here only when the sources changed since (a developer checkout)
  const stamp = nodePath.join(ROOT, 'dist', '.build-stamp');
  if (!fs.existsSync(stamp) || fs.statSync(stamp).mtimeMs < newestMtimeMs(nodePath.join(ROOT, 'src'))) {
    execFileSync(process.execPath, ['scripts/build.js'], { cwd: ROOT, stdio: 'inherit' });
  }
});

test("import('sqap-vla') works in plain node and ships type declarations", () => {
  const r = plainNode(['--input-type=module', '-e', "const m = await import('sqap-vla'); console.log(JSON.stringify(Object.keys(m).sort()))"]);
  assert.equal(r.status, 0, r.stderr);
  const names = JSON.parse(r.stdout) as string[];
  for (const name of ['OpenVla', 'getBackend', 'readImageFile', 'UserError', 'runEpisodes', 'Checkpoint']) assert.ok(names.includes(name), name);
  const pkg = JSON.parse(fs.readFileSync(nodePath.join(ROOT, 'package.json'), 'utf8')) as { types: string; exports: Record<string, { types: string }> };
  assert.ok(fs.existsSync(nodePath.join(ROOT, pkg.types)), pkg.types);
  assert.ok(fs.readFileSync(nodePath.join(ROOT, pkg.exports['.'].types), 'utf8').includes('OpenVla'));
});

test('examples/act.mjs (the README library example) runs with plain node and prints the reference action tokens', () => {
  const ts = fs.readFileSync(nodePath.join(ROOT, 'examples', 'act.ts'), 'utf8').split('\n').slice(1).join('\n').trim();
  const mjs = fs.readFileSync(nodePath.join(ROOT, 'examples', 'act.mjs'), 'utf8').split('\n').slice(2).join('\n').trim();
  assert.equal(mjs, ts, 'examples/act.mjs and examples/act.ts differ');
  const r = plainNode(['examples/act.mjs']);
  assert.equal(r.status, 0, r.stderr);
  assert.ok(r.stdout.replace(/\s+/g, ' ').includes(expected.action_token_ids.join(', ')), r.stdout);
});

test('the CLI runs from dist/ and worker threads start from it, also with a TypeScript policy module', () => {
  const act = plainNode(['bin/sqap-vla.js', 'act', '--model', 'models/tiny-openvla', '--image', 'models/tiny-openvla/image.png', '--input-ids', expected.input_ids.join(','), '--json']);
  assert.equal(act.status, 0, act.stderr);
  assert.deepEqual(JSON.parse(act.stdout.trim().split('\n').pop()!).action_token_ids, expected.action_token_ids);
  const script = `
    import { runEpisodes } from 'sqap-vla';
    const summary = await runEpisodes({ tasks: ['fake_reach_near'], episodes: 2, seed: 0, workers: 2,
      envModule: 'test/sim/fake-env.ts', policy: { module: 'test/sim/fake-policy.ts' } });
    console.log(JSON.stringify({ episodes: summary.episodes, workers: summary.workers, failures: summary.results.map((r) => r.failureReason ?? null) }));`;
  // a file, not --eval: worker threads inherit the parent's execArgv, and --input-type is refused for file entries
  const file = nodePath.join(ROOT, 'tmp', `library-workers-${process.pid}.mjs`);
  fs.mkdirSync(nodePath.dirname(file), { recursive: true });
  fs.writeFileSync(file, script);
  const run = plainNode([file]);
  fs.rmSync(file, { force: true });
  assert.equal(run.status, 0, run.stderr);
  assert.deepEqual(JSON.parse(run.stdout), { episodes: 2, workers: 2, failures: [null, null] });
});

test('npm pack ships dist, bin, native sources and the tiny model, and no tests, fixtures or scratch', () => {
  const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, encoding: 'utf8' });
  const files = (JSON.parse(out) as { files: { path: string }[] }[])[0].files.map((f) => f.path);
  for (const needed of ['dist/index.js', 'dist/index.d.ts', 'dist/cli/main.js', 'dist/sim/worker-bootstrap.mjs', 'dist/sim/runner-worker.js', 'bin/sqap-vla.js', 'binding.gyp', 'native/binding.cc', 'scripts/native-unavailable.js', 'models/tiny-openvla/model.safetensors', 'README.md', 'package.json']) {
    assert.ok(files.includes(needed), `npm pack lacks ${needed}`);
  }
  const unwanted = files.filter((f) => /^(test|bench|src|examples|build|node_modules|\.ci)\/|^scripts\/(?!native-unavailable|build)|\.test\.|scratch|\.log$/.test(f));
  assert.deepEqual(unwanted, []);
});

test('serve runs from dist/: its model worker thread starts without tsx and answers /health', async () => {
  const { spawn } = await import('node:child_process');
  const port = 20000 + (process.pid % 20000);
  const server = spawn(process.execPath, ['bin/sqap-vla.js', 'serve', '--model', 'models/tiny-openvla', '--port', String(port)], { cwd: ROOT, env: { PATH: process.env.PATH ?? '' }, stdio: 'ignore' });
  try {
    let health: { ready?: boolean } | undefined;
    for (let i = 0; i < 120 && !health?.ready; i++) {
      await new Promise((r) => setTimeout(r, 500));
      health = await fetch(`http://127.0.0.1:${port}/health`).then((r) => r.json() as Promise<{ ready?: boolean }>, () => undefined);
    }
    assert.equal(health?.ready, true, `health: ${JSON.stringify(health)}`);
  } finally {
    server.kill('SIGTERM');
  }
});
