// Moves that always finish, at the gateway: long-lived connections of a moving cell never
// veto its move. A real gateway over the real file store, real upstreams on 127.0.0.1, and
// the failover executor (what `cellctl cell move` / `zone down` run) against another
// instance of the same store, as another process would open it.
import { request as httpRequest } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import WebSocket from 'ws';
import { RoutingView } from '../src/cells/lookup';
import type { RoutingTable } from '../src/cells/types';
import { FailoverExecutor } from '../src/failover/executor';
import { planCellMove, planZoneDown, type Plan } from '../src/failover/planner';
import { createFileStore, type FileStore } from '../src/store/file-store';
import { startGateway, tableFor, users, type RunningGateway } from './helpers/router-fixture';
import { startUpstreams, stopAll, type Upstream } from './helpers/upstreams';
import { until } from './helpers/wait';

const FREEZE_MS = 8_000;

interface Setup {
  readonly g: RunningGateway<FileStore>;
  readonly operator: FileStore;
  readonly a: Upstream;
  readonly b: Upstream;
  /** Users of `cell`, which starts on zone za (upstream a). */
  readonly cellUsers: string[];
  readonly cell: string;
  /** Slow downloads the upstreams are streaming right now. */
  readonly streaming: Set<NodeJS.Timeout>;
}

/** Two zones (a, b) in two cities; a gateway over the file store; `cell` on za. */
async function setup(t: ExecutionContext, config: Record<string, unknown> = {}): Promise<Setup> {
  const [a, b] = await startUpstreams('a', 'b');
  const streaming = new Set<NodeJS.Timeout>();
  t.teardown(() => {
    for (const timer of streaming) clearInterval(timer);
    return stopAll([a!, b!]);
  });
  // GET /download streams a chunk every 50 ms and never ends by itself: a slow download.
  for (const u of [a!, b!]) {
    u.behave = (req, res) => {
      if (!req.url?.startsWith('/download')) return false;
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const timer = setInterval(() => res.write(Buffer.alloc(1024, 120)), 50);
      streaming.add(timer);
      res.once('close', () => {
        clearInterval(timer);
        streaming.delete(timer);
      });
      return true;
    };
  }
  const table: RoutingTable = tableFor([{ name: 'za', upstreams: [a!.url] }, { name: 'zb', upstreams: [b!.url] }], { cells: 8 });
  const dir = await mkdtemp(join(tmpdir(), 'cellgate-moves-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const open = () => {
    const s = createFileStore(join(dir, 'table.json'), { pollIntervalMs: 50 });
    t.teardown(() => s.close());
    return s;
  };
  const operator = open();
  if (!(await operator.compareAndSwap(0, table)).ok) throw new Error('init failed');
  const g = await startGateway(t, open(), { waitVersion: 1, config: { id: `gw-moves-${Math.random().toString(36).slice(2, 8)}`, ...config } });
  // The executor waits for every live gateway: this one must be registered first.
  await until('the gateway to register', async () => (await operator.presence.list()).some((r) => r.id === g.gw.config.id && r.appliedVersion === 1));
  const view = new RoutingView((await operator.load())!);
  const onA = users(400).filter((u) => {
    const r = view.routeUnit(u, Date.now());
    return r.ok && r.zone.name === 'za';
  });
  const cell = view.cellOfUser(onA[0]!);
  return { g, operator, a: a!, b: b!, cell, cellUsers: onA.filter((u) => view.cellOfUser(u) === cell), streaming };
}

function run(s: Setup, makePlan: (table: RoutingTable) => Plan): Promise<unknown> {
  return new FailoverExecutor({
    store: s.operator, makePlan, actor: 'tester@ci', reason: 'test', freezeMs: FREEZE_MS, convergeTimeoutMs: 10_000,
  }).runOnce();
}

interface Hello {
  upstream: string;
  headers: Record<string, string>;
}

interface OpenSocket {
  readonly ws: WebSocket;
  readonly hello: Hello;
  /** Resolves with the close code and reason the client received. */
  readonly closed: Promise<{ code: number; reason: string; atMs: number }>;
}

/** Opens a WebSocket through the gateway and waits for the upstream's hello. */
function openSocket(t: ExecutionContext, s: Setup, user: string): Promise<OpenSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${s.g.url.replace('http:', 'ws:')}/live`, { headers: { 'x-user-id': user } });
    t.teardown(() => ws.terminate());
    const closed = new Promise<{ code: number; reason: string; atMs: number }>((r) => ws.once('close', (code, reason) => r({ code, reason: reason.toString(), atMs: Date.now() })));
    ws.once('message', (data) => resolve({ ws, hello: JSON.parse(data.toString()) as Hello, closed }));
    ws.once('unexpected-response', (_req, res) => reject(new Error(`status ${res.statusCode}`)));
    ws.once('error', reject);
  });
}

interface Download {
  /** Resolves once the first bytes arrived. */
  readonly started: Promise<void>;
  /** How the download ended: 'complete', or 'cut' (connection reset / aborted mid-body). */
  readonly ended: Promise<{ how: 'complete' | 'cut'; bytes: number; atMs: number }>;
}

function startDownload(t: ExecutionContext, s: Setup, user: string): Download {
  let started!: () => void;
  const startedP = new Promise<void>((r) => (started = r));
  const ended = new Promise<{ how: 'complete' | 'cut'; bytes: number; atMs: number }>((resolve) => {
    let bytes = 0;
    const done = (how: 'complete' | 'cut') => resolve({ how, bytes, atMs: Date.now() });
    const req = httpRequest({ host: '127.0.0.1', port: s.g.addr.port, path: '/download', headers: { 'x-user-id': user }, agent: false }, (res) => {
      res.on('data', (c: Buffer) => {
        bytes += c.length;
        started();
      });
      res.on('end', () => done('complete'));
      res.on('aborted', () => done('cut'));
      res.on('error', () => done('cut'));
    });
    req.on('error', () => done('cut'));
    req.end();
    t.teardown(() => req.destroy());
  });
  return { started: startedP, ended };
}

test('a planned move with a WebSocket and a slow download open finishes within the freeze window: the download is cut after the grace, the WebSocket closed 1012 and its reconnect lands on the new zone', async (t) => {
  const s = await setup(t, { freeze: { inflightGraceMs: 600 } });
  const user = s.cellUsers[0]!;
  const sock = await openSocket(t, s, user);
  t.is(sock.hello.upstream, 'a');
  const download = startDownload(t, s, user);
  await download.started;
  t.is(s.g.gw.moveCounters().withUpstream, 1, 'the download is with its upstream');
  t.is(s.g.gw.moveCounters().openWebSockets, 1);

  // The client talks all along (every 5 ms) and reconnects as soon as it is told to (1012), during the freeze.
  let seq = 0;
  const talking = setInterval(() => {
    if (sock.ws.readyState === WebSocket.OPEN) sock.ws.send(`m${seq++}`);
  }, 5);
  t.teardown(() => clearInterval(talking));
  void sock.closed.then(() => clearInterval(talking));
  const reconnected = sock.closed.then(() => openSocket(t, s, user));
  const startedMs = Date.now();
  await run(s, (table) => planCellMove(table, s.cell, 'zb'));
  const tookMs = Date.now() - startedMs;
  t.log(`planned move with 1 WebSocket and 1 slow download: ${tookMs} ms (freeze window ${FREEZE_MS} ms, grace 600 ms)`);
  t.true(tookMs < FREEZE_MS, `the move took ${tookMs} ms`);

  const closed = await sock.closed;
  t.is(closed.code, 1012);
  const atOld = s.a.wsReceived.filter((m) => m.user === user);
  t.true(atOld.length > 0, 'the socket was talking to the old zone');
  t.false(atOld.some((m) => m.at > closed.atMs), 'nothing reached the old zone after the client was told to go');
  t.deepEqual(atOld.map((m) => m.text), atOld.map((_, i) => `m${i}`), 'in order, no gaps');
  t.is(closed.reason, 'cell moving');
  const end = await download.ended;
  t.true(closed.atMs < end.atMs, 'the WebSocket is closed when the freeze lands, before the grace ends');
  t.is(end.how, 'cut');
  t.true(end.bytes > 0);
  t.true(end.atMs - startedMs >= 550, `cut after the grace (${end.atMs - startedMs} ms)`);
  t.deepEqual(s.g.gw.moveCounters().cut, { awaiting_response: 0, mid_response: 1 });
  t.deepEqual(s.g.gw.moveCounters().webSocketsClosed, { freeze: 1, moved: 0, shutdown: 0 });

  const again = await reconnected;
  t.is(again.hello.upstream, 'b', 'the reconnect goes to the new zone');
  t.is(again.hello.headers['x-cell-epoch'], '2');
  const echoed = new Promise<string>((r) => again.ws.once('message', (d) => r(d.toString())));
  again.ws.send('after the move');
  t.is(await echoed, 'after the move');
  const metrics = await (await fetch(`${s.g.admin}/metrics`)).text();
  t.regex(metrics, /cellgate_freeze_cut_requests_total\{reason="mid_response"\} 1\n/);
  t.regex(metrics, /cellgate_websockets_closed_total\{reason="freeze"\} 1\n/);
  t.regex(metrics, /cellgate_websockets_open 1\n/);
});

test('a request still waiting for its upstream\'s answer when the grace ends is cut too, and the move finishes', async (t) => {
  const s = await setup(t, { freeze: { inflightGraceMs: 300 } });
  const user = s.cellUsers[0]!;
  s.a.behave = () => true; // never answers
  const pending = new Promise<string>((resolve) => {
    const req = httpRequest({ host: '127.0.0.1', port: s.g.addr.port, path: '/never', headers: { 'x-user-id': user }, agent: false }, () => resolve('answered'));
    req.on('error', () => resolve('cut'));
    req.end();
    t.teardown(() => req.destroy());
  });
  await until('the request to reach zone a', () => s.a.received.length === 1);
  await run(s, (table) => planCellMove(table, s.cell, 'zb'));
  t.is(await pending, 'cut');
  t.deepEqual(s.g.gw.moveCounters().cut, { awaiting_response: 1, mid_response: 0 });
  t.is(s.g.gw.moveCounters().withUpstream, 0);
});

test('zone down: every WebSocket of a moved cell is closed (1012) at once and reconnects to the new zone', async (t) => {
  const s = await setup(t);
  const socks = await Promise.all(s.cellUsers.slice(0, 3).map((u) => openSocket(t, s, u)));
  const reconnected = socks.map((k, i) => k.closed.then(() => openSocket(t, s, s.cellUsers[i]!)));
  const startedMs = Date.now();
  await run(s, (table) => planZoneDown(table, 'za', { force: true }));
  for (const k of socks) {
    const c = await k.closed;
    t.is(c.code, 1012);
    t.is(c.reason, 'cell moved');
    t.true(c.atMs - startedMs < 3000);
  }
  for (const r of reconnected) t.is((await r).hello.upstream, 'b');
  t.true(s.g.gw.moveCounters().webSocketsClosed.moved >= 3);
  t.is(s.g.gw.moveCounters().webSocketsClosed.freeze, 0, 'no freeze on an unplanned change');
});

test('a WebSocket of a cell that does not move stays open across another cell\'s move', async (t) => {
  const s = await setup(t);
  const view = s.g.gw.view()!;
  const other = users(400).find((u) => view.cellOfUser(u) !== s.cell)!;
  const sock = await openSocket(t, s, other);
  await run(s, (table) => planCellMove(table, s.cell, 'zb'));
  t.is(sock.ws.readyState, WebSocket.OPEN);
  const echoed = new Promise<string>((r) => sock.ws.once('message', (d) => r(d.toString())));
  sock.ws.send('still here');
  t.is(await echoed, 'still here');
  t.deepEqual(s.g.gw.moveCounters().webSocketsClosed, { freeze: 0, moved: 0, shutdown: 0 });
});

test('measured: a planned move with 100 open WebSockets and 10 slow downloads on the moving cell (default grace) takes at most the freeze window + 1 s', async (t) => {
  const s = await setup(t);
  t.is(s.g.gw.config.freeze.inflightGraceMs, 2000);
  const socks: OpenSocket[] = [];
  for (let i = 0; i < 100; i++) socks.push(await openSocket(t, s, s.cellUsers[i % s.cellUsers.length]!));
  const downloads = Array.from({ length: 10 }, (_, i) => startDownload(t, s, s.cellUsers[i % s.cellUsers.length]!));
  await Promise.all(downloads.map((d) => d.started));
  t.is(s.g.gw.moveCounters().openWebSockets, 100);
  t.is(s.g.gw.moveCounters().withUpstream, 10);
  // Half of the clients reconnect at once (held during the freeze, then sent to zb).
  const reconnected = socks.slice(0, 50).map((k, i) => k.closed.then(() => openSocket(t, s, s.cellUsers[i % s.cellUsers.length]!)));

  const startedMs = Date.now();
  await run(s, (table) => planCellMove(table, s.cell, 'zb'));
  const tookMs = Date.now() - startedMs;
  t.log(`planned move with 100 WebSockets and 10 slow downloads: ${tookMs} ms (freeze window ${FREEZE_MS} ms, grace 2000 ms)`);
  t.true(tookMs <= FREEZE_MS + 1000, `the move took ${tookMs} ms`);

  const codes = await Promise.all(socks.map((k) => k.closed.then((c) => c.code)));
  t.true(codes.every((c) => c === 1012));
  const ends = await Promise.all(downloads.map((d) => d.ended));
  t.true(ends.every((e) => e.how === 'cut'));
  t.is(s.g.gw.moveCounters().cut.mid_response, 10);
  const zones = await Promise.all(reconnected.map(async (r) => (await r).hello.upstream));
  t.true(zones.every((z) => z === 'b'), 'every reconnect landed on the new zone');
});
