// The user -> cell ring, built on the `consistent-hash` package.
//
// That package places control points with Math.random() unless it is handed them, and its
// own string hash (PJW) is weak on correlated ids ("1", "2", …). So:
//  - every cell's control points come from the table's RingSpec (see ring-layout.ts), so
//    every process builds the same ring from the same table;
//  - a user id is first whitened by a strong 32-bit hash, and its top 24 bits are handed to
//    the package as six characters with codes 0..15. PJW over six 4-bit characters is exactly
//    the 24-bit number they spell (no bit reaches PJW's fold), so the package places the user
//    at position (h << 5) on a ring of range 2^29: uniformly, whatever the ids look like;
//  - rings are immutable: one is built per layout and swapped whole (the package throws on
//    remove() then add() without a get() in between, and mutation would race readers).
import ConsistentHash from 'consistent-hash';
import { hash32 } from './hash';
import { RING_RANGE, controlPoints } from './ring-layout';
import type { RingSpec, RoutingTable } from './types';

/** The package-side key for a user: 24 bits of hash32 spelled as six 4-bit characters. */
export function ringKey(userId: string): string {
  const h = hash32(userId) >>> 8;
  return String.fromCharCode((h >>> 20) & 15, (h >>> 16) & 15, (h >>> 12) & 15, (h >>> 8) & 15, (h >>> 4) & 15, h & 15);
}

export class CellRing {
  private constructor(private readonly ring: ConsistentHash<string>, readonly cells: readonly string[]) {}

  static build(table: Pick<RoutingTable, 'ring' | 'cells'>): CellRing {
    return CellRing.fromCells(table.cells.map((c) => c.name), table.ring);
  }

  static fromCells(cellNames: readonly string[], spec: RingSpec): CellRing {
    if (spec.range !== RING_RANGE) throw new RangeError(`ring range must be ${RING_RANGE}`);
    // Sorted insertion: if two cells ever share a control point, the same one wins everywhere.
    const names = [...cellNames].sort();
    const ring = new ConsistentHash<string>({ range: spec.range });
    for (const name of names) {
      const count = spec.pointCounts[name] ?? spec.pointsPerCell;
      ring.add(name, count, controlPoints(name, count, spec.range));
    }
    ring.get(''); // builds the sorted key array now, so lookups never mutate the ring
    return new CellRing(ring, names);
  }

  cellOf(userId: string): string {
    return this.ring.get(ringKey(userId)) as string;
  }
}

/** Identity of a ring layout: tables that differ only in zones or epochs share one built ring. */
export function ringLayoutKey(table: Pick<RoutingTable, 'ring' | 'cells'>): string {
  const counts = table.cells.map((c) => `${c.name}:${table.ring.pointCounts[c.name] ?? table.ring.pointsPerCell}`);
  return `${table.ring.range}/${table.ring.pointsPerCell}/${counts.join(',')}`;
}
