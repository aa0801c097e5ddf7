// user -> cell -> zone over one table version: overrides, down zones, frozen cells, the
// global zone and the nearest-zone (city) route class.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Route, RoutingView } from '../src/cells/lookup';
import { CellRing } from '../src/cells/ring';
import { validateTable, versioned } from '../src/cells/table';
import { tableFromTopologyText } from '../src/cells/topology';
import type { RoutingTable } from '../src/cells/types';

// 2 regions x 2 cities x 2 zones: east (shanghai: sh-a sh-b, hangzhou: hz-a hz-b),
// south (shenzhen: sz-a sz-b, guangzhou: gz-a gz-b).
const DEMO = tableFromTopologyText(readFileSync(join(__dirname, '..', '..', 'config', 'demo-topology.yaml'), 'utf8'));
const NOW = 1_700_000_000_000;
const USERS = Array.from({ length: 5000 }, (_, i) => `user-${i}`);

type Doc = any;

function edited(change: (doc: Doc) => void): RoutingTable {
  const doc = structuredClone(DEMO) as Doc;
  change(doc);
  return validateTable(doc);
}

function view(table: RoutingTable = DEMO, version = 1): RoutingView {
  return new RoutingView(versioned(table, version));
}

function setZoneStatus(doc: Doc, names: readonly string[], status: string): void {
  for (const z of doc.zones) if (names.includes(z.name)) z.status = status;
}

function zoneOf(route: Route): string {
  if (!route.ok) throw new Error(`expected a route, got ${route.error}: ${route.why}`);
  return route.zone.name;
}

test('a view exposes its table, version, checksum and zones', (t) => {
  const vt = versioned(DEMO, 12);
  const v = new RoutingView(vt);
  t.is(v.version, 12);
  t.is(v.checksum, vt.checksum);
  t.is(v.table, DEMO);
  t.is(v.zone('sh-a')?.city, 'shanghai');
  t.is(v.zone('nowhere'), undefined);
});

test('a user is routed to the zone that owns the ring\'s cell for it', (t) => {
  const v = view();
  const ring = CellRing.build(DEMO);
  for (const user of USERS.slice(0, 500)) {
    const route = v.routeUnit(user, NOW);
    const cell = DEMO.cells.find((c) => c.name === ring.cellOf(user))!;
    t.like(route, { ok: true, class: 'unit', cell: cell.name, epoch: cell.epoch, frozenUntilMs: null });
    t.is(zoneOf(route), cell.zone);
  }
});

test('overrides win over the ring', (t) => {
  const ring = CellRing.build(DEMO);
  const user = 'tester-42';
  const ringCell = ring.cellOf(user);
  const pinnedTo = ringCell === 'c00' ? 'c01' : 'c00';
  const v = view(edited((d) => { d.overrides[user] = pinnedTo; }));
  t.is(v.cellOfUser(user), pinnedTo);
  t.is(v.routeUnit(user, NOW).cell, pinnedTo);
  t.true(v.explainUser(user, NOW).pinned);
  t.false(v.explainUser('someone-else', NOW).pinned);
  t.is(view().cellOfUser('vip-0001'), 'c07');
});

test('a down zone is never returned, even before its cells are moved', (t) => {
  const v = view(edited((d) => setZoneStatus(d, ['sh-b'], 'down')));
  let refused = 0;
  for (const user of USERS) {
    const route = v.routeUnit(user, NOW);
    if (route.ok) {
      t.not(route.zone.status, 'down');
      continue;
    }
    refused += 1;
    t.is(route.error, 'ZONE_DOWN');
    t.is(DEMO.cells.find((c) => c.name === route.cell)?.zone, 'sh-b');
  }
  // sh-b homes 8 of 64 cells: about an eighth of users.
  t.true(refused > 300 && refused < 1000, `${refused} users refused`);
});

test('a draining zone still serves its cells', (t) => {
  const v = view(edited((d) => setZoneStatus(d, ['sh-b'], 'draining')));
  const cell = DEMO.cells.find((c) => c.zone === 'sh-b')!;
  t.like(v.routeCell(cell.name, NOW), { ok: true, cell: cell.name });
  t.is(zoneOf(v.routeCell(cell.name, NOW)), 'sh-b');
});

test('a moved cell routes to its current zone with its epoch', (t) => {
  const cell = DEMO.cells[5];
  const v = view(edited((d) => { d.cells[5].zone = 'gz-b'; d.cells[5].epoch = 4; }));
  const route = v.routeCell(cell.name, NOW);
  t.like(route, { ok: true, cell: cell.name, epoch: 4 });
  t.is(zoneOf(route), 'gz-b');
});

test('a frozen cell holds until its deadline, then resumes its old zone', (t) => {
  const cell = DEMO.cells[3];
  const deadline = NOW + 5_000;
  const v = view(edited((d) => Object.assign(d.cells[3], { state: 'frozen', frozenUntilMs: deadline, movingTo: 'gz-a' })));
  const held = v.routeCell(cell.name, NOW);
  t.like(held, { ok: true, cell: cell.name, frozenUntilMs: deadline, epoch: cell.epoch });
  t.is(zoneOf(held), cell.zone);
  for (const later of [deadline, deadline + 1, NOW + 60_000]) {
    const resumed = v.routeCell(cell.name, later);
    t.like(resumed, { ok: true, frozenUntilMs: null, epoch: cell.epoch });
    t.is(zoneOf(resumed), cell.zone, 'resumes the old zone, not movingTo');
  }
  // Users of other cells are not held.
  t.like(v.routeCell(DEMO.cells[4].name, NOW), { ok: true, frozenUntilMs: null });
});

test('a frozen cell on a down zone is refused, not held', (t) => {
  const v = view(edited((d) => {
    Object.assign(d.cells[3], { state: 'frozen', frozenUntilMs: NOW + 5_000 });
    setZoneStatus(d, [d.cells[3].zone], 'down');
  }));
  t.like(v.routeCell(DEMO.cells[3].name, NOW), { ok: false, error: 'ZONE_DOWN' });
});

test('an unknown cell is NOT_FOUND', (t) => {
  t.like(view().routeCell('c999', NOW), { ok: false, error: 'NOT_FOUND', cell: 'c999' });
});

test('global traffic goes to the global zone and follows it when it moves', (t) => {
  t.like(view().routeGlobal(NOW), { ok: true, class: 'global', cell: 'global', epoch: 1, frozenUntilMs: null });
  t.is(zoneOf(view().routeGlobal(NOW)), 'sh-a');
  const down = view(edited((d) => setZoneStatus(d, ['sh-a'], 'down')));
  t.like(down.routeGlobal(NOW), { ok: false, class: 'global', error: 'ZONE_DOWN' });
  const moved = view(edited((d) => { setZoneStatus(d, ['sh-a'], 'down'); d.global.zone = 'sh-b'; d.global.epoch = 2; }));
  t.like(moved.routeGlobal(NOW), { ok: true, epoch: 2 });
  t.is(zoneOf(moved.routeGlobal(NOW)), 'sh-b');
});

test('city traffic: own zone, then the same city, then the same region, else ZONE_DOWN', (t) => {
  t.is(zoneOf(view().routeCity('sh-a', NOW)), 'sh-a');
  t.like(view().routeCity('sh-a', NOW), { ok: true, class: 'city', cell: null });

  const ownDown = view(edited((d) => setZoneStatus(d, ['sh-a'], 'down')));
  t.is(zoneOf(ownDown.routeCity('sh-a', NOW)), 'sh-b');

  // A draining zone is not `up`: city traffic prefers an up zone.
  const ownDraining = view(edited((d) => setZoneStatus(d, ['sh-a'], 'draining')));
  t.is(zoneOf(ownDraining.routeCity('sh-a', NOW)), 'sh-b');

  const cityDown = view(edited((d) => setZoneStatus(d, ['sh-a', 'sh-b'], 'down')));
  const inRegion = zoneOf(cityDown.routeCity('sh-a', NOW));
  t.true(['hz-a', 'hz-b'].includes(inRegion), inRegion);

  const regionDown = view(edited((d) => setZoneStatus(d, ['sh-a', 'sh-b', 'hz-a', 'hz-b'], 'down')));
  t.like(regionDown.routeCity('sh-a', NOW), { ok: false, class: 'city', error: 'ZONE_DOWN' });
  // The other region still serves its own gateways.
  t.is(zoneOf(regionDown.routeCity('gz-b', NOW)), 'gz-b');
});

test('city traffic from a gateway without a known zone is ZONE_DOWN', (t) => {
  t.like(view().routeCity('atlantis', NOW), { ok: false, error: 'ZONE_DOWN' });
  t.like(view().routeCity(null, NOW), { ok: false, error: 'ZONE_DOWN' });
});
