// Rebalance: which cells move where when the estate grows or shrinks (docs/design.md §2,
// "Rebalance and elastic zones"). Pure and deterministic: every batch is planned from the
// table as it is now, so a run that was interrupted resumes by planning again, and a dry run
// shows every batch by planning each on the result of the one before.
//
// - `planRebalance`: cell homes spread over the up, non-elastic zones in proportion to
//   capacity (largest remainder); a moved cell's home and zone both change.
// - `planOntoElastic`: a share of the cells moves (zone only, home stays) onto the up elastic
//   zones, in proportion to their capacity, taken from the home zones in proportion to their
//   cells.
// - `planOffElastic`: every cell on an elastic zone goes back home (when its home is up).
// Cells always move the shortest distance the counts allow: same city, then same region,
// then anywhere (planner tiers, targets.ts).
import type { Cell, RoutingTable, Zone } from '../cells/types';
import { cgError } from '../errors';
import { planMoves, type Plan, type PlannerOptions } from './planner';
import { moveScope } from './targets';

/** Cells per batch when `--batch` is not given, unless the blast-radius share allows fewer. */
export const DEFAULT_REBALANCE_BATCH = 8;

/**
 * Splits `total` over `weights` in proportion (Hamilton's largest remainder): every share is
 * the floor of its quota, and the units left go to the largest remainders, ties to the
 * earlier entry. Zero total weight gives every entry 0.
 */
export function largestRemainder(total: number, weights: readonly number[]): number[] {
  const sum = weights.reduce((a, w) => a + Math.max(0, w), 0);
  if (sum <= 0 || total <= 0) return weights.map(() => 0);
  const quotas = weights.map((w) => (Math.max(0, w) * total) / sum);
  const shares = quotas.map(Math.floor);
  let left = total - shares.reduce((a, n) => a + n, 0);
  const order = quotas.map((q, i) => ({ i, r: q - Math.floor(q) })).sort((a, b) => b.r - a.r || a.i - b.i);
  for (const { i } of order) {
    if (left <= 0) break;
    shares[i]++;
    left--;
  }
  return shares;
}

/** Cells that may be moved now: active (or left frozen past their deadline by a dead operator) and at home. */
function movableAtHome(table: RoutingTable, nowMs: number | undefined): Cell[] {
  return table.cells.filter((c) => c.zone === c.home && (c.state === 'active' || (nowMs !== undefined && (c.frozenUntilMs ?? 0) <= nowMs)));
}

const TIERS = ['same-city', 'cross-city', 'cross-region'] as const;

interface Donor { readonly zone: Zone; readonly cells: string[]; give: number }
interface Receiver { readonly zone: Zone; take: number }

/**
 * Pairs donors' surplus with receivers' deficits, nearest tier first (then table order of
 * donors and receivers); returns the moves (cell -> zone) in the order chosen. Donors give
 * their cells in the order listed.
 */
function matchNearest(donors: readonly Donor[], receivers: readonly Receiver[]): [string, string][] {
  const moves: [string, string][] = [];
  for (const tier of TIERS) {
    for (const d of donors) {
      for (const r of receivers) {
        if (d.zone.name === r.zone.name || moveScope(d.zone, r.zone) !== tier) continue;
        while (d.give > 0 && r.take > 0 && d.cells.length > 0) {
          moves.push([d.cells.shift() as string, r.zone.name]);
          d.give--;
          r.take--;
        }
      }
    }
  }
  return moves;
}

/** The batch size to use: `--batch`, else the default bounded by the blast-radius share (at least 1). */
export function rebalanceBatchSize(table: RoutingTable, opts: PlannerOptions): number {
  if (opts.batchSize && opts.batchSize > 0) return opts.batchSize;
  const guardMax = Math.floor((opts.maxMovedShare ?? 0.5) * table.cells.length);
  return Math.max(1, Math.min(DEFAULT_REBALANCE_BATCH, guardMax));
}

function batchOf(table: RoutingTable, action: string, all: readonly [string, string][], opts: PlannerOptions, rehome: boolean, notes: readonly string[] = []): Plan {
  const size = rebalanceBatchSize(table, opts);
  const batch = all.slice(0, size);
  return planMoves(table, action, new Map(batch), opts, { remaining: all.length - batch.length, rehome, notes });
}

/** The zones homes may be spread over: up, not elastic, with capacity. */
export function homeZones(table: RoutingTable): Zone[] {
  return table.zones.filter((z) => z.status === 'up' && z.elastic !== true && z.capacity > 0);
}

/** How many homes each home zone should hold: the cells homed on them, split by capacity. */
export function homeTargets(table: RoutingTable): Map<string, number> {
  const zones = homeZones(table);
  const names = new Set(zones.map((z) => z.name));
  const pool = table.cells.filter((c) => names.has(c.home)).length;
  const shares = largestRemainder(pool, zones.map((z) => z.capacity));
  return new Map(zones.map((z, i) => [z.name, shares[i]]));
}

/**
 * Rebalance: homes spread over the up, non-elastic zones in proportion to capacity. Cells
 * homed on a zone that is down or draining keep their home (failback returns them); a cell
 * away from home or frozen is not moved (it counts for its home).
 */
export function planRebalance(table: RoutingTable, opts: PlannerOptions = {}): Plan {
  const targets = homeTargets(table);
  if (targets.size === 0) throw cgError('PLAN_REFUSED', 'no zone is up, non-elastic and with capacity: there is nowhere to spread the cells');
  const counts = new Map([...targets.keys()].map((z) => [z, 0]));
  for (const c of table.cells) if (counts.has(c.home)) counts.set(c.home, (counts.get(c.home) as number) + 1);
  const movable = movableAtHome(table, opts.nowMs);
  const zones = homeZones(table);
  const donors: Donor[] = zones.map((z) => ({
    zone: z, cells: movable.filter((c) => c.home === z.name).map((c) => c.name).sort(),
    give: Math.max(0, (counts.get(z.name) as number) - (targets.get(z.name) as number)),
  }));
  const receivers: Receiver[] = zones.map((z) => ({ zone: z, take: Math.max(0, (targets.get(z.name) as number) - (counts.get(z.name) as number)) }));
  const all = matchNearest(donors, receivers);
  const stuck = donors.filter((d) => d.give > 0).map((d) => `${d.zone.name} keeps ${d.give} cell(s) over its share: they are away from home or frozen`);
  return batchOf(table, 'rebalance', all, opts, true, stuck);
}

/** Checks SHARE of `--onto-elastic`: 0 < SHARE <= 1. */
export function checkElasticShare(share: number): void {
  if (!Number.isFinite(share) || share <= 0 || share > 1) throw cgError('USAGE', `--onto-elastic SHARE must be a number in (0, 1], got ${share}`);
}

/**
 * About `share` of the cells (rounded) onto the up elastic zones, in proportion to their
 * capacity, zone only (homes stay). Each home zone gives in proportion to the cells it is
 * home to; cells already on an elastic zone count as given. Resumable: the quotas depend on
 * the homes only, which this never changes.
 */
export function planOntoElastic(table: RoutingTable, share: number, opts: PlannerOptions = {}): Plan {
  checkElasticShare(share);
  const elastic = table.zones.filter((z) => z.status === 'up' && z.elastic === true && z.capacity > 0);
  if (elastic.length === 0) throw cgError('PLAN_REFUSED', 'no elastic zone is up with capacity (cellctl zone add NAME --elastic … adds one)');
  const elasticNames = new Set(elastic.map((z) => z.name));
  const want = Math.round(share * table.cells.length);
  const room = elastic.reduce((a, z) => a + z.capacity, 0);
  if (want > room && !opts.force) {
    throw cgError('PLAN_REFUSED', `${want} cells (${share} of ${table.cells.length}) do not fit on the elastic zones (capacity ${room} in all; use --force to exceed it)`);
  }
  const onElastic = (z: string) => table.cells.filter((c) => c.zone === z).length;
  const elasticTargets = largestRemainder(want, elastic.map((z) => z.capacity));
  const receivers: Receiver[] = elastic.map((z, i) => ({ zone: z, take: Math.max(0, elasticTargets[i] - onElastic(z.name)) }));
  const homes = table.zones.filter((z) => z.elastic !== true);
  const homedOn = (z: string) => table.cells.filter((c) => c.home === z);
  // Only a zone that is up serves its cells at home: a down zone's cells are elsewhere already.
  const quotas = largestRemainder(want, homes.map((z) => (z.status === 'up' ? homedOn(z.name).length : 0)));
  const movable = new Set(movableAtHome(table, opts.nowMs).map((c) => c.name));
  const donors: Donor[] = homes.map((z, i) => {
    const given = homedOn(z.name).filter((c) => elasticNames.has(c.zone)).length;
    const cells = z.status === 'up' ? homedOn(z.name).filter((c) => movable.has(c.name)).map((c) => c.name).sort() : [];
    return { zone: z, cells, give: Math.max(0, quotas[i] - given) };
  });
  return batchOf(table, `rebalance --onto-elastic ${share}`, matchNearest(donors, receivers), opts, false);
}

/**
 * Every cell on an elastic zone goes back to its home; a cell whose home is not up stays
 * where it is and is named in the plan's notes (a failback brings the home back first).
 */
export function planOffElastic(table: RoutingTable, opts: PlannerOptions = {}): Plan {
  const elastic = new Set(table.zones.filter((z) => z.elastic === true).map((z) => z.name));
  const statusOf = new Map(table.zones.map((z) => [z.name, z.status]));
  const away = table.cells.filter((c) => elastic.has(c.zone) && (c.state === 'active' || (opts.nowMs !== undefined && (c.frozenUntilMs ?? 0) <= opts.nowMs)));
  const homeward = away.filter((c) => statusOf.get(c.home) === 'up').map((c): [string, string] => [c.name, c.home]);
  const stranded = away.filter((c) => statusOf.get(c.home) !== 'up').map((c) => `${c.name} stays on ${c.zone}: its home ${c.home} is ${statusOf.get(c.home)}`);
  return batchOf(table, 'rebalance --off-elastic', homeward.sort((a, b) => a[0].localeCompare(b[0])), opts, false, stranded);
}

/**
 * Every batch of a batched plan, each planned on the result of the one before (what a run
 * would do if nothing else changed the table): the dry run's view. Bounded by the cell count.
 */
export function planAllBatches(table: RoutingTable, makePlan: (t: RoutingTable) => Plan): Plan[] {
  const plans: Plan[] = [];
  let current = table;
  for (let i = 0; i <= table.cells.length; i++) {
    const plan = makePlan(current);
    plans.push(plan);
    if (plan.remaining <= 0 || plan.moves.length === 0) break;
    current = plan.result;
  }
  return plans;
}

/** Cells per zone by current zone (the global pseudo-cell is not a cell), every zone listed. */
export function cellsPerZone(table: RoutingTable): Map<string, number> {
  const counts = new Map(table.zones.map((z) => [z.name, 0]));
  for (const c of table.cells) counts.set(c.zone, (counts.get(c.zone) ?? 0) + 1);
  return counts;
}
