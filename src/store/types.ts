// The one small interface both stores (file, etcd) implement, and that the gateway, the
// failover engine and the CLI use. Stores translate their own failures into CellgateErrors
// (STORE_UNAVAILABLE, CONFLICT, INVALID_TABLE, ...) so nothing above sees gRPC or fs errors.
import type { RoutingTable, VersionedTable } from '../cells/types';

export interface HistoryEntry {
  /** Who made the change: --actor or user@host. */
  readonly actor: string;
  /** ISO time of the change. */
  readonly at: string;
  readonly reason: string;
  /** The command, e.g. "zone down sh-a". */
  readonly action: string;
  readonly versionBefore: number;
  readonly versionAfter: number;
  /** Human summary of the moves, e.g. ["c01 sh-a->sh-b", ...]. */
  readonly summary: readonly string[];
  /** The table as written at versionAfter, so that `rollback` can restore it. */
  readonly table: RoutingTable;
}

export type CasResult =
  | { readonly ok: true; readonly version: number; readonly checksum: string }
  | { readonly ok: false; readonly current: VersionedTable | null };

export interface TableWatchEvents {
  /** A new valid table (version strictly greater than any delivered before). */
  onTable(vt: VersionedTable): void;
  /** A document in the store failed validation: it was NOT applied; the last good table stays. */
  onRejected?(err: Error, version: number): void;
  /** Connection to the store went up/down (always true for the file store unless it errors). */
  onConnection?(connected: boolean): void;
}

export interface TableWatch {
  /** Stops watching; resolves when every timer and stream of the watch is gone. */
  close(): Promise<void>;
}

export interface TableStore {
  /** A short description for logs, e.g. "etcd:etcd-1.internal:2379/cellgate" or "file:/x/table.json". */
  readonly description: string;
  /** The current table, or null when the store holds none. Throws INVALID_TABLE for a bad document. */
  load(): Promise<VersionedTable | null>;
  /** Delivers the current table (if any) and every later version. */
  watch(events: TableWatchEvents): TableWatch;
  /**
   * Writes `table` only if the stored version still equals `expectedVersion`
   * (0 = only if the store holds no table). Validates before writing.
   */
  compareAndSwap(expectedVersion: number, table: RoutingTable): Promise<CasResult>;
  appendHistory(entry: HistoryEntry): Promise<void>;
  /** Oldest first. */
  listHistory(): Promise<HistoryEntry[]>;
  /** Presence of live gateways (see PresenceRecord). */
  readonly presence: PresenceStore;
  close(): Promise<void>;
}

/** What a gateway publishes about itself so that cellctl can prove convergence. */
export interface PresenceRecord {
  readonly id: string;
  readonly zone: string | null;
  /** Version (revision) of the table the gateway routes with. */
  readonly appliedVersion: number;
  readonly checksum: string;
  readonly inFlight: number;
  readonly startedAt: string;
  readonly updatedAt: string;
  readonly pid: number;
  readonly host: string;
}

export interface PresenceRegistration {
  /** Replace the published record (e.g. after a table change). */
  update(record: PresenceRecord): Promise<void>;
  /** Remove the record and release its lease. */
  close(): Promise<void>;
}

export interface PresenceStore {
  /** Publishes `record` while the process lives (an etcd lease, or a heartbeat file with a TTL). */
  register(record: PresenceRecord, ttlSeconds?: number): Promise<PresenceRegistration>;
  /** The live gateways. */
  list(): Promise<PresenceRecord[]>;
}
