// Per-(zone, service) endpoint selection with passive health (outlier ejection).
//
// Each service of each zone of the table gets a ZonePool (Envoy's cluster): its endpoints
// (origins), its probe path and a round-robin cursor. A zone's plain `upstreams` are the
// service `default`; every zone carries every service the table names (one it does not list
// has an empty pool: 502 UPSTREAM_UNAVAILABLE naming zone and service). Health lives in
// Endpoint objects keyed by origin and kept across tables, so an endpoint ejected under one
// table stays ejected when the next table arrives. An origin is one server: two services
// listing the same origin share its health and its connections.
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
// bounded queue of its zone and service (admission.ts) instead of inside undici, where
// nothing bounds or times them.
//
// Passive health covers plain HTTP exchanges; WebSocket handshakes pick endpoints the same
// way but do not report their outcome.
import { tableServices, zoneServices } from '../cells/services';
import type { RoutingTable } from '../cells/types';
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

/** The endpoints of one service in one zone. */
export class ZonePool {
  readonly zone: string;
  readonly service: string;
  /** `zone` and `service` in one string: the pool's queue (admission.ts) and probe keys. */
  readonly key: string;
  /** What the prober GETs on each endpoint: the service's healthPath, else the zone's, else `/`. */
  readonly healthPath: string;
  /** The URLs the pool was made from (the table's, then any registered ones): a pool is reused while they stay. */
  readonly upstreams: readonly string[];
  readonly endpoints: readonly Endpoint[];
  /** Requests one endpoint takes at once (its connections). */
  readonly slotsPerEndpoint: number;
  private cursor = 0;

  constructor(where: PoolSpec, endpoints: readonly Endpoint[], slotsPerEndpoint = Infinity) {
    this.zone = where.zone;
    this.service = where.service;
    this.key = poolKey(where.zone, where.service);
    this.healthPath = where.healthPath;
    this.upstreams = where.upstreams;
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

/** What a pool is made from. */
export interface PoolSpec {
  readonly zone: string;
  readonly service: string;
  readonly healthPath: string;
  readonly upstreams: readonly string[];
}

/** The pools of one table: zone name → service name → pool (every zone has every service of the table). */
export type Pools = ReadonlyMap<string, ReadonlyMap<string, ZonePool>>;

/**
 * Endpoint URLs known besides the table's (the endpoint registry): zone → service → URLs. A
 * (zone, service) the table does not name is ignored: metric labels stay the table's.
 */
export type ExtraEndpoints = ReadonlyMap<string, ReadonlyMap<string, readonly string[]>>;

const NO_EXTRA: ExtraEndpoints = new Map();

export function poolKey(zone: string, service: string): string {
  return `${zone}\u0000${service}`;
}

/** Every pool of `pools`. */
export function* allPools(pools: Pools): Iterable<ZonePool> {
  for (const byService of pools.values()) yield* byService.values();
}

/** One ejection: the endpoint, why (a refused connection, or failures in a row), for how long. */
export interface Ejection {
  readonly origin: string;
  readonly why: 'refused' | 'failure';
  readonly failures: number;
  /** Ejections since its last success (the back-off's exponent + 1). */
  readonly ejections: number;
  readonly forMs: number;
}

export type EjectionListener = (ejection: Ejection) => void;

export class EndpointHealth {
  private readonly byOrigin = new Map<string, Endpoint>();
  private readonly config: UpstreamConfig;
  private readonly now: Now;
  /** The pools of the last table by poolKey, reused while their endpoint list and probe path stay. */
  private lastPools = new Map<string, ZonePool>();

  /** Told of every ejection (the gateway logs it: an operator sees why an endpoint went quiet). */
  private readonly onEjected: EjectionListener;

  constructor(config: UpstreamConfig, now: Now, onEjected: EjectionListener = () => undefined) {
    this.config = config;
    this.now = now;
    this.onEjected = onEjected;
  }

  /**
   * One ZonePool per service of each zone of `table` (the table's URLs, then `extra`'s not
   * already listed); endpoints no pool mentions any more are forgotten. A pool whose URLs
   * and probe path did not change is the very same object (no URL is parsed again, its
   * round-robin position is kept); a zone's status or cells changing does not touch it.
   */
  poolsFor(table: RoutingTable, extra: ExtraEndpoints = NO_EXTRA): Map<string, Map<string, ZonePool>> {
    const pools = new Map<string, Map<string, ZonePool>>();
    const byKey = new Map<string, ZonePool>();
    const services = tableServices(table);
    let rebuilt = false;
    for (const zone of table.zones) {
      const byService = new Map<string, ZonePool>();
      for (const svc of zoneServices(zone, services)) {
        const more = extra.get(zone.name)?.get(svc.name);
        const upstreams = more && more.length > 0 ? [...svc.upstreams, ...more.filter((u) => !svc.upstreams.includes(u))] : svc.upstreams;
        const key = poolKey(zone.name, svc.name);
        const old = this.lastPools.get(key);
        let pool: ZonePool;
        if (old && old.healthPath === svc.healthPath && sameList(old.upstreams, upstreams)) pool = old;
        else {
          rebuilt = true;
          const spec = { zone: zone.name, service: svc.name, healthPath: svc.healthPath, upstreams };
          pool = new ZonePool(spec, old && sameList(old.upstreams, upstreams) ? old.endpoints : this.endpointsOf(upstreams), this.config.connectionsPerEndpoint);
        }
        byService.set(svc.name, pool);
        byKey.set(key, pool);
      }
      pools.set(zone.name, byService);
    }
    if (rebuilt || byKey.size !== this.lastPools.size) this.forgetUnused(byKey);
    this.lastPools = byKey;
    return pools;
  }

  private endpointsOf(upstreams: readonly string[]): Endpoint[] {
    // Two URLs of one origin ("http://h:1" and "http://h:1/") are one endpoint.
    return [...new Set(upstreams.map((u) => new URL(u).origin))].map((origin) => this.endpointFor(origin));
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
        this.eject(e, outcome);
        return;
      case 'failure':
        e.consecutiveFailures += 1;
        if (e.consecutiveFailures >= this.config.ejectAfterFailures) this.eject(e, outcome);
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

  private eject(e: Endpoint, why: 'refused' | 'failure'): void {
    const now = this.now();
    // Failures of requests that were already in flight when the endpoint was ejected do
    // not stretch the ejection: only a failure after it ended counts as a new one.
    if (!e.isAvailable(now)) return;
    e.ejections += 1;
    const backoff = Math.min(this.config.ejectMaxMs, this.config.ejectBaseMs * 2 ** Math.min(e.ejections - 1, 30));
    e.ejectedUntilMs = now + backoff;
    const failures = e.consecutiveFailures;
    e.consecutiveFailures = 0;
    this.onEjected({ origin: e.origin, why, failures, ejections: e.ejections, forMs: backoff });
  }
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
