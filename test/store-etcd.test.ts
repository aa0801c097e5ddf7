// The etcd store against a real etcd (started here on free ports): the shared contract,
// plus etcd specifics. Failure behaviour is in store-etcd-faults.test.ts.
import test, { type ExecutionContext } from 'ava';
import { randomBytes } from 'node:crypto';
import { Etcd3, EtcdLeaseInvalidError, GRPCUnavailableError } from 'etcd3';
import { perCallPolicy, runAs } from '../src/store/etcd-policy';
import { isCellgateError } from '../src/errors';
import { createEtcdStore, type EtcdStoreOptions } from '../src/store/etcd-store';
import { openStore } from '../src/store/open';
import { encodeTableValue, parseTableValue, tableValueEncoding, tableValueText } from '../src/store/table-encoding';
import type { RegistrySnapshot, TableStore } from '../src/store/types';
import type { VersionedTable } from '../src/cells/types';
import { deflateRawSync } from 'node:zlib';
import { until } from './helpers/wait';
import { freePorts } from './helpers/ports';
import { startEtcd, type EtcdHandle } from './helpers/etcd';
import { bumpedTable, demoTable } from './helpers/fixtures';
import { registryContract } from './registry-contract';
import { storeContract } from './store-contract';

let etcd: EtcdHandle;
let admin: Etcd3;

test.before(async () => {
  etcd = await startEtcd();
  admin = new Etcd3({ hosts: etcd.endpoints.map((e) => `http://${e}`) });
});

test.after.always(async () => {
  admin?.close();
  await etcd?.stop();
});

function uniquePrefix(): string {
  return `/test-${randomBytes(6).toString('hex')}`;
}

function open(t: ExecutionContext, prefix: string, opts: Partial<EtcdStoreOptions> = {}): TableStore {
  // A short watchdog, so that "rejected once" is checked across several re-reads.
  const store = createEtcdStore({ endpoints: etcd.endpoints, prefix, watchdogIntervalMs: 300, callTimeoutMs: 5_000, ...opts });
  t.teardown(() => store.close());
  return store;
}

storeContract('etcd', async (t) => {
  const prefix = uniquePrefix();
  return {
    store: open(t, prefix),
    reopen: () => open(t, prefix),
    writeRawTable: async (doc) => {
      await admin.put(`${prefix}/table`).value(JSON.stringify(doc));
    },
    writeRawPresence: async (id, raw) => {
      await admin.put(`${prefix}/gateways/${encodeURIComponent(id)}`).value(JSON.stringify(raw));
    },
  };
});

registryContract('etcd', async (t) => {
  const prefix = uniquePrefix();
  return {
    store: open(t, prefix),
    reopen: () => open(t, prefix),
    writeRawEndpoint: async (key, text) => {
      // On a lease, as a live registrar would: the record goes when the test's client closes.
      const lease = admin.lease(30);
      t.teardown(() => lease.revoke().catch(() => undefined));
      await lease.put(`${prefix}/endpoints/${key}`).value(text);
    },
    writeRawEndpoints: async (records) => {
      const lease = admin.lease(60);
      t.teardown(() => lease.revoke().catch(() => undefined));
      const id = await lease.grant();
      for (let i = 0; i < records.length; i += 100) {
        await admin.if(`${prefix}/table`, 'Version', '>', -1) // always true: a batch of puts in one transaction
          .then(...records.slice(i, i + 100).map(([key, text]) => admin.put(`${prefix}/endpoints/${key}`).value(text).lease(id)))
          .commit();
      }
    },
    leaseOf: async (key) => {
      const id = (await admin.get(`${prefix}/endpoints/${key}`).exec()).kvs[0]?.lease;
      return async () => {
        // Already gone is lost too (a registration that found its key taken revokes its own lease).
        if (id !== undefined && String(id) !== '0') await admin.leaseClient.leaseRevoke({ ID: id }).catch((err: unknown) => {
          if (!(err instanceof EtcdLeaseInvalidError)) throw err;
        });
      };
    },
  };
});

test('etcd: the version is the key mod revision; the value is the table\'s JSON, or (tableEncoding deflate) compressed and tagged', async (t) => {
  const prefix = uniquePrefix();
  const store = open(t, prefix);
  const res = await store.compareAndSwap(0, demoTable());
  t.true(res.ok);
  const plain = await admin.get(`${prefix}/table`).exec();
  t.is(Number(plain.kvs[0]!.mod_revision), res.ok ? res.version : -1);
  t.deepEqual(JSON.parse(plain.kvs[0]!.value.toString('utf8')), demoTable(), 'by default the document itself, readable by every gateway');
  const deflating = open(t, prefix, { tableEncoding: 'deflate' });
  if (!res.ok) throw new Error('create failed');
  t.true((await deflating.compareAndSwap(res.version, demoTable())).ok);
  const raw = await admin.get(`${prefix}/table`).exec();
  const value = raw.kvs[0]!.value;
  t.is(value.subarray(0, 17).toString('latin1'), 'cellgate:deflate:', 'tagged, so `etcdctl get` says what it is');
  t.is(tableValueEncoding(value), 'deflate');
  t.deepEqual(parseTableValue(value, 'test', 1), demoTable());
  const json = Buffer.byteLength(JSON.stringify(demoTable()));
  t.true(value.length * 3 < json, `${value.length} bytes stored for ${json} bytes of JSON`);
});

test('etcd: either encoding is read by load and watch with the same checksum', async (t) => {
  const prefix = uniquePrefix();
  const plain = open(t, prefix);
  const compressed = open(t, prefix, { tableEncoding: 'deflate' });
  const seen: VersionedTable[] = [];
  const w = compressed.watch({ onTable: (vt) => seen.push(vt), onRejected: () => undefined, onConnection: () => undefined });
  t.teardown(() => w.close());
  const first = await plain.compareAndSwap(0, demoTable());
  if (!first.ok) throw new Error('create failed');
  const raw = await admin.get(`${prefix}/table`).exec();
  t.deepEqual(JSON.parse(raw.kvs[0]!.value.toString('utf8')), demoTable(), 'the document itself, as before');
  const second = await compressed.compareAndSwap(first.version, bumpedTable(demoTable()));
  if (!second.ok) throw new Error('update failed');
  await until('both versions through the watch', () => seen.some((vt) => vt.version === second.version));
  t.is(seen.find((vt) => vt.version === first.version)?.checksum, first.checksum);
  t.is(seen.at(-1)?.checksum, second.checksum);
  t.is((await plain.load())?.checksum, second.checksum, 'a store writing JSON reads the compressed value');
  t.true(isCellgateError(t.throws(() => createEtcdStore({ endpoints: etcd.endpoints, tableEncoding: 'gzip' as never })), 'USAGE'));
});

test('etcd: a tagged value that does not inflate is INVALID_TABLE naming its version; the watcher keeps the last good table', async (t) => {
  const prefix = uniquePrefix();
  const store = open(t, prefix, { tableEncoding: 'deflate' });
  const first = await store.compareAndSwap(0, demoTable());
  if (!first.ok) throw new Error('create failed');
  const tables: VersionedTable[] = [];
  const rejected: { version: number; message: string }[] = [];
  const w = store.watch({ onTable: (vt) => tables.push(vt), onRejected: (err, version) => rejected.push({ version, message: err.message }), onConnection: () => undefined });
  t.teardown(() => w.close());
  await until('the first table', () => tables.length === 1);
  const put = await admin.put(`${prefix}/table`).value(Buffer.concat([Buffer.from('cellgate:deflate:'), Buffer.from('not deflate at all')])).exec();
  const badVersion = Number(put.header.revision);
  await until('the rejection', () => rejected.length === 1);
  t.is(rejected[0]!.version, badVersion);
  t.regex(rejected[0]!.message, /not a valid cellgate:deflate: value/);
  t.is(tables.length, 1);
  const loadErr = await t.throwsAsync(store.load());
  t.true(isCellgateError(loadErr, 'INVALID_TABLE'));
  t.is((loadErr as unknown as { detail: { version: number } }).detail.version, badVersion);
});

test('a compressed value is inflated within a bound: one that expands past it is refused, not allocated', (t) => {
  const bomb = Buffer.concat([Buffer.from('cellgate:deflate:'), deflateRawSync(Buffer.alloc(4 * 1024 * 1024, 0x20))]);
  t.true(bomb.length < 10_000);
  const err = t.throws(() => tableValueText(bomb, 'etcd:x/table', 7, 1024 * 1024));
  t.true(isCellgateError(err, 'INVALID_TABLE'));
  t.regex(err?.message ?? '', /version 7: the compressed table expands to more than 1048576 bytes/);
  t.is(tableValueText(encodeTableValue(demoTable(), 'deflate'), 'x', 1), JSON.stringify(demoTable()));
  t.is(tableValueText(encodeTableValue(demoTable(), 'json'), 'x', 1), JSON.stringify(demoTable()));
});

test('etcd: a deleted table key can be created again with version 0', async (t) => {
  const prefix = uniquePrefix();
  const store = open(t, prefix);
  t.true((await store.compareAndSwap(0, demoTable())).ok);
  await admin.delete().key(`${prefix}/table`);
  t.is(await store.load(), null);
  t.true((await store.compareAndSwap(0, demoTable())).ok);
});

test('etcd: history is written in the table transaction; its version is the table key\'s mod revision', async (t) => {
  const prefix = uniquePrefix();
  const store = open(t, prefix);
  let version = 0;
  for (let i = 0; i < 12; i++) {
    const res = await store.compareAndSwap(version, bumpedTable(demoTable(), i));
    if (!res.ok) throw new Error('write failed');
    // Someone else's key between writes: revisions (and so versions) are not consecutive.
    await admin.put(`${prefix}-other/k`).value(String(i));
    const raw = await admin.get(`${prefix}/table`).exec();
    t.is(Number(raw.kvs[0]!.mod_revision), res.version);
    version = res.version;
  }
  const history = await store.listHistory();
  t.is(history.length, 12);
  t.is(history.at(-1)?.versionAfter, version);
  for (let i = 1; i < history.length; i++) t.is(history[i]!.versionBefore, history[i - 1]!.versionAfter, `entry ${i} follows entry ${i - 1}`);
});

test('etcd: a closed store refuses calls', async (t) => {
  const store = createEtcdStore({ endpoints: etcd.endpoints, prefix: uniquePrefix() });
  await store.close();
  await store.close();
  t.true(isCellgateError(await t.throwsAsync(store.load()), 'STORE_UNAVAILABLE'));
});

test('etcd: bad options are refused up front', (t) => {
  for (const opts of [{ endpoints: [] }, { endpoints: ['no-port'] }, { endpoints: ['h:1'], prefix: 'relative' }, { endpoints: ['h:1'], callTimeoutMs: 0 }]) {
    t.true(isCellgateError(t.throws(() => createEtcdStore(opts as EtcdStoreOptions)), 'USAGE'), JSON.stringify(opts));
  }
});

test('the etcd harness fails loudly when etcd is not installed', async (t) => {
  const savedPath = process.env.PATH;
  process.env.PATH = '/nonexistent';
  const starting = startEtcd(); // looks etcd up before its first await
  process.env.PATH = savedPath;
  const err = await t.throwsAsync(starting);
  t.regex(err?.message ?? '', /etcd not found: install it with `apt-get install -y etcd-server`/);
});

test('openStore opens an etcd store with a prefix', async (t) => {
  const prefix = uniquePrefix();
  const store = openStore(`etcd:${etcd.endpoints.join(',')}`, { prefix });
  t.teardown(() => store.close());
  t.is(store.description, `etcd:${etcd.endpoints.join(',')}${prefix}`);
  t.true((await store.compareAndSwap(0, demoTable())).ok);
  t.true(await admin.get(`${prefix}/table`).exists());
});

test('etcd: a write whose reply is lost is not re-sent: one re-read finds it committed, with its history', async (t) => {
  const prefix = uniquePrefix();
  const hooks: { loseNextWriteReply?: boolean } = {};
  const store = open(t, prefix, { testHooks: hooks });
  const first = await store.compareAndSwap(0, demoTable());
  if (!first.ok) throw new Error('create failed');
  hooks.loseNextWriteReply = true;
  const changed = bumpedTable(demoTable());
  const res = await store.compareAndSwap(first.version, changed, { actor: 'a', at: 'now', reason: 'lost reply', action: 'x', summary: [] });
  t.false(hooks.loseNextWriteReply, 'the hook fired');
  t.true(res.ok, 'reconciled as a success');
  if (!res.ok) return;
  const raw = await admin.get(`${prefix}/table`).exec();
  t.is(Number(raw.kvs[0]!.mod_revision), res.version, 'the version the transaction produced');
  const history = await store.listHistory();
  t.deepEqual(history.map((h) => [h.versionBefore, h.versionAfter, h.reason]), [[0, first.version, ''], [first.version, res.version, 'lost reply']]);
});

test('etcd: a write that got no answer and did not land is reported unavailable, not re-sent and not claimed', async (t) => {
  const prefix = uniquePrefix();
  const hooks: { dropNextWrite?: boolean } = {};
  const store = open(t, prefix, { testHooks: hooks });
  const first = await store.compareAndSwap(0, demoTable());
  if (!first.ok) throw new Error('create failed');
  hooks.dropNextWrite = true;
  const err = await t.throwsAsync(store.compareAndSwap(first.version, bumpedTable(demoTable())));
  t.true(isCellgateError(err, 'STORE_UNAVAILABLE'));
  t.regex(err?.message ?? "", /has not landed yet \(table still at version \d+\), but it may still commit: its outcome is unknown and it was not re-sent/);
  t.is((await store.load())?.version, first.version);
  t.is((await store.listHistory()).length, 1);
  // Meanwhile another writer won: the same unknown outcome is then a plain conflict.
  const other = open(t, prefix);
  const won = await other.compareAndSwap(first.version, bumpedTable(demoTable(), 2));
  hooks.dropNextWrite = true;
  const lost = await store.compareAndSwap(first.version, bumpedTable(demoTable(), 3));
  t.false(lost.ok);
  if (!lost.ok && won.ok) t.is(lost.current?.version, won.version);
});

test('the etcd call policy retries a read on a recoverable error, and never a write', async (t) => {
  const policy = perCallPolicy({ readAttempts: 3, hooks: {} });
  const failing = () => {
    let calls = 0;
    return { fn: async () => { calls++; throw new GRPCUnavailableError('connection lost'); }, calls: () => calls };
  };
  const read = failing();
  await t.throwsAsync(runAs('read', () => policy.execute(read.fn)));
  t.is(read.calls(), 3, 'a read is tried on up to 3 members');
  const write = failing();
  await t.throwsAsync(runAs('write', () => policy.execute(write.fn)));
  t.is(write.calls(), 1, 'a write is sent once');
  const unmarked = failing();
  await t.throwsAsync(policy.execute(unmarked.fn));
  t.is(unmarked.calls(), 1, 'an unmarked call is treated as a write');
  let badCalls = 0;
  await t.throwsAsync(runAs('read', () => policy.execute(async () => { badCalls++; throw new Error('not recoverable'); })));
  t.is(badCalls, 1, 'only recoverable errors are retried');
  // A write refused before it could be applied (no leader yet, or no connection to send it on)
  // goes to the next member like a read: sending it again cannot apply it twice.
  let refusedCalls = 0;
  const afterElection = await runAs('write', () => policy.execute(async () => {
    refusedCalls++;
    if (refusedCalls < 3) throw new GRPCUnavailableError(refusedCalls === 1 ? 'etcdserver: no leader' : 'No connection established');
    return 'written';
  }));
  t.is(afterElection, 'written');
  t.is(refusedCalls, 3);
});

test('etcd: the same table again against a replaced version is a conflict (no checksum comparison papers over it)', async (t) => {
  const prefix = uniquePrefix();
  const store = open(t, prefix);
  const first = await store.compareAndSwap(0, demoTable());
  if (!first.ok) throw new Error('create failed');
  const committed = await store.compareAndSwap(first.version, bumpedTable(demoTable()));
  // The same table against the old version (as a blind re-send would be): a conflict, whatever the checksum.
  const again = await store.compareAndSwap(first.version, bumpedTable(demoTable()));
  t.true(committed.ok);
  t.false(again.ok);
  if (!again.ok && committed.ok) t.is(again.current?.version, committed.version);
});

// A gateway calls refresh() whenever it applies a table with other zones, which can come
// before the registry watch has read anything (etcd unreachable at start, a table from the
// cache). It delivered a snapshot of nothing: an empty registry at revision 0 that no one
// read, applied and published in presence as the registry this gateway sees.
test('etcd: a registry watch that has read nothing delivers nothing on refresh()', async (t) => {
  const [deadPort] = await freePorts(1);
  const store = open(t, uniquePrefix(), { endpoints: [`127.0.0.1:${deadPort}`], callTimeoutMs: 1_000 });
  const seen: RegistrySnapshot[] = [];
  let errors = 0;
  const w = store.registry.watch({ onSnapshot: (s) => seen.push(s), onError: () => { errors += 1; } });
  t.teardown(() => w.close());
  await until('the watch to fail its first read', () => errors > 0, 10_000);
  w.refresh();
  // deliver() runs at setImmediate: two turns later, whatever refresh() scheduled has run.
  await new Promise<void>((resolve) => setImmediate(resolve));
  await new Promise<void>((resolve) => setImmediate(resolve));
  t.deepEqual(seen, [], 'no snapshot of a registry never read');
});

test('etcd: refresh() after the first read delivers the ranking anew from what was read', async (t) => {
  const prefix = uniquePrefix();
  const store = open(t, prefix);
  const reg = await store.registry.register({ zone: 'sh-a', service: 'orders', id: 'i-1', url: 'http://127.0.0.1:9001' });
  t.teardown(() => reg.close());
  const seen: RegistrySnapshot[] = [];
  const w = store.registry.watch({ onSnapshot: (s) => seen.push(s) });
  t.teardown(() => w.close());
  await until('the first snapshot', () => seen.length > 0, 10_000);
  w.refresh(); // the same ranking: nothing new to deliver
  await new Promise<void>((resolve) => setImmediate(resolve));
  await new Promise<void>((resolve) => setImmediate(resolve));
  t.is(seen.length, 1);
  t.deepEqual(seen[0]!.endpoints.map((e) => e.id), ['i-1']);
  t.true(seen[0]!.version > 0);
});

// review15: a registration whose record another registration of its URL took over kept a lease
// holding nothing; when that one's lease ended, the record was gone for good and no one was told.
test('etcd: a registration yields its key to another registration of its URL (a lost lease re-granted does not take it back) and puts its record back, on its own lease, when that one\'s lease ends', async (t) => {
  const prefix = uniquePrefix();
  const key = `${prefix}/endpoints/sh-a/orders/i-1`;
  const req = { zone: 'sh-a', service: 'orders', id: 'i-1', url: 'http://127.0.0.1:9001', ttlMs: 2_000 };
  const a = await open(t, prefix).registry.register(req);
  t.teardown(() => a.close());
  let told: Error | null = null;
  void a.taken.then((err) => { told = err; });
  const aLease = String((await admin.get(key).exec()).kvs[0]!.lease);
  const b = await open(t, prefix).registry.register({ ...req, weight: 7 });
  t.teardown(() => b.close());
  const taken = (await admin.get(key).exec()).kvs[0]!;
  const bLease = String(taken.lease);
  // Everything written to the key from here on.
  const writes: string[] = [];
  const watcher = await admin.watch().key(key).startRevision(String(Number(taken.mod_revision) + 1)).create();
  t.teardown(() => watcher.cancel());
  watcher.on('put', (kv) => writes.push(`put w${(JSON.parse(kv.value.toString()) as { weight: number }).weight} lease ${kv.lease}`));
  watcher.on('delete', () => writes.push('delete'));

  // A's lease lost while B holds the key: re-granted, and B's record left alone (same URL).
  await admin.leaseClient.leaseRevoke({ ID: aLease });
  const leases = async () => (await admin.leaseClient.leaseLeases()).leases.map((l) => String(l.ID));
  await until('a new lease for A', async () => (await leases()).some((id) => id !== aLease && id !== bLease), 10_000);
  t.is(told, null, 'not taken: the holder routes to the same URL');

  // B dies: its lease ends (revoked here, as expiry would), its record goes.
  await admin.leaseClient.leaseRevoke({ ID: bLease });
  await until('A\'s record back', () => writes.length >= 2, 10_000);
  const back = (await admin.get(key).exec()).kvs[0]!;
  t.not(String(back.lease), aLease);
  t.not(String(back.lease), bLease);
  t.deepEqual(writes, ['delete', `put w1 lease ${back.lease}`], 'one put, after the delete: nothing fought over');
  t.is(told, null);
  await a.close();
  t.is((await admin.get(key).exec()).kvs.length, 0, 'its own record: withdrawn at once');
});

test('etcd: a registration\'s record deleted while its lease lives is put back (watch event), and a silent watcher is made up for by the periodic read', async (t) => {
  const prefix = uniquePrefix();
  const key = `${prefix}/endpoints/sh-a/orders/i-1`;
  const hooks = { dropWatchEvents: false };
  const a = await open(t, prefix, { testHooks: hooks }).registry.register({ zone: 'sh-a', service: 'orders', id: 'i-1', url: 'http://127.0.0.1:9001' });
  t.teardown(() => a.close());
  const lease = String((await admin.get(key).exec()).kvs[0]!.lease);
  const onItsLease = async () => String((await admin.get(key).exec()).kvs[0]?.lease) === lease;
  await admin.delete().key(key).exec();
  await until('put back after the delete event', onItsLease, 10_000);
  t.true(await onItsLease());
  hooks.dropWatchEvents = true;
  await admin.delete().key(key).exec();
  await until('put back by the periodic read', onItsLease, 10_000);
  t.true(await onItsLease());
  t.deepEqual((await open(t, prefix).registry.snapshot()).endpoints.map((e) => e.url), ['http://127.0.0.1:9001']);
});

test('etcd: another URL found holding the key of an open registration is the id taken (ENDPOINT_TAKEN); its record is not written over', async (t) => {
  const prefix = uniquePrefix();
  const key = `${prefix}/endpoints/sh-a/orders/i-1`;
  const a = await open(t, prefix).registry.register({ zone: 'sh-a', service: 'orders', id: 'i-1', url: 'http://127.0.0.1:9001' });
  t.teardown(() => a.close());
  const other = admin.lease(30);
  t.teardown(() => other.revoke().catch(() => undefined));
  const foreign = JSON.stringify({ url: 'http://127.0.0.1:9002', weight: 1, registeredAt: new Date().toISOString(), instance: 'another' });
  await other.put(key).value(foreign);
  const err = await a.taken;
  t.true(isCellgateError(err, 'ENDPOINT_TAKEN'), String(err));
  t.regex(err.message, /sh-a\/orders\/"i-1" was taken by another instance at http:\/\/127\.0\.0\.1:9002/);
  await a.close();
  t.is((await admin.get(key).exec()).kvs[0]?.value.toString(), foreign);
});
