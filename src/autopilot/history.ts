// What the history says about the autopilot's own past (pure): which zones are down because
// the autopilot took them down (max-down-share counts only those; auto-failback brings back
// only those), and when it last acted (a new leader inherits the cooldown).
import type { HistoryEntry } from '../store/types';

export const AUTOPILOT_ACTOR = 'autopilot';

export interface AutopilotPast {
  readonly downByAutopilot: ReadonlySet<string>;
  readonly lastActionMs: number | null;
}

export function autopilotPast(history: readonly HistoryEntry[]): AutopilotPast {
  // Zone -> who made its last status change to what.
  const last = new Map<string, { status: string; actor: string }>();
  let lastActionMs: number | null = null;
  for (const entry of history) {
    for (const zone of entry.table.zones) {
      const before = last.get(zone.name);
      if (!before || before.status !== zone.status) last.set(zone.name, { status: zone.status, actor: entry.actor });
    }
    if (entry.actor === AUTOPILOT_ACTOR) {
      const at = Date.parse(entry.at);
      if (Number.isFinite(at)) lastActionMs = Math.max(lastActionMs ?? at, at);
    }
  }
  const downByAutopilot = new Set([...last].filter(([, s]) => s.status === 'down' && s.actor === AUTOPILOT_ACTOR).map(([z]) => z));
  return { downByAutopilot, lastActionMs };
}
