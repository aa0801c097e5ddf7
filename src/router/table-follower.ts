// Follows the routing table: the snapshot first (fail-static: routing survives a restart
// while the store is unreachable), then every version the store's watch delivers. Each
// accepted table is handed to `apply` (which swaps the gateway's immutable routing state)
// and then saved as the new snapshot, off the hot path: serialising and fsyncing a large
// table happens after the version is applied (setImmediate), one write at a time, and the
// versions that arrive while one is written collapse into one write of the newest. Nothing
// a store delivers can break routing: a table `apply` refuses, or one the store rejected,
// leaves the last good one in place.
import type { VersionedTable } from '../cells/types';
import type { TableStore, TableWatch } from '../store/types';
import { readSnapshot, writeSnapshot } from './snapshot';

export type TableSource = 'store' | 'snapshot';

export interface FollowerEvents {
  /** Builds and swaps in the routing state for `vt`; throws to refuse it. */
  apply(vt: VersionedTable, source: TableSource, receivedAtMs: number): void;
  rejected(version: number, reason: string): void;
  connection(connected: boolean): void;
  log(event: string, fields?: Record<string, unknown>): void;
}

export class TableFollower {
  private readonly store: TableStore;
  private readonly snapshotPath: string | null;
  private readonly events: FollowerEvents;
  private watch: TableWatch | null = null;
  private current: { version: number; checksum: string; source: TableSource } | null = null;
  /** The one snapshot write under way (or queued), if any. */
  private writes: Promise<void> = Promise.resolve();
  /** The newest table not yet saved: what the next write saves. */
  private unsaved: VersionedTable | null = null;
  private writeScheduled = false;
  /** Snapshot writes made (for tests and the scale benchmark). */
  snapshotWrites = 0;
  private closed = false;

  /** `now` is the gateway's clock: when a table was received, when a snapshot was saved. */
  constructor(store: TableStore, snapshotPath: string | null, events: FollowerEvents, private readonly now: () => number) {
    this.store = store;
    this.snapshotPath = snapshotPath;
    this.events = events;
  }

  async start(): Promise<void> {
    if (this.snapshotPath) await this.loadSnapshot(this.snapshotPath);
    if (this.closed) return;
    this.watch = this.store.watch({
      onTable: (vt) => this.offer(vt),
      onRejected: (err, version) => {
        this.events.rejected(version, err.message);
      },
      onConnection: (connected) => this.events.connection(connected),
    });
  }

  /** Stops following; resolves when the watch and pending snapshot writes are done. */
  async close(): Promise<void> {
    this.closed = true;
    const w = this.watch;
    this.watch = null;
    if (w) await w.close();
    await this.writes;
  }

  private async loadSnapshot(path: string): Promise<void> {
    try {
      const snap = await readSnapshot(path);
      if (!snap) return;
      this.events.apply(snap.vt, 'snapshot', snap.savedAtMs);
      this.current = { version: snap.vt.version, checksum: snap.vt.checksum, source: 'snapshot' };
      this.events.log('table.snapshot_loaded', { version: snap.vt.version, path });
    } catch (err) {
      // A corrupt snapshot only costs the fail-static fallback: the store is the truth.
      this.events.log('table.snapshot_unusable', { path, error: (err as Error).message });
    }
  }

  private offer(vt: VersionedTable): void {
    if (this.closed) return;
    const cur = this.current;
    // The store's versions only grow; but the first table from the store replaces a snapshot
    // whatever its version (the store may have been restored to an older revision).
    if (cur && cur.source === 'store' && vt.version <= cur.version) return;
    try {
      this.events.apply(vt, 'store', this.now());
    } catch (err) {
      this.events.rejected(vt.version, (err as Error).message);
      return;
    }
    const unchanged = cur !== null && cur.version === vt.version && cur.checksum === vt.checksum;
    this.current = { version: vt.version, checksum: vt.checksum, source: 'store' };
    if (this.snapshotPath && !unchanged) this.save(this.snapshotPath, vt);
  }

  /** Saves `vt` soon; a write already scheduled takes the newest table instead. */
  private save(path: string, vt: VersionedTable): void {
    this.unsaved = vt;
    if (this.writeScheduled) return;
    this.writeScheduled = true;
    this.writes = this.writes
      .then(() => new Promise<void>((resolve) => setImmediate(resolve)))
      .then(async () => {
        this.writeScheduled = false;
        const next = this.unsaved;
        this.unsaved = null;
        if (!next) return;
        this.snapshotWrites += 1;
        await writeSnapshot(path, next, this.now()).catch((err: unknown) => {
          this.events.log('table.snapshot_write_failed', { path, version: next.version, error: (err as Error).message });
        });
      });
  }
}
