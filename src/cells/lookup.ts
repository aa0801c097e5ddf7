// user -> cell -> zone, over one immutable table version. A RoutingView is built once per
// table the gateway applies and is then only read, so lookups need no locks and no copies.
import type { ErrorName } from '../errors';
import { CellRing, ringLayoutKey } from './ring';
import type { Cell, RouteClass, RoutingTable, VersionedTable, Zone } from './types';

export type Route =
  | {
      readonly ok: true;
      readonly class: RouteClass;
      readonly cell: string | null;
      readonly zone: Zone;
      readonly epoch: number;
      /** Non-null while the cell is frozen: hold the request until a new table or this deadline. */
      readonly frozenUntilMs: number | null;
      readonly why: string;
    }
  | { readonly ok: false; readonly class: RouteClass; readonly cell: string | null; readonly error: ErrorName; readonly why: string };

// Tables that differ only in zones, epochs or states share one ring (the ring costs a few ms to
// build). A table that reuses the previous version's frozen ring spec (table-decoder.ts) is
// known to have the same layout without spelling out its key: the spec's point counts name
// exactly the table's cells.
let lastRing: { key: string; spec: RoutingTable['ring']; ring: CellRing } | null = null;

function ringFor(table: RoutingTable): CellRing {
  if (lastRing && lastRing.spec === table.ring && Object.isFrozen(table.ring)) return lastRing.ring;
  const key = ringLayoutKey(table);
  if (lastRing?.key !== key) lastRing = { key, spec: table.ring, ring: CellRing.build(table) };
  else lastRing = { ...lastRing, spec: table.ring };
  return lastRing.ring;
}

export class RoutingView {
  readonly table: RoutingTable;
  readonly version: number;
  readonly checksum: string;
  private readonly ring: CellRing;
  private readonly zones: ReadonlyMap<string, Zone>;
  private readonly cells: ReadonlyMap<string, Cell>;
  private readonly overrides: ReadonlyMap<string, string>;
  /** Routes of active cells, made once per table: the hot path allocates nothing for them. */
  private readonly activeRoutes: ReadonlyMap<string, Route>;
  private readonly globalRoute: Route | null;
  /** City routes by the gateway's zone, made on first use (a gateway asks for one zone only). */
  private readonly cityRoutes = new Map<string | null, Route>();

  /**
   * `previous`: the view this one replaces. Routes of active cells whose cell and zone are the
   * very same (frozen) objects as in it are taken over instead of made again.
   */
  constructor(vt: VersionedTable, previous?: RoutingView | null) {
    this.table = vt.table;
    this.version = vt.version;
    this.checksum = vt.checksum;
    this.ring = ringFor(vt.table);
    this.zones = new Map(vt.table.zones.map((z) => [z.name, z]));
    this.cells = new Map(vt.table.cells.map((c) => [c.name, c]));
    this.overrides = new Map(Object.entries(vt.table.overrides));
    this.activeRoutes = this.makeActiveRoutes(previous ?? null);
    this.globalRoute = vt.table.global.state === 'active' ? this.routeOf(vt.table.global, 'global', 0) : null;
  }

  private makeActiveRoutes(previous: RoutingView | null): Map<string, Route> {
    const routes = new Map<string, Route>();
    for (const c of this.table.cells) {
      if (c.state !== 'active') continue;
      const old = previous?.cells.get(c.name) === c ? previous.activeRoutes.get(c.name) : undefined;
      const reusable = old !== undefined && old.ok && old.zone === this.zones.get(c.zone);
      routes.set(c.name, reusable ? old : this.routeOf(c, 'unit', 0));
    }
    return routes;
  }

  zone(name: string): Zone | undefined {
    return this.zones.get(name);
  }

  cell(name: string): Cell | undefined {
    return this.cells.get(name);
  }

  /** Pinned overrides win over the ring. */
  cellOfUser(user: string): string {
    return this.overrides.get(user) ?? this.ring.cellOf(user);
  }

  routeUnit(user: string, nowMs: number): Route {
    return this.routeCell(this.cellOfUser(user), nowMs);
  }

  routeCell(cell: string, nowMs: number): Route {
    const active = this.activeRoutes.get(cell);
    if (active) return active;
    const c = this.cells.get(cell);
    if (!c) return { ok: false, class: 'unit', cell, error: 'NOT_FOUND', why: `no cell named ${cell}` };
    return this.routeOf(c, 'unit', nowMs);
  }

  routeGlobal(nowMs: number): Route {
    return this.globalRoute ?? this.routeOf(this.table.global, 'global', nowMs);
  }

  /** Why a user goes where it goes (for /admin/route and cellctl route). */
  explainUser(user: string, nowMs: number): Route & { readonly pinned: boolean } {
    return { ...this.routeUnit(user, nowMs), pinned: this.overrides.has(user) };
  }

  /** Nearest `up` zone: the gateway's own zone, then its city, then its region (names sorted). */
  routeCity(fromZone: string | null, nowMs: number): Route {
    void nowMs; // city routes name no cell, so they are never frozen
    let route = this.cityRoutes.get(fromZone);
    if (!route) {
      route = this.nearestUpZone(fromZone);
      this.cityRoutes.set(fromZone, route);
    }
    return route;
  }

  private nearestUpZone(fromZone: string | null): Route {
    const home = fromZone ? this.zones.get(fromZone) : undefined;
    if (!home) return { ok: false, class: 'city', cell: null, error: 'ZONE_DOWN', why: 'the gateway has no zone of its own in the table' };
    if (home.status === 'up') return this.cityRoute(home, `the gateway's own zone ${home.name}`);
    const up = this.table.zones.filter((z) => z.status === 'up').sort((a, b) => a.name.localeCompare(b.name));
    const sameCity = up.find((z) => z.city === home.city && z.region === home.region);
    if (sameCity) return this.cityRoute(sameCity, `nearest up zone in city ${home.city}`);
    const sameRegion = up.find((z) => z.region === home.region);
    if (sameRegion) return this.cityRoute(sameRegion, `nearest up zone in region ${home.region}`);
    return { ok: false, class: 'city', cell: null, error: 'ZONE_DOWN', why: `no zone is up in region ${home.region}` };
  }

  private cityRoute(zone: Zone, why: string): Route {
    return { ok: true, class: 'city', cell: null, zone, epoch: 0, frozenUntilMs: null, why };
  }

  private routeOf(cell: Cell, routeClass: RouteClass, nowMs: number): Route {
    const why = routeClass === 'global' ? 'global traffic' : `cell ${cell.name}`;
    const zone = this.zones.get(cell.zone) as Zone;
    if (zone.status === 'down') {
      return { ok: false, class: routeClass, cell: cell.name, error: 'ZONE_DOWN', why: `${why}, owned by zone ${zone.name} which is down` };
    }
    const frozen = cell.state === 'frozen' && cell.frozenUntilMs !== undefined && cell.frozenUntilMs > nowMs;
    return {
      ok: true,
      class: routeClass,
      cell: cell.name,
      zone,
      epoch: cell.epoch,
      frozenUntilMs: frozen ? (cell.frozenUntilMs as number) : null,
      why: frozen ? `${why}, frozen until ${new Date(cell.frozenUntilMs as number).toISOString()}` : `${why}, owned by ${zone.name}`,
    };
  }
}
