// The failover planner: pure functions from a routing table to a plan (docs/design.md §2).
// A plan lists every cell move, every zone status change, the table that results, each
// zone's load after, and the blast-radius checks. It is deterministic: the same table and
// request give the same plan, so a re-plan after a conflict is comparable with the first.
import { tableChecksum } from '../cells/checksum';
import { ringShares } from '../cells/ring-layout';
import { validateTable, withEpochHighWater } from '../cells/table';
import { GLOBAL_CELL, type Cell, type RoutingTable, type Zone, type ZoneStatus } from '../cells/types';
import { cgError } from '../errors';
import { chooseTarget, moveScope, ZoneLoads, type MoveScope } from './targets';

export interface PlannerOptions {
  /** Refuse a plan moving more than this share of the cells (default 0.5) unless forced. */
  readonly maxMovedShare?: number;
  /** Accept blast-radius violations and over-capacity targets. */
  readonly force?: boolean;
  /** Failback: cells moved per batch (each batch a planned move). Default: all at once. */
  readonly batchSize?: number;
  /**
   * Now (wall-clock ms): a cell whose freeze deadline passed before it is left frozen by an
   * operator that died mid-move; gateways route it to its old zone already, and the plan
   * writes it back as active there (the stale freeze is cleaned by the next change).
   */
  readonly nowMs?: number;
}

export interface CellMove {
  readonly cell: string;
  readonly from: string;
  readonly to: string;
  readonly scope: MoveScope;
  readonly epochBefore: number;
  readonly epochAfter: number;
  /** Share of all users whose cell this is (0 for the global pseudo-cell). */
  readonly userShare: number;
  /** Set when the move also makes `to` the cell's home (rebalance): written with the flip. */
  readonly homeAfter?: string;
}

export interface ZoneLoad {
  readonly zone: string;
  readonly status: ZoneStatus;
  readonly capacity: number;
  readonly cellsBefore: number;
  readonly cellsAfter: number;
}

export interface Plan {
  readonly action: string;
  /** Unplanned plans flip at once; planned ones go through the freeze protocol. */
  readonly kind: 'unplanned' | 'planned';
  readonly moves: readonly CellMove[];
  readonly zoneStatus: readonly { zone: string; from: ZoneStatus; to: ZoneStatus }[];
  /** The table once the plan is done (every cell active). */
  readonly result: RoutingTable;
  readonly loads: readonly ZoneLoad[];
  readonly movedCellShare: number;
  readonly movedUserShare: number;
  /** Blast-radius problems; a plan with any is refused unless forced. */
  readonly guard: readonly string[];
  /** Failback with batches: more cells remain to be moved after this plan. */
  readonly remaining: number;
  /** Whether `result` differs from the table planned on at all (moves, statuses, or any other field). */
  readonly changed: boolean;
  /** What else the plan does or leaves undone, for the plan view and the history (zone added, cells left behind). */
  readonly notes?: readonly string[];
}

export const DEFAULT_MAX_MOVED_SHARE = 0.5;
type Mutable<T> = { -readonly [K in keyof T]: T[K] };

function zoneOf(table: RoutingTable, name: string): Zone {
  const zone = table.zones.find((z) => z.name === name);
  if (!zone) throw cgError('USAGE', `no zone named "${name}" (zones: ${table.zones.map((z) => z.name).join(', ')})`);
  return zone;
}

function allCells(table: RoutingTable): Cell[] {
  return [...table.cells, table.global];
}

/** Share of users per cell, from the ring layout the table carries. */
function userShares(table: RoutingTable): Map<string, number> {
  const names = table.cells.map((c) => c.name).sort();
  const shares = ringShares(names, names.map((n) => table.ring.pointCounts[n] ?? table.ring.pointsPerCell), table.ring.range);
  return new Map(names.map((n, i) => [n, shares[i]]));
}

interface Draft {
  readonly action: string;
  readonly kind: Plan['kind'];
  readonly statuses: ReadonlyMap<string, ZoneStatus>;
  readonly moves: ReadonlyMap<string, string>; // cell -> target zone
  readonly remaining?: number;
  /** The moved cells' home becomes their target too (rebalance). */
  readonly rehome?: boolean;
  readonly notes?: readonly string[];
}

/** Builds the plan (result table, loads, guard) from the chosen statuses and moves. */
function finish(table: RoutingTable, draft: Draft, opts: PlannerOptions): Plan {
  const zones = table.zones.map((z) => ({ ...z, status: draft.statuses.get(z.name) ?? z.status }));
  const shares = userShares(table);
  const moves: CellMove[] = [];
  const statusAfter = (zone: string) => draft.statuses.get(zone) ?? zoneOf(table, zone).status;
  const move = (c: Cell): Cell => {
    const to = draft.moves.get(c.name);
    const active: Mutable<Cell> = { name: c.name, home: c.home, zone: c.zone, epoch: c.epoch, state: 'active' };
    if (!to || to === c.zone) {
      if (c.state !== 'frozen') return c;
      // A planned move in progress towards a zone that stops being up is cancelled, and a
      // freeze whose deadline passed (its operator died) is cleaned up.
      const expired = opts.nowMs !== undefined && (c.frozenUntilMs ?? 0) <= opts.nowMs;
      return expired || (c.movingTo && statusAfter(c.movingTo) !== 'up') ? active : c;
    }
    moves.push({
      cell: c.name, from: c.zone, to, scope: moveScope(zoneOf(table, c.zone), zoneOf(table, to)),
      epochBefore: c.epoch, epochAfter: c.epoch + 1, userShare: shares.get(c.name) ?? 0,
      ...(draft.rehome ? { homeAfter: to } : {}),
    });
    return { ...active, ...(draft.rehome ? { home: to } : {}), zone: to, epoch: c.epoch + 1 };
  };
  const moved = { ...table, zones, cells: table.cells.map(move), global: move(table.global) };
  // Tables written before the high-water mark existed get one with their first move.
  const result = validateTable(moves.length || table.epochHighWater !== undefined ? withEpochHighWater(moved) : moved);
  const before = new ZoneLoads(table.cells.map((c) => c.zone));
  const after = new ZoneLoads(result.cells.map((c) => c.zone));
  const loads = result.zones.map((z) => ({
    zone: z.name, status: z.status, capacity: z.capacity, cellsBefore: before.get(z.name), cellsAfter: after.get(z.name),
  }));
  const cellMoves = moves.filter((m) => m.cell !== GLOBAL_CELL).length;
  const movedCellShare = cellMoves / table.cells.length;
  const guard: string[] = [];
  const maxShare = opts.maxMovedShare ?? DEFAULT_MAX_MOVED_SHARE;
  if (movedCellShare > maxShare) {
    guard.push(`moves ${cellMoves} of ${table.cells.length} cells (${pct(movedCellShare)}), more than the allowed ${pct(maxShare)}`);
  }
  for (const l of loads) {
    if (l.cellsAfter > l.capacity && l.cellsAfter > l.cellsBefore) {
      guard.push(`puts zone ${l.zone} over its capacity (${l.cellsAfter} cells, capacity ${l.capacity})`);
    }
  }
  const zoneStatus = table.zones
    .filter((z) => draft.statuses.has(z.name) && draft.statuses.get(z.name) !== z.status)
    .map((z) => ({ zone: z.name, from: z.status, to: draft.statuses.get(z.name) as ZoneStatus }));
  return {
    action: draft.action, kind: draft.kind, moves, zoneStatus, result, loads, movedCellShare,
    movedUserShare: moves.reduce((sum, m) => sum + m.userShare, 0), guard, remaining: draft.remaining ?? 0,
    changed: tableChecksum(result) !== tableChecksum(table),
    ...(draft.notes?.length ? { notes: draft.notes } : {}),
  };
}

/**
 * A planned change that moves the given cells (cell -> zone) and nothing else, as one batch
 * with `remaining` cells left for later batches; with `rehome`, the targets become the
 * cells' homes too. The building block of rebalance.ts.
 */
export function planMoves(table: RoutingTable, action: string, moves: ReadonlyMap<string, string>, opts: PlannerOptions, extra: { remaining?: number; rehome?: boolean; notes?: readonly string[] } = {}): Plan {
  return finish(table, { action, kind: 'planned', statuses: new Map(), moves, ...extra }, opts);
}

/**
 * A change of the zone list alone (zone add, zone remove): `after` is the table planned on
 * with that edit made; no cell moves. `notes` say what changed (the plan view and history).
 */
export function planZoneListChange(before: RoutingTable, after: RoutingTable, action: string, notes: readonly string[], opts: PlannerOptions = {}): Plan {
  const plan = finish(after, { action, kind: 'unplanned', statuses: new Map(), moves: new Map(), notes }, opts);
  return { ...plan, changed: tableChecksum(plan.result) !== tableChecksum(before) };
}

export function pct(share: number): string {
  return `${(share * 100).toFixed(1)}%`;
}

/** Moves every cell (and the global zone) off `leaving` zones onto `up` zones that stay. */
function evacuate(table: RoutingTable, leaving: ReadonlySet<string>, opts: PlannerOptions): Map<string, string> {
  // Elastic zones are lent for a peak: never a failover target (cells put there would be
  // stranded when the zone is given back). A cell leaving an elastic zone goes home when it can.
  const candidates = table.zones.filter((z) => z.status === 'up' && !leaving.has(z.name) && z.elastic !== true);
  const loads = new ZoneLoads(table.cells.filter((c) => !leaving.has(c.zone)).map((c) => c.zone));
  const moves = new Map<string, string>();
  const stranded: string[] = [];
  for (const cell of allCells(table)) {
    if (!leaving.has(cell.zone)) continue;
    const home = candidates.find((z) => z.name === cell.home && cell.name !== GLOBAL_CELL);
    const goHome = zoneOf(table, cell.zone).elastic === true && home !== undefined && (loads.get(home.name) < home.capacity || opts.force === true);
    const target = goHome ? home : chooseTarget(zoneOf(table, cell.zone), candidates, loads, opts.force === true);
    if (!target) {
      stranded.push(cell.name);
      continue;
    }
    moves.set(cell.name, target.name);
    // The global pseudo-cell is not a unit of user load: it does not count against capacity.
    if (cell.name !== GLOBAL_CELL) loads.add(target.name, 1);
  }
  if (stranded.length) {
    const why = candidates.length === 0 ? 'no other zone is up' : 'the zones that are up have no room left (use --force to exceed capacity)';
    throw cgError('PLAN_REFUSED', `cannot move ${stranded.length} cell(s) (${stranded.slice(0, 8).join(', ')}${stranded.length > 8 ? ', …' : ''}): ${why}`);
  }
  return moves;
}

function statusChange(zones: readonly string[], status: ZoneStatus): Map<string, ZoneStatus> {
  return new Map(zones.map((z) => [z, status]));
}

/** Unplanned: the zone is down now; its cells go to the nearest zones with room, at once. */
export function planZoneDown(table: RoutingTable, zone: string, opts: PlannerOptions = {}): Plan {
  zoneOf(table, zone);
  const moves = evacuate(table, new Set([zone]), opts);
  return finish(table, { action: `zone down ${zone}`, kind: 'unplanned', statuses: statusChange([zone], 'down'), moves }, opts);
}

/** Planned: the zone is emptied with the freeze protocol; it serves its cells until they flip. */
export function planZoneDrain(table: RoutingTable, zone: string, opts: PlannerOptions = {}): Plan {
  if (zoneOf(table, zone).status === 'down') throw cgError('PLAN_REFUSED', `zone ${zone} is down: it serves nothing to drain (zone up brings it back)`);
  const moves = evacuate(table, new Set([zone]), opts);
  return finish(table, { action: `zone drain ${zone}`, kind: 'planned', statuses: statusChange([zone], 'draining'), moves }, opts);
}

/** Unplanned: every zone of the region is down; cells cross to other regions. */
export function planRegionDown(table: RoutingTable, region: string, opts: PlannerOptions = {}): Plan {
  const zones = table.zones.filter((z) => z.region === region).map((z) => z.name);
  if (!zones.length) throw cgError('USAGE', `no region named "${region}" (regions: ${[...new Set(table.zones.map((z) => z.region))].join(', ')})`);
  const moves = evacuate(table, new Set(zones), opts);
  return finish(table, { action: `region down ${region}`, kind: 'unplanned', statuses: statusChange(zones, 'down'), moves }, opts);
}

/** Failback: the zones are up again and their home cells return, `batchSize` at a time (planned). */
function planFailback(table: RoutingTable, zones: readonly string[], action: string, opts: PlannerOptions): Plan {
  const homeOf = new Set(zones);
  const away = allCells(table).filter((c) => homeOf.has(c.home) && c.zone !== c.home);
  const batch = opts.batchSize && opts.batchSize > 0 ? away.slice(0, opts.batchSize) : away;
  const moves = new Map(batch.map((c) => [c.name, c.home]));
  return finish(table, { action, kind: 'planned', statuses: statusChange(zones, 'up'), moves, remaining: away.length - batch.length }, opts);
}

export function planZoneUp(table: RoutingTable, zone: string, opts: PlannerOptions = {}): Plan {
  zoneOf(table, zone);
  return planFailback(table, [zone], `zone up ${zone}`, opts);
}

export function planRegionUp(table: RoutingTable, region: string, opts: PlannerOptions = {}): Plan {
  const zones = table.zones.filter((z) => z.region === region).map((z) => z.name);
  if (!zones.length) throw cgError('USAGE', `no region named "${region}"`);
  return planFailback(table, zones, `region up ${region}`, opts);
}

/** Planned: one cell to one zone. */
export function planCellMove(table: RoutingTable, cell: string, zone: string, opts: PlannerOptions = {}): Plan {
  const target = zoneOf(table, zone);
  const c = allCells(table).find((x) => x.name === cell);
  if (!c) throw cgError('USAGE', `no cell named "${cell}"`);
  if (target.status !== 'up') throw cgError('PLAN_REFUSED', `zone ${zone} is ${target.status}: cells can only move to an up zone`);
  if (c.zone === zone) throw cgError('PLAN_REFUSED', `cell ${cell} is already in zone ${zone}`);
  return finish(table, { action: `cell move ${cell} ${zone}`, kind: 'planned', statuses: new Map(), moves: new Map([[cell, zone]]) }, opts);
}

/** Throws PLAN_REFUSED when the plan breaks the blast-radius guard and is not forced. */
export function enforceGuard(plan: Plan, opts: PlannerOptions): void {
  if (plan.guard.length && !opts.force) {
    throw cgError('PLAN_REFUSED', `refused: the change ${plan.guard.join('; ')} (use --force to go ahead)`, { detail: plan.guard });
  }
}

/**
 * The planned-move table of phase one: moving cells frozen until `frozenUntilMs`, still on
 * their old zone; every other cell as the plan leaves it (stale freezes cleaned).
 */
export function frozenTable(base: RoutingTable, plan: Plan, frozenUntilMs: number): RoutingTable {
  const moving = new Map(plan.moves.map((m) => [m.cell, m.to]));
  const statuses = new Map(plan.zoneStatus.map((s) => [s.zone, s.to]));
  const after = new Map([...plan.result.cells, plan.result.global].map((c) => [c.name, c]));
  const freeze = (c: Cell): Cell => (moving.has(c.name)
    ? { name: c.name, home: c.home, zone: c.zone, epoch: c.epoch, state: 'frozen', frozenUntilMs, movingTo: moving.get(c.name) }
    : after.get(c.name) ?? c);
  // A failback sets zones up in phase one already (nothing routes to them until the flip);
  // a drain marks the zone draining while it still serves the frozen cells.
  const zones = base.zones.map((z) => (statuses.has(z.name) ? { ...z, status: statuses.get(z.name) as ZoneStatus } : z));
  return validateTable({ ...base, zones, cells: base.cells.map(freeze), global: freeze(base.global) });
}

/**
 * Rollback: the table of an earlier revision, restored as a new change. Zones (status,
 * upstreams, capacity) and overrides come back as they were; cells return to the zones they
 * had, and every cell whose zone changes gets a higher epoch than it has now (epochs never
 * go back, or upstream fencing would accept stale routes).
 */
export function planRestore(table: RoutingTable, target: RoutingTable, version: number, opts: PlannerOptions = {}): Plan {
  const names = (t: RoutingTable) => t.cells.map((c) => c.name).sort().join(',');
  if (names(table) !== names(target)) throw cgError('PLAN_REFUSED', `revision ${version} has another set of cells; it cannot be restored as a change`);
  const zoneNames = (t: RoutingTable) => t.zones.map((z) => z.name).sort().join(',');
  if (zoneNames(table) !== zoneNames(target)) throw cgError('PLAN_REFUSED', `revision ${version} has another set of zones; it cannot be restored as a change`);
  const wanted = new Map([...target.cells, target.global].map((c) => [c.name, c.zone]));
  const moves = new Map([...table.cells, table.global].filter((c) => wanted.get(c.name) !== c.zone).map((c) => [c.name, wanted.get(c.name) as string]));
  const statuses = new Map(target.zones.map((z) => [z.name, z.status]));
  const restoredZones = { ...table, zones: target.zones, overrides: target.overrides };
  const plan = finish(restoredZones, { action: `rollback ${version}`, kind: 'unplanned', statuses, moves }, opts);
  const zoneStatus = table.zones
    .filter((z) => statuses.get(z.name) !== z.status)
    .map((z) => ({ zone: z.name, from: z.status, to: statuses.get(z.name) as ZoneStatus }));
  return { ...plan, zoneStatus, changed: tableChecksum(plan.result) !== tableChecksum(table) };
}
