// One log line per request: text for a terminal, or JSON lines (--json-logs) for a log collector.

export interface RequestLogFields {
  method: string;
  path: string;
  status: number;
  durationMs: number;
  remote: string;
  /** headers received -> job ready (body read, parsed, validated, decoded) */
  parseMs?: number;
  queueMs?: number;
  stepMs?: number;
  /** the one-line reason of a 4xx/5xx */
  error?: string;
}

export function formatRequestLog(fields: RequestLogFields, json: boolean): string {
  const round = (ms: number | undefined) => (ms === undefined ? undefined : Math.round(ms * 100) / 100);
  const time = new Date().toISOString();
  if (json) {
    return JSON.stringify({
      time,
      method: fields.method,
      path: fields.path,
      status: fields.status,
      duration_ms: round(fields.durationMs),
      parse_ms: round(fields.parseMs),
      queue_ms: round(fields.queueMs),
      step_ms: round(fields.stepMs),
      remote: fields.remote,
      error: fields.error,
    });
  }
  const parts = [time, fields.method, fields.path, String(fields.status), `${fields.durationMs.toFixed(1)}ms`];
  if (fields.parseMs !== undefined) parts.push(`parse=${fields.parseMs.toFixed(1)}ms`);
  if (fields.queueMs !== undefined) parts.push(`queue=${fields.queueMs.toFixed(1)}ms`);
  if (fields.stepMs !== undefined) parts.push(`step=${fields.stepMs.toFixed(1)}ms`);
  parts.push(fields.remote);
  if (fields.error) parts.push(JSON.stringify(fields.error));
  return parts.join(' ');
}
