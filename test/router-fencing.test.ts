// Epoch fencing for upstream services, and the demo zone server that uses it: requests
// through the gateway are owned; a request naming a cell the zone does not own at that
// epoch is refused 421 NOT_CELL_OWNER.
import test from 'ava';
import WebSocket from 'ws';
import { RoutingView } from '../src/cells/lookup';
import { versioned } from '../src/cells/table';
import { checkCellOwnership } from '../src/fencing';
import { startDemoZone } from '../src/router/demo-zone';
import { MemoryStore } from './helpers/memory-store';
import { moveCell, startGateway, tableFor, users } from './helpers/router-fixture';
import { httpCall } from './helpers/upstreams';
import { until } from './helpers/wait';

test('checkCellOwnership: owned only by the zone serving the cell, at exactly its epoch', (t) => {
  const table = tableFor([{ name: 'za', upstreams: ['http://127.0.0.1:1'] }, { name: 'zb', upstreams: ['http://127.0.0.1:2'] }], { cells: 4, global: 'zb' });
  const view = new RoutingView(versioned(table, 7));
  const c = table.cells[0]!;
  const other = c.zone === 'za' ? 'zb' : 'za';
  t.deepEqual(checkCellOwnership(view, c.zone, {}), { kind: 'unfenced' });
  t.deepEqual(checkCellOwnership(view, c.zone, { 'x-cell-id': c.name, 'x-cell-epoch': String(c.epoch) }), { kind: 'owned', cell: c.name, epoch: c.epoch });
  t.is(checkCellOwnership(view, other, { 'x-cell-id': c.name, 'x-cell-epoch': String(c.epoch) }).kind, 'notOwned');
  t.is(checkCellOwnership(view, c.zone, { 'x-cell-id': c.name, 'x-cell-epoch': String(c.epoch + 1) }).kind, 'notOwned', 'a newer epoch for another zone');
  // The gateway saw the cell move here (epoch + 1) before this zone's copy of the table did.
  t.deepEqual(checkCellOwnership(view, other, { 'x-cell-id': c.name, 'x-cell-epoch': String(c.epoch + 1), 'x-cell-zone': other }), { kind: 'owned', cell: c.name, epoch: c.epoch + 1 });
  t.is(checkCellOwnership(view, other, { 'x-cell-id': c.name, 'x-cell-epoch': String(c.epoch), 'x-cell-zone': other }).kind, 'notOwned', 'the current epoch belongs to the current zone');
  t.is(checkCellOwnership(view, c.zone, { 'x-cell-id': c.name }).kind, 'notOwned', 'a cell without an epoch is not trusted');
  t.is(checkCellOwnership(view, c.zone, { 'x-cell-id': c.name, 'x-cell-epoch': '1e3' }).kind, 'notOwned');
  t.is(checkCellOwnership(view, c.zone, { 'x-cell-id': 'c99', 'x-cell-epoch': '1' }).kind, 'notOwned');
  t.is(checkCellOwnership(view, 'zb', { 'x-cell-id': 'global', 'x-cell-epoch': '1' }).kind, 'owned');
  t.is(checkCellOwnership(null, c.zone, { 'x-cell-id': c.name, 'x-cell-epoch': '1' }).kind, 'unknown');
});

test('demo zones behind the gateway answer who they are and own what the gateway sends them; stale routes get 421', async (t) => {
  const store = new MemoryStore();
  const za = await startDemoZone({ zone: 'za', store });
  t.teardown(() => za.close());
  const zb = await startDemoZone({ zone: 'zb', store });
  t.teardown(() => zb.close());
  const table = tableFor([{ name: 'za', upstreams: [za.url] }, { name: 'zb', upstreams: [zb.url] }], { cells: 8 });
  store.publish(table);
  const g = await startGateway(t, store, { waitVersion: 1 });
  const view = new RoutingView(versioned(table, 1));

  for (const user of [...users(20), 'café', '用户', '😀']) {
    const r = view.routeUnit(user, Date.now());
    if (!r.ok) throw new Error('no route');
    // Sent as UTF-8 bytes (Node writes header strings as latin1, unless a string body shares their
    // write: then all is UTF-8, so the body is a Buffer); the demo zone decodes them like the gateway.
    const wire = Buffer.from(user, 'utf8').toString('latin1');
    const res = await httpCall(`${g.url}/api/items?q=1`, { method: 'POST', headers: { 'x-user-id': wire, 'content-type': 'application/json' }, body: Buffer.from('{"n":1}') });
    t.is(res.status, 200);
    t.deepEqual(res.json(), { zone: r.zone.name, cell: r.cell, epoch: r.epoch, owned: true, method: 'POST', path: '/api/items', user, bodyBytes: 7 });
  }

  // A cell moves za -> zb: a request still stamped with the old view is refused by both.
  const c = table.cells.find((x) => x.zone === 'za')!;
  store.publish(moveCell(table, c.name, 'zb'));
  await g.gw.waitForVersion(2);
  const stale = { 'x-cell-id': c.name, 'x-cell-epoch': String(c.epoch), 'x-cell-zone': 'za' };
  // The zone servers follow the table on their own: wait until both refuse the old epoch.
  await until('both zone servers on revision 2', async () =>
    (await httpCall(`${za.url}/x`, { headers: stale })).status === 421 && (await httpCall(`${zb.url}/x`, { headers: stale })).status === 421);
  const old = await httpCall(`${za.url}/x`, { headers: stale });
  t.is(old.status, 421);
  t.deepEqual(old.json(), { error: 'NOT_CELL_OWNER', message: 'this zone does not own the cell at that epoch' });
  t.is((await httpCall(`${zb.url}/x`, { headers: stale })).status, 421, 'the new owner refuses the old epoch too');
  const fresh = await httpCall(`${zb.url}/x`, { headers: { 'x-cell-id': c.name, 'x-cell-epoch': String(c.epoch + 1) } });
  t.is(fresh.status, 200);
  t.is(fresh.json().owned, true);
  const unfenced = await httpCall(`${za.url}/health`);
  t.is(unfenced.status, 200);
  t.is(unfenced.json().owned, null);

  // WebSockets through the gateway reach the demo zone: hello, then echo.
  const user = users(20)[0]!;
  const r = new RoutingView(versioned(moveCell(table, c.name, 'zb'), 2)).routeUnit(user, Date.now());
  const ws = new WebSocket(`${g.url.replace('http:', 'ws:')}/live`, { headers: { 'x-user-id': user } });
  t.teardown(() => ws.terminate());
  const messages: string[] = [];
  await new Promise<void>((resolve, reject) => {
    ws.on('message', (d) => {
      messages.push(d.toString());
      if (messages.length === 1) ws.send('ping-1');
      else resolve();
    });
    ws.once('error', reject);
  });
  t.like(JSON.parse(messages[0]!), { hello: true, zone: r.ok ? r.zone.name : '', cell: r.cell, owned: true, user });
  t.is(messages[1], 'ping-1');

  // A stale WebSocket handshake is refused too.
  const status = await new Promise<number>((resolve) => {
    const bad = new WebSocket(`${za.url.replace('http:', 'ws:')}/live`, { headers: stale });
    bad.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    bad.once('error', () => resolve(-1));
  });
  t.is(status, 421);
});

test('with enforce: false the demo zone answers and reports owned: false', async (t) => {
  const store = new MemoryStore();
  const z = await startDemoZone({ zone: 'za', store, enforce: false });
  t.teardown(() => z.close());
  const table = tableFor([{ name: 'za', upstreams: [z.url] }, { name: 'zb', upstreams: ['http://127.0.0.1:9'] }], { cells: 4 });
  store.publish(table);
  const c = table.cells.find((x) => x.zone === 'zb')!;
  for (let i = 0; i < 100 && z.app.cellgateFencing.view === null; i++) await new Promise((r) => setTimeout(r, 10));
  const res = await httpCall(`${z.url}/x`, { headers: { 'x-cell-id': c.name, 'x-cell-epoch': '1' } });
  t.is(res.status, 200);
  t.like(res.json(), { zone: 'za', cell: c.name, epoch: 1, owned: false });
});

test('the fencing check is published as cellgate/fencing, the gateway library as cellgate', (t) => {
  // A package may require itself by name through its "exports" (Node's self-reference).
  const fencing = require('cellgate/fencing') as Record<string, unknown>;
  t.is(typeof fencing.checkCellOwnership, 'function');
  t.is(typeof fencing.fencingPlugin, 'function');
  t.is(typeof fencing.requestUserId, 'function');
  const lib = require('cellgate') as Record<string, unknown>;
  t.is(typeof lib.createGateway, 'function');
  t.is(lib.checkCellOwnership, fencing.checkCellOwnership, 'one module, two entry points');
});
