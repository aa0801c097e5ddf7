// The per-zone wait queue for upstream connections (admission.ts) with an injected clock:
// slots per endpoint, FIFO hand-over of freed slots, the cap (refused at once), deadlines
// while waiting, cancellation by a client that left, and no effect on other zones.
import test from 'ava';
import type { Zone } from '../src/cells/types';
import { Admission, type SlotRequest } from '../src/router/admission';
import { parseGatewayConfig } from '../src/router/config';
import { EndpointHealth, type Endpoint, type ZonePool } from '../src/router/endpoints';
import { ManualClock } from './helpers/manual-clock';

function setup(maxPendingPerZone: number) {
  const clock = new ManualClock();
  const upstream = parseGatewayConfig({ upstream: { connectionsPerEndpoint: 2, ejectAfterFailures: 1 } }).upstream;
  const health = new EndpointHealth(upstream, () => clock.now());
  const zone = (name: string, urls: string[]): Zone => ({ name, region: 'r', city: 'c', capacity: 1, status: 'up', upstreams: urls });
  const pools = health.poolsFor({ zones: [zone('a', ['http://10.0.0.1:1', 'http://10.0.0.2:1']), zone('b', ['http://10.0.1.1:1'])] } as never);
  const admission = new Admission({ maxPendingPerZone, clock });
  const log: string[] = [];
  const ask = (name: string, pool: ZonePool, deadlineInMs = 1000) => {
    const endpoint = pool.pick(clock.now()) as Endpoint;
    const r: SlotRequest = {
      pool, endpoint, deadlineMs: clock.now() + deadlineInMs,
      start: (e) => log.push(`${name} started on ${e.origin}`),
      expire: () => log.push(`${name} expired`),
      unavailable: () => log.push(`${name} unavailable`),
    };
    return { admitted: admission.enter(r), endpoint: () => r.endpoint };
  };
  return { clock, health, a: pools.get('a')!.get('default')!, b: pools.get('b')!.get('default')!, admission, log, ask };
}

test('two slots per endpoint; the next ones wait in order and get freed slots; the cap refuses at once', (t) => {
  const { a, b, admission, log, ask } = setup(2);
  const first = [1, 2, 3, 4].map((i) => ask(`r${i}`, a));
  t.deepEqual(first.map((x) => x.admitted.kind), ['started', 'started', 'started', 'started'], 'two endpoints × two slots');
  t.deepEqual(a.endpoints.map((e) => e.active), [2, 2]);
  t.is(ask('r5', a).admitted.kind, 'waiting');
  t.is(ask('r6', a).admitted.kind, 'waiting');
  t.is(ask('r7', a).admitted.kind, 'refused', 'the queue holds two');
  t.deepEqual(admission.pending(), [{ zone: 'a', service: 'default', n: 2 }]);
  t.is(ask('other', b).admitted.kind, 'started', 'another zone is not affected');

  admission.release(a.endpoints[1]!);
  t.is(log.at(-1), 'r5 started on http://10.0.0.2:1', 'the oldest waiter gets the freed slot');
  admission.release(a.endpoints[0]!);
  t.is(log.at(-1), 'r6 started on http://10.0.0.1:1');
  t.deepEqual(admission.pending(), []);
  t.deepEqual(a.endpoints.map((e) => e.active), [2, 2]);
  t.is(ask('r8', a).admitted.kind, 'waiting', 'nobody jumps the queue');
});

test('a waiter is answered at its deadline, a cancelled one leaves quietly, and all leave when no endpoint is left', (t) => {
  const { clock, health, a, admission, log, ask } = setup(10);
  for (let i = 0; i < 4; i++) ask(`busy${i}`, a, 10_000);
  const early = ask('early', a, 500);
  const gone = ask('gone', a, 500);
  const late = ask('late', a, 5000);
  t.is(early.admitted.kind, 'waiting');
  if (gone.admitted.kind === 'waiting') gone.admitted.cancel();
  clock.advance(499);
  t.false(log.includes('early expired'));
  clock.advance(1);
  t.true(log.includes('early expired'), 'answered at its deadline');
  t.false(log.some((l) => l.startsWith('gone')), 'a cancelled waiter is never called');
  t.is(clock.pending, 1, 'only the late waiter has a timer');
  t.is(late.admitted.kind, 'waiting');
  // Both endpoints fail and are ejected: the waiter is told at the next release.
  for (const e of a.endpoints) health.record(e, 'refused');
  admission.release(a.endpoints[0]!);
  t.is(log.at(-1), 'late unavailable');
  t.is(clock.pending, 0, 'no timer left');
});

test('tryStart takes a free slot without a SlotRequest, and never while its zone has waiters', (t) => {
  const { a, b, admission, log, ask } = setup(2);
  const [e1, e2] = a.endpoints as [Endpoint, Endpoint];
  t.true(admission.tryStart(a, e1));
  t.true(admission.tryStart(a, e1));
  t.false(admission.tryStart(a, e1), 'two slots per endpoint: no room left on it');
  t.deepEqual(a.endpoints.map((e) => e.active), [2, 0], 'a refused try changes nothing');
  t.true(admission.tryStart(a, e2));
  t.true(admission.tryStart(a, e2));
  t.is(ask('waiter', a).admitted.kind, 'waiting');
  admission.release(e2);
  t.is(log.at(-1), 'waiter started on http://10.0.0.2:1', 'the freed slot went to the waiter');
  admission.release(e1);
  t.deepEqual(admission.pending(), []);
  t.true(admission.tryStart(a, e1), 'room and no waiter: taken');
  t.is(ask('w2', a).admitted.kind, 'waiting');
  admission.release(e1);
  t.is(log.at(-1), 'w2 started on http://10.0.0.1:1');
  t.false(admission.tryStart(a, e1), 'full again');
  t.is(ask('w3', a).admitted.kind, 'waiting');
  t.deepEqual(a.endpoints.map((e) => e.active), [2, 2], 'tryStart counts its slots as enter() does');
  t.true(admission.tryStart(b, b.endpoints[0] as Endpoint), 'another zone is not affected');
});
