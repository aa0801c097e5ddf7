// Epoch fencing holds only if no (cell, epoch) pair is ever issued for two zones. Normal
// changes plan on the current table, whose epochs only grow. The paths that rebuild a table
// from an older one — a rollback that repairs an invalid document, an init over a wiped (or
// --force'd) store, a current table written around cellctl with lower epochs — first raise
// every cell above the highest epoch the store has any trace of: the table's high-water
// mark, what an invalid document still shows, and every history entry (one per version).
import { epochHighWaterOf, validateTable } from '../cells/table';
import type { Cell, RoutingTable, VersionedTable } from '../cells/types';
import { isCellgateError } from '../errors';
import type { HistoryEntry, TableStore } from '../store/types';

export interface StoreEpochs {
  /** The current table, or null when the store holds none or an invalid one. */
  readonly current: VersionedTable | null;
  /** The version of an invalid document (to replace it by CAS), else null. */
  readonly invalidVersion: number | null;
  readonly history: readonly HistoryEntry[];
  /** The highest epoch the store shows any trace of (0: none). */
  readonly highWater: number;
}

export async function storeEpochs(store: TableStore): Promise<StoreEpochs> {
  const history = await store.listHistory();
  let current: VersionedTable | null = null;
  let invalidVersion: number | null = null;
  let seenInInvalid = 0;
  try {
    current = await store.load();
  } catch (err) {
    const detail = isCellgateError(err, 'INVALID_TABLE') ? (err.detail as { version?: unknown; seenEpoch?: unknown } | undefined) : undefined;
    if (typeof detail?.version !== 'number') throw err;
    invalidVersion = detail.version;
    seenInInvalid = typeof detail.seenEpoch === 'number' ? detail.seenEpoch : 0;
  }
  const highWater = Math.max(
    0, seenInInvalid, current ? epochHighWaterOf(current.table) : 0,
    ...history.map((h) => highWaterOfUntrusted(h.table)),
  );
  return { current, invalidVersion, history, highWater };
}

/** History entries are stored data: one that is not a table shows no epochs. */
function highWaterOfUntrusted(table: unknown): number {
  try {
    return epochHighWaterOf(table as RoutingTable);
  } catch {
    return 0;
  }
}

/** `table` with every cell at epoch `above + 1` (a fresh epoch for each, whatever its zone). */
export function raiseEpochsAbove(table: RoutingTable, above: number): RoutingTable {
  const epoch = above + 1;
  const raise = <C extends Cell>(c: C): C => ({ ...c, epoch: Math.max(c.epoch, epoch) });
  return validateTable({ ...table, cells: table.cells.map(raise), global: raise(table.global), epochHighWater: Math.max(epoch, epochHighWaterOf(table)) });
}

/** Whether the table's epochs are behind what the store has issued (it was rebuilt or written around cellctl). */
export function isBehind(table: RoutingTable, highWater: number): boolean {
  return epochHighWaterOf(table) < highWater;
}

/**
 * The table a rollback plans on when the current one cannot be trusted for epochs: an invalid
 * document is replaced (at its version) by the last table in the history, and a table behind
 * the store's high-water mark is kept; either way with every cell above the high-water mark.
 * Null when the current table is fine.
 */
export async function rebuiltBase(store: TableStore): Promise<VersionedTable | null> {
  const e = await storeEpochs(store);
  if (e.invalidVersion !== null) {
    const lastGood = e.history[e.history.length - 1];
    if (!lastGood) return null;
    return { table: raiseEpochsAbove(validateTable(lastGood.table), e.highWater), version: e.invalidVersion, checksum: 'invalid' };
  }
  if (e.current && isBehind(e.current.table, e.highWater)) {
    return { ...e.current, table: raiseEpochsAbove(e.current.table, e.highWater) };
  }
  return null;
}
