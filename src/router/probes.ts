// Active health of zones: every endpoint of every service of every zone in the applied table
// is probed with a GET of its service's healthPath (else the zone's, else `/`) every
// probe.intervalMs; a connect error, a timeout or a 5xx fails (like Envoy's active health
// check, HAProxy's `option httpchk`). An endpoint counts as up when its last probe passed AND
// passive health has not ejected it; a zone is healthy while one endpoint of any of its
// services is up (the zone is reachable: one service's trouble is not a datacenter's, and
// `cellgate autopilot` moves whole zones). A zone with no endpoint at all is not reported:
// there is no evidence either way. The per-zone summary is what the gateway
// publishes for `cellgate autopilot` — only when it changes (not per probe), so presence
// writes stay rare. One probe in flight per endpoint: a slow one is never stacked on.
import http from 'node:http';
import https from 'node:https';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { ZoneHealthReport } from '../store/types';
import type { Clock, TimerHandle } from './clock';
import { allPools, type Pools } from './endpoints';

export interface ProbeOptions {
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly clock: Clock;
  /** The pools of the applied table (null before one is loaded): zones, services, endpoints, passive health. */
  readonly pools: () => Pools | null;
  /** Called with the whole summary when any zone's healthy/endpointsUp/endpointsTotal changed. */
  readonly onChange: (report: Record<string, ZoneHealthReport>) => void;
  readonly registry: Registry;
  /** Sent as x-cellgate-probe so zone servers (and their logs) can tell probes and prober apart. */
  readonly gatewayId: string;
}

/** Outcome of one probe (a reply body is drained and dropped, never kept). */
type ProbeResult = 'ok' | 'failed';

interface EndpointProbe {
  readonly zone: string;
  readonly service: string;
  /** Parsed once: a probe is made every interval for every endpoint. */
  readonly url: URL;
  inFlight: boolean;
  /** The last probe's outcome; null before the first one ends (no evidence either way). */
  last: ProbeResult | null;
  lastOkMs: number | null;
}

interface ZoneState {
  healthy: boolean;
  failingSinceMs: number | null;
  up: number;
  total: number;
}

/** Most endpoints probed (far above any real estate): the probe state is bounded. */
const MAX_PROBES = 10_000;

export class ZoneProber {
  private readonly o: ProbeOptions;
  private readonly endpoints = new Map<string, EndpointProbe>();
  private readonly zones = new Map<string, ZoneState>();
  private readonly agents = { http: new http.Agent({ keepAlive: true, maxSockets: 1 }), https: new https.Agent({ keepAlive: true, maxSockets: 1 }) };
  private readonly probes: Counter<'zone' | 'service' | 'result'>;
  private readonly zoneHealthy: Gauge<'zone'>;
  private timer: TimerHandle | null = null;
  private closed = false;
  /** The gateway id as a header value: any id may be configured, a header carries printable ASCII only. */
  private readonly probeHeader: string;

  constructor(options: ProbeOptions) {
    this.o = options;
    this.probeHeader = headerSafe(options.gatewayId);
    this.probes = new Counter({ name: 'cellgate_probes_total', help: 'Active health probes of zone endpoints, by zone, service and result (ok, failed).', labelNames: ['zone', 'service', 'result'], registers: [options.registry] });
    this.zoneHealthy = new Gauge({ name: 'cellgate_probe_zone_healthy', help: '1 when this gateway sees the zone healthy (an endpoint of one of its services passes its probe and is not ejected).', labelNames: ['zone'], registers: [options.registry] });
  }

  start(): void {
    if (this.closed || this.timer) return;
    this.tick();
  }

  close(): void {
    this.closed = true;
    if (this.timer) this.o.clock.clearTimer(this.timer);
    this.timer = null;
    this.agents.http.destroy();
    this.agents.https.destroy();
  }

  /** The current summary (what was last published, or would be). */
  report(): Record<string, ZoneHealthReport> {
    const out: Record<string, ZoneHealthReport> = {};
    for (const [zone, s] of this.zones) {
      const oks = [...this.endpoints.values()].filter((e) => e.zone === zone && e.lastOkMs !== null).map((e) => e.lastOkMs as number);
      out[zone] = {
        healthy: s.healthy,
        failingSince: s.failingSinceMs === null ? null : new Date(s.failingSinceMs).toISOString(),
        lastOk: oks.length ? new Date(Math.max(...oks)).toISOString() : null,
        endpointsUp: s.up,
        endpointsTotal: s.total,
      };
    }
    return out;
  }

  private tick(): void {
    this.timer = null;
    if (this.closed) return;
    this.sync();
    for (const e of this.endpoints.values()) if (!e.inFlight) this.probe(e);
    this.evaluate();
    this.timer = this.o.clock.setTimer(() => this.tick(), this.o.intervalMs);
  }

  /** Follows the applied table: new endpoints are added, gone ones forgotten (bounded by MAX_PROBES). */
  private sync(): void {
    const pools = this.o.pools();
    if (!pools) return;
    const live = new Set<string>();
    for (const pool of allPools(pools)) {
      for (const ep of pool.endpoints) {
        const key = probeKey(pool.key, ep.origin);
        live.add(key);
        if (!this.endpoints.has(key) && this.endpoints.size < MAX_PROBES) {
          this.endpoints.set(key, { zone: pool.zone, service: pool.service, url: new URL(ep.origin + pool.healthPath), inFlight: false, last: null, lastOkMs: null });
        }
      }
    }
    for (const key of this.endpoints.keys()) if (!live.has(key)) this.endpoints.delete(key);
    for (const zone of this.zones.keys()) {
      if (!pools.has(zone)) {
        this.zones.delete(zone);
        this.zoneHealthy.remove({ zone });
      }
    }
  }

  private probe(e: EndpointProbe): void {
    e.inFlight = true;
    const url = e.url;
    const mod = url.protocol === 'https:' ? https : http;
    const agent = url.protocol === 'https:' ? this.agents.https : this.agents.http;
    let settled = false;
    const done = (result: ProbeResult): void => {
      if (settled) return;
      settled = true;
      e.inFlight = false;
      const changed = e.last !== result;
      e.last = result;
      if (result === 'ok') e.lastOkMs = this.o.clock.now();
      this.probes.inc({ zone: e.zone, service: e.service, result });
      // Only a changed outcome can change a zone's summary: evaluate() walks every endpoint,
      // so running it after every probe cost O(endpoints²) per interval. Passive ejections
      // are picked up by the evaluate() of every tick.
      if (changed && !this.closed) this.evaluate();
    };
    let req: http.ClientRequest;
    try {
      req = mod.get(url, { agent, timeout: this.o.timeoutMs, headers: { 'user-agent': 'cellgate-probe', 'x-cellgate-probe': this.probeHeader } }, (res) => {
        const ok = (res.statusCode ?? 500) < 500;
        res.resume();
        res.on('error', () => done('failed'));
        done(ok ? 'ok' : 'failed');
      });
    } catch {
      // Nothing was sent (a request node refuses to make): no evidence either way, try again next tick.
      e.inFlight = false;
      return;
    }
    // Whole-probe deadline (the socket timeout only covers idleness).
    const deadline = setTimeout(() => req.destroy(new Error('probe timeout')), this.o.timeoutMs);
    req.on('timeout', () => req.destroy(new Error('probe timeout')));
    req.on('error', () => done('failed'));
    req.on('close', () => {
      clearTimeout(deadline);
      done('failed');
    });
  }

  /** Recomputes every zone; publishes when a zone's summary changed. */
  private evaluate(): void {
    const pools = this.o.pools();
    if (!pools) return;
    const now = this.o.clock.now();
    let changed = false;
    for (const [zone, byService] of pools) {
      let total = 0;
      let up = 0;
      let evidence = true;
      for (const pool of byService.values()) {
        for (const ep of pool.endpoints) {
          const probe = this.endpoints.get(probeKey(pool.key, ep.origin));
          // A zone is reported only once every endpoint has a first probe result: no verdict
          // without evidence (no false alarm at start, no "healthy" that nothing observed).
          if (!probe || probe.last === null) evidence = false;
          else if (ep.isAvailable(now) && probe.last === 'ok') up += 1;
          total += 1;
        }
      }
      if (!evidence || total === 0) continue;
      const healthy = up > 0;
      const prev = this.zones.get(zone);
      if (prev && prev.healthy === healthy && prev.up === up && prev.total === total) continue;
      const failingSinceMs = healthy ? null : prev && !prev.healthy ? prev.failingSinceMs : now;
      this.zones.set(zone, { healthy, failingSinceMs, up, total });
      this.zoneHealthy.set({ zone }, healthy ? 1 : 0);
      changed = true;
    }
    if (changed) this.o.onChange(this.report());
  }
}

function probeKey(poolKey: string, origin: string): string {
  return `${poolKey}\u0000${origin}`;
}

/** `text` with every byte outside printable ASCII (and %) percent-encoded from its UTF-8. */
function headerSafe(text: string): string {
  if (/^[\x21-\x24\x26-\x7e]*$/.test(text)) return text;
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    out += byte > 0x20 && byte < 0x7f && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}
