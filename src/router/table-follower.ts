// Follows the routing table: the snapshot first (fail-static: routing survives a restart
// while the store is unreachable), then every version the store's watch delivers. Each
// accepted table is handed to `apply` (which swaps the gateway's immutable routing state)
// and then saved as the new snapshot. Nothing a store delivers can break routing: a table
// `apply` refuses, or one the store rejected, leaves the last good one in place.
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
  /** Snapshot writes in order; a write never overtakes a newer one. */
  private writes: Promise<void> = Promise.resolve();
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

  private save(path: string, vt: VersionedTable): void {
    this.writes = this.writes.then(() => writeSnapshot(path, vt, this.now()).catch((err: unknown) => {
      this.events.log('table.snapshot_write_failed', { path, version: vt.version, error: (err as Error).message });
    }));
  }
}
