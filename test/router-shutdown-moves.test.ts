// A gateway shutting down keeps its presence record until its traffic is drained: while it
// still has a request of a cell with the cell's old zone, a freeze of that cell does not
// converge (it would let cellctl flip the cell while the request runs at the old zone).
import test from 'ava';
import { RoutingView } from '../src/cells/lookup';
import { versioned } from '../src/cells/table';
import { waitForConvergence } from '../src/failover/convergence';
import { MemoryStore } from './helpers/memory-store';
import { freezeCell, startGateway, tableFor, users } from './helpers/router-fixture';
import { httpCall, startUpstreams, stopAll } from './helpers/upstreams';
import { until } from './helpers/wait';

test('a freeze does not converge while a shutting-down gateway still has a request of the cell with the old zone', async (t) => {
  const [a, b] = await startUpstreams('a', 'b');
  t.teardown(() => stopAll([a!, b!]));
  const table = tableFor([{ name: 'za', upstreams: [a!.url] }, { name: 'zb', upstreams: [b!.url] }], { cells: 8 });
  const view = new RoutingView(versioned(table, 1));
  const user = users(100).find((u) => { const r = view.routeUnit(u, Date.now()); return r.ok && r.zone.name === 'za'; })!;
  const cell = view.cellOfUser(user);
  const store = new MemoryStore(table);
  const { gw, url, admin } = await startGateway(t, store, { waitVersion: 1, config: { shutdownGraceMs: 20_000 } });
  await until('registered', () => store.presence.records.size === 1);

  let answer!: () => void;
  const answered = new Promise<void>((r) => (answer = r));
  t.teardown(() => answer());
  a!.behave = async () => { await answered; return false; };
  const slow = httpCall(`${url}/slow`, { headers: { 'x-user-id': user } });
  await until('the request to reach the old zone', () => a!.received.length === 1);

  const stopped = gw.shutdown();
  await until('shutdown under way (not ready)', async () => (await fetch(`${admin}/readyz`).catch(() => null))?.status === 503);
  t.is(store.presence.records.size, 1, 'still registered while it drains');

  // cellctl, phase 1 of a move of the cell: freeze, then wait for every live gateway.
  const f = store.publish(freezeCell(table, cell, Date.now() + 8_000, 'zb'));
  const status = await waitForConvergence(store.presence, f.version, f.checksum, { timeoutMs: 1_000 });
  const stillAtOldZone = gw.inFlight() > 0;
  answer();
  await slow;
  await stopped;
  t.true(stillAtOldZone, 'precondition: the request was still with zone a');
  t.false(status.converged, 'the freeze was reported acknowledged (flip allowed) while a request of the cell was still running in the old zone');
});
