// Validating the next version of a table cheaply. A gateway follows one table through many
// versions that mostly differ in a few cells or one zone's status; validating (and later
// checksumming, routing) all 10,000 cells again for each costs hundreds of ms. The decoder
// keeps the last table it produced and, when the new document has the same zone and cell
// names in the same order, the same ring and the same overrides, validates only what
// changed — through validateTable itself, on a small document of the zones, the global, the
// changed cells and the cell with the highest epoch (what the cross-checks need) — and
// reuses the previous version's frozen objects for everything equal, so that checksum.ts,
// RoutingView and the pools find the same objects again and skip their work too.
//
// The result is exactly what validateTable(doc) returns (a deep-frozen table equal to the
// document); anything the shortcut does not cover, and any document the small check refuses,
// goes through the full validation, so errors name the same paths as before.
import { deepFreeze, isRecord } from './check';
import { TableChecksummer } from './checksum';
import { validateTable, versioned, type DocumentHandling } from './table';
import type { Cell, RoutingTable, VersionedTable, Zone } from './types';

/** What one decode reused (for tests and the scale benchmark). */
export interface DecodeStats {
  readonly incremental: boolean;
  readonly cellsReused: number;
  readonly cellsValidated: number;
}

export class TableDecoder {
  private last: RoutingTable | null = null;
  private lastStats: DecodeStats = { incremental: false, cellsReused: 0, cellsValidated: 0 };
  private readonly checksummer = new TableChecksummer();

  get stats(): DecodeStats {
    return this.lastStats;
  }

  /**
   * Validates `doc` (throws INVALID_TABLE like validateTable) and checksums it as stored at
   * `version`. `handling` as for validateTable: a watch hands over (`take`) the document it
   * has just parsed, whose objects then become the table's.
   */
  decode(doc: unknown, version: number, handling: DocumentHandling = 'copy'): VersionedTable {
    const table = this.validate(doc, handling);
    return versioned(table, version, this.checksummer.checksum(table));
  }

  validate(doc: unknown, handling: DocumentHandling = 'copy'): RoutingTable {
    const prev = this.last;
    const table = (prev && this.incremental(doc, prev, handling)) || this.full(doc, handling);
    this.last = table;
    return table;
  }

  private full(doc: unknown, handling: DocumentHandling): RoutingTable {
    const table = validateTable(doc, handling);
    this.lastStats = { incremental: false, cellsReused: 0, cellsValidated: table.cells.length };
    return table;
  }

  /** The table, or null when the shortcut does not apply (then the caller validates in full). */
  private incremental(doc: unknown, prev: RoutingTable, handling: DocumentHandling): RoutingTable | null {
    if (!isRecord(doc) || !Array.isArray(doc.cells) || !Array.isArray(doc.zones)) return null;
    const cells = doc.cells as unknown[];
    if (cells.length !== prev.cells.length || doc.zones.length !== prev.zones.length) return null;
    if (!sameRing(doc.ring, prev.ring) || !sameFlatRecord(doc.overrides, prev.overrides)) return null;
    for (let i = 0; i < prev.zones.length; i++) {
      const z = doc.zones[i] as unknown;
      if (!isRecord(z) || z.name !== prev.zones[i]!.name) return null;
      // Whether a zone is elastic bears on every cell's home, not only the changed cells'.
      if ((z.elastic === true) !== (prev.zones[i]!.elastic === true)) return null;
    }
    // The next version's cells: the previous version's object where the cell did not change,
    // the validated new one (filled in below, by position) where it did.
    const outCells = new Array<Cell>(cells.length);
    const changed: unknown[] = [];
    const changedAt: number[] = [];
    let maxEpochCell: unknown = null;
    let maxEpoch = -1;
    for (let i = 0; i < cells.length; i++) {
      const c = cells[i];
      const p = prev.cells[i]!;
      if (!isRecord(c) || c.name !== p.name) return null;
      if (sameCell(c, p)) outCells[i] = p;
      else {
        changed.push(c);
        changedAt.push(i);
      }
      const epoch = typeof c.epoch === 'number' ? c.epoch : -1;
      if (epoch > maxEpoch) {
        maxEpoch = epoch;
        maxEpochCell = c;
      }
    }
    // Everything validateTable checks across entries is covered by this small document:
    // zone references (all zones), unique names (unchanged list), no home in an elastic zone
    // (the same zones are elastic), the ring's keys (the same ring over the same names),
    // overrides (unchanged, over the same names), the epoch high-water mark (the highest
    // epoch is in it).
    const smallCells = (changed.includes(maxEpochCell) ? changed : [...changed, maxEpochCell]) as Record<string, unknown>[];
    const pointCounts: Record<string, number | undefined> = {};
    for (const c of smallCells) pointCounts[c.name as string] = prev.ring.pointCounts[c.name as string];
    const smallDoc = { ...doc, cells: smallCells, ring: { ...prev.ring, pointCounts }, overrides: {} };
    let checked: RoutingTable;
    try {
      checked = validateTable(smallDoc, handling);
    } catch {
      return null; // the full validation names the problem with its real path
    }
    // validateTable keeps the order of the cells: the first changed.length are the changed ones.
    for (let j = 0; j < changedAt.length; j++) outCells[changedAt[j]!] = checked.cells[j]!;
    const zones = checked.zones.map((z, i) => (sameZone(z, prev.zones[i]!) ? prev.zones[i]! : z));
    const global = sameFlatRecord(checked.global, prev.global) ? prev.global : checked.global;
    this.lastStats = { incremental: true, cellsReused: cells.length - changed.length, cellsValidated: changed.length };
    const table: Record<string, unknown> = { ...(checked as unknown as Record<string, unknown>) };
    table.zones = Object.freeze(zones);
    table.cells = Object.freeze(outCells);
    table.global = global;
    table.ring = prev.ring;
    table.overrides = prev.overrides;
    return deepFreeze(table) as unknown as RoutingTable;
  }
}

/**
 * Equal own keys with equal primitive values (a nested value never counts as equal). Runs for
 * every cell of every version: for-in over own keys allocates nothing, where Object.keys makes
 * two arrays per cell.
 */
function sameFlatRecord(a: unknown, b: object): boolean {
  if (!isRecord(a)) return false;
  const bRec = b as Record<string, unknown>;
  let keys = 0;
  for (const k in a) {
    if (!Object.hasOwn(a, k)) return false; // an inherited enumerable key: not judged here
    const v = a[k];
    if ((v !== null && typeof v === 'object') || v !== bRec[k] || !Object.hasOwn(bRec, k)) return false;
    keys++;
  }
  for (const k in bRec) if (Object.hasOwn(bRec, k)) keys--;
  return keys === 0;
}

/**
 * sameFlatRecord(a, p) for a validated cell `p` (its keys are among the cell's few, its values
 * primitives), compared by name: named loads are what the engine does fastest, and this runs
 * for every cell of every version. Equal values under every cell key, then the same own keys.
 */
function sameCell(a: Record<string, unknown>, p: Cell): boolean {
  if (a.name !== p.name || a.home !== p.home || a.zone !== p.zone || a.epoch !== p.epoch || a.state !== p.state) return false;
  if (a.frozenUntilMs !== p.frozenUntilMs || a.movingTo !== p.movingTo) return false;
  let keys = 0;
  for (const k in a) {
    if (!Object.hasOwn(a, k)) return false;
    keys++;
  }
  for (const k in p) {
    if (!Object.hasOwn(a, k)) return false;
    keys--;
  }
  return keys === 0;
}

function sameRing(doc: unknown, ring: RoutingTable['ring']): boolean {
  if (!isRecord(doc) || Object.keys(doc).length !== 3) return false;
  return doc.range === ring.range && doc.pointsPerCell === ring.pointsPerCell && sameFlatRecord(doc.pointCounts, ring.pointCounts);
}

function sameZone(a: Zone, b: Zone): boolean {
  const { upstreams: ua, services: sa, ...ra } = a;
  const { upstreams: ub, services: sb, ...rb } = b;
  return sameFlatRecord(ra, rb) && sameList(ua, ub) && sameServices(sa, sb);
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((u, i) => u === b[i]);
}

function sameServices(a: Zone['services'], b: Zone['services']): boolean {
  if (a === undefined || b === undefined) return a === b;
  const names = Object.keys(a);
  if (names.length !== Object.keys(b).length) return false;
  for (const name of names) {
    const [x, y] = [a[name]!, b[name]];
    if (y === undefined || x.healthPath !== y.healthPath || !sameList(x.upstreams, y.upstreams)) return false;
  }
  return true;
}
