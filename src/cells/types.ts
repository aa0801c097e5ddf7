// The routing table: the one versioned document every gateway follows.
// Pure data. Everything here is JSON-serialisable and treated as immutable once built.

export type ZoneStatus = 'up' | 'draining' | 'down';
export type CellState = 'active' | 'frozen';
export type RouteClass = 'unit' | 'global' | 'city';

/** The service a zone's plain `upstreams` are: routes that name no service go to it. */
export const DEFAULT_SERVICE = 'default';

/** One service's endpoints in a zone. */
export interface ServiceEndpoints { readonly upstreams: readonly string[]; readonly healthPath?: string }

export interface Zone {
  readonly name: string;
  readonly region: string;
  readonly city: string;
  /**
   * The most cells this zone can serve at once. Cell homes are spread over zones in
   * proportion to it, and failover never puts a zone over it unless forced.
   */
  readonly capacity: number;
  /** http(s) base URLs of the zone's endpoints. */
  readonly upstreams: readonly string[];
  readonly status: ZoneStatus;
  /** What gateways probe on each endpoint (GET; a 5xx, timeout or connect error fails); `/` when absent. */
  readonly healthPath?: string;
  /** The zone's services other than `default` (whose endpoints are `upstreams`). */
  readonly services?: Readonly<Record<string, ServiceEndpoints>>;
}

export interface Cell {
  readonly name: string;
  /** Where the cell lives when nothing is wrong: failback returns it here. */
  readonly home: string;
  /** Where the cell is served now. */
  readonly zone: string;
  /** Incremented every time `zone` changes; upstreams fence on it. */
  readonly epoch: number;
  readonly state: CellState;
  /**
   * Set while `state` is 'frozen': wall-clock ms after which gateways resume routing to
   * `zone` by themselves (the operator that froze the cell may have died).
   */
  readonly frozenUntilMs?: number;
  /** Set while frozen: the zone the planned move is heading to (informational). */
  readonly movingTo?: string;
}

/** Ring layout parameters. The control points of every cell are derived from these and the cell's name. */
export interface RingSpec {
  /** Hash space of the ring: positions are integers in [0, range). */
  readonly range: number;
  /** Control points a newly added cell gets (about the mean of pointCounts). */
  readonly pointsPerCell: number;
  /**
   * Control points of each cell (cell name -> count). Cell c's points are the first
   * pointCounts[c] of the sequence hash(c#0), hash(c#1), …; the counts are balanced once
   * when the table is made so that every cell owns an equal share of the ring.
   */
  readonly pointCounts: Readonly<Record<string, number>>;
}

export interface RoutingTable {
  readonly format: 1;
  readonly name: string;
  readonly ring: RingSpec;
  readonly zones: readonly Zone[];
  readonly cells: readonly Cell[];
  /** The GZone: where `global` traffic goes. It fails over like a cell (name is 'global'). */
  readonly global: Cell;
  /** Pinned users: user id -> cell name. */
  readonly overrides: Readonly<Record<string, string>>;
  /**
   * The highest epoch ever issued to any cell of this table's history (>= every cell's
   * epoch). Paths that rebuild a table from an older one (a repair, an init over a wiped
   * store) issue epochs above it, so that no (cell, epoch) pair is ever given two zones.
   * Absent in tables written before it existed: then the highest cell epoch.
   */
  readonly epochHighWater?: number;
  /** Upstreams may be link-local or cloud-metadata addresses (absent: they may not). */
  readonly allowLinkLocal?: boolean;
}

/** A table as held by a store: the document plus its version (etcd mod revision or file counter). */
export interface VersionedTable {
  readonly table: RoutingTable;
  readonly version: number;
  /** Stable checksum of `table` (see checksum.ts). */
  readonly checksum: string;
}

/** The name the global pseudo-cell carries. */
export const GLOBAL_CELL = 'global';
