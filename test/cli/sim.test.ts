import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../bin/sqap-vla.js', import.meta.url));
const scratch = mkdtempSync(join(tmpdir(), 'sqap-cli-sim-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

function cli(...args: string[]) {
  const run = spawnSync(process.execPath, [BIN, 'sim', ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: run.status, stdout: run.stdout, stderr: run.stderr };
}

function lastLine(text: string): string {
  return text.trimEnd().split('\n').at(-1) ?? '';
}

interface TaskRow {
  id: string;
  suite: string;
  max_steps: number;
  instruction: string;
}

let taskRows: TaskRow[] | undefined;
function tasks(): TaskRow[] {
  if (taskRows) return taskRows;
  const { code, stdout } = cli('tasks', '--json');
  assert.equal(code, 0);
  taskRows = (JSON.parse(stdout.trim().split('\n').pop()!) as { tasks: TaskRow[] }).tasks;
  return taskRows;
}

test('sim tasks --json lists every task with its suite, step limit and instruction', () => {
  const rows = tasks();
  assert.ok(rows.length > 0);
  for (const row of rows) {
    assert.equal(typeof row.id, 'string');
    assert.ok(['spatial', 'object', 'goal', 'long'].includes(row.suite), row.suite);
    assert.ok(Number.isInteger(row.max_steps) && row.max_steps > 0);
    assert.ok(row.instruction.length > 0);
  }
  const table = cli('tasks');
  assert.equal(table.code, 0);
  assert.match(table.stdout, new RegExp(rows[0].id));
});

test('an unknown task or suite is one line listing what exists, exit 2', () => {
  const rows = tasks();
  const task = cli('run', '--task', 'no_such_task', '--episodes', '1', '--json');
  assert.equal(task.code, 2);
  assert.equal(task.stdout, '');
  assert.equal(task.stderr.trim().split('\n').length, 1);
  assert.match(task.stderr, /unknown task 'no_such_task'/);
  for (const row of rows) assert.ok(task.stderr.includes(row.id), row.id);
  const suite = cli('record', '--suite', 'nope', '--out', join(scratch, 'x'));
  assert.equal(suite.code, 2);
  assert.match(suite.stderr, /unknown suite 'nope' \(suites: .*all\)/);
  const flag = cli('run', '--task', rows[0].id, '--episodes', 'two');
  assert.equal(flag.code, 2);
  assert.match(flag.stderr, /--episodes must be an integer/);
  const help = cli('run', '--help');
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--policy/);
});

test('sim run --policy expert --json ends with one JSON summary line', () => {
  const rows = tasks();
  const task = rows.reduce((best, row) => (row.max_steps < best.max_steps ? row : best));
  const run = cli('run', '--task', task.id, '--policy', 'expert', '--episodes', '2', '--json');
  assert.equal(run.code, 0, run.stderr);
  const summary = JSON.parse(lastLine(run.stdout));
  assert.equal(typeof summary.success_rate, 'number');
  assert.equal(summary.episodes, 2);
  assert.deepEqual(Object.keys(summary.tasks), [task.id]);
  assert.equal(summary.tasks[task.id].episodes, 2);
  assert.equal(typeof summary.tasks[task.id].success_rate, 'number');
  assert.equal(summary.results.length, 2);
});

test('sim render writes a PNG', () => {
  const out = join(scratch, 'frame.png');
  const render = cli('render', '--task', tasks()[0].id, '--seed', '1', '--out', out);
  assert.equal(render.code, 0, render.stderr);
  assert.ok(existsSync(out));
});
