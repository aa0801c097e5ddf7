// The cheap apply path (issue 15): what one table version reuses from the one before —
// validated cells, their canonical text (checksum), routes, the ring, zone pools — and that
// the shortcut never changes what is accepted, refused or checksummed.
import test from 'ava';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tableChecksum } from '../src/cells/checksum';
import { RoutingView } from '../src/cells/lookup';
import { validateTable, versioned } from '../src/cells/table';
import { TableDecoder } from '../src/cells/table-decoder';
import type { RoutingTable, VersionedTable } from '../src/cells/types';
import { systemClock } from '../src/clock';
import { DEFAULT_CONFIG } from '../src/router/config';
import { EndpointHealth } from '../src/router/endpoints';
import { RoutingStateHolder } from '../src/router/routing-state';
import { TableFollower } from '../src/router/table-follower';
import { demoTable } from './helpers/fixtures';
import { MemoryStore } from './helpers/memory-store';
import { until } from './helpers/wait';


type Doc = any;

/** A fresh document (as JSON.parse makes one) with `change` applied. */
function doc(table: RoutingTable, change: (d: Doc) => void = () => undefined): Doc {
  const d = JSON.parse(JSON.stringify(table)) as Doc;
  change(d);
  return d;
}

const HEALTH = DEFAULT_CONFIG.upstream;

test('a version that changes one cell validates that cell only and reuses every other cell object', (t) => {
  const base = demoTable();
  const decoder = new TableDecoder();
  const v1 = decoder.decode(doc(base), 1);
  t.false(decoder.stats.incremental, 'the first version is validated in full');
  const moved = base.cells[3]!;
  const other = base.zones.find((z) => z.name !== moved.zone)!.name;
  const v2 = decoder.decode(doc(base, (d) => { d.cells[3].zone = other; d.cells[3].epoch += 1; d.epochHighWater = Math.max(d.epochHighWater ?? 0, d.cells[3].epoch); }), 2);
  t.true(decoder.stats.incremental);
  t.is(decoder.stats.cellsValidated, 1);
  t.is(decoder.stats.cellsReused, base.cells.length - 1);
  v2.table.cells.forEach((c, i) => (i === 3 ? t.not(c, v1.table.cells[i]) : t.is(c, v1.table.cells[i])));
  t.is(v2.table.ring, v1.table.ring, 'the ring spec is the same object');
  t.deepEqual(v2.table, validateTable(doc(v2.table)), 'exactly what the full validation returns');
  t.is(v2.checksum, tableChecksum(validateTable(doc(v2.table))), 'and the same checksum');
  t.true(Object.isFrozen(v2.table) && Object.isFrozen(v2.table.cells) && Object.isFrozen(v2.table.cells[3]));
});

test('a zone status change reuses every cell, and the unchanged zones', (t) => {
  const base = demoTable();
  const decoder = new TableDecoder();
  const v1 = decoder.decode(doc(base), 1);
  const v2 = decoder.decode(doc(base, (d) => { d.zones[0].status = 'down'; }), 2);
  t.is(decoder.stats.cellsValidated, 0);
  t.not(v2.table.zones[0], v1.table.zones[0]);
  v2.table.zones.slice(1).forEach((z, i) => t.is(z, v1.table.zones[i + 1]));
  t.is(v2.checksum, versioned(validateTable(doc(v2.table)), 2).checksum);
});

test('documents the shortcut must not judge are validated in full: same verdicts, same paths', (t) => {
  const base = demoTable();
  const bad: [string, (d: Doc) => void][] = [
    ['a cell on a zone that does not exist', (d) => { d.cells[5].zone = 'nowhere'; }],
    ['an epoch above the high-water mark', (d) => { d.epochHighWater = 0; d.cells[2].epoch = 7; }],
    ['an unknown key in a cell', (d) => { d.cells[1].colour = 'red'; }],
    ['an unknown top-level key', (d) => { d.extra = 1; }],
    ['a nested value where a number belongs', (d) => { d.cells[0].epoch = { n: 1 }; }],
    ['a zone renamed under its cells', (d) => { d.zones[0].name = 'renamed'; }],
    ['a frozen cell without a deadline', (d) => { d.cells[4].state = 'frozen'; }],
    ['a zone made elastic while unchanged cells call it home', (d) => { d.zones.find((z: Doc) => z.name === d.cells[0].home).elastic = true; }],
  ];
  for (const [what, change] of bad) {
    const decoder = new TableDecoder();
    decoder.decode(doc(base), 1);
    const full = t.throws(() => validateTable(doc(base, change)), undefined, what);
    const fast = t.throws(() => decoder.decode(doc(base, change), 2), undefined, what);
    t.is(fast?.message, full?.message, what);
  }
  const good: [string, (d: Doc) => void][] = [
    ['a cell added (new ring)', (d) => { d.cells.push({ ...d.cells[0], name: 'c-new' }); d.ring.pointCounts['c-new'] = 16; }],
    ['an override added', (d) => { d.overrides['user-1'] = d.cells[0].name; }],
    ['cells reordered', (d) => { d.cells.reverse(); }],
    ['a zone made elastic that is nobody\'s home', (d) => {
      const zone = d.zones[0].name;
      for (const c of [...d.cells, d.global]) if (c.home === zone) c.home = d.zones[1].name;
      d.zones[0].elastic = true;
    }],
  ];
  for (const [what, change] of good) {
    const decoder = new TableDecoder();
    decoder.decode(doc(base), 1);
    const vt = decoder.decode(doc(base, change), 2);
    t.false(decoder.stats.incremental, what);
    t.deepEqual(vt.table, validateTable(doc(base, change)), what);
  }
});

test('a view reuses the ring and the routes of cells that did not change; the pools of (zone, service)s whose endpoints did not change', (t) => {
  const base = demoTable();
  const decoder = new TableDecoder();
  const health = new EndpointHealth(HEALTH, () => Date.now());
  const holder = new RoutingStateHolder(health, systemClock);
  holder.swap(decoder.decode(doc(base), 1), 'store', 0);
  const first = holder.current!;
  const moved = base.cells.find((c) => c.state === 'active')!;
  const idx = base.cells.indexOf(moved);
  const target = base.zones.find((z) => z.name !== moved.zone)!;
  const downZone = base.zones.find((z) => z.name !== moved.zone && z.name !== target.name)!;
  holder.swap(decoder.decode(doc(base, (d) => {
    d.cells[idx].zone = target.name;
    d.cells[idx].epoch += 1;
    d.epochHighWater = Math.max(d.epochHighWater ?? 0, d.cells[idx].epoch);
    d.zones.find((z: Doc) => z.name === downZone.name).status = 'draining';
  }), 2), 'store', 0);
  const second = holder.current!;
  const stillThere = base.cells.find((c) => c.state === 'active' && c.zone !== downZone.name && c.name !== moved.name)!;
  t.is(second.view.routeCell(stillThere.name, 0), first.view.routeCell(stillThere.name, 0), 'the same route object');
  t.not(second.view.routeCell(moved.name, 0), first.view.routeCell(moved.name, 0));
  const movedRoute = second.view.routeCell(moved.name, 0);
  t.true(movedRoute.ok && movedRoute.zone.name === target.name);
  const pool = (state: typeof first, zone: string, service = 'default') => state.pools.get(zone)!.get(service)!;
  for (const z of base.zones) t.is(pool(second, z.name), pool(first, z.name), `the pool of ${z.name} is kept (a status change does not touch it)`);
  // New upstreams: new endpoints for that zone only.
  const keep = pool(second, base.zones[1]!.name);
  holder.swap(decoder.decode(doc(decoder.decode(doc(second.view.table), 3).table, (d) => { d.zones[0].upstreams = ['http://127.0.0.1:1']; }), 4), 'store', 0);
  t.deepEqual(pool(holder.current!, base.zones[0]!.name).endpoints.map((e) => e.origin), ['http://127.0.0.1:1']);
  t.is(pool(holder.current!, base.zones[1]!.name), keep);
  // A service added to one zone: every zone gets a pool for it (empty where not listed); the other pools stay.
  const before = holder.current!;
  holder.swap(decoder.decode(doc(before.view.table, (d) => { d.zones[1].services = { orders: { upstreams: ['http://127.0.0.1:2'] } }; }), 5), 'store', 0);
  const withOrders = holder.current!;
  t.not(withOrders.view.table.zones[1], before.view.table.zones[1], 'the decoder sees the services change');
  t.deepEqual(pool(withOrders, base.zones[1]!.name, 'orders').endpoints.map((e) => e.origin), ['http://127.0.0.1:2']);
  t.deepEqual(pool(withOrders, base.zones[0]!.name, 'orders').endpoints, [], 'a zone that does not list the service has an empty pool');
  for (const z of base.zones) t.is(pool(withOrders, z.name), pool(before, z.name), `the default pool of ${z.name} is kept`);
  // The next version with the same services keeps the services' pools too.
  holder.swap(decoder.decode(doc(withOrders.view.table, (d) => { d.zones[2].status = 'draining'; }), 6), 'store', 0);
  t.is(holder.current!.view.table.zones[1], withOrders.view.table.zones[1], 'an unchanged zone with services is the same object');
  for (const z of base.zones) t.is(pool(holder.current!, z.name, 'orders'), pool(withOrders, z.name, 'orders'));
  t.deepEqual(new RoutingView(holder.current!.view as unknown as VersionedTable).routeCell(stillThere.name, 0), holder.current!.view.routeCell(stillThere.name, 0), 'a view built without a predecessor routes the same');
});

test('snapshot writes are coalesced: versions that arrive while one is written make one more write, of the newest', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'cellgate-scale-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  let table = demoTable();
  const store = new MemoryStore(table);
  const applied: number[] = [];
  const follower = new TableFollower(store, join(dir, 'snap.json'), {
    apply: (vt) => { applied.push(vt.version); },
    rejected: () => undefined, connection: () => undefined, log: () => undefined,
  }, () => Date.now());
  await follower.start();
  t.teardown(() => follower.close());
  await until('the first version applied', () => applied.length === 1);
  // Twenty versions at once: faster than a snapshot is written.
  let version = 1;
  for (let i = 0; i < 20; i++) {
    table = { ...table, zones: table.zones.map((z, j) => (j === 0 ? { ...z, capacity: z.capacity + 1 } : z)) };
    version = store.publish(table).version;
  }
  await until('every version applied', () => applied.at(-1) === version);
  await until('the newest version saved', async () => {
    const text = await readFile(join(dir, 'snap.json'), 'utf8').catch(() => '{}');
    return (JSON.parse(text) as { version?: number }).version === version;
  });
  t.true(follower.snapshotWrites <= 3, `${follower.snapshotWrites} writes for ${applied.length} versions applied`);
});
