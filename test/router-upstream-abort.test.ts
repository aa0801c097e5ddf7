// The gateway ends the upstream side of a request it gives up on, at once and at any point
// (upstream-agent.ts): a long poll or a half-sent download of a freezing cell when the grace
// ends, a request whose deadline passed, a request whose client went away. Each is asserted
// on the real upstream server: its response sees the connection close (unfinished) within a
// few seconds, where undici on its own would keep it open until its own timeout (30 s here,
// on real timers, while the gateway's clock is injected and advanced by the test). Plain
// exchanges are unchanged: keep-alive reuse and POST bodies.
import { createHash, randomBytes } from 'node:crypto';
import { request, type ClientRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import test, { type ExecutionContext } from 'ava';
import { RoutingView } from '../src/cells/lookup';
import { versioned } from '../src/cells/table';
import type { RoutingTable } from '../src/cells/types';
import { ManualClock } from './helpers/manual-clock';
import { MemoryStore } from './helpers/memory-store';
import { freezeCell, startGateway, tableFor, users, type RunningGateway } from './helpers/router-fixture';
import { httpCall, startUpstreams, stopAll, type Upstream, type UpstreamAnswer } from './helpers/upstreams';
import { metricValue, until } from './helpers/wait';

/** Real-time bound for the upstream to see its connection closed (undici's own timers: 30 s). */
const SEES_CLOSE_WITHIN_MS = 5000;

interface Setup extends RunningGateway {
  a: Upstream;
  table: RoutingTable;
  user: string;
  cell: string;
  clock: ManualClock;
}

/** Zone a serves `user` (in `cell`); the gateway runs on an injected clock. */
async function setup(t: ExecutionContext, config: Record<string, unknown> = {}): Promise<Setup> {
  const [a, b] = await startUpstreams('a', 'b');
  t.teardown(() => stopAll([a!, b!]));
  const clock = new ManualClock(Date.now());
  const table = tableFor([{ name: 'za', upstreams: [a!.url] }, { name: 'zb', upstreams: [b!.url] }], { cells: 8 });
  const view = new RoutingView(versioned(table, 1));
  const user = users(100).find((u) => {
    const r = view.routeUnit(u, clock.now());
    return r.ok && r.zone.name === 'za';
  })!;
  const g = await startGateway(t, new MemoryStore(table), { waitVersion: 1, clock, config: { upstream: { requestTimeoutMs: 30_000 }, ...config } });
  return { ...g, a: a!, table, user, cell: view.cellOfUser(user), clock };
}

/** What the upstream saw of the requests it holds open: when each one's connection closed, unfinished. */
interface Held {
  count: number;
  closedUnfinished: number;
  closedAt: number[];
}

/** Zone a takes requests and keeps them open (after `start`, when given: headers and a first chunk). */
function holdOpen(t: ExecutionContext, a: Upstream, start?: (res: ServerResponse) => void): Held {
  const held: Held = { count: 0, closedUnfinished: 0, closedAt: [] };
  const open = new Set<ServerResponse>();
  t.teardown(() => {
    for (const res of open) res.destroy();
  });
  a.behave = (_req, res) => {
    held.count += 1;
    open.add(res);
    res.once('close', () => {
      open.delete(res);
      held.closedAt.push(Date.now());
      if (!res.writableFinished) held.closedUnfinished += 1;
    });
    start?.(res);
    return true;
  };
  return held;
}

/** A request through the gateway whose outcome (response or connection error) the test reads. */
function openRequest(url: string, user: string): { req: ClientRequest; response: Promise<IncomingMessage>; failed: Promise<Error> } {
  let fail!: (e: Error) => void;
  const failed = new Promise<Error>((r) => (fail = r));
  const m = /^http:\/\/([^/:]+):(\d+)$/.exec(url)!;
  let req!: ClientRequest;
  const response = new Promise<IncomingMessage>((resolve) => {
    req = request({ host: m[1], port: Number(m[2]), path: '/poll', headers: { 'x-user-id': user }, agent: false }, resolve);
  });
  req.on('error', fail);
  req.end();
  return { req, response, failed };
}

function upstreamErrors(metrics: string): number {
  let sum = 0;
  for (const line of metrics.split('\n')) if (line.startsWith('cellgate_upstream_errors_total{')) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  return sum;
}

const metricsOf = async (s: RunningGateway) => (await httpCall(`${s.admin}/metrics`)).text();

/** Publishes a freeze of the setup's cell (60 s window: the grace is not clamped). */
async function freeze(s: Setup): Promise<number> {
  const vt = s.store.publish(freezeCell(s.table, s.cell, s.clock.now() + 60_000, 'zb'));
  await s.gw.waitForVersion(vt.version);
  return vt.version;
}

test('a long poll of a freezing cell: when the grace ends the upstream sees its connection closed, not at its natural end', async (t) => {
  const s = await setup(t, { freeze: { inflightGraceMs: 2000 } });
  const held = holdOpen(t, s.a);
  const poll = openRequest(s.url, s.user);
  await until('the long poll to reach zone a', () => held.count === 1);
  const version = await freeze(s);
  t.true(s.gw.moveCounters().ackPending, 'the acknowledgement waits for the long poll');
  s.clock.advance(1999);
  t.is(held.closedAt.length, 0, 'within the grace the upstream keeps it');
  const graceEnded = Date.now();
  s.clock.advance(1);
  await until('the upstream to see the connection closed', () => held.closedAt.length === 1, SEES_CLOSE_WITHIN_MS);
  t.is(held.closedUnfinished, 1, 'closed before it answered');
  t.log(`upstream saw the close ${held.closedAt[0]! - graceEnded} ms after the grace ended`);
  t.truthy(await poll.failed, 'the client sees its connection cut');
  t.deepEqual(s.gw.moveCounters().cut, { awaiting_response: 1, mid_response: 0 });
  await until('the acknowledgement', () => [...s.store.presence.records.values()].some((r) => r.appliedVersion === version));
  t.is(upstreamErrors(await metricsOf(s)), 0, 'an abort by the gateway is no upstream failure');
});

test('a download of a freezing cell cut mid-body: the upstream sees its connection closed at the grace end', async (t) => {
  const s = await setup(t, { freeze: { inflightGraceMs: 2000 } });
  const held = holdOpen(t, s.a, (res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': '1000000' });
    res.write(Buffer.alloc(1000));
  });
  const download = openRequest(s.url, s.user);
  const res = await download.response;
  t.is(res.statusCode, 200);
  let got = 0;
  res.on('data', (c: Buffer) => (got += c.length));
  res.on('error', () => undefined);
  await until('the first chunk at the client', () => got === 1000);
  await freeze(s);
  s.clock.advance(2000);
  await until('the upstream to see the connection closed', () => held.closedAt.length === 1, SEES_CLOSE_WITHIN_MS);
  t.is(held.closedUnfinished, 1);
  await until('the client response to end', () => res.destroyed || res.complete);
  t.false(res.complete, 'the client saw the download cut');
  t.deepEqual(s.gw.moveCounters().cut, { awaiting_response: 0, mid_response: 1 });
  t.is(upstreamErrors(await metricsOf(s)), 0);
});

test('the gateway deadline: the client gets 504 and the upstream sees its connection closed right then', async (t) => {
  const s = await setup(t);
  const held = holdOpen(t, s.a);
  const call = httpCall(`${s.url}/poll`, { headers: { 'x-user-id': s.user } });
  await until('the request to reach zone a', () => held.count === 1);
  s.clock.advance(29_999);
  t.is(held.closedAt.length, 0);
  s.clock.advance(1);
  const res = await call;
  t.is(res.status, 504);
  t.is(res.json().error, 'UPSTREAM_TIMEOUT');
  // undici's own headers timeout (real 30 s) is far away: only the gateway's abort closes it now.
  await until('the upstream to see the connection closed', () => held.closedAt.length === 1, SEES_CLOSE_WITHIN_MS);
  t.is(held.closedUnfinished, 1);
  t.is(metricValue(await metricsOf(s), 'cellgate_upstream_errors_total{zone="za",service="default",kind="timeout"}'), 1, 'counted once, as a timeout');
});

test('a client gone before the response headers: the upstream sees its connection closed, and the slot serves the next request', async (t) => {
  const s = await setup(t, { upstream: { requestTimeoutMs: 30_000, connectionsPerEndpoint: 1 } });
  const held = holdOpen(t, s.a);
  const poll = openRequest(s.url, s.user);
  await until('the long poll to reach zone a', () => held.count === 1);
  poll.req.destroy();
  await until('the upstream to see the connection closed', () => held.closedAt.length === 1, SEES_CLOSE_WITHIN_MS);
  t.is(held.closedUnfinished, 1);
  s.a.behave = null;
  // One connection per endpoint: the next request gets it only because the first was let go.
  const next = await httpCall(`${s.url}/next`, { headers: { 'x-user-id': s.user }, timeoutMs: 10_000 });
  t.is(next.status, 200);
  t.is(next.json<UpstreamAnswer>().upstream, 'a');
  t.is(upstreamErrors(await metricsOf(s)), 0, 'a client going away is no upstream failure');
});

test('plain exchanges through the abortable agent: keep-alive reuse, a POST body intact, no link header sent', async (t) => {
  const s = await setup(t);
  const ports = new Set<number>();
  s.a.behave = (req) => {
    ports.add(req.socket.remotePort as number);
    return false;
  };
  for (let i = 0; i < 5; i += 1) {
    const res = await httpCall(`${s.url}/get/${i}`, { headers: { 'x-user-id': s.user } });
    t.is(res.status, 200);
  }
  const body = randomBytes(256 * 1024);
  const res = await httpCall(`${s.url}/post`, { method: 'POST', body, headers: { 'x-user-id': s.user, 'content-type': 'application/octet-stream' } });
  t.is(res.status, 200);
  const answer = res.json<UpstreamAnswer>();
  t.is(answer.bodyBytes, body.length);
  t.is(answer.bodySha256, createHash('sha256').update(body).digest('hex'));
  t.is(ports.size, 1, 'one upstream connection, reused for every request');
  t.false(Object.keys(answer.headers).some((h) => /symbol|upstreamcall/i.test(h)), JSON.stringify(Object.keys(answer.headers)));
});

test('shutdown destroys the agent: the kept-alive upstream connection is closed', async (t) => {
  const s = await setup(t);
  let upstreamSocket: Socket | null = null;
  s.a.behave = (req) => {
    upstreamSocket = req.socket;
    return false;
  };
  t.is((await httpCall(`${s.url}/one`, { headers: { 'x-user-id': s.user } })).status, 200);
  const socket = upstreamSocket as Socket | null;
  if (socket === null) return t.fail('the upstream saw no request');
  const closed = new Promise<void>((r) => (socket.destroyed ? r() : socket.once('close', () => r())));
  t.false(socket.destroyed, 'kept alive after the response');
  await s.gw.shutdown();
  await Promise.race([closed, new Promise((_, reject) => setTimeout(() => reject(new Error('upstream connection still open 5 s after shutdown')), SEES_CLOSE_WITHIN_MS).unref())]);
  t.true(socket.destroyed);
});
