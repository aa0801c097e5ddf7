// The etcd store against a real etcd (started here on free ports): the shared contract,
// plus etcd specifics. Failure behaviour is in store-etcd-faults.test.ts.
import test, { type ExecutionContext } from 'ava';
import { randomBytes } from 'node:crypto';
import { Etcd3 } from 'etcd3';
import { isCellgateError } from '../src/errors';
import { createEtcdStore, type EtcdStoreOptions } from '../src/store/etcd-store';
import { openStore } from '../src/store/open';
import type { TableStore } from '../src/store/types';
import { startEtcd, type EtcdHandle } from './helpers/etcd';
import { bumpedTable, demoTable } from './helpers/fixtures';
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
  };
});

test('etcd: the version is the key mod revision, and the document is the table itself', async (t) => {
  const prefix = uniquePrefix();
  const store = open(t, prefix);
  const res = await store.compareAndSwap(0, demoTable());
  t.true(res.ok);
  const raw = await admin.get(`${prefix}/table`).exec();
  t.is(Number(raw.kvs[0]!.mod_revision), res.ok ? res.version : -1);
  t.deepEqual(JSON.parse(raw.kvs[0]!.value.toString('utf8')), demoTable());
});

test('etcd: a deleted table key can be created again with version 0', async (t) => {
  const prefix = uniquePrefix();
  const store = open(t, prefix);
  t.true((await store.compareAndSwap(0, demoTable())).ok);
  await admin.delete().key(`${prefix}/table`);
  t.is(await store.load(), null);
  t.true((await store.compareAndSwap(0, demoTable())).ok);
});

test('etcd: history keys sort by version even past a power of ten', async (t) => {
  const prefix = uniquePrefix();
  const store = open(t, prefix);
  const entry = (versionAfter: number) => ({ actor: 'a', at: 'now', reason: '', action: 'x', versionBefore: versionAfter - 1, versionAfter, summary: [], table: demoTable() });
  for (const v of [9, 100, 10, 99]) await store.appendHistory(entry(v));
  t.deepEqual((await store.listHistory()).map((e) => e.versionAfter), [9, 10, 99, 100]);
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

test('etcd: a compare-and-swap re-sent after it committed (lost reply) reports success, not a conflict', async (t) => {
  const prefix = uniquePrefix();
  const store = open(t, prefix);
  const first = await store.compareAndSwap(0, demoTable());
  if (!first.ok) throw new Error('create failed');
  const changed = bumpedTable(demoTable());
  const committed = await store.compareAndSwap(first.version, changed);
  const resent = await store.compareAndSwap(first.version, changed);
  t.deepEqual(resent, committed, 'the same version and checksum');
  const other = await store.compareAndSwap(first.version, bumpedTable(demoTable(), 2));
  t.false(other.ok, 'a different table on the old version is still a conflict');
});
