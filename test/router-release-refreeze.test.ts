// A held request whose body is still arriving when its cell is released (the flip) counts on
// its cell from the release on: if the cell is frozen again before the body has arrived, that
// freeze is acknowledged only once the request is gone (cut after the grace), and the request
// never reaches an upstream after the acknowledgement.
import { request } from 'node:http';
import test from 'ava';
import { RoutingView } from '../src/cells/lookup';
import { versioned } from '../src/cells/table';
import { MemoryStore } from './helpers/memory-store';
import { freezeCell, moveCell, startGateway, tableFor, users } from './helpers/router-fixture';
import { startUpstreams, stopAll } from './helpers/upstreams';
import { until } from './helpers/wait';

test('a released request whose body completes during a newer freeze of its cell is not sent after that freeze was acknowledged', async (t) => {
  const [a, b] = await startUpstreams('a', 'b');
  t.teardown(() => stopAll([a!, b!]));
  const table = tableFor([{ name: 'za', upstreams: [a!.url] }, { name: 'zb', upstreams: [b!.url] }], { cells: 8 });
  const view = new RoutingView(versioned(table, 1));
  const user = users(100).find((u) => { const r = view.routeUnit(u, Date.now()); return r.ok && r.zone.name === 'za'; })!;
  const cell = view.cellOfUser(user);
  const store = new MemoryStore(table);
  const { gw, addr } = await startGateway(t, store, { waitVersion: 1, config: { freeze: { inflightGraceMs: 300 } } });

  // Move 1, phase 1: freeze the cell (to zb).
  const f1 = store.publish(freezeCell(table, cell, Date.now() + 30_000, 'zb'));
  await gw.waitForVersion(f1.version);

  // A POST of the cell whose body arrives slowly: half now, the rest when the test says.
  const body = Buffer.alloc(2000, 120);
  let sendRest!: () => void;
  const finishBody = new Promise<void>((r) => (sendRest = r));
  const res = new Promise<number>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: addr.port, path: '/orders', method: 'POST', agent: false,
      headers: { 'x-user-id': user, 'content-length': String(body.length) } }, (r) => { r.resume(); r.on('end', () => resolve(r.statusCode ?? 0)); });
    req.on('error', reject);
    req.write(body.subarray(0, 1000));
    t.teardown(() => req.destroy());
    void finishBody.then(() => req.end(body.subarray(1000)));
  });
  res.catch(() => 0);
  await until('held', () => gw.bufferCounters().size === 1);

  // Move 1, phase 2: flip to zb. The held request is released, its body still incomplete.
  const flipped = moveCell(f1.table, cell, 'zb');
  const v2 = store.publish(flipped);
  await gw.waitForVersion(v2.version);
  await until('released', () => gw.bufferCounters().released === 1);

  // Move 2, phase 1: freeze the cell again (back to za). The gateway acknowledges it.
  const f2 = store.publish(freezeCell(flipped, cell, Date.now() + 30_000, 'za'));
  await gw.waitForVersion(f2.version);
  const acked = () => [...store.presence.records.values()].some((r) => r.appliedVersion >= f2.version);
  await until('the second freeze acknowledged', acked);

  // It was still waiting for its body, so the acknowledgement waited for the grace and cut it.
  t.is(gw.moveCounters().cut.awaiting_response, 1, 'cut when the grace of the second freeze ended');
  t.deepEqual({ a: a!.receivedFor(user).length, b: b!.receivedFor(user).length }, { a: 0, b: 0 }, 'no upstream got it before the acknowledgement');
  sendRest();
  t.is(await res.catch(() => 0), 0, 'its connection was cut');
  t.deepEqual({ a: a!.receivedFor(user).length, b: b!.receivedFor(user).length }, { a: 0, b: 0 },
    'a request of a frozen cell never reaches an upstream after this gateway acknowledged the freeze');
  store.publish(moveCell(f2.table, cell, 'za'));
});
