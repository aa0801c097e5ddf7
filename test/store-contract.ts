// The one contract every TableStore passes (hono's "one Router interface, one shared
// suite"): registered once per store by store-file.test.ts and store-etcd.test.ts.
// Nothing is skipped for any store.
import test, { type ExecutionContext } from 'ava';
import { tableChecksum } from '../src/cells/checksum';
import type { RoutingTable, VersionedTable } from '../src/cells/types';
import { isCellgateError } from '../src/errors';
import type { ChangeNote, PresenceRecord, PresenceSnapshot, TableStore, TableWatch } from '../src/store/types';
import { bumpedTable, demoTable } from './helpers/fixtures';

export interface StoreUnderTest {
  readonly store: TableStore;
  /** Another store instance over the same data, as another process would open it (closed at teardown). */
  reopen(): TableStore;
  /** Writes `doc` as the table document the way a hand edit would: no validation, no CAS. */
  writeRawTable(doc: unknown): Promise<void>;
  /** Writes `raw` as gateway `id`'s live presence record, around validation (a broken or foreign writer). */
  writeRawPresence(id: string, raw: unknown): Promise<void>;
}

/** Makes a fresh, empty store for one test and registers its teardown on `t`. */
export type MakeStore = (t: ExecutionContext) => Promise<StoreUnderTest>;

export async function waitFor(what: string, condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

export interface Recorder {
  readonly tables: VersionedTable[];
  readonly rejected: { err: Error; version: number }[];
  readonly connection: boolean[];
  /** Date.now() when each table arrived. */
  readonly arrivedAtMs: number[];
  readonly watch: TableWatch;
  last(): VersionedTable | undefined;
}

/** Watches `store`, recording everything; the watch is closed at teardown. */
export function record(t: ExecutionContext, store: TableStore): Recorder {
  const tables: VersionedTable[] = [];
  const arrivedAtMs: number[] = [];
  const rejected: { err: Error; version: number }[] = [];
  const connection: boolean[] = [];
  const watch = store.watch({
    onTable: (vt) => {
      tables.push(vt);
      arrivedAtMs.push(Date.now());
    },
    onRejected: (err, version) => rejected.push({ err, version }),
    onConnection: (c) => connection.push(c),
  });
  t.teardown(() => watch.close());
  return { tables, rejected, connection, arrivedAtMs, watch, last: () => tables[tables.length - 1] };
}

export function assertIncreasing(t: ExecutionContext, tables: readonly VersionedTable[]): void {
  for (let i = 1; i < tables.length; i++) t.true(tables[i]!.version > tables[i - 1]!.version, `delivery ${i} went from ${tables[i - 1]!.version} to ${tables[i]!.version}`);
}

async function createTable(t: ExecutionContext, store: TableStore, table: RoutingTable = demoTable()): Promise<number> {
  const res = await store.compareAndSwap(0, table);
  if (!res.ok) throw new Error('creating the first table failed');
  t.is(res.checksum, tableChecksum(table));
  return res.version;
}

function presenceRecord(id: string, appliedVersion: number): PresenceRecord {
  const now = new Date().toISOString();
  return { id, zone: 'sh-a', appliedVersion, checksum: 'sha256:test', inFlight: 0, startedAt: now, updatedAt: now, pid: process.pid, host: 'test' };
}

function note(step: number): ChangeNote {
  return { actor: 'tester', at: new Date().toISOString(), reason: `step ${step}`, action: 'zone down sh-a', summary: [`c0${step} sh-a->sh-b`] };
}

/** Watches presence on `store`, recording every snapshot; closed at teardown. */
function recordPresence(t: ExecutionContext, store: TableStore): { snapshots: PresenceSnapshot[]; errors: Error[]; last(): PresenceSnapshot | undefined } {
  const snapshots: PresenceSnapshot[] = [];
  const errors: Error[] = [];
  const watch = store.presence.watch({ onSnapshot: (s) => snapshots.push(s), onError: (e) => errors.push(e) });
  t.teardown(() => watch.close());
  return { snapshots, errors, last: () => snapshots[snapshots.length - 1] };
}

export function storeContract(name: string, make: MakeStore): void {
  test(`${name}: an empty store holds no table, no history, no gateways`, async (t) => {
    const { store } = await make(t);
    t.is(await store.load(), null);
    t.deepEqual(await store.listHistory(), []);
    t.deepEqual(await store.presence.list(), []);
    t.true(store.description.length > 0);
  });

  test(`${name}: compare-and-swap creates with 0, then needs the current version`, async (t) => {
    const { store } = await make(t);
    const first = demoTable();
    const v1 = await createTable(t, store, first);
    t.true(v1 > 0);
    const loaded = await store.load();
    t.is(loaded?.version, v1);
    t.is(loaded?.checksum, tableChecksum(first));
    t.deepEqual(loaded?.table, first);

    const second = bumpedTable(first);
    const again = await store.compareAndSwap(0, second);
    t.false(again.ok);
    if (!again.ok) t.is(again.current?.version, v1);
    const stale = await store.compareAndSwap(v1 + 1000, second);
    t.false(stale.ok);
    if (!stale.ok) t.is(stale.current?.checksum, tableChecksum(first));

    const swapped = await store.compareAndSwap(v1, second);
    t.true(swapped.ok);
    if (!swapped.ok) return;
    t.true(swapped.version > v1);
    const now = await store.load();
    t.is(now?.version, swapped.version);
    t.is(now?.checksum, tableChecksum(second));
  });

  test(`${name}: compare-and-swap refuses an invalid table and writes nothing`, async (t) => {
    const { store } = await make(t);
    const v1 = await createTable(t, store);
    const bad = { ...structuredClone(demoTable()), zones: [] } as unknown as RoutingTable;
    const err = await t.throwsAsync(store.compareAndSwap(v1, bad));
    t.true(isCellgateError(err, 'INVALID_TABLE'));
    t.is((await store.load())?.version, v1);
  });

  test(`${name}: of two concurrent writers exactly one wins, the other gets the winner's table`, async (t) => {
    const { store, reopen } = await make(t);
    const other = reopen();
    let version = await createTable(t, store);
    for (let round = 1; round <= 5; round++) {
      const mine = bumpedTable(demoTable(), round * 2);
      const theirs = bumpedTable(demoTable(), round * 2 + 1);
      const [a, b] = await Promise.all([store.compareAndSwap(version, mine), other.compareAndSwap(version, theirs)]);
      const winners = [a, b].filter((r) => r.ok);
      t.is(winners.length, 1, `round ${round}`);
      const [winner, loser, winnerTable] = a.ok ? [a, b, mine] : [b, a, theirs];
      if (!winner.ok || loser.ok) return;
      t.is(loser.current?.version, winner.version);
      t.is(loser.current?.checksum, tableChecksum(winnerTable));
      version = winner.version;
    }
  });

  // Serial: it measures latency, so it runs before this file's concurrent tests load the event loop.
  test.serial(`${name}: watch delivers the current table, then a change in under a second`, async (t) => {
    const { store, reopen } = await make(t);
    const v1 = await createTable(t, store);
    const rec = record(t, store);
    await waitFor('the current table', () => rec.tables.length >= 1);
    t.is(rec.tables[0]!.version, v1);
    await waitFor('the connection report', () => rec.connection.includes(true));
    t.deepEqual(rec.connection, [true]);

    const writer = reopen();
    const changed = bumpedTable(demoTable());
    const startedAtMs = Date.now();
    const res = await writer.compareAndSwap(v1, changed);
    t.true(res.ok);
    await waitFor('the change', () => rec.tables.length >= 2, 5_000);
    const latencyMs = rec.arrivedAtMs[1]! - startedAtMs;
    t.log(`${name}: change delivered ${latencyMs} ms after the write started`);
    t.true(latencyMs < 1_000, `latency ${latencyMs} ms`);
    t.is(rec.tables[1]!.checksum, tableChecksum(changed));
    assertIncreasing(t, rec.tables);
  });

  test(`${name}: an invalid document is rejected once, the watcher keeps the last good table`, async (t) => {
    const { store, writeRawTable } = await make(t);
    const v1 = await createTable(t, store);
    const rec = record(t, store);
    await waitFor('the current table', () => rec.tables.length >= 1);

    await writeRawTable({ ...structuredClone(demoTable()), cells: 'not a list' });
    await waitFor('the rejection', () => rec.rejected.length >= 1);
    const badVersion = rec.rejected[0]!.version;
    t.true(badVersion > v1);
    t.true(isCellgateError(rec.rejected[0]!.err, 'INVALID_TABLE'));
    // load() refuses it too, and says which version to overwrite.
    const loadErr = await t.throwsAsync(store.load());
    t.true(isCellgateError(loadErr, 'INVALID_TABLE'));
    t.is((loadErr as unknown as { detail: { version: number } }).detail.version, badVersion);

    await new Promise((resolve) => setTimeout(resolve, 1_000)); // several polls / watchdog reads
    t.is(rec.rejected.length, 1);
    t.is(rec.tables.length, 1);
    t.is(rec.last()?.version, v1);

    // An operator repairs it with a CAS over the bad version.
    const repaired = bumpedTable(demoTable());
    const res = await store.compareAndSwap(badVersion, repaired);
    t.true(res.ok);
    await waitFor('the repaired table', () => rec.tables.length >= 2);
    t.is(rec.last()?.checksum, tableChecksum(repaired));
    assertIncreasing(t, rec.tables);
  });

  test(`${name}: every write records its history entry with it, oldest first, with the versions it produced`, async (t) => {
    const { store, reopen } = await make(t);
    const tables = [demoTable(), bumpedTable(demoTable()), bumpedTable(demoTable(), 2)];
    const versions: number[] = [];
    let version = 0;
    for (const [i, table] of tables.entries()) {
      const res = await store.compareAndSwap(version, table, note(i));
      if (!res.ok) throw new Error(`write ${i} failed`);
      versions.push(res.version);
      version = res.version;
    }
    // A conflicting write records nothing.
    t.false((await store.compareAndSwap(versions[0]!, demoTable(), note(9))).ok);
    for (const history of [await store.listHistory(), await reopen().listHistory()]) {
      t.deepEqual(history.map((h) => [h.versionBefore, h.versionAfter]), [[0, versions[0]], [versions[0], versions[1]], [versions[1], versions[2]]]);
      t.deepEqual(history.map((h) => h.reason), ['step 0', 'step 1', 'step 2']);
      t.deepEqual(history.map((h) => h.summary), [['c00 sh-a->sh-b'], ['c01 sh-a->sh-b'], ['c02 sh-a->sh-b']]);
      t.deepEqual(history.map((h) => tableChecksum(h.table)), tables.map(tableChecksum));
    }
    // A write without a note still gets an entry: no version exists without history.
    const bare = await store.compareAndSwap(version, bumpedTable(demoTable(), 3));
    if (!bare.ok) throw new Error('bare write failed');
    const last = (await store.listHistory()).at(-1);
    t.is(last?.versionAfter, bare.version);
    t.is(last?.versionBefore, version);
    t.is(last?.actor, 'unknown');
  });

  test(`${name}: presence watch delivers the live gateways at once and after every change`, async (t) => {
    const { store, reopen } = await make(t);
    const watched = recordPresence(t, reopen());
    await waitFor('the first (empty) snapshot', () => watched.snapshots.length >= 1);
    t.deepEqual(watched.last(), { records: [], malformed: [] });
    const a = await store.presence.register(presenceRecord('gw-a', 1), 5);
    await waitFor('gw-a', () => watched.last()?.records.some((r) => r.id === 'gw-a') === true);
    await a.update(presenceRecord('gw-a', 42));
    await waitFor('gw-a on 42', () => watched.last()?.records.find((r) => r.id === 'gw-a')?.appliedVersion === 42);
    await a.close();
    await waitFor('gw-a gone', () => watched.last()?.records.length === 0);
    t.deepEqual(watched.errors, []);
  });

  test(`${name}: a malformed presence record is listed as malformed, by name, never as a gateway`, async (t) => {
    const { store, writeRawPresence } = await make(t);
    await store.presence.register(presenceRecord('gw-good', 3), 5);
    const { appliedVersion: _dropped, ...noVersion } = presenceRecord('gw-bad', 3);
    await writeRawPresence('gw-bad', noVersion);
    await writeRawPresence('gw-junk', 'not a record');
    const snap = await store.presence.snapshot();
    t.deepEqual(snap.records.map((r) => r.id), ['gw-good']);
    t.deepEqual(snap.malformed.map((m) => m.id), ['gw-bad', 'gw-junk']);
    t.regex(snap.malformed[0]!.problem, /appliedVersion missing/);
    t.deepEqual((await store.presence.list()).map((r) => r.id), ['gw-good']);
    const watched = recordPresence(t, store);
    await waitFor('a snapshot', () => watched.snapshots.length >= 1);
    t.deepEqual(watched.last()?.malformed.map((m) => m.id), ['gw-bad', 'gw-junk']);
  });

  test(`${name}: presence register, list, update, close`, async (t) => {
    const { store, reopen } = await make(t);
    const observer = reopen();
    const a = await store.presence.register(presenceRecord('gw-a', 1), 5);
    const b = await store.presence.register(presenceRecord('gw/b weird id', 1), 5);
    t.deepEqual((await observer.presence.list()).map((r) => r.id), ['gw-a', 'gw/b weird id']);

    await a.update(presenceRecord('gw-a', 42));
    const listed = await observer.presence.list();
    t.is(listed.find((r) => r.id === 'gw-a')?.appliedVersion, 42);

    await a.close();
    await a.close(); // idempotent
    t.deepEqual((await observer.presence.list()).map((r) => r.id), ['gw/b weird id']);
    await t.throwsAsync(a.update(presenceRecord('gw-a', 43)));

    // Closing the store closes what it registered.
    await store.close();
    t.deepEqual(await observer.presence.list(), []);
    await b.close();
  });
}
