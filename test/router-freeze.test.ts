// Frozen cells through the real gateway: held requests (bodies kept) go to the new zone when
// a table unfreezes the cell, resume to the old zone at the freeze deadline, overflow evicts
// the oldest with 504 BUFFER_TIMEOUT, the window bounds the wait, aborts are counted.
import { createHash, randomBytes } from 'node:crypto';
import { request } from 'node:http';
import test, { type ExecutionContext } from 'ava';
import { RoutingView } from '../src/cells/lookup';
import { versioned } from '../src/cells/table';
import type { RoutingTable } from '../src/cells/types';
import { MemoryStore } from './helpers/memory-store';
import { freezeCell, moveCell, startGateway, tableFor, users, type RunningGateway } from './helpers/router-fixture';
import { httpCall, startUpstreams, stopAll, type Upstream, type UpstreamAnswer } from './helpers/upstreams';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

interface Setup extends RunningGateway {
  a: Upstream;
  b: Upstream;
  table: RoutingTable;
  user: string;
  cell: string;
}

/** Two zones; `user` lives in `cell`, currently on zone a. */
async function setup(t: ExecutionContext, config: Record<string, unknown> = {}): Promise<Setup> {
  const [a, b] = await startUpstreams('a', 'b');
  t.teardown(() => stopAll([a!, b!]));
  const table = tableFor([{ name: 'za', upstreams: [a!.url] }, { name: 'zb', upstreams: [b!.url] }], { cells: 8 });
  const view = new RoutingView(versioned(table, 1));
  const user = users(100).find((u) => {
    const r = view.routeUnit(u, Date.now());
    return r.ok && r.zone.name === 'za';
  })!;
  const cell = view.cellOfUser(user);
  const store = new MemoryStore(table);
  const g = await startGateway(t, store, { waitVersion: 1, config });
  return { ...g, a: a!, b: b!, table, user, cell };
}

async function publish(s: Setup, table: RoutingTable): Promise<void> {
  const vt = s.store.publish(table);
  await s.gw.waitForVersion(vt.version);
}

function assertSums(t: ExecutionContext, s: Setup): void {
  const c = s.gw.bufferCounters();
  t.is(c.held, c.released + c.evicted.overflow + c.evicted.bodyTooLarge + c.evicted.shutdown + c.evicted.budget + c.timedOut + c.aborted + c.size);
}

test('held requests (a 300 KB POST among them) are delivered once, intact, to the new zone when the cell is unfrozen', async (t) => {
  const s = await setup(t);
  const frozenTable = freezeCell(s.table, s.cell, Date.now() + 30_000, 'zb');
  await publish(s, frozenTable);
  const body = randomBytes(300 * 1024);
  const sha = createHash('sha256').update(body).digest('hex');
  const post = httpCall(`${s.url}/orders?x=1`, { method: 'POST', headers: { 'x-user-id': s.user, 'content-type': 'application/json' }, body });
  const get = httpCall(`${s.url}/profile`, { headers: { 'x-user-id': s.user } });
  await until('two held requests', () => s.gw.bufferCounters().size === 2);
  await sleep(100);
  t.is(s.a.receivedFor(s.user).length, 0, 'nothing reaches the old zone while frozen');
  t.is(s.b.receivedFor(s.user).length, 0);

  await publish(s, moveCell(frozenTable, s.cell, 'zb'));
  const [p, g] = await Promise.all([post, get]);
  t.is(p.status, 200);
  t.is(g.status, 200);
  const got = p.json<UpstreamAnswer>();
  t.is(got.upstream, 'b');
  t.is(got.bodyBytes, body.length);
  t.is(got.bodySha256, sha);
  t.is(got.url, '/orders?x=1');
  t.is(got.headers['x-cell-epoch'], '2', 'stamped with the new epoch');
  t.is(got.headers['x-routing-revision'], '3');
  t.is(g.json<UpstreamAnswer>().upstream, 'b');
  t.is(s.b.receivedFor(s.user).filter((r) => r.method === 'POST').length, 1, 'the POST was sent once');
  t.is(s.a.receivedFor(s.user).length, 0);
  const c = s.gw.bufferCounters();
  t.is(c.released, 2);
  t.is(c.size, 0);
  assertSums(t, s);
  const after = await httpCall(`${s.url}/later`, { headers: { 'x-user-id': s.user } });
  t.is(after.json<UpstreamAnswer>().upstream, 'b', 'new requests go to the new zone');
});

test('when the freeze deadline passes, held requests resume to the old zone by themselves', async (t) => {
  const s = await setup(t);
  const deadline = Date.now() + 700;
  await publish(s, freezeCell(s.table, s.cell, deadline, 'zb'));
  const res = await httpCall(`${s.url}/x`, { method: 'POST', headers: { 'x-user-id': s.user }, body: 'hello' });
  t.true(Date.now() >= deadline - 5, 'held until the deadline');
  t.is(res.status, 200);
  t.is(res.json<UpstreamAnswer>().upstream, 'a');
  t.is(res.json<UpstreamAnswer>().bodyBytes, 5);
  t.is(s.gw.bufferCounters().released, 1);
  const later = await httpCall(`${s.url}/y`, { headers: { 'x-user-id': s.user } });
  t.is(later.json<UpstreamAnswer>().upstream, 'a', 'no longer held after the deadline');
  assertSums(t, s);
});

test('a full buffer answers the OLDEST held request 504 BUFFER_TIMEOUT first', async (t) => {
  const s = await setup(t, { buffer: { maxRequests: 2 } });
  const frozenTable = freezeCell(s.table, s.cell, Date.now() + 30_000, 'zb');
  await publish(s, frozenTable);
  const send = (n: number) => httpCall(`${s.url}/n${n}`, { headers: { 'x-user-id': s.user } });
  const first = send(1);
  await until('first held', () => s.gw.bufferCounters().size === 1);
  const second = send(2);
  await until('second held', () => s.gw.bufferCounters().size === 2);
  const third = send(3);
  const r1 = await first;
  t.is(r1.status, 504);
  t.deepEqual(r1.json(), { error: 'BUFFER_TIMEOUT', message: 'the request was held during a planned move for too long' });
  await until('third held', () => s.gw.bufferCounters().held === 3);
  await publish(s, moveCell(frozenTable, s.cell, 'zb'));
  const [r2, r3] = await Promise.all([second, third]);
  t.is(r2.status, 200);
  t.is(r3.status, 200);
  t.deepEqual(s.b.receivedFor(s.user).map((r) => r.url).sort(), ['/n2', '/n3']);
  t.is(s.gw.bufferCounters().evicted.overflow, 1);
  const metrics = (await httpCall(`${s.admin}/metrics`)).text();
  t.regex(metrics, /cellgate_buffer_timeouts_total 1\n/);
  assertSums(t, s);
});

test('the buffer window bounds the wait (504), client aborts are counted, a too-large body is not held', async (t) => {
  const s = await setup(t, { buffer: { windowMs: 400, maxBodyBytes: 1000 } });
  await publish(s, freezeCell(s.table, s.cell, Date.now() + 60_000, 'zb'));
  const started = Date.now();
  const timedOut = await httpCall(`${s.url}/w`, { headers: { 'x-user-id': s.user } });
  t.is(timedOut.status, 504);
  t.is(timedOut.json().error, 'BUFFER_TIMEOUT');
  t.true(Date.now() - started >= 390);
  t.is(s.gw.bufferCounters().timedOut, 1);

  const big = await httpCall(`${s.url}/big`, { method: 'POST', headers: { 'x-user-id': s.user }, body: Buffer.alloc(5000) });
  t.is(big.status, 413, 'BODY_TOO_LARGE (issue 8)');
  t.is(big.json().error, 'BODY_TOO_LARGE');
  t.is(s.gw.bufferCounters().evicted.bodyTooLarge, 1);

  await new Promise<void>((resolve) => {
    const req = request({ host: '127.0.0.1', port: s.addr.port, path: '/abort', headers: { 'x-user-id': s.user }, agent: false });
    req.on('error', () => resolve());
    req.end();
    void until('held', () => s.gw.bufferCounters().size === 1).then(() => {
      req.destroy();
      resolve();
    });
  });
  await until('abort counted', () => s.gw.bufferCounters().aborted === 1);
  t.is(s.gw.bufferCounters().size, 0);
  await until('in-flight back to 0', () => s.gw.inFlight() === 0);
  t.is(s.a.receivedFor(s.user).length + s.b.receivedFor(s.user).length, 0, 'nothing held was ever sent');
  assertSums(t, s);
});

test('requests still held when the shutdown grace period ends are answered 504 BUFFER_TIMEOUT', async (t) => {
  const s = await setup(t, { shutdownGraceMs: 300 });
  await publish(s, freezeCell(s.table, s.cell, Date.now() + 60_000, 'zb'));
  const held = httpCall(`${s.url}/held`, { headers: { 'x-user-id': s.user } });
  await until('held', () => s.gw.bufferCounters().size === 1);
  const started = Date.now();
  await s.gw.shutdown();
  t.true(Date.now() - started < 3000);
  const res = await held;
  t.is(res.status, 504);
  t.is(res.json().error, 'BUFFER_TIMEOUT');
  t.is(s.gw.bufferCounters().evicted.shutdown, 1);
  assertSums(t, s);
});

test('a freeze is acknowledged (presence) only once the cell\'s requests already at the old zone have finished', async (t) => {
  const s = await setup(t);
  // The old zone answers when the test says so: one request of the cell is still there when the freeze lands.
  let answer!: () => void;
  const answered = new Promise<void>((r) => (answer = r));
  t.teardown(() => answer());
  s.a.behave = async () => { await answered; return false; };
  const slow = httpCall(`${s.url}/slow`, { headers: { 'x-user-id': s.user } });
  await until('the slow request to reach the old zone', () => s.a.received.length === 1);
  t.is(s.gw.moveCounters().withUpstream, 1);
  const vt = s.store.publish(freezeCell(s.table, s.cell, Date.now() + 10_000, 'zb'));
  await s.gw.waitForVersion(vt.version);
  const published = () => [...s.store.presence.records.values()].some((r) => r.appliedVersion === vt.version);
  t.true(s.gw.moveCounters().ackPending, 'the acknowledgement waits for the request');
  t.false(published(), 'not acknowledged while the request is with the old zone');
  answer();
  const res = await slow;
  t.is(res.status, 200);
  t.is(res.json<UpstreamAnswer>().upstream, 'a');
  await until('the acknowledgement', published);
  t.false(s.gw.moveCounters().ackPending);
  t.deepEqual(s.gw.moveCounters().cut, { awaiting_response: 0, mid_response: 0 }, 'finished within its grace: nothing cut');
  s.a.behave = null;
});
