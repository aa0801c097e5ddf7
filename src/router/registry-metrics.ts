// Metrics of the endpoint registry (in the gateway's registry, prefix cellgate_): endpoints
// routed to per zone and service (read at scrape time from the last merge; zones are the
// table's, services at most MAX_SERVICES_PER_ZONE per zone, so labels stay bounded), and
// records refused, by a fixed list of reasons, starting at 0 for each.
//
// The refused counter grows by the records newly refused: when a snapshot refuses more
// records for a reason than the one before, by the difference (a bad record that stays is
// counted once, not at every change of the registry).
import { Counter, Gauge, type Registry } from 'prom-client';
import { IGNORED_REASONS, type MergeResult } from './registry-merge';

export const REFUSED_REASONS = ['invalid', ...IGNORED_REASONS] as const;
export type RefusedReason = (typeof REFUSED_REASONS)[number];

export class RegistryMetrics {
  private readonly refused: Counter<'reason'>;
  private previous: Record<RefusedReason, number> = { invalid: 0, unknown_zone: 0, url_refused: 0, too_many_services: 0 };

  constructor(registry: Registry, lastMerge: () => MergeResult | null) {
    const registers = [registry];
    new Gauge({
      name: 'cellgate_registry_endpoints',
      help: 'Registered endpoints (endpoint registry) this gateway routes to, by zone and service.',
      labelNames: ['zone', 'service'], registers, aggregator: 'max',
      collect() {
        this.reset();
        for (const [zone, services] of lastMerge()?.applied ?? []) for (const [service, n] of services) this.set({ zone, service }, n);
      },
    });
    this.refused = new Counter({
      name: 'cellgate_registry_records_refused_total',
      help: 'Endpoint registry records not routed to: invalid (failed validation or over the bounds), unknown_zone, url_refused (the table\'s URL checks), too_many_services.',
      // Every worker of a --workers gateway refuses the same records: not a sum.
      labelNames: ['reason'], registers, aggregator: 'max',
    });
    for (const reason of REFUSED_REASONS) this.refused.inc({ reason }, 0);
  }

  /** A registry snapshot was applied: `invalid` records the store refused, and what the merge ignored. */
  applied(invalid: number, merge: MergeResult | null): void {
    const now: Record<RefusedReason, number> = { invalid, ...(merge?.ignored ?? { unknown_zone: 0, url_refused: 0, too_many_services: 0 }) };
    for (const reason of REFUSED_REASONS) {
      const grew = now[reason] - this.previous[reason];
      if (grew > 0) this.refused.inc({ reason }, grew);
    }
    this.previous = now;
  }
}
