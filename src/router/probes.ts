// Active health of zones: every endpoint of every service of every zone in the applied table
// is probed with a GET of its service's healthPath (else the zone's, else `/`) every
// probe.intervalMs; a connect error, a timeout or a 5xx fails (like Envoy's active health
// check, HAProxy's `option httpchk`). An endpoint counts as up when its last probe passed AND
// passive health has not ejected it; a zone is healthy while one endpoint of any of its
// services is up (the zone is reachable: one service's trouble is not a datacenter's, and
// `cellgate autopilot` moves whole zones). A zone with no endpoint at all is not reported:
// there is no evidence either way. The per-zone summary is what the gateway
// publishes for `cellgate autopilot` — only when it changes (not per probe), so presence
// writes stay rare. One probe in flight per endpoint: a slow one is never stacked on. Each
// endpoint is probed in its own slot of the interval (SLOTS), over a connection of its own
// (probe-exchange.ts); pools listing the same origin with the same health path share its probe.
import { Counter, Gauge, type Registry } from 'prom-client';
import type { ZoneHealthReport } from '../store/types';
import type { Clock, TimerHandle } from '../clock';
import { allPools, type Pools, type ZonePool } from './endpoints';
import { ProbeTarget, type ProbeExchange, type ProbeOwner, type ProbeResult, type ProbeUse } from './probe-exchange';

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

interface ZoneState {
  healthy: boolean;
  failingSinceMs: number | null;
  up: number;
  total: number;
}

/** Most URLs probed (far above any real estate): the probe state is bounded. */
const MAX_PROBES = 10_000;
/**
 * The interval is cut into this many slots and each target is probed in its own one, every
 * interval: 532 endpoints are ~27 probes every 50 ms instead of one burst of 532 each second
 * that held the event loop (and the requests on it) for tens of ms. Envoy spreads its checks
 * the same way (interval_jitter); here the phase is fixed, so each target's interval is exact.
 */
const SLOTS = 20;

export class ZoneProber implements ProbeOwner {
  private readonly o: ProbeOptions;
  /** Probed URLs by href (origin + health path). */
  private readonly targets = new Map<string, ProbeTarget>();
  private readonly slots: Set<ProbeTarget>[] = Array.from({ length: SLOTS }, () => new Set<ProbeTarget>());
  private readonly slotMs: number;
  private readonly zones = new Map<string, ZoneState>();
  private readonly probes: Counter<'zone' | 'service' | 'result'>;
  private readonly zoneHealthy: Gauge<'zone'>;
  /** What every probe sends: the gateway id as a header value (any id may be configured, a header carries printable ASCII only). */
  private readonly headers: Readonly<Record<string, string>>;
  private timer: TimerHandle | null = null;
  private readonly onSlot = (): void => this.slotTick();
  private slot = 0;
  private nextSlotAtMs = 0;
  /** The pools the targets were last made from (pools are swapped whole, never changed in place). */
  private syncedPools: Pools | null = null;
  /** One timer per slot's probes (their common deadline), real time like the I/O it bounds. */
  private readonly deadlines = new Set<NodeJS.Timeout>();
  private closed = false;
  /** The evaluation due after this turn of the event loop (some probe's outcome changed), if any. */
  private pendingEvaluation: NodeJS.Immediate | null = null;
  private readonly onChanged = (): void => {
    this.pendingEvaluation = null;
    if (!this.closed) this.evaluate();
  };

  constructor(options: ProbeOptions) {
    this.o = options;
    this.slotMs = options.intervalMs / SLOTS;
    this.headers = Object.freeze({ 'user-agent': 'cellgate-probe', 'x-cellgate-probe': headerSafe(options.gatewayId) });
    this.probes = new Counter({ name: 'cellgate_probes_total', help: 'Active health probes of zone endpoints, by zone, service and result (ok, failed).', labelNames: ['zone', 'service', 'result'], registers: [options.registry] });
    this.zoneHealthy = new Gauge({ name: 'cellgate_probe_zone_healthy', help: '1 when this gateway sees the zone healthy (an endpoint of one of its services passes its probe and is not ejected).', labelNames: ['zone'], registers: [options.registry] });
  }

  start(): void {
    if (this.closed || this.timer) return;
    this.nextSlotAtMs = this.o.clock.now();
    this.slotTick();
  }

  close(): void {
    this.closed = true;
    if (this.timer) this.o.clock.clearTimer(this.timer);
    this.timer = null;
    if (this.pendingEvaluation) clearImmediate(this.pendingEvaluation);
    this.pendingEvaluation = null;
    for (const handle of this.deadlines) clearTimeout(handle);
    this.deadlines.clear();
    for (const t of this.targets.values()) t.dropConnection();
  }

  /** The current summary (what was last published, or would be). */
  report(): Record<string, ZoneHealthReport> {
    const out: Record<string, ZoneHealthReport> = {};
    const pools = this.o.pools();
    for (const [zone, s] of this.zones) {
      let lastOkMs: number | null = null;
      for (const pool of pools?.get(zone)?.values() ?? []) {
        for (const t of this.targetsOf(pool)) if (t?.lastOkMs != null && (lastOkMs === null || t.lastOkMs > lastOkMs)) lastOkMs = t.lastOkMs;
      }
      out[zone] = {
        healthy: s.healthy,
        failingSince: s.failingSinceMs === null ? null : new Date(s.failingSinceMs).toISOString(),
        lastOk: lastOkMs === null ? null : new Date(lastOkMs).toISOString(),
        endpointsUp: s.up,
        endpointsTotal: s.total,
      };
    }
    return out;
  }

  /** A probe's outcome (ProbeOwner); one of a target no pool lists any more counts for nothing. */
  probeDecided(t: ProbeTarget, result: ProbeResult): void {
    if (this.closed || this.targets.get(t.href) !== t) return;
    const changed = t.last !== result;
    t.last = result;
    if (result === 'ok') t.lastOkMs = this.o.clock.now();
    for (const use of t.uses) this.probes.inc({ zone: use.zone, service: use.service, result });
    // Only a changed outcome can change a zone's summary: evaluate() walks every endpoint,
    // so running it after every probe cost O(endpoints²) per interval. The changes read in
    // one turn of the event loop (the first results of 532 new endpoints, a zone going dark)
    // are evaluated once, right after it. Passive ejections are picked up every interval.
    if (changed && this.pendingEvaluation === null) this.pendingEvaluation = setImmediate(this.onChanged);
  }

  /** One slot: once an interval (slot 0) the pools are followed and zones evaluated; the slot's targets are probed. */
  private slotTick(): void {
    this.timer = null;
    if (this.closed) return;
    const now = this.o.clock.now();
    const sent: ProbeExchange[] = [];
    if (this.slot === 0) this.sync(now, sent);
    for (const t of this.slots[this.slot]!) {
      // A target first probed when it appeared waits for its slot at least half an interval.
      if (t.exchange === null && now - t.startedAtMs >= this.o.intervalMs / 2) this.send(t, now, sent);
    }
    if (this.slot === 0) this.evaluate();
    this.armDeadline(sent);
    this.slot = (this.slot + 1) % SLOTS;
    this.nextSlotAtMs += this.slotMs;
    // Far behind (a stalled loop, a clock step): go on from now rather than run the missed slots at once.
    if (this.nextSlotAtMs < now || this.nextSlotAtMs > now + this.o.intervalMs) this.nextSlotAtMs = now + this.slotMs;
    this.timer = this.o.clock.setTimer(this.onSlot, this.nextSlotAtMs - now);
  }

  private send(t: ProbeTarget, now: number, sent: ProbeExchange[]): void {
    t.startedAtMs = now;
    const exchange = t.send(this, this.o.timeoutMs);
    if (exchange) sent.push(exchange);
  }

  /** One deadline for the probes sent together: each fails unless answered by then, and stops. */
  private armDeadline(sent: readonly ProbeExchange[]): void {
    if (sent.length === 0) return;
    const handle = setTimeout(() => {
      this.deadlines.delete(handle);
      for (const exchange of sent) exchange.expire();
    }, this.o.timeoutMs);
    this.deadlines.add(handle);
  }

  /**
   * Follows the applied pools when they changed: new URLs get a target (probed at once, then in
   * the least used slot), gone ones are forgotten (bounded by MAX_PROBES).
   */
  private sync(now: number, sent: ProbeExchange[]): void {
    const pools = this.o.pools();
    if (!pools || pools === this.syncedPools) return;
    this.syncedPools = pools;
    const wanted = new Map<string, { readonly origin: string; readonly healthPath: string; readonly uses: ProbeUse[] }>();
    for (const pool of allPools(pools)) {
      for (const ep of pool.endpoints) {
        const href = ep.origin + pool.healthPath;
        const use = { zone: pool.zone, service: pool.service };
        const w = wanted.get(href);
        if (w) w.uses.push(use);
        else if (wanted.size < MAX_PROBES) wanted.set(href, { origin: ep.origin, healthPath: pool.healthPath, uses: [use] });
      }
    }
    for (const [href, t] of this.targets) {
      const w = wanted.get(href);
      if (w) t.uses = w.uses;
      else this.forget(t);
    }
    for (const [href, w] of wanted) {
      if (this.targets.has(href)) continue;
      const t = new ProbeTarget(w.origin, w.healthPath, w.uses, this.headers);
      this.targets.set(href, t);
      t.slot = this.leastUsedSlot();
      this.slots[t.slot]!.add(t);
      this.send(t, now, sent);
    }
    for (const zone of this.zones.keys()) {
      if (!pools.has(zone)) {
        this.zones.delete(zone);
        this.zoneHealthy.remove({ zone });
      }
    }
  }

  private forget(t: ProbeTarget): void {
    this.targets.delete(t.href);
    this.slots[t.slot]!.delete(t);
    t.dropConnection();
  }

  private leastUsedSlot(): number {
    let best = 0;
    for (let i = 1; i < SLOTS; i++) if (this.slots[i]!.size < this.slots[best]!.size) best = i;
    return best;
  }

  private targetsOf(pool: ZonePool): (ProbeTarget | undefined)[] {
    return pool.endpoints.map((ep) => this.targets.get(ep.origin + pool.healthPath));
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
          const probe = this.targets.get(ep.origin + pool.healthPath);
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

/** `text` with every byte outside printable ASCII (and %) percent-encoded from its UTF-8. */
function headerSafe(text: string): string {
  if (/^[\x21-\x24\x26-\x7e]*$/.test(text)) return text;
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    out += byte > 0x20 && byte < 0x7f && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}
