// The one small interface both stores (file, etcd) implement, and that the gateway, the
// failover engine and the CLI use. Stores translate their own failures into CellgateErrors
// (STORE_UNAVAILABLE, CONFLICT, INVALID_TABLE, ...) so nothing above sees gRPC or fs errors.
import type { RoutingTable, VersionedTable } from '../cells/types';

/** What a writer says about one table write; the store records it with the write, atomically. */
export interface ChangeNote {
  /** Who made the change: --actor or user@host. */
  readonly actor: string;
  /** ISO time of the change. */
  readonly at: string;
  readonly reason: string;
  /** The command, e.g. "zone down sh-a". */
  readonly action: string;
  /** Human summary of the write, e.g. ["c01 sh-a->sh-b", ...]. */
  readonly summary: readonly string[];
}

/**
 * One table write, as recorded in the same transaction (etcd) or under the same lock, ahead
 * of the table (file store): every version a store holds has exactly one entry.
 */
export interface HistoryEntry extends ChangeNote {
  /** The version the compare-and-swap was made against (0 = created). */
  readonly versionBefore: number;
  /** The version the write produced. */
  readonly versionAfter: number;
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
   * (0 = only if the store holds no table). Validates before writing. The history entry
   * (`note`, or an anonymous one) is written with the table, atomically: there is no
   * version without history. A write is sent once; when its outcome is unknown (the
   * reply was lost) the store re-reads and reconciles explicitly, never re-sends.
   */
  compareAndSwap(expectedVersion: number, table: RoutingTable, note?: ChangeNote): Promise<CasResult>;
  /** Oldest first: one entry per version written. */
  listHistory(): Promise<HistoryEntry[]>;
  /** Presence of live gateways (see PresenceRecord). */
  readonly presence: PresenceStore;
  /** The live endpoint registry: instances that registered themselves (never part of the table). */
  readonly registry: EndpointRegistry;
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
  /** What this gateway sees of every zone (active probes and passive health); absent from older gateways. */
  readonly zoneHealth?: Readonly<Record<string, ZoneHealthReport>>;
  /** What this gateway applied of the endpoint registry; absent from older gateways. */
  readonly registry?: RegistryDigest;
  /** The presence relay that wrote this record for the gateway (absent: the gateway's own). */
  readonly relay?: string;
}

/** A gateway's registry in a few bytes: enough for `cellctl endpoints` to tell who lags. */
export interface RegistryDigest {
  /** Registered endpoints the gateway holds (valid records, before merging with the table). */
  readonly count: number;
  /** The registry revision it applied (etcd: the newest revision seen; file store: 0). */
  readonly version: number;
  /** registryChecksum() of those endpoints: equal on two gateways = same registry. */
  readonly checksum: string;
}

/** One gateway's view of one zone, as published in its presence record. */
export interface ZoneHealthReport {
  readonly healthy: boolean;
  /** ISO time since when the zone has been unhealthy here (null while healthy). */
  readonly failingSince: string | null;
  /** ISO time of the last successful probe of any of its endpoints (null: never). */
  readonly lastOk: string | null;
  readonly endpointsUp: number;
  readonly endpointsTotal: number;
}

export interface PresenceRegistration {
  /** Replace the published record (e.g. after a table change). */
  update(record: PresenceRecord): Promise<void>;
  /** Remove the record and release its lease. */
  close(): Promise<void>;
}

/** A live presence record that is not a valid PresenceRecord: it is named, never trusted. */
export interface MalformedPresence {
  /** The record's id when it has one, else the name of its key / file. */
  readonly id: string;
  readonly problem: string;
}

/** Every live gateway: the valid records, and the malformed ones (which prove nothing). */
export interface PresenceSnapshot {
  readonly records: readonly PresenceRecord[];
  readonly malformed: readonly MalformedPresence[];
}

export interface PresenceWatchEvents {
  /** The whole set of live gateways: once at start, then after every change (re-read after a reconnect). */
  onSnapshot(snapshot: PresenceSnapshot): void;
  /** The store could not be read; the watch keeps trying and re-reads when it can. */
  onError?(err: Error): void;
}

export interface PresenceWatch {
  /** Stops watching; resolves when every timer and stream of the watch is gone. */
  close(): Promise<void>;
}

export interface PresenceStore {
  /** Publishes `record` while the process lives (an etcd lease, or a heartbeat file with a TTL). */
  register(record: PresenceRecord, ttlSeconds?: number): Promise<PresenceRegistration>;
  /** The live gateways with a valid record (sorted by id). */
  list(): Promise<PresenceRecord[]>;
  /** The live gateways, valid and malformed (sorted by id). */
  snapshot(): Promise<PresenceSnapshot>;
  /** Delivers the live gateways now and after every change. */
  watch(events: PresenceWatchEvents): PresenceWatch;
}

/** What an instance asks to register. */
export interface EndpointRegistrationRequest {
  readonly zone: string;
  readonly service: string;
  /** Unique within (zone, service); its key. */
  readonly id: string;
  /** http(s) base URL of the instance. */
  readonly url: string;
  /** Relative share of requests (1-100; default 1). */
  readonly weight?: number;
  /** How long the record outlives its process (etcd: the lease TTL, whole seconds; default 5 s). */
  readonly ttlMs?: number;
}

/** One live registry record, as stored at `endpoints/<zone>/<service>/<id>` (validated). */
export interface RegisteredEndpoint {
  readonly zone: string;
  readonly service: string;
  readonly id: string;
  readonly url: string;
  readonly weight: number;
  /** ISO time the instance registered. */
  readonly registeredAt: string;
}

/** A record that failed validation (or went over the bounds): named and counted, never used. */
export interface RefusedEndpoint {
  readonly key: string;
  readonly problem: string;
}

/** Every live registered endpoint; `refused` lists the first few refused ones, `refusedCount` counts them all. */
export interface RegistrySnapshot {
  /** Sorted by zone, service, id. */
  readonly endpoints: readonly RegisteredEndpoint[];
  readonly refused: readonly RefusedEndpoint[];
  readonly refusedCount: number;
  /** Of refusedCount: valid records left out because the registry was over its bound (MAX_REGISTERED_ENDPOINTS). */
  readonly overLimitCount: number;
  /** etcd: the newest registry revision reflected; file store: 0. */
  readonly version: number;
}

/**
 * How much a reader wants the records of (zone, service) when the registry is over its bound:
 * lower is kept first (a gateway: 0 for a zone and service of its table, 1 for another
 * service of a zone of its table, 2 for a zone it does not have), so that records it cannot
 * route to never push out records it can. Ties, and no priority at all, go by key.
 */
export type RegistryPriority = (zone: string, service: string) => number;

export interface EndpointRegistration {
  readonly endpoint: RegisteredEndpoint;
  /**
   * Settles (never rejects) with ENDPOINT_TAKEN if another instance (another URL) took the id
   * while this one did not hold its record (its lease or heartbeat file lost, or its record
   * deleted after another registration of its URL held it): this registration no longer
   * claims it and puts nothing more; pending while it holds its record, or yields it to
   * another registration of its URL (and puts it back when that one goes).
   */
  readonly taken: Promise<Error>;
  /** Withdraws the record at once (etcd: revokes the lease; file store: deletes the heartbeat), never another instance's. */
  close(): Promise<void>;
}

export interface RegistryWatchEvents {
  /** The whole live registry: once at start, then after every change. */
  onSnapshot(snapshot: RegistrySnapshot): void;
  /** The store could not be read; the watch keeps trying and re-reads when it can. */
  onError?(err: Error): void;
  /** Which records go first when over the bound; read at every snapshot (see refresh()). */
  priority?: RegistryPriority;
}

export interface RegistryWatch {
  /** The priority changed (a gateway applied a table with other zones): the snapshot is made again, and delivered if it differs. */
  refresh(): void;
  /** Stops watching; resolves when every timer and stream of the watch is gone. */
  close(): Promise<void>;
}

export interface EndpointRegistry {
  /**
   * Publishes the endpoint while the process lives (etcd lease or heartbeat file); USAGE for
   * bad input; ENDPOINT_TAKEN when another live instance (another URL) holds the id. The
   * same URL under the same id is the same instance restarted: it takes the record over.
   */
  register(request: EndpointRegistrationRequest): Promise<EndpointRegistration>;
  /** The live registry now (over the bound, `priority` says which records go first). */
  snapshot(priority?: RegistryPriority): Promise<RegistrySnapshot>;
  /** Delivers the live registry now and after every change. */
  watch(events: RegistryWatchEvents): RegistryWatch;
}
