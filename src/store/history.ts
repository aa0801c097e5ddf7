// The history entry both stores write with each table version.
import type { RoutingTable } from '../cells/types';
import type { ChangeNote, HistoryEntry } from './types';

/** What is recorded for a write made without a note (a program using the store API directly). */
export function anonymousNote(): ChangeNote {
  return { actor: 'unknown', at: new Date().toISOString(), reason: '', action: 'table write (no change note)', summary: [] };
}

export function historyEntry(note: ChangeNote | undefined, versionBefore: number, versionAfter: number, table: RoutingTable): HistoryEntry {
  const n = note ?? anonymousNote();
  return { actor: n.actor, at: n.at, reason: n.reason, action: n.action, summary: [...n.summary], versionBefore, versionAfter, table };
}
