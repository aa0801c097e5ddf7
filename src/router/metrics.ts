// The gateway's Prometheus metrics: one prom-client Registry per gateway instance (several
// gateways in one process, as in tests, never share counters), prefix `cellgate_`.
// Label values are bounded: zone names from the table, route classes, status codes and
// fixed kinds — never user ids. Values that are cheaper to read than to keep current
// (in-flight, buffered, table age, cells) are read at scrape time by `collect`.
//
// The two per-request metrics are counted in plain maps and handed to prom-client only at
// scrape time: prom-client validates and hashes label sets on every inc/observe (several
// µs per request, measured), which the hot path cannot afford.
import { Counter, Gauge, Registry, collectDefaultMetrics, type Metric } from 'prom-client';
import type { RoutingView } from '../cells/lookup';
import { BUFFER_OUTCOMES, outcomeCounts, type HoldCounters } from './hold-buffer';

/** What the scrape-time gauges read from the running gateway. */
export interface MetricsSource {
  inFlight(): number;
  buffered(): number;
  view(): RoutingView | null;
  /** How stale the applied table may be: 0 while the store is connected; null = no table. */
  tableAgeSeconds(): number | null;
  ejectedByZone(): Map<string, number>;
  /** The gateway's clock (whether a cell's freeze is still on). */
  now(): number;
}

/** What the traffic server reports once it is built (attach()). */
export interface TrafficSource {
  pendingByZone(): Map<string, number>;
  bufferCounters(): HoldCounters;
  bufferedBytes(): number;
}

/**
 * Why a request (or a client connection) was turned away before reaching an upstream, a
 * fixed list: `pending_full` — its zone's wait queue was full (503 ZONE_OVERLOADED);
 * `buffer_full` — the hold buffer's bytes were (503 ZONE_OVERLOADED); `body_too_large` —
 * a held body over buffer.maxBodyBytes (413); `queue_timeout` — its deadline passed while it
 * waited for a connection (504); `client_timeout` — the client did not send its request in
 * time (408); `max_connections` — a connection over server.maxConnections, closed.
 */
export const REFUSAL_REASONS = ['pending_full', 'buffer_full', 'body_too_large', 'queue_timeout', 'client_timeout', 'max_connections'] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];

/** Upstream failure kinds, a fixed list (`local`: raised by the gateway's own client, never held against the endpoint). */
export type UpstreamErrorKind = 'refused' | 'reset' | 'timeout' | 'connect_timeout' | 'unavailable' | 'local' | 'other';

/** Latency histogram by zone, kept in arrays; rendered by the registry like a prom-client Histogram. */
class ZoneLatencyHistogram {
  readonly name = 'cellgate_request_duration_seconds';
  readonly help = 'Time from routing a request to the end of its response, by zone.';
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly upper = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
  private readonly byZone = new Map<string, { counts: Float64Array; sum: number; count: number }>();

  observe(zone: string, seconds: number): void {
    let z = this.byZone.get(zone);
    if (!z) this.byZone.set(zone, (z = { counts: new Float64Array(this.upper.length), sum: 0, count: 0 }));
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

  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: Array<{ labels: Record<string, string | number>; value: number; metricName: string }> }> {
    const values: Array<{ labels: Record<string, string | number>; value: number; metricName: string }> = [];
    for (const [zone, z] of this.byZone) {
      let acc = 0;
      this.upper.forEach((le, i) => {
        acc += z.counts[i]!;
        values.push({ labels: { zone, le }, value: acc, metricName: `${this.name}_bucket` });
      });
      values.push({ labels: { zone, le: '+Inf' }, value: z.count, metricName: `${this.name}_bucket` });
      values.push({ labels: { zone }, value: z.sum, metricName: `${this.name}_sum` });
      values.push({ labels: { zone }, value: z.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {
    this.byZone.clear();
  }
}

interface RequestRow {
  readonly labels: { readonly zone: string; readonly class: string; readonly status: string };
  n: number;
}

export class GatewayMetrics {
  readonly registry = new Registry();
  private readonly upstreamErrors: Counter<'zone' | 'kind'>;
  readonly tableVersion: Gauge;
  readonly controlPlaneConnected: Gauge;
  readonly bufferTimeouts: Counter;
  readonly tableUpdates: Counter<'result'>;
  private readonly requestRows = new Map<string, RequestRow>();
  private readonly refusals: Counter<'reason'>;
  private traffic: TrafficSource | null = null;
  private readonly duration = new ZoneLatencyHistogram();

  /**
   * `processMetrics` adds prom-client's default process/runtime metrics (cellgate_process_*,
   * cellgate_nodejs_*). They install a GC observer per registry that is never removed, so
   * short-lived gateways (tests) turn them off.
   */
  constructor(source: MetricsSource, processMetrics = true) {
    const registers = [this.registry];
    const rows = this.requestRows;
    if (processMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'cellgate_' });
    new Counter({
      name: 'cellgate_requests_total', help: 'Requests answered, by zone served (none = not routed), route class and status (499 = client went away).',
      labelNames: ['zone', 'class', 'status'], registers,
      collect() {
        this.reset();
        for (const row of rows.values()) this.inc(row.labels, row.n);
      },
    });
    this.registry.registerMetric(this.duration as unknown as Metric);
    this.upstreamErrors = new Counter({
      name: 'cellgate_upstream_errors_total', help: 'Failed upstream exchanges, by zone and kind.',
      labelNames: ['zone', 'kind'], registers,
    });
    this.tableVersion = new Gauge({ name: 'cellgate_routing_table_version', help: 'Version (store revision) of the applied routing table.', registers });
    new Gauge({
      name: 'cellgate_routing_table_age_seconds',
      help: 'Seconds since the applied table was last known to be current: 0 while the store is connected; since the connection was lost, or since the snapshot was saved, when routing fail-static.',
      registers, collect() {
        const age = source.tableAgeSeconds();
        if (age !== null) this.set(age);
      },
    });
    this.controlPlaneConnected = new Gauge({ name: 'cellgate_control_plane_connected', help: '1 while the routing-table store is reachable.', registers });
    new Gauge({ name: 'cellgate_buffered_requests', help: 'Requests held right now for frozen cells.', registers, collect() { this.set(source.buffered()); } });
    this.bufferTimeouts = new Counter({ name: 'cellgate_buffer_timeouts_total', help: 'Held requests answered 504 BUFFER_TIMEOUT (window elapsed, evicted as oldest, or shutdown).', registers });
    new Gauge({
      name: 'cellgate_cells', help: 'Cells of the applied table by current zone and state.', labelNames: ['zone', 'state'], registers,
      collect() {
        this.reset();
        const view = source.view();
        if (!view) return;
        const now = source.now();
        for (const c of view.table.cells) {
          const frozen = c.state === 'frozen' && c.frozenUntilMs !== undefined && c.frozenUntilMs > now;
          this.inc({ zone: c.zone, state: frozen ? 'frozen' : 'active' });
        }
      },
    });
    this.tableUpdates = new Counter({ name: 'cellgate_table_updates_total', help: 'Routing tables received from the store, accepted or rejected.', labelNames: ['result'], registers });
    this.tableUpdates.inc({ result: 'accepted' }, 0);
    this.tableUpdates.inc({ result: 'rejected' }, 0);
    new Gauge({ name: 'cellgate_in_flight_requests', help: 'Requests being served right now.', registers, collect() { this.set(source.inFlight()); } });
    this.refusals = new Counter({
      name: 'cellgate_requests_refused_total',
      help: 'Requests turned away before reaching an upstream, by reason (client_timeout and max_connections count connections).',
      labelNames: ['reason'], registers,
    });
    for (const reason of REFUSAL_REASONS) this.refusals.inc({ reason }, 0);
    const traffic = () => this.traffic;
    new Gauge({
      name: 'cellgate_upstream_pending_requests', help: 'Requests waiting for a free upstream connection right now, by zone.', labelNames: ['zone'], registers,
      collect() {
        this.reset();
        for (const z of source.view()?.table.zones ?? []) this.set({ zone: z.name }, 0);
        for (const [zone, n] of traffic()?.pendingByZone() ?? []) this.set({ zone }, n);
      },
    });
    new Gauge({
      name: 'cellgate_buffered_bytes', help: 'Body bytes of held requests in memory right now (bounded by buffer.maxTotalBytes).', registers,
      collect() { this.set(traffic()?.bufferedBytes() ?? 0); },
    });
    // held_total = sum of buffer_settled_total over reasons + buffered_requests (hold-buffer.ts).
    new Counter({
      name: 'cellgate_buffer_held_total', help: 'Requests that entered the hold buffer.', registers,
      collect() {
        this.reset();
        this.inc(traffic()?.bufferCounters().held ?? 0);
      },
    });
    new Counter({
      name: 'cellgate_buffer_settled_total',
      help: 'Requests that left the hold buffer, by reason: released, evicted (oldest, buffer full), timeout (window), tooLarge (413), clientGone, overflow (bytes full, 503), shutdown.',
      labelNames: ['reason'], registers,
      collect() {
        this.reset();
        const c = traffic()?.bufferCounters();
        const by = c ? outcomeCounts(c) : null;
        for (const reason of BUFFER_OUTCOMES) this.inc({ reason }, by ? by[reason] : 0);
      },
    });
    new Gauge({
      name: 'cellgate_upstream_ejected_endpoints', help: 'Upstream endpoints ejected right now by passive health checks, by zone.', labelNames: ['zone'], registers,
      collect() {
        this.reset();
        for (const [zone, n] of source.ejectedByZone()) this.set({ zone }, n);
      },
    });
  }

  /** The traffic server's scrape-time sources (it is built after the metrics). */
  attach(traffic: TrafficSource): void {
    this.traffic = traffic;
  }

  refused(reason: RefusalReason): void {
    this.refusals.inc({ reason });
  }

  request(zone: string, routeClass: string, status: number, seconds: number): void {
    const key = `${zone}\u0000${routeClass}\u0000${status}`;
    let row = this.requestRows.get(key);
    if (!row) this.requestRows.set(key, (row = { labels: { zone, class: routeClass, status: String(status) }, n: 0 }));
    row.n += 1;
    if (seconds >= 0) this.duration.observe(zone, seconds);
  }

  upstreamError(zone: string, kind: UpstreamErrorKind): void {
    this.upstreamErrors.inc({ zone, kind });
  }
}
