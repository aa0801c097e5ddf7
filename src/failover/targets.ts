// Choosing where displaced cells go. Pure and deterministic: same table, same choices.
//
// Order of preference (docs/design.md §2): an `up` zone in the same city (same-city active-active),
// then another city of the same region, then another region. Within the nearest tier that
// still has room, each cell goes to the zone with the lowest load after taking it (cells /
// capacity, ties by name), so one zone's cells are spread over its peers, not piled on one.
// Elastic zones are never targets: they are lent for a peak, and a cell failed over onto one
// would be stranded when it is given back (only `rebalance --onto-elastic` puts cells there).
import type { Zone } from '../cells/types';

export type MoveScope = 'same-zone' | 'same-city' | 'cross-city' | 'cross-region';

export function moveScope(from: Zone, to: Zone): MoveScope {
  if (from.name === to.name) return 'same-zone';
  if (from.region !== to.region) return 'cross-region';
  return from.city === to.city ? 'same-city' : 'cross-city';
}

const TIER: Record<MoveScope, number> = { 'same-zone': 0, 'same-city': 1, 'cross-city': 2, 'cross-region': 3 };

/** Cells each zone carries, kept up to date while a plan assigns cells. */
export class ZoneLoads {
  private readonly counts = new Map<string, number>();

  constructor(cellZones: Iterable<string>) {
    for (const zone of cellZones) this.add(zone, 1);
  }

  get(zone: string): number {
    return this.counts.get(zone) ?? 0;
  }

  add(zone: string, n: number): void {
    this.counts.set(zone, this.get(zone) + n);
  }
}

/**
 * The zone a cell leaving `from` should go to, among `candidates` (all `up`, none leaving),
 * or null when none has room. With `allowOverCapacity`, a full zone may still be chosen
 * (least loaded first) rather than refusing.
 */
export function chooseTarget(from: Zone, candidates: readonly Zone[], loads: ZoneLoads, allowOverCapacity: boolean): Zone | null {
  let best: Zone | null = null;
  let bestKey: [number, number, string] | null = null;
  for (const zone of candidates) {
    if (zone.name === from.name || zone.elastic === true) continue;
    const after = loads.get(zone.name) + 1;
    const fits = after <= zone.capacity;
    if (!fits && !allowOverCapacity) continue;
    // Zones with room always beat full ones; then nearer tiers; then the lighter load.
    const key: [number, number, string] = [
      (fits ? 0 : 10) + TIER[moveScope(from, zone)],
      zone.capacity > 0 ? after / zone.capacity : Number.POSITIVE_INFINITY,
      zone.name,
    ];
    if (!bestKey || compareKeys(key, bestKey) < 0) {
      best = zone;
      bestKey = key;
    }
  }
  return best;
}

function compareKeys(a: [number, number, string], b: [number, number, string]): number {
  return a[0] - b[0] || a[1] - b[1] || a[2].localeCompare(b[2]);
}
