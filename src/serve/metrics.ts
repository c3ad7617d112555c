// Prometheus text exposition (format 0.0.4) for the server: requests by route and status, an /act latency
// histogram, step time, queue depth, model load time, worker restarts and resident memory. Small enough not to need
// a client library.

/** /act latency histogram bucket bounds, seconds */
export const LATENCY_BUCKETS_S = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

class Histogram {
  readonly counts = new Array<number>(LATENCY_BUCKETS_S.length).fill(0);
  count = 0;
  sum = 0;
  observe(seconds: number): void {
    this.count++;
    this.sum += seconds;
    const i = LATENCY_BUCKETS_S.findIndex((bound) => seconds <= bound);
    if (i >= 0) this.counts[i]++;
  }
  render(name: string, help: string): string[] {
    const lines = [`# HELP ${name} ${help}`, `# TYPE ${name} histogram`];
    let cumulative = 0;
    LATENCY_BUCKETS_S.forEach((bound, i) => {
      cumulative += this.counts[i];
      lines.push(`${name}_bucket{le="${bound}"} ${cumulative}`);
    });
    lines.push(`${name}_bucket{le="+Inf"} ${this.count}`, `${name}_sum ${this.sum}`, `${name}_count ${this.count}`);
    return lines;
  }
}

/** Readings taken when /metrics is scraped. */
export interface Gauges {
  queueDepth: number;
  busy: boolean;
  inFlight: number;
  ready: boolean;
  modelLoadSeconds: number;
  workerRestarts: number;
}

export class Metrics {
  private readonly requests = new Map<string, number>();
  readonly actLatency = new Histogram();
  readonly stepDuration = new Histogram();

  countRequest(route: string, status: number): void {
    const key = `route="${route}",status="${status}"`;
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
  }

  render(gauges: Gauges): string {
    const lines = ['# HELP sqap_vla_requests_total HTTP requests answered, by route and status.', '# TYPE sqap_vla_requests_total counter'];
    for (const [labels, count] of [...this.requests].sort()) lines.push(`sqap_vla_requests_total{${labels}} ${count}`);
    lines.push(...this.actLatency.render('sqap_vla_act_latency_seconds', 'POST /act latency from request to response, queue wait included.'));
    lines.push(...this.stepDuration.render('sqap_vla_step_duration_seconds', 'Policy step time on the model thread.'));
    const gauge = (name: string, help: string, value: number, type = 'gauge') => lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, `${name} ${value}`);
    gauge('sqap_vla_queue_depth', 'Requests waiting for the model (not counting the one running).', gauges.queueDepth);
    gauge('sqap_vla_step_running', '1 while a policy step runs.', gauges.busy ? 1 : 0);
    gauge('sqap_vla_act_in_flight', 'POST /act requests accepted and not yet answered.', gauges.inFlight);
    gauge('sqap_vla_model_ready', '1 when the model is loaded and the worker is up.', gauges.ready ? 1 : 0);
    gauge('sqap_vla_model_load_seconds', 'Time the last model load took.', gauges.modelLoadSeconds);
    gauge('sqap_vla_worker_restarts_total', 'Times the model thread died and was restarted.', gauges.workerRestarts, 'counter');
    gauge('process_resident_memory_bytes', 'Resident memory of the server process.', process.memoryUsage.rss());
    return `${lines.join('\n')}\n`;
  }
}
