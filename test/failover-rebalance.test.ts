// Rebalance and elastic zones, pure: capacity shares by largest remainder, shortest-distance
// choice of cells, determinism, batches that resume from a half-done table, onto and off
// elastic zones, elastic zones never a home nor a failover target, and the zone list edits.
import test from 'ava';
import { tableFromTopologyText } from '../src/cells/topology';
import type { RoutingTable } from '../src/cells/types';
import { addZone, removeZone } from '../src/cells/zones';
import { isCellgateError } from '../src/errors';
import { frozenTable, planZoneDown, planRegionDown, type Plan } from '../src/failover/planner';
import {
  cellsPerZone, homeTargets, largestRemainder, planAllBatches, planOffElastic, planOntoElastic, planRebalance, rebalanceBatchSize,
} from '../src/failover/rebalance';
import { demoTable } from './helpers/fixtures';

const zoneDoc = (name: string, region: string, city: string, capacity: number, extra: Record<string, unknown> = {}) =>
  ({ name, region, city, capacity, upstreams: [`http://10.0.0.${capacity % 250 + 1}:8080`], ...extra });

/** The demo table (4 zones × 16 cells, capacity 100 each) with zones added. */
function withZones(...docs: Record<string, unknown>[]): RoutingTable {
  return docs.reduce<RoutingTable>((t, d) => addZone(t, d), demoTable());
}

function homesPerZone(t: RoutingTable): Record<string, number> {
  const out: Record<string, number> = {};
  for (const z of t.zones) out[z.name] = t.cells.filter((c) => c.home === z.name).length;
  return out;
}

/** Runs every batch (as if each was executed and written) and returns the final table. */
function runAll(t: RoutingTable, make: (t: RoutingTable) => Plan): { plans: Plan[]; table: RoutingTable } {
  const plans = planAllBatches(t, make);
  return { plans, table: plans[plans.length - 1]!.result };
}

test('largestRemainder splits by weight, floors first, remainders to the largest (ties to the earlier)', (t) => {
  t.deepEqual(largestRemainder(64, [100, 100, 100, 100, 100]), [13, 13, 13, 13, 12]);
  t.deepEqual(largestRemainder(10, [1, 2, 2]), [2, 4, 4]);
  t.deepEqual(largestRemainder(7, [3, 1]), [5, 2]);
  t.deepEqual(largestRemainder(5, [0, 0]), [0, 0]);
  t.deepEqual(largestRemainder(0, [1, 2]), [0, 0]);
  for (const [n, w] of [[64, [3, 5, 7]], [33, [1, 1, 1]], [100, [10, 0, 90]]] as const) {
    t.is(largestRemainder(n, w).reduce((a, b) => a + b, 0), n);
  }
});

test('rebalance after zone add: homes by capacity share; cells move same city first, then region, then anywhere; home and zone both change', (t) => {
  const table = withZones(zoneDoc('sh-c', 'east', 'shanghai', 100));
  t.deepEqual(Object.fromEntries(homeTargets(table)), { 'sh-a': 13, 'sh-b': 13, 'hz-a': 13, 'sz-a': 13, 'sh-c': 12 });
  const { plans, table: done } = runAll(table, (x) => planRebalance(x, { batchSize: 100 }));
  t.is(plans.length, 1);
  const plan = plans[0]!;
  t.is(plan.kind, 'planned');
  t.is(plan.moves.length, 12);
  t.true(plan.moves.every((m) => m.to === 'sh-c' && m.homeAfter === 'sh-c'));
  // The two Shanghai peers give first (same city), then Hangzhou (same region), then Shenzhen.
  const scopes = (moves: Plan['moves']) => moves.reduce<Record<string, number>>((acc, m) => ({ ...acc, [m.scope]: (acc[m.scope] ?? 0) + 1 }), {});
  t.deepEqual(scopes(plan.moves), { 'same-city': 6, 'cross-city': 3, 'cross-region': 3 });
  // In batches, the nearest moves go first.
  t.deepEqual(planAllBatches(table, (x) => planRebalance(x, { batchSize: 6 })).map((p) => scopes(p.moves)), [{ 'same-city': 6 }, { 'cross-city': 3, 'cross-region': 3 }]);
  t.deepEqual(homesPerZone(done), { 'sh-a': 13, 'sh-b': 13, 'hz-a': 13, 'sz-a': 13, 'sh-c': 12 });
  t.true(done.cells.every((c) => c.zone === c.home && c.state === 'active'));
  for (const m of plan.moves) t.is(m.epochAfter, m.epochBefore + 1);
  // Balanced: nothing more to do.
  const again = planRebalance(done);
  t.is(again.moves.length, 0);
  t.false(again.changed);
});

test('rebalance prefers a same-city receiver over a far one, and capacity weights the shares', (t) => {
  // Two new zones of capacity 200: one in Shenzhen (south), one in Hangzhou (east).
  const table = withZones(zoneDoc('sz-b', 'south', 'shenzhen', 200), zoneDoc('hz-b', 'east', 'hangzhou', 200));
  const targets = Object.fromEntries(homeTargets(table));
  t.deepEqual(targets, { 'sh-a': 8, 'sh-b': 8, 'hz-a': 8, 'sz-a': 8, 'sz-b': 16, 'hz-b': 16 });
  const { table: done, plans } = runAll(table, (x) => planRebalance(x, { batchSize: 100 }));
  t.deepEqual(homesPerZone(done), targets);
  const moves = plans.flatMap((p) => p.moves);
  // sz-a's surplus goes next door (same city), hz-a's too; Shanghai's surplus has no same-city receiver.
  t.true(moves.filter((m) => m.from === 'sz-a').every((m) => m.to === 'sz-b'));
  t.true(moves.filter((m) => m.from === 'hz-a').every((m) => m.to === 'hz-b'));
  t.true(moves.filter((m) => m.from.startsWith('sh-')).every((m) => m.scope !== 'same-city'));
  // Shanghai fills Hangzhou (same region) before crossing to Shenzhen.
  t.is(moves.filter((m) => m.from.startsWith('sh-') && m.to === 'hz-b').length, 8);
  t.is(moves.filter((m) => m.from.startsWith('sh-') && m.to === 'sz-b').length, 8);
  t.is(moves.filter((m) => m.scope === 'cross-region').length, 8);
});

test('rebalance is deterministic: the same table gives the same plan', (t) => {
  const table = withZones(zoneDoc('sh-c', 'east', 'shanghai', 100));
  const a = planAllBatches(table, (x) => planRebalance(x, { batchSize: 5 }));
  const b = planAllBatches(structuredClone(table) as RoutingTable, (x) => planRebalance(x, { batchSize: 5 }));
  t.deepEqual(a.map((p) => p.moves.map((m) => [m.cell, m.from, m.to])), b.map((p) => p.moves.map((m) => [m.cell, m.from, m.to])));
});

test('rebalance in batches: each batch a planned change of at most N cells, `remaining` counts down, the default batch is 8 (or what the guard allows)', (t) => {
  const table = withZones(zoneDoc('sh-c', 'east', 'shanghai', 100));
  const plans = planAllBatches(table, (x) => planRebalance(x, { batchSize: 5 }));
  t.deepEqual(plans.map((p) => p.moves.length), [5, 5, 2]);
  t.deepEqual(plans.map((p) => p.remaining), [7, 2, 0]);
  t.deepEqual(homesPerZone(plans[2]!.result), { 'sh-a': 13, 'sh-b': 13, 'hz-a': 13, 'sz-a': 13, 'sh-c': 12 });
  t.is(rebalanceBatchSize(table, {}), 8);
  t.is(rebalanceBatchSize(table, { maxMovedShare: 0.05 }), 3);
  t.is(rebalanceBatchSize(table, { maxMovedShare: 0 }), 1);
  t.deepEqual(planAllBatches(table, (x) => planRebalance(x)).map((p) => p.moves.length), [8, 4]);
  // The blast-radius guard applies per batch: 8 of 64 is 12.5 %.
  t.deepEqual(planRebalance(table, { maxMovedShare: 0.1, batchSize: 8 }).guard.length, 1);
});

test('rebalance resumes from a half-done table: a batch frozen and withdrawn, or flipped, then planned again', (t) => {
  const table = withZones(zoneDoc('sh-c', 'east', 'shanghai', 100));
  const first = planRebalance(table, { batchSize: 5 });
  // Interrupted after the flip of batch one: the re-plan moves only what is left.
  const resumed = planAllBatches(first.result, (x) => planRebalance(x, { batchSize: 5 }));
  t.deepEqual(resumed.map((p) => p.moves.length), [5, 2]);
  const uninterrupted = planAllBatches(table, (x) => planRebalance(x, { batchSize: 5 }));
  t.deepEqual(resumed.flatMap((p) => p.moves.map((m) => m.cell)), uninterrupted.slice(1).flatMap((p) => p.moves.map((m) => m.cell)));
  // Interrupted after the freeze of batch one (operator died): frozen cells are not planned
  // again until their deadline passes; after it, they are.
  const frozen = frozenTable(table, first, 10_000);
  const during = planRebalance(frozen, { batchSize: 100, nowMs: 5_000 });
  t.false(during.moves.some((m) => first.moves.some((f) => f.cell === m.cell)));
  const after = planRebalance(frozen, { batchSize: 100, nowMs: 20_000 });
  t.is(after.moves.length, 12);
  t.true(after.result.cells.every((c) => c.state === 'active'));
});

test('rebalance leaves alone the homes of a down zone and cells away from home', (t) => {
  const table = withZones(zoneDoc('sh-c', 'east', 'shanghai', 100));
  const down = planZoneDown(table, 'sz-a').result;
  const plan = planRebalance(down, { batchSize: 100 });
  t.false(plan.moves.some((m) => m.from === 'sz-a' || m.to === 'sz-a'));
  const movedAway = new Set(down.cells.filter((c) => c.zone !== c.home).map((c) => c.name));
  t.false(plan.moves.some((m) => movedAway.has(m.cell)));
  // Homes of sz-a stay sz-a (failback returns them).
  t.is(homesPerZone(plan.result)['sz-a'], 16);
});

test('onto-elastic 0.25 moves about a quarter of the cells onto the elastic zones by capacity, zone only; off-elastic returns every one home', (t) => {
  const table = withZones(zoneDoc('pk-a', 'east', 'shanghai', 10, { elastic: true }), zoneDoc('pk-b', 'south', 'shenzhen', 30, { elastic: true }));
  t.deepEqual(homesPerZone(table), { 'sh-a': 16, 'sh-b': 16, 'hz-a': 16, 'sz-a': 16, 'pk-a': 0, 'pk-b': 0 });
  const onto = runAll(table, (x) => planOntoElastic(x, 0.25, { batchSize: 5 }));
  t.deepEqual(onto.plans.map((p) => p.moves.length), [5, 5, 5, 1]);
  const counts = Object.fromEntries(cellsPerZone(onto.table));
  t.deepEqual(counts, { 'sh-a': 12, 'sh-b': 12, 'hz-a': 12, 'sz-a': 12, 'pk-a': 4, 'pk-b': 12 });
  // Homes stay; each source zone gave in proportion to its cells (16 each -> 4 each).
  t.deepEqual(homesPerZone(onto.table), homesPerZone(table));
  const moves = onto.plans.flatMap((p) => p.moves);
  t.true(moves.every((m) => m.homeAfter === undefined));
  // Nearest first: sz-a's cells go next door to pk-b.
  t.true(moves.filter((m) => m.from === 'sz-a').every((m) => m.to === 'pk-b' && m.scope === 'same-city'));
  t.true(moves.filter((m) => m.to === 'pk-a').every((m) => m.scope === 'same-city'));
  // Resumable and idempotent: once there, nothing more.
  t.is(planOntoElastic(onto.table, 0.25).moves.length, 0);
  const off = runAll(onto.table, (x) => planOffElastic(x, { batchSize: 7 }));
  t.deepEqual(off.plans.map((p) => p.moves.length), [7, 7, 2]);
  t.true(off.table.cells.every((c) => c.zone === c.home && c.state === 'active'));
  t.deepEqual(Object.fromEntries(cellsPerZone(off.table)), { 'sh-a': 16, 'sh-b': 16, 'hz-a': 16, 'sz-a': 16, 'pk-a': 0, 'pk-b': 0 });
});

test('onto-elastic refuses more than the elastic zones can carry (unless forced), bad shares, and no elastic zone', (t) => {
  const table = withZones(zoneDoc('pk-a', 'east', 'shanghai', 10, { elastic: true }));
  const tooMany = t.throws(() => planOntoElastic(table, 0.5));
  t.true(isCellgateError(tooMany, 'PLAN_REFUSED'));
  t.regex(tooMany!.message, /32 cells .* do not fit .*capacity 10/);
  t.is(planOntoElastic(table, 0.5, { force: true, batchSize: 100 }).moves.length, 32);
  for (const share of [0, -0.1, 1.5, Number.NaN]) t.true(isCellgateError(t.throws(() => planOntoElastic(table, share)), 'USAGE'));
  t.true(isCellgateError(t.throws(() => planOntoElastic(demoTable(), 0.25)), 'PLAN_REFUSED'));
});

test('off-elastic leaves a cell whose home is down where it is, and says so', (t) => {
  const table = withZones(zoneDoc('pk-a', 'east', 'shanghai', 20, { elastic: true }));
  const onto = runAll(table, (x) => planOntoElastic(x, 0.25, { batchSize: 100 })).table;
  const shaOnPeak = onto.cells.filter((c) => c.home === 'sh-a' && c.zone === 'pk-a').map((c) => c.name);
  t.true(shaOnPeak.length > 0);
  const shaDown = planZoneDown(onto, 'sh-a').result;
  const off = planOffElastic(shaDown, { batchSize: 100 });
  t.false(off.moves.some((m) => shaOnPeak.includes(m.cell)));
  t.is(off.notes?.length, shaOnPeak.length);
  t.regex(off.notes![0]!, /stays on pk-a: its home sh-a is down/);
  t.is(off.remaining, 0);
});

test('elastic zones get no homes and are never a failover target; cells on one go home when it goes down', (t) => {
  const topo = tableFromTopologyText(`name: t\ncells: 16\nzones:\n  - { name: a, region: r, city: c, capacity: 100, upstreams: ["http://127.0.0.1:1"] }\n`
    + '  - { name: pk, region: r, city: c, capacity: 100, elastic: true, upstreams: ["http://127.0.0.1:2"] }\n'
    + '  - { name: b, region: r2, city: d, capacity: 100, upstreams: ["http://127.0.0.1:3"] }\n');
  t.false(topo.cells.some((c) => c.home === 'pk'));
  // A topology whose only capacity is elastic, or whose global zone is elastic, is refused.
  const zonesYaml = 'zones:\n  - { name: pk, region: r, city: c, capacity: 100, elastic: true, upstreams: ["http://127.0.0.1:2"] }\n'
    + '  - { name: a, region: r, city: c, capacity: 0, upstreams: ["http://127.0.0.1:1"] }\n';
  t.throws(() => tableFromTopologyText(`name: t\ncells: 4\nglobal: a\n${zonesYaml}`), { message: /zones: the zones have no capacity in all/ });
  t.throws(() => tableFromTopologyText(`name: t\ncells: 4\n${zonesYaml}`), { message: /global: zone "pk" is elastic/ });
  t.throws(() => tableFromTopologyText(`name: t\ncells: 4\nzones:\n  - { name: a, region: r, city: c, capacity: 1, elastic: 1, upstreams: ["http://127.0.0.1:1"] }\n`), { message: /zones\[0\]\.elastic: must be true or false/ });
  // a goes down: its cells cross regions to b rather than next door to the elastic pk.
  t.true(planZoneDown(topo, 'a').moves.every((m) => m.to === 'b'));
  t.true(planRegionDown(topo, 'r2').moves.every((m) => m.to === 'a'));
  // Cells lent to pk return home when pk goes down (not to the nearest zone).
  const onto = runAll(topo, (x) => planOntoElastic(x, 0.5, { batchSize: 100 })).table;
  t.true(onto.cells.some((c) => c.zone === 'pk' && c.home === 'b'));
  t.true(planZoneDown(onto, 'pk').moves.every((m) => m.to === onto.cells.find((c) => c.name === m.cell)!.home));
  // A table that names an elastic zone as a home is invalid.
  const bad = structuredClone(onto) as unknown as { cells: { home: string }[] };
  bad.cells[0]!.home = 'pk';
  t.throws(() => addZone(bad as unknown as RoutingTable, zoneDoc('x', 'r', 'c', 1)), { message: /cells\[0\]\.home: zone "pk" is elastic/ });
});

test('zone add: validated like a topology zone with key paths; duplicate names refused; zone remove refused while used', (t) => {
  const table = demoTable();
  const added = addZone(table, zoneDoc('sh-c', 'east', 'shanghai', 50));
  t.like(added.zones.at(-1), { name: 'sh-c', status: 'up', capacity: 50 });
  const dup = t.throws(() => addZone(table, zoneDoc('sh-a', 'east', 'shanghai', 50)));
  t.true(isCellgateError(dup, 'PLAN_REFUSED'));
  t.regex(dup!.message, /zone "sh-a" already exists/);
  const bad = t.throws(() => addZone(table, { name: 'x-1', region: 'east', city: 'shanghai', capacity: -1, upstreams: ['ftp://h'], elastic: 'yes' }));
  t.true(isCellgateError(bad, 'INVALID_TOPOLOGY'));
  for (const path of ['zones["x-1"].capacity', 'zones["x-1"].upstreams[0]', 'zones["x-1"].elastic']) t.true(bad!.message.includes(path), path);
  t.deepEqual(removeZone(added, 'sh-c').zones.map((z) => z.name), table.zones.map((z) => z.name));
  const used = t.throws(() => removeZone(table, 'hz-a'));
  t.true(isCellgateError(used, 'PLAN_REFUSED'));
  t.regex(used!.message, /16 cell\(s\) have it as home/);
  t.regex(t.throws(() => removeZone(table, 'sh-a'))!.message, /global zone/);
  t.true(isCellgateError(t.throws(() => removeZone(table, 'nope')), 'USAGE'));
  // A frozen cell moving to the zone keeps it.
  const peak = addZone(table, zoneDoc('pk', 'east', 'shanghai', 20, { elastic: true }));
  const moving = frozenTable(peak, planOntoElastic(peak, 0.1, { batchSize: 1 }), Date.now() + 60_000);
  t.regex(t.throws(() => removeZone(moving, 'pk'))!.message, /frozen cell\(s\) are moving to it/);
});
