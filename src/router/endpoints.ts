// Per-zone endpoint selection with passive health (outlier ejection).
//
// Each zone of the table gets a ZonePool made once per table: its endpoints (origins), a
// round-robin cursor, and precomputed per-zone values the hot path needs (metric children).
// Health lives in Endpoint objects keyed by origin and kept across tables, so an endpoint
// ejected under one table stays ejected when the next table arrives.
//
// An endpoint that refuses a connection is ejected at once; one that fails
// `ejectAfterFailures` times in a row (resets, timeouts, 502/503/504) is ejected too. An
// ejection lasts ejectBaseMs * 2^(ejections-1), capped at ejectMaxMs; when it ends the
// endpoint gets traffic again, and one success clears its record.
//
// Endpoints are origins: a path in a zone's upstream URL is not prefixed to requests (the
// request keeps its own path), so zones should list base URLs.
//
// Each endpoint also counts the requests it has right now (`active`, handed to the HTTP
// client and not finished); `connectionsPerEndpoint` of them fill it, and pick() prefers an
// endpoint with room. Requests that find every endpoint of the zone full wait in the zone's
// bounded queue (admission.ts) instead of inside undici, where nothing bounds or times them.
//
// Passive health covers plain HTTP exchanges; WebSocket handshakes pick endpoints the same
// way but do not report their outcome.
import type { RoutingTable, Zone } from '../cells/types';
import type { UpstreamConfig } from './config';

export type Now = () => number;

export class Endpoint {
  /** `http://host:port` — what reply-from's getUpstream returns. */
  readonly origin: string;
  consecutiveFailures = 0;
  /** Ejections since the last success: the exponent of the back-off. */
  ejections = 0;
  ejectedUntilMs = 0;
  /** Requests with this endpoint right now (see admission.ts). */
  active = 0;

  constructor(origin: string) {
    this.origin = origin;
  }

  isAvailable(nowMs: number): boolean {
    return this.ejectedUntilMs <= nowMs;
  }
}

export class ZonePool {
  readonly zone: Zone;
  readonly endpoints: readonly Endpoint[];
  /** Requests one endpoint takes at once (its connections). */
  readonly slotsPerEndpoint: number;
  private cursor = 0;

  constructor(zone: Zone, endpoints: readonly Endpoint[], slotsPerEndpoint = Infinity) {
    this.zone = zone;
    this.endpoints = endpoints;
    this.slotsPerEndpoint = slotsPerEndpoint;
  }

  /**
   * Next available endpoint in round-robin order, skipping `exclude`, preferring one with a
   * free connection; a full one when all are full (the request then waits for it); null when
   * none is available at all.
   */
  pick(nowMs: number, exclude?: Endpoint): Endpoint | null {
    return this.next(nowMs, exclude, true) ?? this.next(nowMs, exclude, false);
  }

  /** Next available endpoint with a free connection; null when there is none. */
  pickWithRoom(nowMs: number): Endpoint | null {
    return this.next(nowMs, undefined, true);
  }

  hasRoom(e: Endpoint): boolean {
    return e.active < this.slotsPerEndpoint;
  }

  private next(nowMs: number, exclude: Endpoint | undefined, needRoom: boolean): Endpoint | null {
    const list = this.endpoints;
    const n = list.length;
    for (let i = 0; i < n; i++) {
      const e = list[(this.cursor + i) % n]!;
      if (e !== exclude && e.isAvailable(nowMs) && (!needRoom || e.active < this.slotsPerEndpoint)) {
        this.cursor = (this.cursor + i + 1) % n;
        return e;
      }
    }
    return null;
  }
}

/** What one upstream exchange did to an endpoint's health. */
export type Outcome = 'success' | 'refused' | 'failure';

export class EndpointHealth {
  private readonly byOrigin = new Map<string, Endpoint>();
  private readonly config: UpstreamConfig;
  private readonly now: Now;
  /** The pools of the last table, reused for zones whose upstreams did not change. */
  private lastPools = new Map<string, ZonePool>();

  constructor(config: UpstreamConfig, now: Now) {
    this.config = config;
    this.now = now;
  }

  /**
   * One ZonePool per zone of `table`; endpoints no table mentions any more are forgotten.
   * A zone whose upstream list did not change keeps its pool (the same object when the zone
   * itself did not change, else a new one over the same endpoints): no URL is parsed again.
   */
  poolsFor(table: RoutingTable): Map<string, ZonePool> {
    const pools = new Map<string, ZonePool>();
    let rebuilt = false;
    for (const zone of table.zones) {
      const old = this.lastPools.get(zone.name);
      if (old && old.zone === zone) pools.set(zone.name, old);
      else if (old && sameList(old.zone.upstreams, zone.upstreams)) pools.set(zone.name, new ZonePool(zone, old.endpoints, this.config.connectionsPerEndpoint));
      else {
        rebuilt = true;
        pools.set(zone.name, new ZonePool(zone, zone.upstreams.map((u) => this.endpointFor(new URL(u).origin)), this.config.connectionsPerEndpoint));
      }
    }
    if (rebuilt || pools.size !== this.lastPools.size) this.forgetUnused(pools);
    this.lastPools = pools;
    return pools;
  }

  private endpointFor(origin: string): Endpoint {
    let e = this.byOrigin.get(origin);
    if (!e) this.byOrigin.set(origin, (e = new Endpoint(origin)));
    return e;
  }

  private forgetUnused(pools: ReadonlyMap<string, ZonePool>): void {
    const live = new Set<string>();
    for (const pool of pools.values()) for (const e of pool.endpoints) live.add(e.origin);
    for (const origin of this.byOrigin.keys()) if (!live.has(origin)) this.byOrigin.delete(origin);
  }

  record(e: Endpoint, outcome: Outcome): void {
    switch (outcome) {
      case 'success':
        e.consecutiveFailures = 0;
        e.ejections = 0;
        return;
      case 'refused':
        e.consecutiveFailures += 1;
        this.eject(e);
        return;
      case 'failure':
        e.consecutiveFailures += 1;
        if (e.consecutiveFailures >= this.config.ejectAfterFailures) this.eject(e);
        return;
      default: {
        const never: never = outcome;
        throw new Error(`unknown outcome ${String(never)}`);
      }
    }
  }

  /** Endpoints ejected right now (for metrics and /admin). */
  ejected(): Endpoint[] {
    const now = this.now();
    return [...this.byOrigin.values()].filter((e) => !e.isAvailable(now));
  }

  private eject(e: Endpoint): void {
    const now = this.now();
    // Failures of requests that were already in flight when the endpoint was ejected do
    // not stretch the ejection: only a failure after it ended counts as a new one.
    if (!e.isAvailable(now)) return;
    e.ejections += 1;
    const backoff = Math.min(this.config.ejectMaxMs, this.config.ejectBaseMs * 2 ** Math.min(e.ejections - 1, 30));
    e.ejectedUntilMs = now + backoff;
    e.consecutiveFailures = 0;
  }
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
