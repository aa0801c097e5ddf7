// Choosing the ring layout of a new table: how many control points each cell gets.
//
// Lookups on the `consistent-hash` package slow down as the ring grows (a binary search plus
// an object lookup over all points), so the ring keeps few points (~32k in all). With few
// random points per cell, arc shares vary by ~1/sqrt(points) (4-5 % at 512). Instead of
// adding points, we balance: each cell's points are a prefix of its own hash sequence, and the
// prefix lengths are tuned until every cell owns an equal share of the ring. The counts are
// stored in the table, so every process derives the same ring, and adding a cell later only
// inserts the new cell's points (users move only to the new cell).
import { hash32 } from './hash';
import type { RingSpec } from './types';

/** 2^29: the package computes (pjw << 5) % range on a 32-bit int; 24-bit keys << 5 fit exactly. */
export const RING_RANGE = 1 << 29;
const TARGET_TOTAL_POINTS = 1 << 14;
const MIN_POINTS_PER_CELL = 16;
const MAX_POINTS_PER_CELL = 512;
const BALANCE_ROUNDS = 24;
/** Owner indexes are packed below the position in one float64: pos * 2^16 + index. */
const OWNER_BITS = 1 << 16;

/** The control point `i` of a cell: a pure function of its name. */
export function controlPoint(cell: string, i: number, range: number = RING_RANGE): number {
  return hash32(`${cell}#${i}`) % range;
}

export function controlPoints(cell: string, count: number, range: number = RING_RANGE): number[] {
  const points = new Array<number>(count);
  for (let i = 0; i < count; i++) points[i] = controlPoint(cell, i, range);
  return points;
}

export function basePointsPerCell(cellCount: number): number {
  const perCell = Math.floor(TARGET_TOTAL_POINTS / Math.max(1, cellCount));
  return Math.min(MAX_POINTS_PER_CELL, Math.max(MIN_POINTS_PER_CELL, perCell));
}

/**
 * Share of the ring each cell owns, as the package resolves it: a key goes to the first point
 * >= key (wrapping), and of two cells on the same point the one added last (sorted names) wins.
 * `cells` must be sorted.
 */
export function ringShares(cells: readonly string[], counts: readonly number[], range: number = RING_RANGE): number[] {
  if (cells.length >= OWNER_BITS) throw new RangeError(`at most ${OWNER_BITS - 1} cells`);
  let total = 0;
  for (const n of counts) total += n;
  const packed = new Float64Array(total);
  let k = 0;
  cells.forEach((cell, idx) => {
    for (let i = 0; i < counts[idx]; i++) packed[k++] = controlPoint(cell, i, range) * OWNER_BITS + idx;
  });
  packed.sort();
  const shares = new Array<number>(cells.length).fill(0);
  let prev = Math.floor(packed[total - 1] / OWNER_BITS) - range; // the wrap-around arc
  for (let j = 0; j < total; j++) {
    const pos = Math.floor(packed[j] / OWNER_BITS);
    const next = j + 1 < total ? Math.floor(packed[j + 1] / OWNER_BITS) : -1;
    if (next === pos) continue; // a later cell on the same point owns it
    shares[packed[j] % OWNER_BITS] += (pos - prev) / range;
    prev = pos;
  }
  return shares;
}

/** A balanced ring layout for these cells (deterministic: same names, same layout). */
export function balancedRingSpec(cellNames: readonly string[]): RingSpec {
  const cells = [...cellNames].sort();
  const base = basePointsPerCell(cells.length);
  const counts = cells.map(() => base);
  const target = 1 / cells.length;
  let best = { spread: Infinity, counts: [...counts] };
  for (let round = 0; round < BALANCE_ROUNDS && cells.length > 1; round++) {
    const shares = ringShares(cells, counts);
    const spread = Math.max(...shares.map((s) => Math.abs(s / target - 1)));
    if (spread < best.spread) best = { spread, counts: [...counts] };
    // Damped proportional correction (cells interact: a point added to one steals from a
    // neighbour); the bounds keep every cell's layout close to the base.
    for (let c = 0; c < cells.length; c++) {
      const wanted = counts[c] * (1 + 0.5 * (target / Math.max(shares[c], 1e-12) - 1));
      counts[c] = Math.min(base * 3, Math.max(Math.ceil(base / 3), Math.round(wanted)));
    }
  }
  const pointCounts: Record<string, number> = {};
  cells.forEach((cell, c) => { pointCounts[cell] = best.counts[c]; });
  return { range: RING_RANGE, pointsPerCell: base, pointCounts };
}
