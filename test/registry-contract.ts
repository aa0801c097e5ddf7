// The endpoint registry contract every store passes (etcd, file, and the memory double the
// router tests use): registered once per store by store-etcd/-file/-memory.test.ts, like
// store-contract.ts. Expiry after a kill -9 is a property of leases and heartbeats, shown
// with real processes in e2e-registry.test.ts.
import test, { type ExecutionContext } from 'ava';
import { isCellgateError } from '../src/errors';
import { MAX_RECORD_BYTES, MAX_REGISTERED_ENDPOINTS, registryChecksum } from '../src/store/endpoint-record';
import type { RegistryPriority, RegistrySnapshot, TableStore } from '../src/store/types';
import { demoTable } from './helpers/fixtures';
import { waitFor } from './store-contract';

export interface RegistryUnderTest {
  readonly store: TableStore;
  /** Another store instance over the same data (closed at teardown). */
  reopen(): TableStore;
  /** Writes `text` as the live record at `key` (`<zone>/<service>/<id>`), around validation. */
  writeRawEndpoint(key: string, text: string): Promise<void>;
  /** The same for many records at once (live for the whole test). */
  writeRawEndpoints(records: readonly (readonly [key: string, text: string])[]): Promise<void>;
  /**
   * The registration holding `key` now: call the result to make it lose its lease (etcd: the
   * lease is revoked; memory: it puts its record again; file store: nothing to do, every
   * heartbeat checks the file).
   */
  leaseOf(key: string): Promise<() => Promise<void>>;
}

export type MakeRegistryStore = (t: ExecutionContext) => Promise<RegistryUnderTest>;

function watchRegistry(t: ExecutionContext, store: TableStore): { snapshots: RegistrySnapshot[]; last(): RegistrySnapshot | undefined } {
  const snapshots: RegistrySnapshot[] = [];
  const w = store.registry.watch({ onSnapshot: (s) => snapshots.push(s) });
  t.teardown(() => w.close());
  return { snapshots, last: () => snapshots[snapshots.length - 1] };
}

const ids = (s: RegistrySnapshot | undefined) => s?.endpoints.map((e) => `${e.zone}/${e.service}/${e.id}`) ?? [];
const urls = async (store: TableStore) => (await store.registry.snapshot()).endpoints.map((e) => `${e.id} ${e.url} w${e.weight}`);

/** `promise`'s value, or a failure after `ms`. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms); });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export function registryContract(name: string, make: MakeRegistryStore): void {
  test(`${name}: registry register, watch, withdraw at once on close; the table version never moves`, async (t) => {
    const { store, reopen } = await make(t);
    const created = await store.compareAndSwap(0, demoTable());
    const version = created.ok ? created.version : -1;
    const observer = reopen();
    const watched = watchRegistry(t, observer);
    await waitFor('the empty registry', () => watched.snapshots.length >= 1);
    t.deepEqual(ids(watched.last()), []);

    const a = await store.registry.register({ zone: 'sh-a', service: 'orders', id: 'i-1', url: 'http://127.0.0.1:9001', weight: 3 });
    const b = await store.registry.register({ zone: 'sh-a', service: 'default', id: 'pod/7 weird', url: 'http://127.0.0.1:9002' });
    t.is(a.endpoint.weight, 3);
    await waitFor('both endpoints in the watch', () => ids(watched.last()).length === 2);
    t.deepEqual(ids(watched.last()), ['sh-a/default/pod/7 weird', 'sh-a/orders/i-1']);
    const listed = await observer.registry.snapshot();
    t.deepEqual(listed.endpoints.find((e) => e.id === 'i-1'), a.endpoint);
    t.is(registryChecksum(listed), registryChecksum(watched.last()!));
    t.is(listed.refusedCount, 0);

    const closedAt = Date.now();
    await a.close();
    await a.close(); // idempotent
    await waitFor('the closed endpoint gone', () => ids(watched.last()).length === 1, 3_000);
    t.true(Date.now() - closedAt < 3_000, 'withdrawn well within the 5 s TTL');
    t.deepEqual(ids(await observer.registry.snapshot()), ['sh-a/default/pod/7 weird']);

    // Registration is not a routing change.
    t.is((await observer.load())?.version, version);
    // Closing the store withdraws what it registered.
    await store.close();
    await waitFor('the registry empty after the store closed', () => ids(watched.last()).length === 0, 3_000);
    await b.close();
  });

  test(`${name}: a bad registration is a USAGE error and writes nothing`, async (t) => {
    const { store } = await make(t);
    const base = { zone: 'sh-a', service: 'orders', id: 'i-1', url: 'http://127.0.0.1:9001' };
    const bad = [
      { ...base, url: 'ftp://x:1' },
      { ...base, url: 'http://h:1/path' },
      { ...base, zone: 'a/b' },
      { ...base, service: '' },
      { ...base, id: '' },
      { ...base, weight: 0 },
      { ...base, weight: 1.5 },
      { ...base, ttlMs: 10 },
    ];
    for (const req of bad) {
      const err = await t.throwsAsync(store.registry.register(req));
      t.true(isCellgateError(err, 'USAGE'), `${JSON.stringify(req)}: ${String(err)}`);
    }
    t.deepEqual((await store.registry.snapshot()).endpoints, []);
  });

  test(`${name}: a malformed or oversized record is refused and counted, never listed`, async (t) => {
    const { store, writeRawEndpoint } = await make(t);
    await store.registry.register({ zone: 'sh-a', service: 'orders', id: 'good', url: 'http://127.0.0.1:9001' });
    await writeRawEndpoint('sh-a/orders/junk', 'not json');
    await writeRawEndpoint('sh-a/orders/nourl', JSON.stringify({ weight: 1, registeredAt: new Date().toISOString() }));
    await writeRawEndpoint('sh-a/orders/cred', JSON.stringify({ url: 'http://u:p@h:1', weight: 1, registeredAt: new Date().toISOString() }));
    await writeRawEndpoint('sh-a/orders/big', JSON.stringify({ url: 'http://h:1', weight: 1, registeredAt: new Date().toISOString(), pad: 'x'.repeat(MAX_RECORD_BYTES) }));
    // Fewer characters than the bound, more bytes (2 each in UTF-8): the bound is in bytes.
    await writeRawEndpoint('sh-a/orders/wide', JSON.stringify({ url: 'http://h:1', weight: 1, registeredAt: new Date().toISOString(), pad: '\u00e9'.repeat(MAX_RECORD_BYTES / 2 + 10) }));
    const snap = await store.registry.snapshot();
    t.deepEqual(ids(snap), ['sh-a/orders/good']);
    t.is(snap.refusedCount, 5);
    t.deepEqual(snap.refused.map((r) => r.key), ['sh-a/orders/big', 'sh-a/orders/cred', 'sh-a/orders/junk', 'sh-a/orders/nourl', 'sh-a/orders/wide']);
    t.regex(snap.refused.find((r) => r.key.endsWith('wide'))!.problem, /larger than/);
    t.regex(snap.refused.find((r) => r.key.endsWith('nourl'))!.problem, /url/);
    const watched = watchRegistry(t, store);
    await waitFor('a snapshot', () => watched.snapshots.length >= 1);
    t.is(watched.last()?.refusedCount, 5);
    t.deepEqual(ids(watched.last()), ['sh-a/orders/good']);
  });

  test(`${name}: an id held by another live instance (another URL) is refused, naming it and the holder's URL; the holder keeps it`, async (t) => {
    const { store, reopen } = await make(t);
    const other = reopen();
    const req = { zone: 'sh-a', service: 'orders', id: 'i-1', url: 'http://127.0.0.1:9001' };
    const a = await store.registry.register(req);
    const err = await t.throwsAsync(other.registry.register({ ...req, url: 'http://127.0.0.1:9002' }));
    t.true(isCellgateError(err, 'ENDPOINT_TAKEN'), String(err));
    t.regex(err!.message, /endpoint sh-a\/orders\/"i-1" is registered by another live instance at http:\/\/127\.0\.0\.1:9001/);
    t.deepEqual(await urls(other), ['i-1 http://127.0.0.1:9001 w1'], 'the first registration still holds it');
    // Once the holder withdraws, the id is free.
    await a.close();
    const b = await other.registry.register({ ...req, url: 'http://127.0.0.1:9002' });
    t.deepEqual(await urls(store), ['i-1 http://127.0.0.1:9002 w1']);
    await b.close();
  });

  test(`${name}: the same instance restarted (same id and URL, old record live) takes its record over at once; the old registration's close() leaves it`, async (t) => {
    const { store, reopen } = await make(t);
    const restarted = reopen();
    const req = { zone: 'sh-a', service: 'orders', id: 'i-1', url: 'http://127.0.0.1:9001' };
    const old = await store.registry.register(req);
    // The same endpoint ("http://h:p/" and "http://h:p" are one origin), registered anew with another weight.
    const now = await restarted.registry.register({ ...req, url: 'http://127.0.0.1:9001/', weight: 7 });
    t.deepEqual(await urls(store), ['i-1 http://127.0.0.1:9001/ w7']);
    await old.close();
    t.deepEqual(await urls(store), ['i-1 http://127.0.0.1:9001/ w7'], 'the old registration withdrew only its own record');
    await now.close();
    t.deepEqual(await urls(store), []);
  });

  // review15: in etcd the old registration's lease held nothing once a restart with its URL
  // took the record over; when that one withdrew, the record was gone for good while the old
  // registration, open and healthy, believed itself registered and was never told.
  test(`${name}: a registration whose record another registration of its URL took over puts it back when that one withdraws, and is not told "taken"`, async (t) => {
    const { store, reopen } = await make(t);
    const second = reopen();
    const observer = reopen();
    const watched = watchRegistry(t, observer);
    const req = { zone: 'sh-a', service: 'orders', id: 'i-1', url: 'http://127.0.0.1:9001', ttlMs: 1_000 };
    const held = (s: RegistrySnapshot | undefined) => s?.endpoints.map((e) => `${e.id} ${e.url} w${e.weight}`).join(',') ?? '';
    const a = await store.registry.register(req);
    t.teardown(() => a.close());
    let told: Error | null = null;
    void a.taken.then((err) => { told = err; });
    const b = await second.registry.register({ ...req, weight: 7 });
    await waitFor('the second registration\'s record', () => held(watched.last()) === 'i-1 http://127.0.0.1:9001 w7', 10_000);
    await b.close();
    await waitFor('the first registration\'s record back', () => held(watched.last()) === 'i-1 http://127.0.0.1:9001 w1', 10_000);
    t.is(told, null, 'the first registration was never taken');
    t.deepEqual(await urls(observer), ['i-1 http://127.0.0.1:9001 w1']);
    // It is still the record's owner: its close withdraws it.
    await a.close();
    await waitFor('the record withdrawn', () => held(watched.last()) === '', 10_000);
    t.deepEqual(await urls(observer), []);
  });

  test(`${name}: an id taken by another instance while the lease was lost is reported (ENDPOINT_TAKEN), not fought over`, async (t) => {
    const { store, writeRawEndpoint, leaseOf } = await make(t);
    const a = await store.registry.register({ zone: 'sh-a', service: 'orders', id: 'i-1', url: 'http://127.0.0.1:9001' });
    const loseLease = await leaseOf('sh-a/orders/i-1');
    await writeRawEndpoint('sh-a/orders/i-1', JSON.stringify({ url: 'http://127.0.0.1:9002', weight: 1, registeredAt: new Date().toISOString(), instance: 'another' }));
    await loseLease();
    const taken = await within(a.taken, 15_000, 'the registration to report the id taken');
    t.true(isCellgateError(taken, 'ENDPOINT_TAKEN'), String(taken));
    t.regex(taken.message, /sh-a\/orders\/"i-1" was taken by another instance at http:\/\/127\.0\.0\.1:9002/);
    t.deepEqual(await urls(store), ['i-1 http://127.0.0.1:9002 w1'], 'the other instance keeps it');
    await a.close();
    t.deepEqual(await urls(store), ['i-1 http://127.0.0.1:9002 w1'], 'close() does not withdraw the other instance');
  });

  // The guard reads one key, `<zone>/<service>/<id as encodeURIComponent spells it>`; a record
  // under another spelling of the same id (`%61` for `a`, `%2f` for `%2F`) was accepted as that
  // id, a second live record of it that no registration is ever refused by.
  test(`${name}: a record under another spelling of an id's key is refused, never a second record of that id`, async (t) => {
    const { store, writeRawEndpoint } = await make(t);
    const doc = (port: number) => JSON.stringify({ url: `http://127.0.0.1:${port}`, weight: 1, registeredAt: new Date().toISOString(), instance: 'foreign' });
    await writeRawEndpoint('sh-a/orders/%61', doc(9002));
    await writeRawEndpoint('sh-a/orders/x%2fy', doc(9003));
    const a = await store.registry.register({ zone: 'sh-a', service: 'orders', id: 'a', url: 'http://127.0.0.1:9001' });
    t.teardown(() => a.close());
    const s = await store.registry.snapshot();
    t.deepEqual(s.endpoints.map((e) => `${e.id} ${e.url}`), ['a http://127.0.0.1:9001']);
    t.deepEqual(s.refused.map((r) => r.key), ['sh-a/orders/%61', 'sh-a/orders/x%2fy']);
    t.true(s.refused.every((r) => /not the id's own key/.test(r.problem)), JSON.stringify(s.refused));
  });

  // Serial: 10,000 records (files, for the file store) read at every poll would starve the timers of the tests beside it.
  test.serial(`${name}: over the bound, the records the reader routes to go first (its priority); a watch ranks them again on refresh()`, async (t) => {
    const { store, writeRawEndpoints } = await make(t);
    const doc = JSON.stringify({ url: 'http://127.0.0.1:9001', weight: 1, registeredAt: new Date().toISOString() });
    // A flood under a zone no table has ("aaa" sorts before every real zone), filling the bound.
    await writeRawEndpoints(Array.from({ length: MAX_REGISTERED_ENDPOINTS }, (_, i) => [`aaa/default/x${String(i).padStart(5, '0')}`, doc] as const));
    await store.registry.register({ zone: 'sh-a', service: 'orders', id: 'real', url: 'http://127.0.0.1:9002' });
    const knowsShA: RegistryPriority = (zone) => (zone === 'sh-a' ? 0 : 2);
    const has = (s: RegistrySnapshot | undefined) => s?.endpoints.some((e) => e.id === 'real') === true;

    const ranked = await store.registry.snapshot(knowsShA);
    t.is(ranked.endpoints.length, MAX_REGISTERED_ENDPOINTS);
    t.true(has(ranked), 'the record of a known zone is kept');
    t.is(ranked.overLimitCount, 1);
    t.is(ranked.refusedCount, 1);
    t.deepEqual(ranked.refused, [{ key: 'aaa/default/x09999', problem: `over the limit of ${MAX_REGISTERED_ENDPOINTS} registered endpoints` }]);
    // Without a priority, by key: the same on every reader.
    const plain = await store.registry.snapshot();
    t.false(has(plain));
    t.is(plain.overLimitCount, 1);

    let priority: RegistryPriority = () => 0;
    const seen: RegistrySnapshot[] = [];
    const w = store.registry.watch({ onSnapshot: (s) => seen.push(s), priority: (zone, service) => priority(zone, service) });
    t.teardown(() => w.close());
    await waitFor('a first snapshot', () => seen.length >= 1, 15_000);
    t.false(has(seen.at(-1)));
    priority = knowsShA;
    w.refresh();
    await waitFor('the known zone\'s record after refresh()', () => has(seen.at(-1)), 15_000);
    t.is(seen.at(-1)!.overLimitCount, 1);
  });
}
