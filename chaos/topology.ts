// What a scenario brings up: zones (each with its upstream servers), cells, gateways, and
// the knobs of the gateways under test. The default is the smallest topology that has every
// kind of failover: same-city peers (shanghai), another city of the same region
// (hangzhou) and another region (south), each zone with two upstream servers.

export interface ZoneSpec {
  readonly name: string;
  readonly region: string;
  readonly city: string;
  /** In cells (what the planner honours). */
  readonly capacity: number;
  /** Upstream servers of the zone (default 2). */
  readonly servers?: number;
  /** Put a harness-controlled TCP proxy in front of each server (latency / drops). */
  readonly proxied?: boolean;
  /** An elastic zone (no homes, no failover target; cells only from `rebalance --onto-elastic`). */
  readonly elastic?: boolean;
  /**
   * Not in the first table: its servers run from the start, a `cellctl zone add` step brings
   * the zone in (`zoneAddArgs`).
   */
  readonly addedLater?: boolean;
}

export interface GatewaySpec {
  readonly id: string;
  /** The zone the gateway stands in. */
  readonly zone: string;
}

export interface GatewayTuning {
  readonly bufferWindowMs: number;
  readonly requestTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly ejectBaseMs: number;
  readonly ejectMaxMs: number;
  readonly shutdownGraceMs: number;
}

export interface TopologySpec {
  readonly name: string;
  readonly cells: number;
  /** The zone of the global pseudo-cell (GZone). */
  readonly global: string;
  readonly zones: readonly ZoneSpec[];
  readonly gateways: readonly GatewaySpec[];
  readonly etcdMembers: number;
  readonly gateway: GatewayTuning;
  /** Simulated work per request in a zone server (uniform 0..2x ms). */
  readonly workMs: number;
  /** Pinned users (user -> cell), e.g. to make one cell hot. */
  readonly overrides: Readonly<Record<string, string>>;
  /**
   * Presence relays (`cellgate presence-relay`, issue 15) by id: their ports are picked with
   * the others, and every gateway's config lists their URLs from the start; steps start them
   * (chaos/relay.ts). Until one answers, the gateways write their own records.
   */
  readonly presenceRelays: readonly string[];
}

export const DEFAULT_TOPOLOGY: TopologySpec = Object.freeze({
  name: 'chaos',
  cells: 32,
  global: 'sh-a',
  zones: [
    { name: 'sh-a', region: 'east', city: 'shanghai', capacity: 20 },
    { name: 'sh-b', region: 'east', city: 'shanghai', capacity: 20 },
    { name: 'hz-a', region: 'east', city: 'hangzhou', capacity: 20 },
    { name: 'sz-a', region: 'south', city: 'shenzhen', capacity: 20 },
  ],
  gateways: [
    { id: 'gw-0', zone: 'sh-a' },
    { id: 'gw-1', zone: 'hz-a' },
    { id: 'gw-2', zone: 'sz-a' },
  ],
  etcdMembers: 3,
  gateway: {
    bufferWindowMs: 10_000,
    requestTimeoutMs: 3_000,
    connectTimeoutMs: 1_000,
    ejectBaseMs: 1_000,
    ejectMaxMs: 4_000,
    shutdownGraceMs: 3_000,
  },
  workMs: 2,
  overrides: {},
  presenceRelays: [],
});

export type TopologyOverrides = Partial<Omit<TopologySpec, 'gateway'>> & { readonly gateway?: Partial<GatewayTuning> };

export function resolveTopology(o: TopologyOverrides = {}): TopologySpec {
  const t: TopologySpec = { ...DEFAULT_TOPOLOGY, ...o, gateway: { ...DEFAULT_TOPOLOGY.gateway, ...o.gateway } };
  const zones = new Set(t.zones.map((z) => z.name));
  if (!zones.has(t.global)) throw new Error(`topology: global zone ${t.global} is not one of the zones`);
  for (const g of t.gateways) if (!zones.has(g.zone)) throw new Error(`topology: gateway ${g.id} stands in unknown zone ${g.zone}`);
  return t;
}

/** The topology file `cellctl init` reads; `upstreams` maps a zone to the URLs in its table entry. */
export function topologyYaml(t: TopologySpec, upstreams: ReadonlyMap<string, readonly string[]>): string {
  const lines = [`name: ${t.name}`, `cells: ${t.cells}`, `global: ${t.global}`, 'zones:'];
  for (const z of t.zones.filter((x) => !x.addedLater)) {
    const urls = (upstreams.get(z.name) ?? []).map((u) => JSON.stringify(u)).join(', ');
    lines.push(`  - { name: ${z.name}, region: ${z.region}, city: ${z.city}, capacity: ${z.capacity},${z.elastic ? ' elastic: true,' : ''} upstreams: [${urls}] }`);
  }
  lines.push(`overrides: ${JSON.stringify(t.overrides)}`);
  return `${lines.join('\n')}\n`;
}

/** `cellctl zone add` arguments that bring in a zone declared `addedLater`, with its servers' URLs. */
export function zoneAddArgs(z: ZoneSpec, urls: readonly string[]): string[] {
  return [
    'zone', 'add', z.name, '--region', z.region, '--city', z.city, '--capacity', String(z.capacity),
    ...(z.elastic ? ['--elastic'] : []), ...urls.flatMap((u) => ['--upstream', u]),
  ];
}

/** The gateway configuration file of one gateway (flags add store, ports, zone and id); `relayUrls`: its presence relays. */
export function gatewayConfig(t: TopologySpec, snapshotPath: string, relayUrls: readonly string[] = []): Record<string, unknown> {
  const g = t.gateway;
  return {
    ...(relayUrls.length ? { presenceRelay: { urls: relayUrls } } : {}),
    snapshotPath,
    routes: [{ prefix: '/g/', class: 'global' }, { prefix: '/', class: 'unit' }],
    buffer: { windowMs: g.bufferWindowMs, maxRequests: 1000 },
    upstream: {
      requestTimeoutMs: g.requestTimeoutMs,
      connectTimeoutMs: g.connectTimeoutMs,
      ejectAfterFailures: 3,
      ejectBaseMs: g.ejectBaseMs,
      ejectMaxMs: g.ejectMaxMs,
      connectionsPerEndpoint: 32,
    },
    shutdownGraceMs: g.shutdownGraceMs,
  };
}
