// The routing state the traffic path reads: one applied table → its RoutingView → the zone
// pools, swapped whole (never changed in place), plus what is known about how current it is
// (fail-static age) and the callers waiting for a version to be applied. The view and pools
// are built from the effective table (stored table + endpoint registry, registry-merge.ts);
// its version and checksum are the stored table's.
import { RoutingView } from '../cells/lookup';
import type { VersionedTable } from '../cells/types';
import type { RegistrySnapshot } from '../store/types';
import { RegistryMerger, type MergeResult } from './registry-merge';
import type { Clock } from '../clock';
import type { EndpointHealth } from './endpoints';
import type { RoutingState } from './proxy';
import type { TableSource } from './table-follower';

export interface TableInfo {
  readonly source: TableSource;
  readonly receivedAtMs: number;
}

interface VersionWaiter {
  readonly version: number;
  resolve(view: RoutingView): void;
  reject(err: Error): void;
}

export class RoutingStateHolder {
  /** Read on every request; null until a table is loaded. */
  current: RoutingState | null = null;
  private info: TableInfo | null = null;
  // Fail-static bookkeeping: while the store is connected the applied table is current;
  // otherwise it is as old as the last moment it was known to be (connection lost, snapshot saved).
  private storeConnected = false;
  private confirmedAtMs = 0;
  private readonly waiters = new Set<VersionWaiter>();
  private readonly merger = new RegistryMerger();
  private stored: VersionedTable | null = null;
  private registry: RegistrySnapshot | null = null;
  /** What the last build made of the registry (metrics, tests). */
  lastMerge: MergeResult | null = null;

  constructor(private readonly health: EndpointHealth, private readonly clock: Clock) {}

  get view(): RoutingView | null {
    return this.current?.view ?? null;
  }

  get tableInfo(): TableInfo | null {
    return this.info;
  }

  /** Builds the state for `vt` (throws to refuse it), swaps it in and wakes the waiters it satisfies. */
  swap(vt: VersionedTable, source: TableSource, receivedAtMs: number): RoutingView {
    const view = this.build(vt);
    this.stored = vt;
    this.info = { source, receivedAtMs };
    this.confirmedAtMs = receivedAtMs;
    if (this.waiters.size > 0) this.wakeWaiters(vt.version, view);
    return view;
  }

  private wakeWaiters(version: number, view: RoutingView): void {
    for (const w of [...this.waiters]) {
      if (version >= w.version) {
        this.waiters.delete(w);
        w.resolve(view);
      }
    }
  }

  /**
   * The endpoint registry changed: the routing view is rebuilt over the same stored table
   * (same version, no waiter woken, nothing moved). Returns what the merge made of it.
   */
  registryChanged(snapshot: RegistrySnapshot): MergeResult | null {
    this.registry = snapshot;
    if (this.stored) this.build(this.stored);
    return this.lastMerge;
  }

  /** Merges `vt` with the registry, builds the view and pools (reusing unchanged zones'), swaps them in. */
  private build(vt: VersionedTable): RoutingView {
    const merged = this.merger.merge(vt, this.registry);
    const view = new RoutingView(merged.effective, this.current?.view);
    const pools = this.health.poolsFor(merged.effective.table);
    this.current = { view, pools, revision: String(vt.version) };
    this.lastMerge = merged;
    return view;
  }

  /** The store's connection changed. */
  connection(connected: boolean): void {
    if (this.storeConnected !== connected && this.info?.source === 'store') this.confirmedAtMs = this.clock.now();
    this.storeConnected = connected;
  }

  /** How stale the applied table may be: 0 while the store is connected; null = no table. */
  tableAgeSeconds(): number | null {
    if (!this.info) return null;
    if (this.storeConnected && this.info.source === 'store') return 0;
    return Math.max(0, (this.clock.now() - this.confirmedAtMs) / 1000);
  }

  /** Resolves with the view once a table of at least `version` is applied; rejects after `timeoutMs` (real time). */
  waitForVersion(version: number, timeoutMs: number, who: string): Promise<RoutingView> {
    const cur = this.current;
    if (cur && cur.view.version >= version) return Promise.resolve(cur.view);
    return new Promise((resolve, reject) => {
      // A caller's deadline, in real time even under an injected clock: a test that moves
      // time by hand must still not wait forever for a table that never comes.
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new Error(`gateway ${who}: table version ${version} not applied within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter: VersionWaiter = {
        version,
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      this.waiters.add(waiter);
    });
  }

  /** Rejects every waiter (shutdown). */
  rejectWaiters(reason: (version: number) => Error): void {
    for (const w of this.waiters) w.reject(reason(w.version));
    this.waiters.clear();
  }
}
