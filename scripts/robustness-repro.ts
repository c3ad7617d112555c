// Runs every reproduction of issue #11 (test/support/issue-cases.ts) as a CLI call, with a timeout and a memory
// cap, and classifies each outcome:
//   ok       exit 0 where success is expected (or a clean error where one is expected: "clean")
//   clean    exit 2 with one `sqap-vla:` line on stderr, as expected
//   unclear  exit 2 but several lines, or a message that does not name the problem
//   trace    exit 1 / a stack trace (a bug by the README's contract)
//   hang     still running after the timeout
//   memory   resident memory above the cap
//   garbage  exit 0 where an error was expected, or files left behind after a failure
// Usage: npx tsx scripts/robustness-repro.ts [--timeout-s 40] [--rss-mb 1500] [--filter TEXT] [--json]
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import nodePath from 'node:path';
import { parseArgs } from 'node:util';
import { ROOT, scratchDir } from '../test/support/broken-models.js';
import { ISSUE_CASES, type IssueCase } from '../test/support/issue-cases.js';

type Outcome = 'ok' | 'clean' | 'unclear' | 'trace' | 'hang' | 'memory' | 'garbage';

const { values } = parseArgs({
  options: { 'timeout-s': { type: 'string', default: '40' }, 'rss-mb': { type: 'string', default: '1500' }, filter: { type: 'string' }, json: { type: 'boolean', default: false } },
});
const timeoutMs = Number(values['timeout-s']) * 1000;
const rssCapKb = Number(values['rss-mb']) * 1024;
const BIN = nodePath.join(ROOT, 'bin', 'sqap-vla.js');

function rssKb(pid: number): number {
  try {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  } catch {
    return 0;
  }
}

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string; killed?: 'hang' | 'memory'; ms: number }> {
  return new Promise((resolve) => {
    const started = performance.now();
    const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let killed: 'hang' | 'memory' | undefined;
    child.stdout.on('data', (d) => (stdout = (stdout + d).slice(-20000)));
    child.stderr.on('data', (d) => (stderr = (stderr + d).slice(-20000)));
    const poll = setInterval(() => {
      if (rssKb(child.pid!) > rssCapKb) {
        killed = 'memory';
        child.kill('SIGKILL');
      }
    }, 100);
    const timer = setTimeout(() => {
      killed ??= 'hang';
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('close', (code) => {
      clearInterval(poll);
      clearTimeout(timer);
      resolve({ code, stdout, stderr, killed, ms: performance.now() - started });
    });
  });
}

function errorLines(stderr: string): string[] {
  return stderr.trim().split('\n').filter((line) => line && !line.startsWith('sqap-vla: the native addon is not built'));
}

function classify(c: IssueCase, r: Awaited<ReturnType<typeof run>>, leftover: string | undefined): Outcome {
  if (r.killed) return r.killed;
  const lines = errorLines(r.stderr);
  if (r.code === 0) return c.expect === 'ok' && !leftover ? 'ok' : 'garbage';
  if (r.code === 2 && lines.length === 1 && lines[0].startsWith('sqap-vla: ')) {
    if (leftover) return 'garbage';
    if (c.expect === 'ok' || (c.message && !c.message.test(lines[0]))) return 'unclear';
    return 'clean';
  }
  if (r.code === 2) return 'unclear';
  return 'trace';
}

const counts: Record<string, Record<Outcome, number>> = {};
const rows: { klass: string; name: string; outcome: Outcome; ms: number; detail: string }[] = [];
for (const c of ISSUE_CASES) {
  if (values.filter && !c.name.includes(values.filter)) continue;
  const dir = scratchDir('sqap-repro');
  const args = c.setup(dir);
  const r = await run(args);
  const leftover = r.code !== 0 ? c.after?.(dir) : undefined;
  const outcome = classify(c, r, leftover);
  fs.rmSync(dir, { recursive: true, force: true });
  const lines = errorLines(r.stderr);
  const detail = leftover ?? (outcome === 'ok' ? '' : r.killed ? `${r.killed} after ${(r.ms / 1000).toFixed(1)} s` : `exit ${r.code}: ${(lines.find((l) => l.trim()) ?? r.stdout.trim().split('\n').pop() ?? '').slice(0, 150)}${lines.length > 1 ? ` (+${lines.length - 1} lines)` : ''}`);
  rows.push({ klass: c.klass, name: c.name, outcome, ms: r.ms, detail });
  const perClass = (counts[c.klass] ??= { ok: 0, clean: 0, unclear: 0, trace: 0, hang: 0, memory: 0, garbage: 0 });
  perClass[outcome]++;
  if (!values.json) console.log(`${outcome.padEnd(8)} ${c.klass.padEnd(16)} ${c.name}${detail ? `  -- ${detail}` : ''}`);
}
const total = { ok: 0, clean: 0, unclear: 0, trace: 0, hang: 0, memory: 0, garbage: 0 } as Record<Outcome, number>;
for (const perClass of Object.values(counts)) for (const [k, v] of Object.entries(perClass)) total[k as Outcome] += v;
if (values.json) console.log(JSON.stringify({ cases: rows.length, total, per_class: counts, rows }));
else {
  console.log('\nclass             ok  clean  unclear  trace  hang  memory  garbage');
  for (const [klass, c] of [...Object.entries(counts), ['TOTAL', total] as const]) {
    console.log(`${klass.padEnd(16)} ${[c.ok, c.clean, c.unclear, c.trace, c.hang, c.memory, c.garbage].map((n, i) => String(n).padStart([3, 6, 8, 6, 5, 7, 8][i])).join(' ')}`);
  }
}
