// An in-memory TableStore for gateway tests: tables are published by the test, the store
// can be made unreachable, and presence records are kept in a map the test can read.
// It passes the shared store contract (test/store-memory.test.ts): versions strictly
// increase, a rejected document is reported (not delivered), connectivity is reported when
// it changes, every compare-and-swap records its history entry, presence can be watched.
import { tableChecksum } from '../../src/cells/checksum';
import { validateTable, versioned } from '../../src/cells/table';
import type { RoutingTable, VersionedTable } from '../../src/cells/types';
import { cgError } from '../../src/errors';
import { historyEntry } from '../../src/store/history';
import { decodePresence, snapshotKey, snapshotOf } from '../../src/store/presence-record';
import { casInput, rejectedDocument } from '../../src/store/table-doc';
import { MemoryRegistry, MemoryRegistryData } from './memory-registry';
import { snapshotWatch } from './memory-watch';
import type {
  CasResult, ChangeNote, HistoryEntry, PresenceRecord, PresenceRegistration, PresenceSnapshot, PresenceStore, PresenceWatch,
  PresenceWatchEvents, TableStore, TableWatch, TableWatchEvents,
} from '../../src/store/types';

/** What every MemoryStore opened over the same data shares (as processes share etcd). */
class MemoryData {
  version = 0;
  /** The stored document: a valid table, or whatever a test wrote around validation. */
  doc: { version: number; table: VersionedTable | null; error: Error | null } | null = null;
  reachable = true;
  readonly history: HistoryEntry[] = [];
  readonly records = new Map<string, PresenceRecord>();
  /** Presence entries a test wrote around validation. */
  readonly rawRecords = new Map<string, unknown>();
  readonly writes: PresenceRecord[] = [];
  readonly tableWatchers = new Set<Watcher>();
  readonly presenceWatchers = new Set<() => void>();
  readonly registry = new MemoryRegistryData();

  presenceChanged(): void {
    for (const notify of this.presenceWatchers) setImmediate(notify);
  }
}

class MemoryPresence implements PresenceStore {
  private readonly closers = new Set<() => Promise<void>>();
  constructor(private readonly data: MemoryData, private readonly store: MemoryStore) {}

  /** Live records by gateway id (valid ones). */
  get records(): Map<string, PresenceRecord> {
    return this.data.records;
  }

  /** Every record written, in order (register and update). */
  get writes(): PresenceRecord[] {
    return this.data.writes;
  }

  /** Writes a presence entry around validation (a foreign or broken writer). */
  putRaw(id: string, raw: unknown): void {
    this.data.rawRecords.set(id, raw);
    this.data.presenceChanged();
  }

  async register(record: PresenceRecord): Promise<PresenceRegistration> {
    this.store.assertReachable();
    const put = (r: PresenceRecord) => {
      this.data.records.set(r.id, r);
      this.data.writes.push(r);
      this.data.presenceChanged();
    };
    put(record);
    let open = true;
    const close = async () => {
      if (!open) return;
      open = false;
      this.closers.delete(close);
      this.data.records.delete(record.id);
      this.data.presenceChanged();
    };
    this.closers.add(close);
    return {
      update: async (r: PresenceRecord) => {
        this.store.assertReachable();
        if (!open) throw cgError('STORE_UNAVAILABLE', 'registration closed');
        put(r);
      },
      close,
    };
  }

  async list(): Promise<PresenceRecord[]> {
    return [...(await this.snapshot()).records];
  }

  async snapshot(): Promise<PresenceSnapshot> {
    this.store.assertReachable();
    return this.read();
  }

  watch(events: PresenceWatchEvents): PresenceWatch {
    return snapshotWatch(this.data.presenceWatchers, () => this.data.reachable, () => this.read(), snapshotKey, events, this.closers);
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.closers].map((c) => c()));
  }

  private read(): PresenceSnapshot {
    return snapshotOf([
      ...[...this.data.records.values()].map((r) => decodePresence(r, r.id)),
      ...[...this.data.rawRecords].map(([id, raw]) => decodePresence(raw, id)),
    ]);
  }
}

interface Watcher {
  events: TableWatchEvents;
  delivered: number;
  rejected: number;
  closed: boolean;
}

export class MemoryStore implements TableStore {
  readonly description = 'memory';
  readonly presence: MemoryPresence;
  readonly registry: MemoryRegistry;
  private readonly watchers = new Set<Watcher>();
  private closed = false;

  constructor(initial?: RoutingTable, private readonly data = new MemoryData()) {
    this.presence = new MemoryPresence(data, this);
    this.registry = new MemoryRegistry(data.registry, () => this.assertReachable(), () => this.data.reachable);
    if (initial) this.publish(initial);
  }

  /** Another store over the same data, as another process would open it. */
  reopen(): MemoryStore {
    return new MemoryStore(undefined, this.data);
  }

  assertReachable(): void {
    if (this.closed) throw cgError('STORE_UNAVAILABLE', 'memory store is closed');
    if (!this.data.reachable) throw cgError('STORE_UNAVAILABLE', 'memory store is unreachable');
  }

  get watcherCount(): number {
    return this.watchers.size;
  }

  /** Stores `table` as the next version (no history: a write around cellctl) and delivers it. */
  publish(table: RoutingTable): VersionedTable {
    const vt = versioned(validateTable(table), ++this.data.version);
    this.data.doc = { version: vt.version, table: vt, error: null };
    this.deliverAll();
    return vt;
  }

  /** Simulates an invalid document landing in the store: watchers are told, nothing is applied. */
  publishInvalid(doc: unknown): number {
    const version = ++this.data.version;
    let err: Error;
    try {
      validateTable(doc);
      err = new Error('expected an invalid document');
    } catch (e) {
      err = rejectedDocument('memory', version, e);
    }
    this.data.doc = { version, table: null, error: err };
    this.deliverAll();
    return version;
  }

  setReachable(reachable: boolean): void {
    this.data.reachable = reachable;
    for (const w of this.data.tableWatchers) {
      setImmediate(() => !w.closed && w.events.onConnection?.(reachable));
      if (reachable) this.deliver(w);
    }
    this.data.presenceChanged();
    for (const notify of this.data.registry.watchers) setImmediate(notify);
  }

  async load(): Promise<VersionedTable | null> {
    this.assertReachable();
    const doc = this.data.doc;
    if (doc?.error) throw doc.error;
    return doc?.table ?? null;
  }

  watch(events: TableWatchEvents): TableWatch {
    const w: Watcher = { events, delivered: 0, rejected: 0, closed: false };
    this.watchers.add(w);
    this.data.tableWatchers.add(w);
    setImmediate(() => !w.closed && events.onConnection?.(this.data.reachable));
    this.deliver(w);
    return {
      close: async () => {
        w.closed = true;
        this.watchers.delete(w);
        this.data.tableWatchers.delete(w);
      },
    };
  }

  private deliverAll(): void {
    for (const w of this.data.tableWatchers) this.deliver(w);
  }

  private deliver(w: Watcher): void {
    setImmediate(() => {
      const doc = this.data.doc;
      if (w.closed || !this.data.reachable || !doc || doc.version <= w.delivered) return;
      if (doc.error) {
        if (doc.version === w.rejected) return;
        w.rejected = doc.version;
        w.events.onRejected?.(doc.error, doc.version);
        return;
      }
      w.delivered = doc.version;
      if (doc.table) w.events.onTable(doc.table);
    });
  }

  async compareAndSwap(expectedVersion: number, table: RoutingTable, note?: ChangeNote): Promise<CasResult> {
    this.assertReachable();
    const valid = casInput(expectedVersion, table);
    const doc = this.data.doc;
    if ((doc?.version ?? 0) !== expectedVersion) {
      if (doc?.error) throw doc.error;
      return { ok: false, current: doc?.table ?? null };
    }
    const vt = this.publish(valid);
    this.data.history.push(historyEntry(note, expectedVersion, vt.version, vt.table));
    return { ok: true, version: vt.version, checksum: tableChecksum(vt.table) };
  }

  /** Writes `doc` as the table document around validation and CAS (a hand edit). */
  writeRaw(doc: unknown): void {
    try {
      this.publish(doc as RoutingTable);
    } catch {
      this.publishInvalid(doc);
    }
  }

  async listHistory(): Promise<HistoryEntry[]> {
    this.assertReachable();
    return [...this.data.history];
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.watchers) {
      w.closed = true;
      this.data.tableWatchers.delete(w);
    }
    this.watchers.clear();
    await this.presence.closeAll();
    await this.registry.closeAll();
  }
}
