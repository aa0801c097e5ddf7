// Follows the endpoint registry: every snapshot the store's watch delivers (at start, after
// every change, after a resync) is merged into the routing state at once, counted in the
// metrics and published in the gateway's presence record as a digest (count, version,
// checksum), so that `cellctl endpoints` can show what each gateway sees. A store that
// cannot be read leaves the last registry in place (fail-static, like the table).
//
// Over the registry's bound (MAX_REGISTERED_ENDPOINTS) the watch keeps the records this
// gateway routes to first: the zones and services of the table it applied, then other
// services of its zones, then the rest (registryPriorityOf). When a table with other zones
// or services is applied, the watch makes its snapshot again with the new priority.
import type { RoutingTable } from '../cells/types';
import { registryChecksum, registryPriorityOf } from '../store/endpoint-record';
import type { EndpointRegistry, RegistryDigest, RegistryPriority, RegistrySnapshot, RegistryWatch } from '../store/types';
import type { MergeResult } from './registry-merge';

export interface RegistryFollowerEvents {
  /** Rebuilds routing over the new registry; returns what the merge made of it. */
  apply(snapshot: RegistrySnapshot): MergeResult | null;
  applied(snapshot: RegistrySnapshot, merge: MergeResult | null, digest: RegistryDigest): void;
  log(event: string, fields?: Record<string, unknown>): void;
}

export class RegistryFollower {
  private watch: RegistryWatch | null = null;
  private closed = false;
  /** Before any table: every record alike (key order). */
  private scope: { key: string; priority: RegistryPriority } = { key: '', priority: () => 0 };
  private overLimit = 0;
  /** Snapshots applied (for tests and the benchmark). */
  applies = 0;

  constructor(private readonly registry: EndpointRegistry, private readonly events: RegistryFollowerEvents) {}

  start(): void {
    if (this.closed || this.watch) return;
    this.watch = this.registry.watch({
      onSnapshot: (s) => this.onSnapshot(s),
      onError: (err) => this.events.log('registry.watch_failed', { error: err.message }),
      priority: (zone, service) => this.scope.priority(zone, service),
    });
  }

  /** The gateway applied `table`: if its zones or services changed, the registry is ranked again. */
  tableApplied(table: RoutingTable): void {
    const next = registryPriorityOf(table);
    if (next.key === this.scope.key) return;
    this.scope = next;
    this.watch?.refresh();
  }

  async close(): Promise<void> {
    this.closed = true;
    const w = this.watch;
    this.watch = null;
    if (w) await w.close();
  }

  private onSnapshot(snapshot: RegistrySnapshot): void {
    if (this.closed) return;
    const merge = this.events.apply(snapshot);
    this.applies += 1;
    const digest: RegistryDigest = { count: snapshot.endpoints.length, version: snapshot.version, checksum: registryChecksum(snapshot) };
    this.events.applied(snapshot, merge, digest);
    const ignored = merge ? Object.values(merge.ignored).reduce((a, b) => a + b, 0) : 0;
    this.events.log('registry.applied', { ...digest, refused: snapshot.refusedCount, overLimit: snapshot.overLimitCount, ignored });
    if (snapshot.overLimitCount !== this.overLimit) {
      this.overLimit = snapshot.overLimitCount;
      if (this.overLimit > 0) this.events.log('registry.over_limit', { dropped: this.overLimit, kept: snapshot.endpoints.length });
    }
  }
}
