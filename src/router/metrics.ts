// The gateway's Prometheus metrics: one prom-client Registry per gateway instance (several
// gateways in one process, as in tests, never share counters). Gateway metrics carry the
// prefix `cellgate_`; prom-client's process/runtime metrics keep their standard names
// (process_*, nodejs_*) so that stock Node.js dashboards find them.
// Label values are bounded: zone and service names from the table (services also from the
// configured routes), route classes, status codes and fixed kinds — never user ids. Values that are cheaper to read than to keep current
// (in-flight, buffered, table age, cells, zone status) are read at scrape time by `collect`.
// Every series an alert may take rate() of exists from the first scrape: error and refusal
// counters start at 0 for every reason (and every zone and service of the table), and zones with no
// cells show 0, not nothing.
// Each metric says how the `--workers` primary merges it (`aggregator`; see cluster-metrics.ts).
//
// The two per-request metrics are counted in plain maps and handed to prom-client only at
// scrape time: prom-client validates and hashes label sets on every inc/observe (several
// µs per request, measured), which the hot path cannot afford.
import { Counter, Gauge, Registry, collectDefaultMetrics, type Metric } from 'prom-client';
import type { RoutingView } from '../cells/lookup';
import { ZONE_STATUSES } from '../cells/table';
import type { PendingCount } from './admission';
import { allPools, type Pools } from './endpoints';
import { BUFFER_OUTCOMES, outcomeCounts, type BufferOutcome, type HoldCounters } from './hold-buffer';
import { ZoneLatencyHistogram } from './latency-histogram';
import { buildInfo } from './build-info';

/** What the scrape-time gauges read from the running gateway. */
export interface MetricsSource {
  inFlight(): number;
  buffered(): number;
  view(): RoutingView | null;
  /** How stale the applied table may be: 0 while the store is connected; null = no table. */
  tableAgeSeconds(): number | null;
  /** The pools of the applied table (endpoints and their passive health), null before one. */
  pools(): Pools | null;
  /** The gateway's clock (whether a cell's freeze is still on). */
  now(): number;
}

/** What the traffic server reports once it is built (attach()). */
export interface TrafficSource {
  pending(): PendingCount[];
  bufferCounters(): HoldCounters;
  bufferedBytes(): number;
}

/**
 * Why a request (or a client connection) was turned away before reaching an upstream, a
 * fixed list: `pending_full` — its zone's wait queue was full (503 ZONE_OVERLOADED);
 * `buffer_full` — the hold buffer's bytes were (503 ZONE_OVERLOADED); `body_too_large` —
 * a held body over buffer.maxBodyBytes (413); `queue_timeout` — its deadline passed while it
 * waited for a connection (504); `client_timeout` — the client did not send its request in
 * time (408); `headers_too_large` — a request head over Node's limit (431); `malformed` — bytes
 * that are not a parsable HTTP request (400); `max_connections` — a connection over
 * server.maxConnections, closed.
 */
export const REFUSAL_REASONS = [
  'pending_full', 'buffer_full', 'body_too_large', 'queue_timeout', 'client_timeout', 'headers_too_large', 'malformed', 'max_connections',
] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];

/** Upstream failure kinds, a fixed list (`local`: raised by the gateway's own client, never held against the endpoint). */
export const UPSTREAM_ERROR_KINDS = ['refused', 'reset', 'timeout', 'connect_timeout', 'unavailable', 'local', 'other'] as const;
export type UpstreamErrorKind = (typeof UPSTREAM_ERROR_KINDS)[number];

/** Label values of buffer_settled_total: snake_case like every other label value. */
const SETTLED_REASON: Readonly<Record<BufferOutcome, string>> = {
  released: 'released', evicted: 'evicted', timeout: 'timeout', tooLarge: 'too_large', clientGone: 'client_gone', overflow: 'overflow', shutdown: 'shutdown',
};

/**
 * prom-client's default gauges named like counters, which promtool rejects ("non-counter
 * metrics should not have _total suffix", prometheus/client_js#283). They only sum the
 * per-type gauges that stay: `sum without (type) (nodejs_active_handles)`.
 */
const MISNAMED_DEFAULT_GAUGES = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

interface RequestRow {
  readonly labels: { readonly zone: string; readonly service: string; readonly class: string; readonly status: string };
  n: number;
}

export class GatewayMetrics {
  readonly registry = new Registry();
  private readonly upstreamErrors: Counter<'zone' | 'service' | 'kind'>;
  /** Configured routes whose service no zone of the applied table offers (set when a table is applied). */
  readonly routeServicesMissing: Gauge;
  readonly tableVersion: Gauge;
  readonly controlPlaneConnected: Gauge;
  readonly bufferTimeouts: Counter;
  readonly tableUpdates: Counter<'result'>;
  /** Every row, for the scrape; requestIndex finds a row by zone, service, class and status. */
  private readonly requestRows: RequestRow[] = [];
  private readonly requestIndex = new Map<string, Map<string, Map<string, Map<number, RequestRow>>>>();
  private readonly refusals: Counter<'reason'>;
  private traffic: TrafficSource | null = null;
  private readonly duration = new ZoneLatencyHistogram();

  /**
   * `processMetrics` adds prom-client's default process/runtime metrics (process_*,
   * nodejs_*). They install a GC observer per registry that is never removed, so
   * short-lived gateways (tests) turn them off.
   */
  constructor(source: MetricsSource, processMetrics = true) {
    const registers = [this.registry];
    const rows = this.requestRows;
    if (processMetrics) {
      collectDefaultMetrics({ register: this.registry });
      for (const name of MISNAMED_DEFAULT_GAUGES) this.registry.removeSingleMetric(name);
    }
    const info = buildInfo();
    new Gauge({
      name: 'cellgate_build_info', help: 'Always 1: the cellgate version and the Node.js version running it.',
      labelNames: ['version', 'node'], registers, aggregator: 'first',
    }).set({ version: info.version, node: info.node }, 1);
    new Counter({
      name: 'cellgate_requests_total', help: 'Requests answered, by zone served (none = not routed), service (none = no route matched), route class and status (499 = client went away).',
      labelNames: ['zone', 'service', 'class', 'status'], registers,
      collect() {
        this.reset();
        for (const row of rows) this.inc(row.labels, row.n);
      },
    });
    this.registry.registerMetric(this.duration as unknown as Metric);
    this.upstreamErrors = new Counter({
      name: 'cellgate_upstream_errors_total', help: 'Failed upstream exchanges, by zone, service and kind.',
      labelNames: ['zone', 'service', 'kind'], registers,
      collect() {
        // Every service of every zone has every kind, at 0 until it happens (inc by 0 keeps a value).
        const pools = source.pools();
        if (pools) for (const p of allPools(pools)) for (const kind of UPSTREAM_ERROR_KINDS) this.inc({ zone: p.zone, service: p.service, kind }, 0);
      },
    });
    this.tableVersion = new Gauge({ name: 'cellgate_routing_table_version', help: 'Version (store revision) of the applied routing table.', registers, aggregator: 'min' });
    new Gauge({
      name: 'cellgate_routing_table_age_seconds',
      help: 'Seconds since the applied table was last known to be current: 0 while the store is connected; since the connection was lost, or since the snapshot was saved, when routing fail-static.',
      registers, aggregator: 'max', collect() {
        const age = source.tableAgeSeconds();
        if (age !== null) this.set(age);
      },
    });
    this.controlPlaneConnected = new Gauge({ name: 'cellgate_control_plane_connected', help: '1 while the routing-table store is reachable.', registers, aggregator: 'min' });
    this.routeServicesMissing = new Gauge({
      name: 'cellgate_route_services_missing', help: 'Configured routes whose service no zone of the applied table offers (their requests get 502 UPSTREAM_UNAVAILABLE).',
      registers, aggregator: 'max',
    });
    this.tableUpdates = new Counter({ name: 'cellgate_table_updates_total', help: 'Routing tables received from the store, accepted or rejected.', labelNames: ['result'], registers });
    this.tableUpdates.inc({ result: 'accepted' }, 0);
    this.tableUpdates.inc({ result: 'rejected' }, 0);
    tableGauges(registers, source);
    new Gauge({ name: 'cellgate_in_flight_requests', help: 'Requests being served right now.', registers, collect() { this.set(source.inFlight()); } });
    this.refusals = new Counter({
      name: 'cellgate_requests_refused_total',
      help: 'Requests turned away before reaching an upstream, by reason (client_timeout and max_connections count connections).',
      labelNames: ['reason'], registers,
    });
    for (const reason of REFUSAL_REASONS) this.refusals.inc({ reason }, 0);
    const traffic = () => this.traffic;
    new Gauge({
      name: 'cellgate_upstream_pending_requests', help: 'Requests waiting for a free upstream connection right now, by zone and service.', labelNames: ['zone', 'service'], registers,
      collect() {
        this.reset();
        const pools = source.pools();
        if (pools) for (const p of allPools(pools)) this.set({ zone: p.zone, service: p.service }, 0);
        for (const { zone, service, n } of traffic()?.pending() ?? []) this.set({ zone, service }, n);
      },
    });
    this.bufferTimeouts = new Counter({ name: 'cellgate_buffer_timeouts_total', help: 'Held requests answered 504 BUFFER_TIMEOUT (window elapsed, evicted as oldest, or shutdown).', registers });
    bufferMetrics(registers, source, () => this.traffic);
  }

  /** The traffic server's scrape-time sources (it is built after the metrics). */
  attach(traffic: TrafficSource): void {
    this.traffic = traffic;
  }

  refused(reason: RefusalReason): void {
    this.refusals.inc({ reason });
  }

  request(zone: string, service: string, routeClass: string, status: number, seconds: number): void {
    // Nested maps: no key string built per request.
    let byService = this.requestIndex.get(zone);
    if (!byService) this.requestIndex.set(zone, (byService = new Map()));
    let byClass = byService.get(service);
    if (!byClass) byService.set(service, (byClass = new Map()));
    let byStatus = byClass.get(routeClass);
    if (!byStatus) byClass.set(routeClass, (byStatus = new Map()));
    let row = byStatus.get(status);
    if (!row) {
      byStatus.set(status, (row = { labels: { zone, service, class: routeClass, status: String(status) }, n: 0 }));
      this.requestRows.push(row);
    }
    row.n += 1;
    if (seconds >= 0) this.duration.observe(zone, service, seconds);
  }

  upstreamError(zone: string, service: string, kind: UpstreamErrorKind): void {
    this.upstreamErrors.inc({ zone, service, kind });
  }
}

/** Gauges read from the applied table: cells by zone and state, zone status, ejected endpoints; every zone of the table appears. */
function tableGauges(registers: Registry[], source: MetricsSource): void {
  new Gauge({
    name: 'cellgate_cells', help: 'Cells of the applied table by current zone and state (0 for a zone with none).', labelNames: ['zone', 'state'], registers,
    aggregator: 'first',
    collect() {
      this.reset();
      const view = source.view();
      if (!view) return;
      for (const z of view.table.zones) for (const state of ['active', 'frozen']) this.set({ zone: z.name, state }, 0);
      const now = source.now();
      for (const c of view.table.cells) {
        const frozen = c.state === 'frozen' && c.frozenUntilMs !== undefined && c.frozenUntilMs > now;
        this.inc({ zone: c.zone, state: frozen ? 'frozen' : 'active' });
      }
    },
  });
  new Gauge({
    name: 'cellgate_zone_status', help: 'Status of each zone in the applied table: 1 for its current status (up, draining, down), 0 for the others.',
    labelNames: ['zone', 'status'], registers, aggregator: 'first',
    collect() {
      this.reset();
      for (const z of source.view()?.table.zones ?? []) for (const status of ZONE_STATUSES) this.set({ zone: z.name, status }, z.status === status ? 1 : 0);
    },
  });
  new Gauge({
    // With the ejected count, "every endpoint of a zone ejected" is one comparison (an alert rule).
    name: 'cellgate_upstream_endpoints', help: 'Upstream endpoints of each service of each zone in the applied table.', labelNames: ['zone', 'service'], registers,
    aggregator: 'first',
    collect() {
      this.reset();
      const pools = source.pools();
      if (pools) for (const p of allPools(pools)) this.set({ zone: p.zone, service: p.service }, p.endpoints.length);
    },
  });
  new Gauge({
    // Each --workers worker checks health on its own: the primary shows the most any worker ejected.
    name: 'cellgate_upstream_ejected_endpoints', help: 'Upstream endpoints ejected right now by passive health checks, by zone and service.', labelNames: ['zone', 'service'], registers,
    aggregator: 'max',
    collect() {
      this.reset();
      const pools = source.pools();
      if (!pools) return;
      const now = source.now();
      for (const p of allPools(pools)) this.set({ zone: p.zone, service: p.service }, p.endpoints.filter((e) => !e.isAvailable(now)).length);
    },
  });
}

/** The hold buffer: held now (count, bytes), entered, and left by reason. */
function bufferMetrics(registers: Registry[], source: MetricsSource, traffic: () => TrafficSource | null): void {
  new Gauge({ name: 'cellgate_buffered_requests', help: 'Requests held right now for frozen cells.', registers, collect() { this.set(source.buffered()); } });
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
    help: 'Requests that left the hold buffer, by reason: released, evicted (oldest, buffer full), timeout (window), too_large (413), client_gone, overflow (bytes full, 503), shutdown.',
    labelNames: ['reason'], registers,
    collect() {
      this.reset();
      const c = traffic()?.bufferCounters();
      const by = c ? outcomeCounts(c) : null;
      for (const outcome of BUFFER_OUTCOMES) this.inc({ reason: SETTLED_REASON[outcome] }, by ? by[outcome] : 0);
    },
  });
}
