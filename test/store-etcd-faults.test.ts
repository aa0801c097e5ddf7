// The etcd store when etcd misbehaves: crashed and restarted, compacted past the revision
// a watcher would resume from, frozen (SIGSTOP), unreachable, leader killed, lease revoked.
// Each test runs its own etcd, since it breaks it. These tests always run: etcd3's own
// network-failure watch tests are skipped, and that is how such tests rot.
import test, { type ExecutionContext } from 'ava';
import { Etcd3 } from 'etcd3';
import { tableChecksum } from '../src/cells/checksum';
import { isCellgateError } from '../src/errors';
import { createEtcdStore, type EtcdStoreOptions } from '../src/store/etcd-store';
import type { CasResult, PresenceRecord, PresenceSnapshot, TableStore } from '../src/store/types';
import { startEtcd, startEtcdCluster, type EtcdHandle } from './helpers/etcd';
import { bumpedTable, demoTable } from './helpers/fixtures';
import { freePort } from './helpers/ports';
import { assertIncreasing, record, waitFor } from './store-contract';

const PREFIX = '/cellgate';

/** Short bounds so that failures are noticed in test time. */
const FAST: Partial<EtcdStoreOptions> = {
  callTimeoutMs: 1_000,
  watchCreateTimeoutMs: 1_000,
  watchdogIntervalMs: 500,
  retryMinMs: 50,
  retryMaxMs: 500,
};

async function ownEtcd(t: ExecutionContext): Promise<EtcdHandle> {
  const etcd = await startEtcd();
  t.teardown(() => etcd.stop());
  return etcd;
}

function open(t: ExecutionContext, endpoints: readonly string[], opts: Partial<EtcdStoreOptions> = {}): TableStore {
  const store = createEtcdStore({ endpoints, prefix: PREFIX, ...FAST, ...opts });
  t.teardown(() => store.close());
  return store;
}

function adminClient(t: ExecutionContext, endpoints: readonly string[]): Etcd3 {
  const client = new Etcd3({ hosts: endpoints.map((e) => `http://${e}`) });
  t.teardown(() => client.close());
  return client;
}

async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function okVersion(res: CasResult): number {
  if (!res.ok) throw new Error(`CAS conflict (current version ${res.current?.version})`);
  return res.version;
}

async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; result: PromiseSettledResult<T> }> {
  const startedAtMs = Date.now();
  const [result] = await Promise.allSettled([fn()]);
  return { ms: Date.now() - startedAtMs, result: result! };
}

function presenceRecord(id: string): PresenceRecord {
  const now = new Date().toISOString();
  return { id, zone: 'sh-a', appliedVersion: 1, checksum: 'sha256:x', inFlight: 0, startedAt: now, updatedAt: now, pid: process.pid, host: 'test' };
}

test('etcd faults: the watcher recovers after etcd crashes and restarts', async (t) => {
  const etcd = await ownEtcd(t);
  const store = open(t, etcd.endpoints);
  const v1 = okVersion(await store.compareAndSwap(0, demoTable()));
  const rec = record(t, store);
  await waitFor('connected with the table', () => rec.tables.length === 1 && rec.connection.at(-1) === true);

  await etcd.kill();
  await waitFor('the disconnection report', () => rec.connection.at(-1) === false);
  const down = await timed(() => store.load());
  t.is(down.result.status, 'rejected');
  t.true(isCellgateError((down.result as PromiseRejectedResult).reason, 'STORE_UNAVAILABLE'));
  t.true(down.ms < 3_000, `load took ${down.ms} ms while etcd was down`);

  await etcd.restart();
  await waitFor('the reconnection report', () => rec.connection.at(-1) === true, 15_000);
  const changed = bumpedTable(demoTable());
  okVersion(await open(t, etcd.endpoints).compareAndSwap(v1, changed));
  await waitFor('the change made after the restart', () => rec.tables.length === 2, 10_000);
  t.is(rec.last()?.checksum, tableChecksum(changed));
  assertIncreasing(t, rec.tables);
});

test('etcd faults: the presence watch re-reads after etcd restarts and delivers later changes', async (t) => {
  const etcd = await ownEtcd(t);
  const gateway = open(t, etcd.endpoints);
  const observer = open(t, etcd.endpoints);
  const snapshots: PresenceSnapshot[] = [];
  const errors: Error[] = [];
  const watch = observer.presence.watch({ onSnapshot: (s) => snapshots.push(s), onError: (e) => errors.push(e) });
  t.teardown(() => watch.close());
  const reg = await gateway.presence.register(presenceRecord('gw-1'), 30);
  await waitFor('gw-1 seen', () => snapshots.at(-1)?.records.some((r) => r.id === 'gw-1') === true);
  await etcd.kill();
  await waitFor('the watch reports the trouble', () => errors.length >= 1, 15_000);
  await etcd.restart();
  await eventually('the update after the restart', async () => {
    await reg.update({ ...presenceRecord('gw-1'), appliedVersion: 7 });
    return true;
  });
  await waitFor('the change made after the restart', () => snapshots.at(-1)?.records.find((r) => r.id === 'gw-1')?.appliedVersion === 7, 15_000);
  t.true(isCellgateError(errors[0], 'STORE_UNAVAILABLE'));
});

test('etcd faults: a watcher whose start revision was compacted resyncs and delivers the latest table', async (t) => {
  const etcd = await ownEtcd(t);
  const admin = adminClient(t, etcd.endpoints);
  const writer = open(t, etcd.endpoints);
  let version = okVersion(await writer.compareAndSwap(0, demoTable()));
  const startRevisions: number[] = [];
  let compactedAt = 0;
  const store = open(t, etcd.endpoints, {
    watchdogIntervalMs: 60_000, // the watchdog must not be what saves us here
    testHooks: {
      // Between the watch's read and its watcher's creation: other writes, then a compaction.
      async beforeWatchCreate(fromRevision) {
        startRevisions.push(fromRevision);
        if (startRevisions.length > 1) return;
        for (let i = 1; i <= 3; i++) version = okVersion(await writer.compareAndSwap(version, bumpedTable(demoTable(), i)));
        await admin.kv.compact({ revision: version, physical: true });
        compactedAt = version;
      },
    },
  });
  const rec = record(t, store);
  await waitFor('the writes and the compaction', () => compactedAt > 0, 5_000);
  await waitFor('the latest table', () => rec.last()?.version === compactedAt, 5_000);
  t.true(startRevisions[0]! <= compactedAt, 'the first watcher started before the compaction point');
  t.true(startRevisions.length >= 2, 'a second watcher was created after the resync');
  t.true(startRevisions[1]! > compactedAt);
  t.deepEqual(rec.rejected, []);
  assertIncreasing(t, rec.tables);

  // And the new watcher works.
  const next = okVersion(await writer.compareAndSwap(version, bumpedTable(demoTable(), 9)));
  await waitFor('a change after the resync', () => rec.last()?.version === next, 5_000);
});

test('etcd faults: the watchdog delivers what a silent watcher missed', async (t) => {
  const etcd = await ownEtcd(t);
  const hooks = { dropWatchEvents: false };
  const store = open(t, etcd.endpoints, { watchdogIntervalMs: 300, testHooks: hooks });
  const writer = open(t, etcd.endpoints);
  const v1 = okVersion(await writer.compareAndSwap(0, demoTable()));
  const rec = record(t, store);
  await waitFor('connected with the table', () => rec.tables.length === 1 && rec.connection.at(-1) === true);

  hooks.dropWatchEvents = true;
  const startedAtMs = Date.now();
  const v2 = okVersion(await writer.compareAndSwap(v1, bumpedTable(demoTable())));
  await waitFor('the watchdog delivery', () => rec.last()?.version === v2, 5_000);
  t.log(`watchdog delivered after ${Date.now() - startedAtMs} ms (interval 300 ms)`);
  t.deepEqual(rec.connection, [true]);
});

test('etcd faults: a watcher creation that never settles (etcd frozen) is bounded and retried', async (t) => {
  const etcd = await ownEtcd(t);
  t.teardown(() => etcd.resume());
  const writer = open(t, etcd.endpoints);
  const v1 = okVersion(await writer.compareAndSwap(0, demoTable()));
  let frozen = false;
  const store = open(t, etcd.endpoints, {
    testHooks: {
      beforeWatchCreate() {
        if (frozen) return;
        frozen = true;
        etcd.pause(); // connections stay open, nothing answers: create() would wait forever
      },
    },
  });
  const rec = record(t, store);
  await waitFor('the disconnection report', () => rec.connection.at(-1) === false, 10_000);
  t.is(rec.last()?.version, v1); // read before the freeze
  etcd.resume();
  await waitFor('the reconnection report', () => rec.connection.at(-1) === true, 15_000);
  const v2 = okVersion(await writer.compareAndSwap(v1, bumpedTable(demoTable())));
  await waitFor('the change after the thaw', () => rec.last()?.version === v2, 10_000);
  t.pass();
});

test('etcd faults: calls against a dead endpoint fail with STORE_UNAVAILABLE within the bound', async (t) => {
  const deadEndpoint = `127.0.0.1:${await freePort()}`;
  const store = open(t, [deadEndpoint]);
  for (const [what, call] of [
    ['load', () => store.load()],
    ['compareAndSwap', () => store.compareAndSwap(0, demoTable())],
    ['listHistory', () => store.listHistory()],
    ['presence.list', () => store.presence.list()],
    ['presence.register', () => store.presence.register(presenceRecord('gw-x'), 2)],
  ] as const) {
    const { ms, result } = await timed(call as () => Promise<unknown>);
    t.is(result.status, 'rejected', what);
    t.true(isCellgateError((result as PromiseRejectedResult).reason, 'STORE_UNAVAILABLE'), what);
    t.true(ms < 3_000, `${what} took ${ms} ms`);
  }
  // A watch reports the outage, delivers nothing, and closes promptly.
  const rec = record(t, store);
  await waitFor('the disconnection report', () => rec.connection.at(-1) === false);
  t.is(rec.tables.length, 0);
  const closing = await timed(() => rec.watch.close());
  t.true(closing.ms < 2_000, `close took ${closing.ms} ms`);
});

test('etcd faults: calls against a frozen etcd fail within the call bound instead of hanging', async (t) => {
  const etcd = await ownEtcd(t);
  t.teardown(() => etcd.resume());
  const store = open(t, etcd.endpoints);
  okVersion(await store.compareAndSwap(0, demoTable()));
  etcd.pause();
  const { ms, result } = await timed(() => store.load());
  etcd.resume();
  t.true(isCellgateError((result as PromiseRejectedResult).reason, 'STORE_UNAVAILABLE'), `load: ${result.status === 'rejected' ? String(result.reason) : 'it answered'}`);
  t.true(ms >= 900 && ms < 3_000, `load took ${ms} ms (bound 1000 ms)`);
  await eventually('etcd answering again', async () => (await store.load()) !== null);
});

test('etcd faults: the presence record comes back after etcd restarts', async (t) => {
  const etcd = await ownEtcd(t);
  const store = open(t, etcd.endpoints);
  await store.presence.register(presenceRecord('gw-1'), 1);
  const observer = open(t, etcd.endpoints);
  t.deepEqual((await observer.presence.list()).map((r) => r.id), ['gw-1']);

  await etcd.kill();
  // Longer than twice the TTL: etcd3 gives the lease up as lost, so it must be granted again.
  await new Promise((resolve) => setTimeout(resolve, 3_000));
  await etcd.restart();
  await eventually('the record after the restart', async () => (await observer.presence.list()).some((r) => r.id === 'gw-1'));
  // It stays: the new lease is kept alive.
  await new Promise((resolve) => setTimeout(resolve, 2_500));
  t.deepEqual((await observer.presence.list()).map((r) => r.id), ['gw-1']);
});

test('etcd faults: a presence lease revoked from under the gateway is granted again', async (t) => {
  const etcd = await ownEtcd(t);
  const admin = adminClient(t, etcd.endpoints);
  const store = open(t, etcd.endpoints);
  const reg = await store.presence.register(presenceRecord('gw-1'), 3);
  const key = `${PREFIX}/gateways/gw-1`;
  const before = (await admin.get(key).exec()).kvs[0]!.lease;
  await admin.leaseClient.leaseRevoke({ ID: before });
  await eventually('the record on a new lease', async () => {
    const kv = (await admin.get(key).exec()).kvs[0];
    return kv !== undefined && kv.lease !== before;
  }, 10_000);
  await reg.update({ ...presenceRecord('gw-1'), appliedVersion: 7 });
  await eventually('the updated record', async () => (await store.presence.list())[0]?.appliedVersion === 7, 10_000);
  t.is((await store.presence.list())[0]?.appliedVersion, 7);
});

test('etcd faults: with three members, killing the leader does not stop writes or the watch', async (t) => {
  const cluster = await startEtcdCluster(3);
  t.teardown(() => cluster.stop());
  const store = open(t, cluster.endpoints);
  const writer = open(t, cluster.endpoints);
  const v1 = okVersion(await writer.compareAndSwap(0, demoTable()));
  const rec = record(t, store);
  await waitFor('connected with the table', () => rec.tables.length === 1 && rec.connection.at(-1) === true);

  const leader = await cluster.leader();
  await leader.kill();
  const newLeader = await cluster.leader();
  t.not(newLeader.name, leader.name);
  const changed = bumpedTable(demoTable());
  let v2 = 0;
  await eventually('a write after the leader died', async () => {
    const res = await writer.compareAndSwap(v1, changed);
    // An attempt that failed on the dead member may have committed all the same.
    v2 = res.ok ? res.version : res.current?.checksum === tableChecksum(changed) ? res.current.version : 0;
    return v2 > 0;
  });
  await waitFor('the change', () => rec.last()?.version === v2, 15_000);
  assertIncreasing(t, rec.tables);
});

test('etcd faults: the registry watch survives etcd crashing and a compaction, and re-reads what changed meanwhile', async (t) => {
  const etcd = await ownEtcd(t);
  const admin = adminClient(t, etcd.endpoints);
  const instance = open(t, etcd.endpoints);
  const gateway = open(t, etcd.endpoints);
  const ids: string[][] = [];
  const errors: Error[] = [];
  const watch = gateway.registry.watch({ onSnapshot: (s) => ids.push(s.endpoints.map((e) => e.id)), onError: (e) => errors.push(e) });
  t.teardown(() => watch.close());
  await instance.registry.register({ zone: 'sh-a', service: 'orders', id: 'a', url: 'http://127.0.0.1:9001', ttlMs: 10_000 });
  await waitFor('a seen', () => ids.at(-1)?.join() === 'a');
  await etcd.kill();
  await waitFor('the watch reports the trouble', () => errors.length >= 1, 15_000);
  await etcd.restart();
  // Meanwhile another instance comes, and etcd compacts past every revision the watch knew.
  await eventually('b registered after the restart', async () => {
    await instance.registry.register({ zone: 'sh-a', service: 'orders', id: 'b', url: 'http://127.0.0.1:9002', ttlMs: 10_000 });
    return true;
  });
  const rev = Number((await admin.get('/anything').exec()).header.revision);
  await admin.kv.compact({ revision: rev, physical: true });
  await waitFor('both seen after the restart and the compaction', () => ids.at(-1)?.join() === 'a,b', 15_000);
  t.true(isCellgateError(errors[0], 'STORE_UNAVAILABLE'));
});

test('etcd faults: an endpoint lease revoked from under the instance is granted again; close() still withdraws', async (t) => {
  const etcd = await ownEtcd(t);
  const admin = adminClient(t, etcd.endpoints);
  const store = open(t, etcd.endpoints);
  const reg = await store.registry.register({ zone: 'sh-a', service: 'orders', id: 'i/1', url: 'http://127.0.0.1:9001', ttlMs: 3_000 });
  const key = `${PREFIX}/endpoints/sh-a/orders/i%2F1`;
  const before = (await admin.get(key).exec()).kvs[0]!.lease;
  await admin.leaseClient.leaseRevoke({ ID: before });
  await eventually('the record on a new lease', async () => {
    const kv = (await admin.get(key).exec()).kvs[0];
    return kv !== undefined && kv.lease !== before;
  }, 10_000);
  t.deepEqual((await store.registry.snapshot()).endpoints.map((e) => e.id), ['i/1']);
  await reg.close();
  t.is((await admin.get(key).exec()).kvs.length, 0, 'withdrawn at once');
});

test('etcd faults: a lost endpoint lease is granted again over the instance\'s own record still in etcd (never refused by itself)', async (t) => {
  const etcd = await ownEtcd(t);
  const admin = adminClient(t, etcd.endpoints);
  const store = open(t, etcd.endpoints);
  const reg = await store.registry.register({ zone: 'sh-a', service: 'orders', id: 'i-1', url: 'http://127.0.0.1:9001', ttlMs: 3_000 });
  const key = `${PREFIX}/endpoints/sh-a/orders/i-1`;
  const own = (await admin.get(key).exec()).kvs[0]!;
  // Its own record, on a lease that outlives the instance's (as after an etcd restart, which
  // renews leases the client has already given up as lost).
  const elsewhere = admin.lease(60, { autoKeepAlive: false });
  t.teardown(() => elsewhere.revoke().catch(() => undefined));
  await elsewhere.put(key).value(own.value);
  const elsewhereId = await elsewhere.grant();
  await admin.leaseClient.leaseRevoke({ ID: own.lease });
  await eventually('the record on the instance\'s new lease', async () => {
    const kv = (await admin.get(key).exec()).kvs[0];
    return kv !== undefined && kv.lease !== own.lease && kv.lease !== elsewhereId;
  }, 10_000);
  t.is(await Promise.race([reg.taken.then(() => 'taken'), Promise.resolve('held')]), 'held');
  await elsewhere.revoke();
  t.deepEqual((await store.registry.snapshot()).endpoints.map((e) => e.url), ['http://127.0.0.1:9001'], 'still registered on its own lease');
  await reg.close();
  t.is((await admin.get(key).exec()).kvs.length, 0, 'withdrawn at once');
});

test('etcd faults: a registration\'s key watch compacted past its start revision resyncs by reading the key, and puts back a record deleted meanwhile', async (t) => {
  const etcd = await ownEtcd(t);
  const admin = adminClient(t, etcd.endpoints);
  const req = { zone: 'sh-a', service: 'orders', id: 'i-1', url: 'http://127.0.0.1:9001', ttlMs: 3_000 };
  const key = `${PREFIX}/endpoints/sh-a/orders/i-1`;
  const startRevisions: number[] = [];
  let compactedAt = 0;
  const second = open(t, etcd.endpoints);
  const store = open(t, etcd.endpoints, {
    watchdogIntervalMs: 60_000, // the periodic read must not be what saves us here
    testHooks: {
      // Between the key watch's first read and its watcher: another registration of the URL
      // takes the record over and withdraws it, then a compaction drops those events.
      async beforeWatchCreate(fromRevision) {
        startRevisions.push(fromRevision);
        if (startRevisions.length > 1) return;
        const b = await second.registry.register({ ...req, weight: 7 });
        await b.close();
        const revision = Number((await admin.get(key).exec()).header.revision);
        await admin.kv.compact({ revision, physical: true });
        compactedAt = revision;
      },
    },
  });
  const a = await store.registry.register(req);
  t.teardown(() => a.close());
  await waitFor('the takeover, withdrawal and compaction', () => compactedAt > 0, 10_000);
  await eventually('the record back', async () => (await second.registry.snapshot()).endpoints.some((e) => e.weight === 1), 10_000);
  t.true(startRevisions[0]! <= compactedAt, 'the first watcher started before the compaction point');
  t.true(startRevisions.length >= 2 && startRevisions[1]! > compactedAt, 'a watcher after the resync read');
  t.is(await Promise.race([a.taken.then(() => 'taken'), Promise.resolve('held')]), 'held');
});
