// Request latency by zone and service, kept in plain arrays and rendered by a prom-client Registry like a
// prom-client Histogram (and summed like one by the cluster aggregator). prom-client's own
// Histogram validates and hashes the label set on every observe, which the request path
// cannot afford (measured at several µs per request).

/** A sample as prom-client's registry renders it (also what getMetricsAsJSON carries to the cluster primary). */
export interface Sample {
  readonly labels: Record<string, string | number>;
  readonly value: number;
  readonly metricName: string;
}

const UPPER_BOUNDS_SECONDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export class ZoneLatencyHistogram {
  readonly name = 'cellgate_request_duration_seconds';
  readonly help = 'Time from routing a request to the end of its response, by zone and service.';
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly upper = UPPER_BOUNDS_SECONDS;
  /** zone → service → counts (nested: no key string built per request). */
  private readonly byZone = new Map<string, Map<string, { counts: Float64Array; sum: number; count: number }>>();

  observe(zone: string, service: string, seconds: number): void {
    let byService = this.byZone.get(zone);
    if (!byService) this.byZone.set(zone, (byService = new Map()));
    let z = byService.get(service);
    if (!z) byService.set(service, (z = { counts: new Float64Array(this.upper.length), sum: 0, count: 0 }));
    z.sum += seconds;
    z.count += 1;
    const upper = this.upper;
    for (let i = 0; i < upper.length; i++) {
      if (seconds <= upper[i]!) {
        z.counts[i]! += 1;
        return;
      }
    }
  }

  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: Sample[] }> {
    const values: Sample[] = [];
    for (const [zone, byService] of this.byZone) {
      for (const [service, z] of byService) {
        let acc = 0;
        this.upper.forEach((le, i) => {
          acc += z.counts[i]!;
          values.push({ labels: { zone, service, le }, value: acc, metricName: `${this.name}_bucket` });
        });
        values.push({ labels: { zone, service, le: '+Inf' }, value: z.count, metricName: `${this.name}_bucket` });
        values.push({ labels: { zone, service }, value: z.sum, metricName: `${this.name}_sum` });
        values.push({ labels: { zone, service }, value: z.count, metricName: `${this.name}_count` });
      }
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {
    this.byZone.clear();
  }
}
