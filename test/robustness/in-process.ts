// Runs the CLI's main() in this process with console output captured: fast enough for hundreds of fuzz cases.
import { main } from '../../src/cli/main.js';

export interface CliResult {
  status: number;
  stdout: string;
  stderr: string;
}

/** stderr lines that are not the one-time note of a build without the native addon */
export function errorLines(stderr: string): string[] {
  return stderr
    .trim()
    .split('\n')
    .filter((line) => line && !line.startsWith('sqap-vla: the native addon is not built'));
}

export async function runCli(args: string[]): Promise<CliResult> {
  const out: string[] = [];
  const err: string[] = [];
  const { log, error, warn } = console;
  console.log = (...parts: unknown[]) => void out.push(parts.map(String).join(' '));
  console.error = (...parts: unknown[]) => void err.push(parts.map((p) => (p instanceof Error ? (p.stack ?? p.message) : String(p))).join(' '));
  console.warn = console.error;
  try {
    const status = await main(args);
    return { status, stdout: out.join('\n'), stderr: err.join('\n') };
  } finally {
    Object.assign(console, { log, error, warn });
  }
}

/** A user error as the README promises it: exit 2 and exactly one `sqap-vla: ...` line. */
export function isCleanError(r: CliResult): boolean {
  const lines = errorLines(r.stderr);
  return r.status === 2 && lines.length === 1 && lines[0].startsWith('sqap-vla: ');
}
