// WebSocket upgrades through the gateway go to the user's zone, carry the routing headers
// (client copies stripped), echo both ways, and are refused per contract without a user id.
import { connect as connectRaw } from 'node:net';
import test from 'ava';
import WebSocket from 'ws';
import { RoutingView } from '../src/cells/lookup';
import { versioned } from '../src/cells/table';
import { MemoryStore } from './helpers/memory-store';
import { freezeCell, moveCell, setZoneStatus, startGateway, tableFor, users } from './helpers/router-fixture';
import { freePort } from './helpers/ports';
import { startUpstreams, stopAll } from './helpers/upstreams';

interface Hello {
  hello: true;
  upstream: string;
  url: string;
  headers: Record<string, string>;
}

/** Opens a socket, returns the upstream's hello and the socket (closed in teardown). */
function connect(t: import('ava').ExecutionContext, url: string, headers: Record<string, string>): Promise<{ ws: WebSocket; hello: Hello }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    t.teardown(() => ws.terminate());
    ws.once('message', (data) => resolve({ ws, hello: JSON.parse(data.toString()) as Hello }));
    ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`status ${res.statusCode}`), { status: res.statusCode })));
    ws.once('error', reject);
  });
}

function echo(ws: WebSocket, text: string): Promise<string> {
  return new Promise((resolve) => {
    ws.once('message', (data) => resolve(data.toString()));
    ws.send(text);
  });
}

test('a WebSocket goes to the zone of its user, with routing headers, and echoes', async (t) => {
  const ups = await startUpstreams('a', 'b');
  t.teardown(() => stopAll(ups));
  const table = tableFor([{ name: 'za', upstreams: [ups[0]!.url] }, { name: 'zb', upstreams: [ups[1]!.url] }], { cells: 8 });
  const g = await startGateway(t, new MemoryStore(table), { waitVersion: 1 });
  const view = new RoutingView(versioned(table, 1));
  const wsUrl = g.url.replace('http:', 'ws:');
  const seen = new Set<string>();
  for (const user of users(12)) {
    const r = view.routeUnit(user, Date.now());
    if (!r.ok) throw new Error('no route');
    const { ws, hello } = await connect(t, `${wsUrl}/chat/room?n=1`, { 'x-user-id': user, 'x-cell-id': 'c99', cookie: 'sid=1' });
    t.is(hello.upstream, r.zone.name === 'za' ? 'a' : 'b', user);
    t.is(hello.url, '/chat/room?n=1');
    t.is(hello.headers['x-cell-id'], r.cell as string);
    t.is(hello.headers['x-cell-zone'], r.zone.name);
    t.is(hello.headers['x-cell-epoch'], String(r.epoch));
    t.is(hello.headers['x-user-id'], user);
    t.is(hello.headers.cookie, 'sid=1');
    t.is(await echo(ws, `hi ${user}`), `hi ${user}`);
    seen.add(hello.upstream);
    ws.close();
  }
  t.is(seen.size, 2);
  await t.throwsAsync(connect(t, `${wsUrl}/chat`, {}), { message: 'status 400' });
});

test('a WebSocket of a frozen cell waits and then opens on the new zone', async (t) => {
  const ups = await startUpstreams('a', 'b');
  t.teardown(() => stopAll(ups));
  const table = tableFor([{ name: 'za', upstreams: [ups[0]!.url] }, { name: 'zb', upstreams: [ups[1]!.url] }], { cells: 8 });
  const store = new MemoryStore(table);
  const g = await startGateway(t, store, { waitVersion: 1 });
  const view = new RoutingView(versioned(table, 1));
  const user = users(50).find((u) => {
    const r = view.routeUnit(u, Date.now());
    return r.ok && r.zone.name === 'za';
  })!;
  const cell = view.cellOfUser(user);
  const frozen = freezeCell(table, cell, Date.now() + 30_000, 'zb');
  await g.gw.waitForVersion(store.publish(frozen).version);
  const pending = connect(t, `${g.url.replace('http:', 'ws:')}/live`, { 'x-user-id': user });
  for (let i = 0; i < 200 && g.gw.bufferCounters().size === 0; i++) await new Promise((r) => setTimeout(r, 10));
  t.is(g.gw.bufferCounters().size, 1);
  store.publish(moveCell(frozen, cell, 'zb'));
  const { ws, hello } = await pending;
  t.is(hello.upstream, 'b');
  t.is(hello.headers['x-cell-epoch'], '2');
  t.is(await echo(ws, 'after the move'), 'after the move');
});

test('a WebSocket to a dead zone is closed without revealing the upstream address', async (t) => {
  const dead = await freePort();
  const table = tableFor([{ name: 'za', upstreams: [`http://127.0.0.1:${dead}`] }], { cells: 2 });
  const g = await startGateway(t, new MemoryStore(table), { waitVersion: 1 });
  const closed = await new Promise<{ code: number; reason: string }>((resolve) => {
    const ws = new WebSocket(`${g.url.replace('http:', 'ws:')}/live`, { headers: { 'x-user-id': 'u1' } });
    t.teardown(() => ws.terminate());
    ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }));
    ws.once('unexpected-response', (_req, res) => resolve({ code: res.statusCode ?? 0, reason: 'http' }));
    ws.on('error', () => undefined);
  });
  t.is(closed.code, 1011);
  t.is(closed.reason, 'upstream unavailable');
  t.false(closed.reason.includes(String(dead)));
});

test('shutdown does not wait on a WebSocket peer that ignores the close handshake beyond the grace period', async (t) => {
  const ups = await startUpstreams('a');
  t.teardown(() => stopAll(ups));
  const g = await startGateway(t, new MemoryStore(tableFor([{ name: 'za', upstreams: [ups[0]!.url] }], { cells: 2 })), { waitVersion: 1, config: { shutdownGraceMs: 300 } });
  // A raw socket: it upgrades, then never answers anything (no close frame, no FIN).
  const sock = connectRaw(g.addr.port);
  t.teardown(() => sock.destroy());
  let got = '';
  sock.on('data', (d: Buffer) => (got += d.toString('latin1')));
  sock.write('GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nx-user-id: u1\r\n\r\n');
  for (let i = 0; i < 200 && !got.includes('hello'); i++) await new Promise((r) => setTimeout(r, 10));
  t.true(got.startsWith('HTTP/1.1 101'));
  t.is(g.gw.inFlight(), 0, 'an open WebSocket is not a request in flight');
  t.is(g.gw.moveCounters().openWebSockets, 1, 'it is in the WebSocket registry');
  const closed = new Promise<void>((r) => sock.once('close', () => r()));
  const started = Date.now();
  await g.gw.shutdown();
  t.true(Date.now() - started < 3000, `took ${Date.now() - started} ms`);
  await closed;
  t.is(g.gw.moveCounters().openWebSockets, 0);
});

test('a WebSocket of a city route is closed (1012) when its zone goes down, and reconnects to the next up zone', async (t) => {
  const ups = await startUpstreams('a', 'b');
  t.teardown(() => stopAll(ups));
  const table = tableFor([{ name: 'za', upstreams: [ups[0]!.url] }, { name: 'zb', upstreams: [ups[1]!.url] }], { cells: 4 });
  const store = new MemoryStore(table);
  const g = await startGateway(t, store, { waitVersion: 1, config: { zone: 'za', routes: [{ prefix: '/nearby', class: 'city' }, { prefix: '/', class: 'unit' }] } });
  const url = `${g.url.replace('http:', 'ws:')}/nearby/feed`;
  const { ws, hello } = await connect(t, url, {});
  t.is(hello.upstream, 'a');
  const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
  await g.gw.waitForVersion(store.publish(setZoneStatus(table, 'za', 'down')).version);
  t.is(await closed, 1012);
  t.is((await connect(t, url, {})).hello.upstream, 'b');
  t.is(g.gw.moveCounters().webSocketsClosed.moved, 1);
});

test('shutdown closes open WebSockets with 1001 (going away) at once', async (t) => {
  const ups = await startUpstreams('a');
  t.teardown(() => stopAll(ups));
  const g = await startGateway(t, new MemoryStore(tableFor([{ name: 'za', upstreams: [ups[0]!.url] }], { cells: 2 })), { waitVersion: 1 });
  const { ws } = await connect(t, `${g.url.replace('http:', 'ws:')}/live`, { 'x-user-id': 'u1' });
  const closed = new Promise<{ code: number; reason: string }>((r) => ws.once('close', (code, reason) => r({ code, reason: reason.toString() })));
  await g.gw.shutdown();
  t.deepEqual(await closed, { code: 1001, reason: 'gateway shutting down' });
  t.is(g.gw.moveCounters().webSocketsClosed.shutdown, 1);
  t.is(g.gw.moveCounters().openWebSockets, 0);
});
