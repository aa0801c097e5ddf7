// An in-memory TableStore for gateway tests: tables are published by the test, the store
// can be made unreachable, and presence records are kept in a map the test can read.
// It keeps the watch promises of the real stores: versions strictly increase, a rejected
// document is reported (not delivered), connectivity is reported when it changes.
import { tableChecksum } from '../../src/cells/checksum';
import { validateTable, versioned } from '../../src/cells/table';
import type { RoutingTable, VersionedTable } from '../../src/cells/types';
import { cgError } from '../../src/errors';
import type {
  CasResult, HistoryEntry, PresenceRecord, PresenceRegistration, PresenceStore, TableStore, TableWatch, TableWatchEvents,
} from '../../src/store/types';

class MemoryPresence implements PresenceStore {
  readonly records = new Map<string, PresenceRecord>();
  /** Every record written, in order (register and update). */
  readonly writes: PresenceRecord[] = [];
  constructor(private readonly store: MemoryStore) {}

  async register(record: PresenceRecord): Promise<PresenceRegistration> {
    this.store.assertReachable();
    this.records.set(record.id, record);
    this.writes.push(record);
    let open = true;
    return {
      update: async (r: PresenceRecord) => {
        this.store.assertReachable();
        if (!open) throw cgError('STORE_UNAVAILABLE', 'registration closed');
        this.records.set(r.id, r);
        this.writes.push(r);
      },
      close: async () => {
        open = false;
        this.records.delete(record.id);
      },
    };
  }

  async list(): Promise<PresenceRecord[]> {
    this.store.assertReachable();
    return [...this.records.values()];
  }
}

interface Watcher {
  events: TableWatchEvents;
  delivered: number;
  closed: boolean;
}

export class MemoryStore implements TableStore {
  readonly description = 'memory';
  readonly presence: MemoryPresence;
  private current: VersionedTable | null = null;
  private version = 0;
  private reachable = true;
  private readonly watchers = new Set<Watcher>();
  private readonly history: HistoryEntry[] = [];

  constructor(initial?: RoutingTable) {
    this.presence = new MemoryPresence(this);
    if (initial) this.publish(initial);
  }

  assertReachable(): void {
    if (!this.reachable) throw cgError('STORE_UNAVAILABLE', 'memory store is unreachable');
  }

  get watcherCount(): number {
    return this.watchers.size;
  }

  /** Stores `table` as the next version and delivers it to every watcher. */
  publish(table: RoutingTable): VersionedTable {
    const vt = versioned(validateTable(table), ++this.version);
    this.current = vt;
    for (const w of this.watchers) this.deliver(w);
    return vt;
  }

  /** Simulates an invalid document landing in the store: watchers are told, nothing is applied. */
  publishInvalid(doc: unknown): number {
    const version = ++this.version;
    let err: Error;
    try {
      validateTable(doc);
      err = new Error('expected an invalid document');
    } catch (e) {
      err = e as Error;
    }
    for (const w of this.watchers) if (!w.closed && this.reachable) setImmediate(() => w.events.onRejected?.(err, version));
    return version;
  }

  setReachable(reachable: boolean): void {
    this.reachable = reachable;
    for (const w of this.watchers) {
      setImmediate(() => !w.closed && w.events.onConnection?.(reachable));
      if (reachable) this.deliver(w);
    }
  }

  async load(): Promise<VersionedTable | null> {
    this.assertReachable();
    return this.current;
  }

  watch(events: TableWatchEvents): TableWatch {
    const w: Watcher = { events, delivered: 0, closed: false };
    this.watchers.add(w);
    setImmediate(() => !w.closed && events.onConnection?.(this.reachable));
    this.deliver(w);
    return {
      close: async () => {
        w.closed = true;
        this.watchers.delete(w);
      },
    };
  }

  private deliver(w: Watcher): void {
    setImmediate(() => {
      const vt = this.current;
      if (w.closed || !this.reachable || !vt || vt.version <= w.delivered) return;
      w.delivered = vt.version;
      w.events.onTable(vt);
    });
  }

  async compareAndSwap(expectedVersion: number, table: RoutingTable): Promise<CasResult> {
    this.assertReachable();
    if ((this.current?.version ?? 0) !== expectedVersion) return { ok: false, current: this.current };
    const vt = this.publish(table);
    return { ok: true, version: vt.version, checksum: tableChecksum(vt.table) };
  }

  async appendHistory(entry: HistoryEntry): Promise<void> {
    this.assertReachable();
    this.history.push(entry);
  }

  async listHistory(): Promise<HistoryEntry[]> {
    return [...this.history];
  }

  async close(): Promise<void> {
    for (const w of this.watchers) w.closed = true;
    this.watchers.clear();
  }
}
