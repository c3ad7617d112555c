import cliProgress from 'cli-progress';

export interface Progress {
  update(done: number, payload?: Record<string, unknown>): void;
  stop(): void;
}

/** Seconds between progress lines when stderr is not a terminal (a pipe, a CI log). */
export const PLAIN_PROGRESS_INTERVAL_MS = 5000;

/**
 * A progress bar on stderr when it is a terminal. When stderr is a pipe or a log (scripts, CI), one plain line
 * every few seconds instead (`label: 12/50 episodes (24%), 31 s elapsed | 10 succeeded`), and nothing for work that
 * ends sooner, so quick commands and --json output stay clean. `detail` is extra format text with {placeholders}
 * filled from update()'s payload.
 */
export function progressBar(label: string, total: number, unit: string, detail = '', initialPayload: Record<string, unknown> = {}): Progress {
  if (total <= 0) return { update: () => {}, stop: () => {} };
  if (!process.stderr.isTTY) return plainProgress(label, total, unit, detail, initialPayload);
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: `${label} [{bar}] {value}/{total} ${unit}${detail} | {duration_formatted} elapsed, ETA {eta_formatted}`,
      hideCursor: true,
      clearOnComplete: true,
      etaBuffer: 20,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0, initialPayload);
  return { update: (done, payload) => bar.update(done, payload), stop: () => bar.stop() };
}

/** The non-terminal progress: a line at most every `intervalMs`, written with `write` (stderr by default). */
export function plainProgress(
  label: string,
  total: number,
  unit: string,
  detail = '',
  initialPayload: Record<string, unknown> = {},
  options: { intervalMs?: number; write?: (line: string) => void; now?: () => number } = {},
): Progress {
  const { intervalMs = PLAIN_PROGRESS_INTERVAL_MS, write = (line) => void process.stderr.write(line), now = () => performance.now() } = options;
  const started = now();
  let last = started;
  let payload = initialPayload;
  return {
    update(done, newPayload) {
      if (newPayload) payload = newPayload;
      const t = now();
      if (t - last < intervalMs && done < total) return;
      if (t - started < intervalMs) return; // finished before the first interval: say nothing
      last = t;
      const extra = detail.replace(/\{(\w+)\}/g, (_, key: string) => String(payload[key] ?? ''));
      write(`${label}: ${done}/${total} ${unit} (${Math.floor((100 * done) / total)}%), ${Math.round((t - started) / 1000)} s elapsed${extra}\n`);
    },
    stop: () => {},
  };
}
