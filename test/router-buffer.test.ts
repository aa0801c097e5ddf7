// The hold buffer as a state machine, with an injected clock: every (state, input) pair,
// release on a new table, the freeze deadline, the window, overflow (oldest first), client
// aborts, shutdown, the byte budget — and the counters always add up:
//   held = released + evicted.* + timedOut + aborted + size
//        = the sum over the metric's outcomes (outcomeCounts) + size
import test, { type ExecutionContext } from 'ava';
import type { Route } from '../src/cells/lookup';
import type { Zone } from '../src/cells/types';
import {
  BUFFER_OUTCOMES, EVICT_REASONS, HoldBuffer, outcomeCounts, transition, type HeldInput, type HeldState, type Settlement,
} from '../src/router/hold-buffer';
import { ByteBudget } from '../src/router/held-body';
import { ManualClock } from './helpers/manual-clock';

const zoneA: Zone = { name: 'a', region: 'r', city: 'c', capacity: 1, status: 'up', upstreams: ['http://127.0.0.1:1'] };
const zoneB: Zone = { ...zoneA, name: 'b' };
const frozen = (until: number): Route => ({ ok: true, class: 'unit', cell: 'c01', zone: zoneA, epoch: 1, frozenUntilMs: until, why: 'frozen' });
const activeOn = (zone: Zone, epoch: number): Route => ({ ok: true, class: 'unit', cell: 'c01', zone, epoch, frozenUntilMs: null, why: 'active' });

function assertSums(t: ExecutionContext, b: HoldBuffer): void {
  const c = b.counters;
  t.is(c.held, c.released + EVICT_REASONS.reduce((n, r) => n + c.evicted[r], 0) + c.timedOut + c.aborted + b.size, 'counters add up');
  const by = outcomeCounts(c);
  t.deepEqual(Object.keys(by).sort(), [...BUFFER_OUTCOMES].sort());
  t.is(c.held, BUFFER_OUTCOMES.reduce((n, r) => n + by[r], 0) + b.size, 'the outcomes of the metric add up too');
}

/** Collects settlements as they happen (promises resolve asynchronously). */
async function settled(...ps: Promise<Settlement>[]): Promise<Settlement[]> {
  return Promise.all(ps);
}

test('transition: every (state, input) pair is decided', (t) => {
  const states: HeldState[] = ['holding', 'released', 'evicted', 'timedOut', 'aborted'];
  const inputs: HeldInput[] = [
    { kind: 'rerouted', route: frozen(2000), nowMs: 1000 },
    { kind: 'rerouted', route: frozen(1000), nowMs: 1000 },
    { kind: 'rerouted', route: activeOn(zoneB, 2), nowMs: 1000 },
    { kind: 'rerouted', route: { ok: false, class: 'unit', cell: 'c01', error: 'ZONE_DOWN', why: 'down' }, nowMs: 1000 },
    { kind: 'windowElapsed' },
    { kind: 'evict', reason: 'overflow' },
    { kind: 'evict', reason: 'shutdown' },
    { kind: 'evict', reason: 'bodyTooLarge' },
    { kind: 'evict', reason: 'budget' },
    { kind: 'clientGone' },
  ];
  const table = states.map((s) => inputs.map((i) => {
    const d = transition(s, i);
    return d.kind === 'settle' ? d.next : d.kind;
  }));
  t.deepEqual(table[0], ['keep', 'released', 'released', 'released', 'timedOut', 'evicted', 'evicted', 'evicted', 'evicted', 'aborted']);
  const errors = inputs.map((i) => {
    const d = transition('holding', i);
    return d.kind === 'settle' && d.settlement.kind === 'reject' ? d.settlement.error : null;
  });
  t.deepEqual(errors.slice(4, 9), ['BUFFER_TIMEOUT', 'BUFFER_TIMEOUT', 'BUFFER_TIMEOUT', 'BODY_TOO_LARGE', 'ZONE_OVERLOADED'], 'the answer of each eviction');
  for (const row of table.slice(1)) t.deepEqual(row, inputs.map(() => 'ignore'), 'terminal states ignore late inputs');
});

test('a new table that unfreezes the cell releases held requests to the new zone', async (t) => {
  const clock = new ManualClock();
  const b = new HoldBuffer({ windowMs: 10_000, maxRequests: 10, clock });
  let route: Route = frozen(clock.now() + 5000);
  const tickets = [b.hold(clock.now() + 5000, () => route), b.hold(clock.now() + 5000, () => route)];
  t.is(b.size, 2);
  clock.advance(1000);
  b.reroute(); // a table that still freezes the cell (same deadline)
  t.is(b.size, 2);
  route = activeOn(zoneB, 2);
  b.reroute();
  const out = await settled(...tickets.map((x) => x.settled));
  t.deepEqual(out.map((s) => s.kind), ['release', 'release']);
  t.is((out[0] as { route: Route & { ok: true } }).route.zone.name, 'b');
  t.is(b.size, 0);
  t.is(clock.pending, 0, 'no timer left when nothing is held');
  t.is(b.counters.released, 2);
  assertSums(t, b);
});

test('the freeze deadline releases held requests to whatever the table says then (the old zone)', async (t) => {
  const clock = new ManualClock();
  const b = new HoldBuffer({ windowMs: 10_000, maxRequests: 10, clock });
  const until = clock.now() + 3000;
  const x = b.hold(until, (now) => (now >= until ? activeOn(zoneA, 1) : frozen(until)));
  clock.advance(2999);
  t.is(b.size, 1);
  clock.advance(1);
  const s = await x.settled;
  t.is(s.kind, 'release');
  t.is((s as { route: Route & { ok: true } }).route.zone.name, 'a');
  t.is(b.counters.released, 1);
  assertSums(t, b);
});

test('a re-freeze with a later deadline keeps holding; the window still bounds the wait', async (t) => {
  const clock = new ManualClock();
  const b = new HoldBuffer({ windowMs: 4000, maxRequests: 10, clock });
  let until = clock.now() + 1000;
  const x = b.hold(until, () => frozen(until));
  clock.advance(500);
  until = clock.now() + 60_000;
  b.reroute();
  clock.advance(3000);
  t.is(b.size, 1, 'held past the first deadline');
  clock.advance(500);
  const s = await x.settled;
  t.deepEqual(s, { kind: 'reject', error: 'BUFFER_TIMEOUT', reason: 'window' });
  t.is(b.counters.timedOut, 1);
  assertSums(t, b);
});

test('when full, the OLDEST held request is evicted first; maxRequests 0 holds nothing', async (t) => {
  const clock = new ManualClock();
  const b = new HoldBuffer({ windowMs: 10_000, maxRequests: 3, clock });
  const until = clock.now() + 5000;
  const order: number[] = [];
  const tickets = Array.from({ length: 5 }, (_, i) => {
    clock.advance(10);
    const x = b.hold(until, () => frozen(until));
    void x.settled.then((s) => s.kind === 'reject' && order.push(i));
    return x;
  });
  await Promise.resolve();
  await new Promise((r) => setImmediate(r));
  t.deepEqual(order, [0, 1], 'the two oldest went first');
  t.is(b.size, 3);
  t.is(b.counters.evicted.overflow, 2);
  b.shutdown();
  const out = await settled(...tickets.map((x) => x.settled));
  t.deepEqual(out.slice(2).map((s) => s.kind === 'reject' && s.reason), ['shutdown', 'shutdown', 'shutdown']);
  t.is(clock.pending, 0);
  assertSums(t, b);

  const none = new HoldBuffer({ windowMs: 10_000, maxRequests: 0, clock });
  const y = await none.hold(until, () => frozen(until)).settled;
  t.is(y.kind, 'reject');
  assertSums(t, none);
});

test('client aborts and too-large bodies leave the buffer, counted once; late inputs are ignored', async (t) => {
  const clock = new ManualClock();
  const b = new HoldBuffer({ windowMs: 10_000, maxRequests: 10, clock });
  const until = clock.now() + 5000;
  const gone = b.hold(until, () => frozen(until));
  const big = b.hold(until, () => frozen(until));
  const stays = b.hold(until, () => (clock.now() >= until ? activeOn(zoneA, 1) : frozen(until)));
  gone.clientGone();
  gone.clientGone();
  big.evict('bodyTooLarge');
  big.clientGone();
  t.is((await gone.settled).kind, 'aborted');
  t.deepEqual(await big.settled, { kind: 'reject', error: 'BODY_TOO_LARGE', reason: 'bodyTooLarge' });
  clock.advance(5000);
  t.is((await stays.settled).kind, 'release');
  stays.clientGone(); // after release: ignored
  t.is(b.counters.aborted, 1);
  t.is(b.counters.evicted.bodyTooLarge, 1);
  t.is(b.counters.released, 1);
  t.is(b.counters.held, 3);
  assertSums(t, b);
});

test('random inputs never break the sums', (t) => {
  const clock = new ManualClock();
  const b = new HoldBuffer({ windowMs: 2000, maxRequests: 7, clock });
  let seed = 42;
  const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  let route: Route = frozen(clock.now() + 1500);
  const tickets: Array<ReturnType<HoldBuffer['hold']>> = [];
  for (let i = 0; i < 2000; i++) {
    const r = rand();
    if (r < 0.4) tickets.push(b.hold(clock.now() + 1500, () => route));
    else if (r < 0.5) route = rand() < 0.5 ? activeOn(zoneB, 2) : frozen(clock.now() + 1500);
    else if (r < 0.6) b.reroute();
    else if (r < 0.7 && tickets.length) tickets[Math.floor(rand() * tickets.length)]!.clientGone();
    else if (r < 0.75 && tickets.length) tickets[Math.floor(rand() * tickets.length)]!.evict('bodyTooLarge');
    else clock.advance(Math.floor(rand() * 400));
    if (b.size > 7) t.fail('more than maxRequests held');
  }
  assertSums(t, b);
  t.is(b.counters.held, tickets.length);
  b.shutdown();
  t.is(b.size, 0);
  assertSums(t, b);
});

test('the byte budget: reservations grow, refuse what does not fit, free once', (t) => {
  const budget = new ByteBudget(100);
  const a = budget.reservation();
  const b = budget.reservation();
  t.true(a.reserve(60));
  t.true(a.reserve(40), 'a smaller total takes nothing more');
  t.is(budget.used, 60);
  t.false(b.reserve(41), 'does not fit');
  t.is(budget.used, 60, 'a refused reservation takes nothing');
  t.true(b.reserve(40));
  t.is(budget.used, 100);
  a.free();
  a.free();
  t.is(budget.used, 40, 'freed once');
  t.false(a.reserve(1), 'a freed reservation takes nothing again');
  b.free();
  t.is(budget.used, 0);
  t.is(budget.peak, 100);
});

test('a request refused at entry is counted and settled at once, and evicts nobody', async (t) => {
  const clock = new ManualClock();
  const b = new HoldBuffer({ windowMs: 10_000, maxRequests: 1, maxTotalBytes: 10, clock });
  const until = clock.now() + 5000;
  const first = b.hold(until, () => frozen(until));
  const refused = b.hold(until, () => frozen(until), 'budget');
  t.deepEqual(await refused.settled, { kind: 'reject', error: 'ZONE_OVERLOADED', reason: 'budget' });
  const tooLarge = await b.hold(until, () => frozen(until), 'bodyTooLarge').settled;
  t.deepEqual(tooLarge, { kind: 'reject', error: 'BODY_TOO_LARGE', reason: 'bodyTooLarge' });
  t.is(b.size, 1, 'the held one stays');
  t.is(b.counters.evicted.overflow, 0);
  t.like(outcomeCounts(b.counters), { overflow: 1, tooLarge: 1, evicted: 0 });
  t.is(b.bytes.max, 10);
  assertSums(t, b);
  b.shutdown();
  t.is((await first.settled).kind, 'reject');
  assertSums(t, b);
});
