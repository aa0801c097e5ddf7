// The relay's per-gateway state (src/relay/relay-entries.ts) on a manual clock: what waits for
// what, what a heartbeat costs, superseded requests, deadlines, expiry, limits and batches.
import test from 'ava';
import { cgError, type CellgateError } from '../src/errors';
import { ENTRY_STATE, RelayEntries, type Outcome } from '../src/relay/relay-entries';
import { ManualClock } from './helpers/manual-clock';

const LIMITS = { maxGateways: 1000, maxTotalBytes: 1 << 20, commitDeadlineMs: 5_000, maxWaitersPerGateway: 4 };

function world(limits: Partial<typeof LIMITS> = {}) {
  const clock = new ManualClock();
  let kicks = 0;
  const entries = new RelayEntries('/p/gateways-relayed/', { ...LIMITS, ...limits }, clock, () => { kicks += 1; });
  return { clock, entries, kicks: () => kicks };
}

/** The answer of a waiting outcome, once given (undefined while it still waits). */
function watch(o: Outcome): { readonly value: CellgateError | null | undefined } {
  const box: { value: CellgateError | null | undefined } = { value: undefined };
  if (o.kind === 'now') box.value = null;
  else void o.answer.then((v) => { box.value = v; });
  return box;
}
const settle = () => new Promise<void>((r) => setImmediate(r));

test('a PUT waits for its commit; the same value again is answered now; a new one waits again', async (t) => {
  const { entries, kicks } = world();
  const first = watch(entries.put('gw', 'v1', 10));
  t.is(kicks(), 1);
  const batch = entries.takeBatch(128, 1 << 20);
  t.deepEqual(batch.map((o) => [o.entry.key, o.state, o.value, o.generation]), [['/p/gateways-relayed/gw', ENTRY_STATE.LIVE, 'v1', 1]]);
  await settle();
  t.is(first.value, undefined, 'not before the commit');
  entries.committed(batch);
  await settle();
  t.is(first.value, null);
  t.is(entries.put('gw', 'v1', 10).kind, 'now', 'a heartbeat');
  t.is(entries.dirtyCount, 0);
  t.is(entries.put('gw', 'v2', 10).kind, 'wait');
  t.is(entries.dirtyCount, 1);
});

test('a superseded request is answered when the newer record commits; one in flight answers only its own', async (t) => {
  const { entries } = world();
  const a = watch(entries.put('gw', 'v1', 10));
  const b = watch(entries.put('gw', 'v2', 10));
  const batch = entries.takeBatch(128, 1 << 20);
  t.deepEqual(batch.map((o) => o.value), ['v2'], 'only the newest is written');
  entries.committed(batch);
  await settle();
  t.deepEqual([a.value, b.value], [null, null]);

  const c = watch(entries.put('gw', 'v3', 10));
  const inFlight = entries.takeBatch(128, 1 << 20);
  const d = watch(entries.put('gw', 'v4', 10));
  entries.committed(inFlight);
  await settle();
  t.is(c.value, null);
  t.is(d.value, undefined, 'v4 is not committed yet');
  entries.committed(entries.takeBatch(128, 1 << 20));
  await settle();
  t.is(d.value, null);
});

test('a request not committed within the deadline gets STORE_UNAVAILABLE; a failed batch answers its waiters and stays dirty', async (t) => {
  const { clock, entries } = world();
  const late = watch(entries.put('gw-late', 'v1', 60));
  clock.advance(4_999);
  await settle();
  t.is(late.value, undefined);
  clock.advance(1);
  await settle();
  t.is(late.value?.error, 'STORE_UNAVAILABLE');
  t.regex(late.value!.message, /not committed to etcd within 5000 ms/);

  const failing = watch(entries.put('gw-f', 'v1', 60));
  const batch = entries.takeBatch(128, 1 << 20);
  entries.failed(batch, cgError('STORE_UNAVAILABLE', 'etcd said no'));
  await settle();
  t.is(failing.value?.message, 'etcd said no');
  t.deepEqual(entries.takeBatch(128, 1 << 20).map((o) => o.entry.id).sort(), ['gw-f', 'gw-late'], 'both tried again');
});

test('an entry not refreshed within its ttlSeconds becomes a deletion, then is forgotten; one never written is forgotten at once', async (t) => {
  const { clock, entries } = world();
  watch(entries.put('gw', 'v1', 2));
  entries.committed(entries.takeBatch(128, 1 << 20));
  clock.advance(1_500);
  t.is(entries.put('gw', 'v1', 2).kind, 'now', 'a heartbeat moves the expiry');
  clock.advance(1_999);
  t.is(entries.expire(), 0);
  clock.advance(1);
  t.is(entries.expire(), 1);
  const del = entries.takeBatch(128, 1 << 20);
  t.deepEqual(del.map((o) => o.state), [ENTRY_STATE.DELETING]);
  t.is(entries.size, 1, 'held until the deletion commits');
  entries.committed(del);
  t.is(entries.size, 0);

  const never = watch(entries.put('gw-never', 'v1', 1));
  clock.advance(1_000);
  t.is(entries.expire(), 1);
  await settle();
  t.is(never.value?.error, 'STORE_UNAVAILABLE');
  t.is(entries.size, 0, 'nothing was sent: nothing to delete');
  t.deepEqual(entries.takeBatch(128, 1 << 20), []);
});

test('DELETE waits for the deletion; a lost lease re-dirties every live record and ends deletions', async (t) => {
  const { entries } = world();
  for (const id of ['a', 'b', 'c']) watch(entries.put(id, `v-${id}`, 10));
  entries.committed(entries.takeBatch(128, 1 << 20));
  const del = watch(entries.remove('a'));
  t.is(entries.remove('nobody').kind, 'now');
  entries.leaseLost();
  await settle();
  t.is(del.value, null, 'its key went with the lease');
  t.deepEqual(entries.takeBatch(128, 1 << 20).map((o) => [o.entry.id, o.state]), [['b', ENTRY_STATE.LIVE], ['c', ENTRY_STATE.LIVE]]);
});

test('limits: gateways, bytes, waiters per gateway; batches are bounded in count and bytes', async (t) => {
  const full = world({ maxGateways: 2 });
  watch(full.entries.put('a', 'v', 10));
  watch(full.entries.put('b', 'v', 10));
  t.throws(() => full.entries.put('c', 'v', 10), { code: 'CG_ERR_RELAY_FULL' });
  t.is(full.entries.put('a', 'v2', 10).kind, 'wait', 'a gateway it holds is still served');

  const small = world({ maxTotalBytes: 10 });
  watch(small.entries.put('a', 'ééééé', 10)); // 10 bytes in UTF-8
  t.throws(() => small.entries.put('b', 'x', 10), { code: 'CG_ERR_RELAY_FULL' });

  const { entries } = world();
  const waiting = [1, 2, 3, 4, 5].map((n) => watch(entries.put('gw', `v${n}`, 10)));
  await settle();
  t.is(waiting[0]!.value?.error, 'STORE_UNAVAILABLE', 'the oldest of five is let go');
  t.deepEqual(waiting.slice(1).map((w) => w.value), [undefined, undefined, undefined, undefined]);

  for (let i = 0; i < 300; i++) watch(entries.put(`g${i}`, 'x'.repeat(100), 10));
  const sizes = [entries.takeBatch(128, 1 << 20).length, entries.takeBatch(128, 1 << 20).length, entries.takeBatch(128, 1 << 20).length];
  t.deepEqual(sizes, [128, 128, 45], '301 dirty entries (gw and g0…g299)');
  for (let i = 0; i < 10; i++) watch(entries.put(`h${i}`, 'y'.repeat(1000), 10));
  t.is(entries.takeBatch(128, 3_000).length, 2, 'bytes bound the batch');
});
