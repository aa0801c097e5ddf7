// The failover planner, pure: where displaced cells go (same city, then same region, then
// other regions), capacity and spreading, the blast-radius guard, batches, freezing,
// restoring, and the invariant that no plan ever sends a cell to a zone that is not up.
import test from 'ava';
import { buildTable, tableFromTopologyText, validateTopology } from '../src/cells/topology';
import { GLOBAL_CELL, type Cell, type RoutingTable, type ZoneStatus } from '../src/cells/types';
import { isCellgateError } from '../src/errors';
import {
  enforceGuard, frozenTable, planCellMove, planRegionDown, planRegionUp, planRestore, planZoneDown, planZoneDrain, planZoneUp,
  type Plan,
} from '../src/failover/planner';
import { demoTable } from './helpers/fixtures';
import { epochHighWaterOf, validateTable } from '../src/cells/table';
import { raiseEpochsAbove } from '../src/failover/epochs';
import { prng } from './helpers/prng';

const zoneLine = (name: string, region: string, city: string, capacity: number, port: number) =>
  `  - { name: ${name}, region: ${region}, city: ${city}, capacity: ${capacity}, upstreams: ["http://127.0.0.1:${port}"] }`;

/** Demo-like topology with two zones in Hangzhou, so a cross-city failover has two targets. */
function twoHangzhouTable(capacity = 100): RoutingTable {
  return tableFromTopologyText(['name: wide', 'cells: 64', 'global: sh-a', 'zones:',
    zoneLine('sh-a', 'east', 'shanghai', capacity, 7001), zoneLine('sh-b', 'east', 'shanghai', capacity, 7002),
    zoneLine('hz-a', 'east', 'hangzhou', capacity, 7003), zoneLine('hz-b', 'east', 'hangzhou', capacity, 7004),
    zoneLine('sz-a', 'south', 'shenzhen', capacity, 7005), ''].join('\n'));
}

function allCells(t: RoutingTable): Cell[] {
  return [...t.cells, t.global];
}

function cellOf(t: RoutingTable, name: string): Cell {
  const c = allCells(t).find((x) => x.name === name);
  if (!c) throw new Error(`no cell ${name}`);
  return c;
}

function statusOf(t: RoutingTable, zone: string): ZoneStatus {
  const z = t.zones.find((x) => x.name === zone);
  if (!z) throw new Error(`no zone ${zone}`);
  return z.status;
}

function cellsOn(t: RoutingTable, zone: string): string[] {
  return t.cells.filter((c) => c.zone === zone).map((c) => c.name);
}

function refusal(t: import('ava').ExecutionContext, fn: () => unknown, pattern: RegExp): void {
  const err = t.throws(fn);
  t.true(isCellgateError(err, 'PLAN_REFUSED'), String(err));
  t.regex((err as Error).message, pattern);
}

test('zone down sends its cells (and the global zone) to the same-city peer, epochs +1', (t) => {
  const table = demoTable();
  const onA = cellsOn(table, 'sh-a');
  t.true(onA.length > 0);
  t.is(table.global.zone, 'sh-a');
  const plan = planZoneDown(table, 'sh-a');
  t.is(plan.kind, 'unplanned');
  t.deepEqual(plan.zoneStatus, [{ zone: 'sh-a', from: 'up', to: 'down' }]);
  t.is(statusOf(plan.result, 'sh-a'), 'down');
  t.deepEqual(plan.moves.map((m) => m.cell).sort(), [...onA, GLOBAL_CELL].sort());
  for (const m of plan.moves) {
    t.is(m.to, 'sh-b');
    t.is(m.scope, 'same-city');
    t.is(m.epochAfter, m.epochBefore + 1);
  }
  const moved = new Set(plan.moves.map((m) => m.cell));
  for (const before of allCells(table)) {
    const after = cellOf(plan.result, before.name);
    if (moved.has(before.name)) {
      t.is(after.zone, 'sh-b');
      t.is(after.epoch, before.epoch + 1, `${before.name} epoch`);
    } else {
      t.deepEqual(after, before, `${before.name} untouched`);
    }
    t.is(after.home, before.home, 'homes never change');
  }
  t.is(plan.result.global.zone, 'sh-b', 'the global pseudo-cell fails over too');
  t.is(plan.moves.find((m) => m.cell === GLOBAL_CELL)?.userShare, 0);
  t.true(plan.movedUserShare > 0.15 && plan.movedUserShare < 0.35, `moved user share ${plan.movedUserShare}`);
  t.is(plan.movedCellShare, onA.length / 64);
  t.deepEqual(plan.guard, []);
});

test('with both Shanghai zones down, cells cross to Hangzhou (same region), spread over both zones there', (t) => {
  const table = twoHangzhouTable();
  const first = planZoneDown(table, 'sh-a').result;
  const plan = planZoneDown(first, 'sh-b');
  const targets = new Set(plan.moves.map((m) => m.to));
  t.deepEqual([...targets].sort(), ['hz-a', 'hz-b'], 'two targets available, both used');
  for (const m of plan.moves) t.is(m.scope, 'cross-city');
  const onHzA = cellsOn(plan.result, 'hz-a').length;
  const onHzB = cellsOn(plan.result, 'hz-b').length;
  t.true(Math.abs(onHzA - onHzB) <= 1, `balanced: hz-a ${onHzA}, hz-b ${onHzB}`);
  t.deepEqual(cellsOn(plan.result, 'sz-a'), cellsOn(table, 'sz-a'), 'nothing crosses regions while the region has room');
  t.is(cellsOn(plan.result, 'sh-a').length + cellsOn(plan.result, 'sh-b').length, 0);
});

test('the demo topology: Shanghai down crosses to hangzhou; the whole east region down crosses to the south', (t) => {
  const table = demoTable();
  const city = planZoneDown(planZoneDown(table, 'sh-a').result, 'sh-b');
  t.true(city.moves.every((m) => m.to === 'hz-a' && m.scope === 'cross-city'));
  const region = planRegionDown(table, 'east', { force: true });
  t.deepEqual(region.zoneStatus.map((s) => s.zone).sort(), ['hz-a', 'sh-a', 'sh-b']);
  t.true(region.moves.length > 0);
  t.true(region.moves.every((m) => m.to === 'sz-a' && m.scope === 'cross-region'));
  t.is(cellsOn(region.result, 'sz-a').length, 64);
  t.is(region.result.global.zone, 'sz-a');
  t.true(region.guard.some((g) => /moves 48 of 64 cells/.test(g)), region.guard.join('; '));
});

test('capacity: refused without force ("no room"); with force over capacity and reported in the guard', (t) => {
  const table = tableFromTopologyText(demoLikeTopology(20));
  // 64 cells over 4 zones of 20: 16 each, 4 free slots per zone, 12 free outside sh-a.
  refusal(t, () => planZoneDown(table, 'sh-a'), /no room/);
  const forced = planZoneDown(table, 'sh-a', { force: true });
  t.is(forced.moves.filter((m) => m.cell !== GLOBAL_CELL).length, 16);
  t.true(forced.loads.some((l) => l.cellsAfter > l.capacity));
  t.true(forced.guard.some((g) => /over its capacity/.test(g)), forced.guard.join('; '));
  t.notThrows(() => enforceGuard(forced, { force: true }));
  refusal(t, () => enforceGuard(forced, {}), /capacity/);
  // Within capacity wherever there is room: every zone that was not over is filled to capacity first.
  const within = planZoneDown(tableFromTopologyText(demoLikeTopology(22)), 'sh-a');
  for (const l of within.loads) t.true(l.cellsAfter <= l.capacity, `${l.zone} ${l.cellsAfter}/${l.capacity}`);
  t.true(new Set(within.moves.map((m) => m.to)).size >= 2, 'overflow goes to the next tier');
  t.true(within.moves.filter((m) => m.to === 'sh-b').length >= 6, 'the same-city peer is filled first');
});

function demoLikeTopology(capacity: number): string {
  return ['name: small', 'cells: 64', 'global: sh-a', 'zones:',
    zoneLine('sh-a', 'east', 'shanghai', capacity, 7001), zoneLine('sh-b', 'east', 'shanghai', capacity, 7002),
    zoneLine('hz-a', 'east', 'hangzhou', capacity, 7003), zoneLine('sz-a', 'south', 'shenzhen', capacity, 7004), ''].join('\n');
}

test('nothing left up: refused and says why', (t) => {
  let table = demoTable();
  for (const z of ['sh-a', 'sh-b', 'hz-a']) table = planZoneDown(table, z).result;
  refusal(t, () => planZoneDown(table, 'sz-a', { force: true }), /no other zone is up/);
});

test('blast-radius guard: more than maxMovedShare is refused unless forced', (t) => {
  const table = demoTable();
  const plan = planZoneDown(table, 'sh-a', { maxMovedShare: 0.2 });
  t.true(plan.movedCellShare > 0.2);
  t.is(plan.guard.length, 1);
  t.regex(plan.guard[0], /moves 16 of 64 cells \(25\.0%\), more than the allowed 20\.0%/);
  refusal(t, () => enforceGuard(plan, { maxMovedShare: 0.2 }), /use --force/);
  t.notThrows(() => enforceGuard(plan, { maxMovedShare: 0.2, force: true }));
  t.deepEqual(planZoneDown(table, 'sh-a', { maxMovedShare: 0.25 }).guard, [], 'exactly the share is allowed');
  // The default share is one half: one zone is fine, a region is not.
  t.deepEqual(planZoneDown(table, 'sh-a').guard, []);
  t.true(planRegionDown(table, 'east').guard.length > 0);
  refusal(t, () => enforceGuard(planRegionDown(table, 'east'), {}), /more than the allowed 50\.0%/);
});

test('deterministic: the same input gives the same plan', (t) => {
  const table = twoHangzhouTable();
  const down = (tb: RoutingTable) => planZoneDown(planZoneDown(tb, 'sh-a').result, 'sh-b');
  t.deepEqual(down(table), down(structuredClone(table) as RoutingTable));
  t.deepEqual(planZoneUp(down(table).result, 'sh-a', { batchSize: 5 }), planZoneUp(down(table).result, 'sh-a', { batchSize: 5 }));
  t.deepEqual(planRegionDown(table, 'east', { force: true }), planRegionDown(table, 'east', { force: true }));
});

test('zone up with batchSize: that many moves home, the rest remaining; batches add up to all', (t) => {
  const table = demoTable();
  let current = planZoneDown(table, 'sh-a').result;
  const away = allCells(current).filter((c) => c.home === 'sh-a' && c.zone !== 'sh-a').length;
  t.is(away, 17, '16 cells and the global zone');
  const first = planZoneUp(current, 'sh-a', { batchSize: 5 });
  t.is(first.kind, 'planned');
  t.is(first.moves.length, 5);
  t.is(first.remaining, 12);
  t.deepEqual(first.zoneStatus, [{ zone: 'sh-a', from: 'down', to: 'up' }]);
  t.true(first.moves.every((m) => m.to === 'sh-a' && m.epochAfter === m.epochBefore + 1));
  let batches = 0;
  let plan = first;
  for (;;) {
    batches++;
    current = plan.result;
    if (plan.remaining === 0) break;
    plan = planZoneUp(current, 'sh-a', { batchSize: 5 });
    t.true(plan.moves.length <= 5);
  }
  t.is(batches, 4);
  t.deepEqual(cellsOn(current, 'sh-a'), cellsOn(table, 'sh-a'), 'every home cell is back');
  t.is(current.global.zone, 'sh-a');
  t.is(current.global.epoch, table.global.epoch + 2, 'out and back: two moves');
  const again = planZoneUp(current, 'sh-a');
  t.is(again.moves.length + again.zoneStatus.length, 0, 'nothing left: an empty plan');
});

test('region up returns every zone of the region and its cells home', (t) => {
  const table = demoTable();
  const down = planRegionDown(table, 'east', { force: true }).result;
  const up = planRegionUp(down, 'east', { force: true });
  t.deepEqual(up.zoneStatus.map((s) => s.zone).sort(), ['hz-a', 'sh-a', 'sh-b']);
  for (const c of allCells(up.result)) t.is(c.zone, c.home);
  t.true(up.result.zones.every((z) => z.status === 'up'));
});

test('cell move: planned, one cell, refused to a zone that is down or draining, or to where it is', (t) => {
  const table = demoTable();
  const cell = table.cells.find((c) => c.zone === 'sh-a') as Cell;
  const plan = planCellMove(table, cell.name, 'sz-a');
  t.is(plan.kind, 'planned');
  t.deepEqual(plan.moves.map((m) => [m.cell, m.from, m.to, m.scope]), [[cell.name, 'sh-a', 'sz-a', 'cross-region']]);
  const down = planZoneDown(table, 'sz-a').result;
  refusal(t, () => planCellMove(down, cell.name, 'sz-a'), /sz-a is down/);
  const draining = planZoneDrain(table, 'hz-a').result;
  refusal(t, () => planCellMove(draining, cell.name, 'hz-a'), /hz-a is draining/);
  refusal(t, () => planCellMove(table, cell.name, 'sh-a'), /already in zone sh-a/);
  const usage = t.throws(() => planCellMove(table, cell.name, 'nowhere'));
  t.true(isCellgateError(usage, 'USAGE'));
  t.true(isCellgateError(t.throws(() => planCellMove(table, 'c999', 'sh-b')), 'USAGE'));
  t.true(isCellgateError(t.throws(() => planZoneDown(table, 'nowhere')), 'USAGE'));
  t.true(isCellgateError(t.throws(() => planRegionDown(table, 'nowhere')), 'USAGE'));
});

test('zone drain is planned, marks the zone draining and empties it', (t) => {
  const table = demoTable();
  const plan = planZoneDrain(table, 'hz-a');
  t.is(plan.kind, 'planned');
  t.deepEqual(plan.zoneStatus, [{ zone: 'hz-a', from: 'up', to: 'draining' }]);
  t.deepEqual(cellsOn(plan.result, 'hz-a'), []);
  t.true(plan.moves.every((m) => m.to !== 'hz-a'));
});

test('frozenTable: moving cells frozen with deadline and target, on their old zone; others untouched', (t) => {
  const table = demoTable();
  const plan = planZoneDrain(table, 'hz-a');
  const frozen = frozenTable(table, plan, 123_456);
  const moving = new Map(plan.moves.map((m) => [m.cell, m.to]));
  t.true(moving.size > 0);
  for (const before of allCells(table)) {
    const after = cellOf(frozen, before.name);
    if (moving.has(before.name)) {
      t.is(after.state, 'frozen');
      t.is(after.frozenUntilMs, 123_456);
      t.is(after.movingTo, moving.get(before.name));
      t.is(after.zone, before.zone, 'still served by the old zone until the flip');
      t.is(after.epoch, before.epoch, 'the epoch changes at the flip');
    } else {
      t.deepEqual(after, before);
    }
  }
  t.is(statusOf(frozen, 'hz-a'), 'draining');
});

test('a zone going down cancels planned moves heading to it (frozen cells become active in place)', (t) => {
  const table = demoTable();
  const cell = table.cells.find((c) => c.zone === 'sh-a') as Cell;
  const frozen = frozenTable(table, planCellMove(table, cell.name, 'sz-a'), 999);
  const down = planZoneDown(frozen, 'sz-a');
  const after = cellOf(down.result, cell.name);
  t.is(after.state, 'active');
  t.is(after.zone, 'sh-a');
  t.is(after.frozenUntilMs, undefined);
  t.is(after.movingTo, undefined);
});

test('planRestore: zones and cells back as they were, epochs raised, never lowered', (t) => {
  const table = demoTable();
  const downed = planZoneDown(table, 'sh-a').result;
  const later = planZoneDown(downed, 'hz-a').result;
  const plan = planRestore(later, table, 1);
  t.is(plan.action, 'rollback 1');
  t.deepEqual(plan.zoneStatus.map((s) => [s.zone, s.from, s.to]).sort(), [['hz-a', 'down', 'up'], ['sh-a', 'down', 'up']]);
  t.true(plan.result.zones.every((z) => z.status === 'up'));
  for (const now of allCells(later)) {
    const restored = cellOf(plan.result, now.name);
    t.is(restored.zone, cellOf(table, now.name).zone, `${now.name} back on its zone`);
    t.true(restored.epoch >= now.epoch, `${now.name} epoch never lowered`);
    if (restored.zone !== now.zone) t.is(restored.epoch, now.epoch + 1);
    else t.is(restored.epoch, now.epoch);
  }
  // A restore to another set of cells is refused.
  const other = tableFromTopologyText(demoLikeTopology(100).replace('cells: 64', 'cells: 32'));
  refusal(t, () => planRestore(table, other, 7), /another set of cells/);
});

// ---- The invariant over many random operation sequences -------------------------------

function randomTable(rand: () => number): RoutingTable {
  const zones: Record<string, unknown>[] = [];
  const regions = 1 + Math.floor(rand() * 3);
  for (let r = 0; r < regions; r++) {
    const cities = 1 + Math.floor(rand() * 2);
    for (let c = 0; c < cities; c++) {
      const count = 1 + Math.floor(rand() * 3);
      for (let z = 0; z < count; z++) {
        zones.push({
          name: `r${r}c${c}z${z}`, region: `r${r}`, city: `r${r}c${c}`, capacity: 4 + Math.floor(rand() * 30),
          upstreams: [`http://127.0.0.1:${7000 + zones.length}`],
        });
      }
    }
  }
  const capacity = zones.reduce((s, z) => s + (z.capacity as number), 0);
  const cells = Math.max(1, Math.floor(capacity * (0.2 + rand() * 0.6)));
  return buildTable(validateTopology({ name: 'random', cells, zones, global: zones[0].name }));
}

function pick<T>(rand: () => number, xs: readonly T[]): T {
  return xs[Math.floor(rand() * xs.length)];
}

function randomStep(rand: () => number, table: RoutingTable, history: readonly RoutingTable[]): { plan: Plan; draining: string | null } {
  const zone = pick(rand, table.zones).name;
  const region = pick(rand, table.zones).region;
  const force = rand() < 0.3;
  switch (Math.floor(rand() * 8)) {
    case 0: case 1: return { plan: planZoneDown(table, zone, { force }), draining: null };
    case 2: return { plan: planZoneUp(table, zone, { force, batchSize: rand() < 0.5 ? 1 + Math.floor(rand() * 4) : undefined }), draining: null };
    case 3: return { plan: planZoneDrain(table, zone, { force }), draining: zone };
    case 4: return { plan: planRegionDown(table, region, { force }), draining: null };
    case 5: return { plan: planRegionUp(table, region, { force }), draining: null };
    case 6: return { plan: planCellMove(table, pick(rand, allCells(table)).name, zone, { force }), draining: null };
    default: {
      const i = Math.floor(rand() * history.length);
      return { plan: planRestore(table, history[i], i + 1, { force }), draining: null };
    }
  }
}

/** Every cell of `t` is on an `up` zone (or on the zone a drain is emptying, while frozen). */
function strayCells(t: RoutingTable, draining: string | null): string[] {
  const status = new Map(t.zones.map((z) => [z.name, z.status]));
  return allCells(t).filter((c) => status.get(c.zone) !== 'up' && c.zone !== draining).map((c) => `${c.name}@${c.zone}(${status.get(c.zone)})`);
}

function checkSequences(t: import('ava').ExecutionContext, makeTable: (rand: () => number) => RoutingTable, runs: number, steps: number): void {
  let plans = 0;
  let refused = 0;
  for (let seed = 1; seed <= runs; seed++) {
    const rand = prng(seed);
    let table = makeTable(rand);
    const history = [table];
    for (let step = 0; step < steps; step++) {
      let made: { plan: Plan; draining: string | null };
      try {
        made = randomStep(rand, table, history);
      } catch (err) {
        if (!isCellgateError(err, 'PLAN_REFUSED') && !isCellgateError(err, 'USAGE')) throw err;
        refused++;
        continue;
      }
      const { plan, draining } = made;
      plans++;
      const where = `seed ${seed} step ${step} ${plan.action}`;
      const stray = strayCells(plan.result, null);
      if (stray.length) t.fail(`${where}: cells on zones that are not up: ${stray.join(', ')}`);
      for (const m of plan.moves) {
        if (statusOf(plan.result, m.to) !== 'up') t.fail(`${where}: moves ${m.cell} to ${m.to} (${statusOf(plan.result, m.to)})`);
        if (m.epochAfter !== m.epochBefore + 1) t.fail(`${where}: ${m.cell} epoch ${m.epochBefore} -> ${m.epochAfter}`);
      }
      for (const before of allCells(table)) {
        if (cellOf(plan.result, before.name).epoch < before.epoch) t.fail(`${where}: ${before.name} epoch lowered`);
      }
      // Phase one of a planned move keeps cells where they were: on up zones or on the zone being drained.
      const strayFrozen = plan.kind === 'planned' ? strayCells(frozenTable(table, plan, 1), draining) : [];
      if (strayFrozen.length) t.fail(`${where}: frozen table has cells off up zones: ${strayFrozen.join(', ')}`);
      if (plan.guard.length === 0) {
        for (const l of plan.loads) {
          if (l.cellsAfter > l.capacity && l.cellsAfter > l.cellsBefore) t.fail(`${where}: ${l.zone} over capacity without a guard`);
        }
      }
      table = plan.result;
      history.push(table);
    }
  }
  t.log(`${plans} plans made, ${refused} refused`);
  t.true(plans > runs * steps * 0.5, `${plans} plans made, ${refused} refused`);
}

test('property: no plan puts a cell on a down or draining zone (demo topology, random sequences)', (t) => {
  checkSequences(t, () => demoTable(), 40, 20);
});

test('property: no plan puts a cell on a down or draining zone (random topologies)', (t) => {
  checkSequences(t, randomTable, 60, 20);
});

test('the epoch high-water mark: set by the first move, never below a cell epoch, validated', (t) => {
  const base = demoTable();
  t.is(base.epochHighWater, undefined, 'a table from a topology has none yet');
  t.false(planZoneUp(base, 'sh-a').changed, 'a plan that moves nothing does not add it');
  const down = planZoneDown(base, 'sh-a').result;
  t.is(down.epochHighWater, 2);
  const back = planZoneUp(down, 'sh-a').result;
  t.is(back.epochHighWater, 3);
  t.is(epochHighWaterOf(back), 3);
  const err = t.throws(() => validateTable({ ...back, epochHighWater: 2 }));
  t.true(isCellgateError(err, 'INVALID_TABLE'));
  t.regex(err?.message ?? '', /epochHighWater: must be at least the highest cell epoch \(3\)/);
  t.true(isCellgateError(t.throws(() => validateTable({ ...back, epochHighWater: 'x' })), 'INVALID_TABLE'));
  // A table raised above a high-water mark: every cell gets one fresh epoch.
  const raised = raiseEpochsAbove(base, 7);
  t.true([...raised.cells, raised.global].every((c) => c.epoch === 8));
  t.is(raised.epochHighWater, 8);
});

test('an expired freeze is cleaned by the next plan (given the time); a live one is left alone', (t) => {
  const base = demoTable();
  const c05 = base.cells[5]!;
  const target = c05.zone === 'sz-a' ? 'hz-a' : 'sz-a';
  const frozen = frozenTable(base, planCellMove(base, 'c05', target), 10_000);
  // A change elsewhere: neither c05's zone nor the one it is moving to.
  const elsewhere = base.zones.find((z) => z.name !== c05.zone && z.name !== target)!.name;
  const other = (b: RoutingTable, nowMs?: number) => planZoneDown(b, elsewhere, { nowMs, force: true }).result;
  t.is(other(frozen, 5_000).cells[5]!.state, 'frozen', 'before its deadline');
  t.is(other(frozen).cells[5]!.state, 'frozen', 'without the time, nothing is judged expired');
  const cleaned = other(frozen, 10_000).cells[5]!;
  t.deepEqual(cleaned, { name: 'c05', home: c05.home, zone: c05.zone, epoch: c05.epoch, state: 'active' });
});
