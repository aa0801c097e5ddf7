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
// exactly the table's cells. The view being replaced is asked first (each gateway follows its
// own table); the last ring built in this process next.
let lastRing: { key: string; spec: RoutingTable['ring']; ring: CellRing } | null = null;

function ringFor(table: RoutingTable, previous: { spec: RoutingTable['ring']; ring: CellRing } | null): CellRing {
  const spec = table.ring;
  if (previous && previous.spec === spec && Object.isFrozen(spec)) return previous.ring;
  if (lastRing && lastRing.spec === spec && Object.isFrozen(spec)) return lastRing.ring;
  const key = ringLayoutKey(table);
  if (lastRing?.key !== key) lastRing = { key, spec, ring: CellRing.build(table) };
  else lastRing = { ...lastRing, spec };
  return lastRing.ring;
}

/** Cell name -> position; `previous`'s when the cells are the same names in the same order. */
function cellIndexFor(cells: readonly Cell[], previous: { cells: readonly Cell[]; index: ReadonlyMap<string, number> } | null): ReadonlyMap<string, number> {
  if (previous && sameNames(previous.cells, cells)) return previous.index;
  return new Map(cells.map((c, i) => [c.name, i]));
}

function sameNames(a: readonly Cell[], b: readonly Cell[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i]!.name !== b[i]!.name) return false;
  return true;
}

export class RoutingView {
  readonly table: RoutingTable;
  readonly version: number;
  readonly checksum: string;
  /** Shared with the next version's view when its ring spec is the same object. */
  private readonly cellRing: CellRing;
  private readonly zones: ReadonlyMap<string, Zone>;
  /** Position of each cell in table.cells (shared between versions with the same cell names). */
  private readonly cellIndex: ReadonlyMap<string, number>;
  private readonly overrides: ReadonlyMap<string, string>;
  /** Routes of active cells by position (null: not active), made once per table: the hot path allocates nothing for them. */
  private readonly activeRoutes: readonly (Route | null)[];
  private readonly globalRoute: Route | null;
  /** City routes by the gateway's zone, made on first use (a gateway asks for one zone only). */
  private readonly cityRoutes = new Map<string | null, Route>();

  /**
   * `previous`: the view this one replaces. Routes of active cells whose cell and zone are the
   * very same (frozen) objects as in it are taken over instead of made again; so are its ring,
   * its cell positions and its overrides when they still hold.
   */
  constructor(vt: VersionedTable, previous?: RoutingView | null) {
    const prev = previous ?? null;
    this.table = vt.table;
    this.version = vt.version;
    this.checksum = vt.checksum;
    this.cellRing = ringFor(vt.table, prev && { spec: prev.table.ring, ring: prev.cellRing });
    this.zones = new Map(vt.table.zones.map((z) => [z.name, z]));
    this.cellIndex = cellIndexFor(vt.table.cells, prev && { cells: prev.table.cells, index: prev.cellIndex });
    this.overrides = prev && prev.table.overrides === vt.table.overrides && Object.isFrozen(vt.table.overrides)
      ? prev.overrides
      : new Map(Object.entries(vt.table.overrides));
    this.activeRoutes = this.makeActiveRoutes(prev);
    this.globalRoute = vt.table.global.state === 'active' ? this.routeOf(vt.table.global, 'global', 0) : null;
  }

  private makeActiveRoutes(previous: RoutingView | null): (Route | null)[] {
    const cells = this.table.cells;
    // Positions line up with the previous view's when the names do (cellIndexFor shared them).
    const aligned = previous !== null && previous.cellIndex === this.cellIndex;
    const routes = new Array<Route | null>(cells.length);
    for (let i = 0; i < cells.length; i++) {
      const c = cells[i]!;
      if (c.state !== 'active') {
        routes[i] = null;
        continue;
      }
      const old = aligned && previous.table.cells[i] === c ? (previous.activeRoutes[i] ?? null) : null;
      const reusable = old !== null && old.ok && old.zone === this.zones.get(c.zone);
      routes[i] = reusable ? old : this.routeOf(c, 'unit', 0);
    }
    return routes;
  }

  zone(name: string): Zone | undefined {
    return this.zones.get(name);
  }

  cell(name: string): Cell | undefined {
    const i = this.cellIndex.get(name);
    return i === undefined ? undefined : this.table.cells[i];
  }

  /** Pinned overrides win over the ring. */
  cellOfUser(user: string): string {
    return this.overrides.get(user) ?? this.cellRing.cellOf(user);
  }

  routeUnit(user: string, nowMs: number): Route {
    return this.routeCell(this.cellOfUser(user), nowMs);
  }

  routeCell(cell: string, nowMs: number): Route {
    const i = this.cellIndex.get(cell);
    if (i === undefined) return { ok: false, class: 'unit', cell, error: 'NOT_FOUND', why: `no cell named ${cell}` };
    return this.activeRoutes[i] ?? this.routeOf(this.table.cells[i]!, 'unit', nowMs);
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
