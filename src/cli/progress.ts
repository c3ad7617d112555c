import cliProgress from 'cli-progress';

export interface Progress {
  update(done: number, payload?: Record<string, unknown>): void;
  stop(): void;
}

/**
 * A progress bar on stderr when it is a terminal; nothing otherwise, so logs, pipes and --json output stay clean.
 * `detail` is extra format text with {placeholders} filled from update()'s payload.
 */
export function progressBar(label: string, total: number, unit: string, detail = '', initialPayload: Record<string, unknown> = {}): Progress {
  if (!process.stderr.isTTY || total <= 0) return { update: () => {}, stop: () => {} };
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
