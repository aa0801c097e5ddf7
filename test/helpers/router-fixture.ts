// Gateway test fixtures: a routing table whose zones point at test upstreams, a gateway on
// ephemeral ports over a MemoryStore, and small table edits (move/freeze a cell, zone status).
// Everything started is stopped in t.teardown, also when the test fails.
import type { ExecutionContext } from 'ava';
import { tableFromTopologyText } from '../../src/cells/topology';
import type { RoutingTable, ZoneStatus } from '../../src/cells/types';
import type { Clock } from '../../src/clock';
import { parseGatewayConfig } from '../../src/router/config';
import { createGateway, type Gateway, type GatewayAddresses } from '../../src/router/gateway';
import type { TableStore } from '../../src/store/types';
import type { MemoryStore } from './memory-store';

export interface ZoneSpec {
  readonly name: string;
  readonly region?: string;
  readonly city?: string;
  readonly upstreams: readonly string[];
}

export function tableFor(zones: readonly ZoneSpec[], opts: { cells?: number; global?: string; overrides?: Record<string, string> } = {}): RoutingTable {
  const topology = {
    name: 'test',
    cells: opts.cells ?? 16,
    global: opts.global ?? zones[0]!.name,
    zones: zones.map((z) => ({ name: z.name, region: z.region ?? 'east', city: z.city ?? z.name, capacity: 100, upstreams: [...z.upstreams] })),
    overrides: opts.overrides ?? {},
  };
  return tableFromTopologyText(JSON.stringify(topology));
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] extends object ? Mutable<T[K]> : T[K] };

function edit(table: RoutingTable, fn: (t: Mutable<RoutingTable>) => void): RoutingTable {
  const copy = structuredClone(table) as Mutable<RoutingTable>;
  fn(copy);
  return copy as RoutingTable;
}

/** The cell moved to `zone` (epoch + 1), active. */
export function moveCell(table: RoutingTable, cell: string, zone: string): RoutingTable {
  return edit(table, (t) => {
    const c = t.cells.find((x) => x.name === cell)!;
    if (c.zone !== zone) c.epoch += 1;
    c.zone = zone;
    c.state = 'active';
    const loose = c as { frozenUntilMs?: number; movingTo?: string };
    delete loose.frozenUntilMs;
    delete loose.movingTo;
  });
}

export function freezeCell(table: RoutingTable, cell: string, untilMs: number, movingTo?: string): RoutingTable {
  return edit(table, (t) => {
    const c = t.cells.find((x) => x.name === cell)!;
    c.state = 'frozen';
    c.frozenUntilMs = untilMs;
    if (movingTo) c.movingTo = movingTo;
  });
}

export function setZoneStatus(table: RoutingTable, zone: string, status: ZoneStatus): RoutingTable {
  return edit(table, (t) => {
    t.zones.find((z) => z.name === zone)!.status = status;
  });
}

export function setZoneUpstreams(table: RoutingTable, zone: string, upstreams: readonly string[]): RoutingTable {
  return edit(table, (t) => {
    t.zones.find((z) => z.name === zone)!.upstreams = [...upstreams];
  });
}

export interface RunningGateway<S extends TableStore = MemoryStore> {
  readonly gw: Gateway;
  readonly store: S;
  readonly addr: GatewayAddresses;
  readonly url: string;
  readonly admin: string;
}

/** Starts a gateway over `store` (ephemeral ports) and waits for `waitVersion` when given. */
export async function startGateway<S extends TableStore = MemoryStore>(
  t: ExecutionContext,
  store: S,
  opts: { config?: Record<string, unknown>; clock?: Clock; waitVersion?: number; processMetrics?: boolean } = {},
): Promise<RunningGateway<S>> {
  const config = parseGatewayConfig({ port: 0, adminPort: 0, id: `gw-${t.title.slice(0, 40)}`, shutdownGraceMs: 5000, ...opts.config });
  const gw = createGateway({ config, store, clock: opts.clock, log: () => undefined, processMetrics: opts.processMetrics ?? false });
  t.teardown(() => gw.shutdown());
  const addr = await gw.start();
  if (opts.waitVersion !== undefined) await gw.waitForVersion(opts.waitVersion);
  return { gw, store, addr, url: addr.traffic, admin: addr.admin };
}

/** Users spread over cells: "user-0" ... */
export function users(n: number, prefix = 'user-'): string[] {
  return Array.from({ length: n }, (_, i) => `${prefix}${i}`);
}
