// Invariants about long-lived clients across moves, judged with the table history: which
// cell changed zone when (planned or not), WebSockets closed with 1012 and reopened on the
// new zone, no message at the old zone after the flip, slow requests cut only after the
// grace, no slow response from the old zone after the flip.
import { appliedAt, cellOf, failed, stepByLabel, validTables } from './analysis';
import type { ClientRecord } from './clients';
import { countBy, fmt, outcome, userCells } from './invariants-clients';
import type { Invariant, RunData } from './scenario';

/** A WebSocket message passed on by a gateway just before it applied an unplanned flip may reach the zone this much later. */
const TRANSIT_MS = 100;

/** A cell changing zone in a table revision; planned when the revision before had it frozen. */
export interface Flip {
  readonly t: number;
  readonly version: number;
  readonly cell: string;
  readonly from: string;
  readonly to: string;
  readonly planned: boolean;
}

export function flips(run: RunData): Flip[] {
  const out: Flip[] = [];
  const tables = validTables(run);
  for (let i = 1; i < tables.length; i++) {
    const prev = tables[i - 1]!.table;
    const e = tables[i]!;
    for (const c of [...e.table.cells, e.table.global]) {
      const before = cellOf(prev, c.name);
      if (before && before.zone !== c.zone) out.push({ t: e.t, version: e.version, cell: c.name, from: before.zone, to: c.zone, planned: before.state === 'frozen' });
    }
  }
  return out;
}

/** The first time `cell` froze (per the harness's view) in (from, to], or null. */
function freezeOf(run: RunData, cell: string, from: number, to: number): number | null {
  for (const e of validTables(run)) {
    if (e.t <= from || e.t > to) continue;
    if (cellOf(e.table, cell)?.state === 'frozen') return e.t;
  }
  return null;
}

/**
 * WebSockets of `cell` open when each of `ops` began were closed by the gateway with 1012
 * before the operation ended (+1 s), and their clients' next sockets opened on the zone the
 * cell was moved to.
 */
export const wsClosedAndReconnected = (cell: string, ops: readonly string[]): Invariant => ({
  name: 'WebSockets closed with 1012 and reconnected to the new zone',
  check(run) {
    const parts: string[] = [];
    let ok = true;
    for (const label of ops) {
      const op = stepByLabel(run, label);
      const flip = flips(run).find((f) => f.cell === cell && f.t >= op.t0);
      const open = run.ws.sessions.filter((s) => s.cell === cell && s.openedAt > 0 && s.openedAt < op.t0 && (s.closedAt === 0 || s.closedAt > op.t0));
      const closed = open.filter((s) => s.code === 1012 && s.closedBy === 'server' && s.closedAt <= op.t1 + 1_000);
      const moved = closed.filter((s) => run.ws.sessions.find((x) => x.client === s.client && x.conn > s.conn && x.openedAt > 0)?.zone === flip?.to);
      const codes = countBy(open.filter((s) => !closed.includes(s)), (s) => (s.closedAt ? `${s.code} by ${s.closedBy}` : 'never closed'));
      if (!flip || open.length === 0 || closed.length < open.length || moved.length < open.length) ok = false;
      parts.push(`"${label}" (${flip ? `${cell} ${flip.from}→${flip.to}` : `no move of ${cell} seen`}): ${open.length} sockets open, ${closed.length} closed 1012 in time, ${moved.length} reopened on ${flip?.to ?? '?'}`
        + (Object.keys(codes).length ? ` (others: ${JSON.stringify(codes)})` : ''));
    }
    return { passed: ok, detail: parts.join('; ') };
  },
});

/**
 * No WebSocket message reached a cell's old zone after the cell moved away: after the flip
 * revision for a planned move (its sockets closed when the cell froze), after the socket's
 * gateway applied the flip for an unplanned one (a gateway cannot close what it does not
 * know has moved yet). Until the cell comes back to that zone.
 */
export const noWsMessageAtOldZone = (): Invariant => ({
  name: 'no message reaches the old zone after the flip',
  check(run) {
    const gwOf = new Map(run.ws.sessions.map((s) => [s.id, run.gatewayIds[s.gw]]));
    const all = flips(run);
    const msgs = run.streamLog.filter((l) => l.event === 'ws-msg');
    const late: string[] = [];
    let inTransit = 0;
    for (const f of all) {
      const back = all.find((g) => g.cell === f.cell && g.t > f.t && g.to === f.from)?.t ?? Number.POSITIVE_INFINITY;
      for (const m of msgs) {
        if (m.cell !== f.cell || m.zone !== f.from || m.t <= f.t || m.t >= back) continue;
        const gw = gwOf.get(m.id ?? '');
        const cutoff = f.planned ? f.t : (gw ? appliedAt(run, gw, f.version) : null) ?? f.t;
        // Unplanned: a message the gateway passed on just before it applied the flip may be logged a moment after.
        if (!f.planned && m.t <= cutoff + TRANSIT_MS) inTransit++;
        else if (m.t > cutoff) late.push(`${m.id}#${m.seq} at ${m.zone} ${m.t - cutoff} ms after ${f.planned ? 'the' : 'its gateway applied the'} flip of ${f.cell} to ${f.to} (rev ${f.version})`);
      }
    }
    return {
      passed: late.length === 0 && msgs.length > 0,
      detail: `${msgs.length} WebSocket messages reached zone servers; ${all.length} flips checked (${all.filter((f) => f.planned).length} planned); ${late.length} reached an old zone after its flip`
        + `; ${inTransit} in transit at an unplanned flip (≤ ${TRANSIT_MS} ms after its gateway applied it)`
        + (late.length ? `: ${late.slice(0, 3).join(' | ')}` : ''),
    };
  },
});

/**
 * Slow requests (downloads, long polls) fail only when they were in flight as their cell
 * froze, and not before the gateway's grace (`graceMs`) had passed — or when an unplanned
 * move (zone down) took their cell away while they were in flight. Counted by reason.
 */
export const slowCutOnlyAfterGrace = (graceMs: number): Invariant => ({
  name: 'no slow request fails except those cut after the grace',
  check(run) {
    const cellOfUser = userCells(run);
    const slow = run.clients.filter((c) => c.kind === 'slow-download' || c.kind === 'long-poll');
    const bad: string[] = [];
    const cut: ClientRecord[] = [];
    const unplanned = flips(run).filter((f) => !f.planned);
    const cutByDown: ClientRecord[] = [];
    for (const c of slow.filter(failed)) {
      const cell = cellOfUser(c.user) ?? '';
      const frozeAt = freezeOf(run, cell, c.sent, c.done);
      // A zone taken down (unplanned) may also cut what is in flight to it.
      if (frozeAt === null && unplanned.some((f) => f.cell === cell && f.t > c.sent && f.t <= c.done)) cutByDown.push(c);
      else if (frozeAt === null) bad.push(`${c.kind} ${c.id} of ${cell} failed ${outcome(c)} with no freeze of its cell in flight`);
      else if (c.done < frozeAt + graceMs - 250) bad.push(`${c.kind} ${c.id} of ${cell} cut ${c.done - frozeAt} ms after the freeze (grace ${graceMs} ms)`);
      else cut.push(c);
    }
    return {
      passed: bad.length === 0 && slow.length > 0,
      detail: `${slow.length} slow requests, ${slow.filter((c) => !failed(c)).length} answered in full; ${cut.length} cut after the grace ${JSON.stringify(countBy(cut, (c) => `${c.kind} ${outcome(c)}`))}`
        + (cutByDown.length ? `; ${cutByDown.length} cut by an unplanned move of their cell ${JSON.stringify(countBy(cutByDown, (c) => `${c.kind} ${outcome(c)}`))}` : '')
        + (bad.length ? `; ${bad.length} failed otherwise: ${bad.slice(0, 3).join(' | ')}` : ''),
    };
  },
});

/**
 * No slow response kept streaming from a cell's old zone more than 200 ms after the cell's
 * planned flip (the gateway cuts what is left after the grace, before it acknowledges the
 * freeze). After an unplanned flip in-flight requests may finish where they are.
 */
export const noSlowResponseAfterFlip = (): Invariant => ({
  name: 'no slow response streams from the old zone after the flip',
  check(run) {
    const ends = run.streamLog.filter((l) => l.event === 'slow-end');
    const all = flips(run);
    const late = ends.filter((l) => all.some((f) => f.planned && f.cell === l.cell && f.from === l.zone && (l.startedAt ?? 0) < f.t && l.t > f.t + 200));
    return {
      passed: late.length === 0 && ends.length > 0,
      detail: `${ends.length} slow responses ended (${ends.filter((l) => l.completed).length} complete); ${late.length} still streaming from the old zone after the flip`
        + (late.length ? `: ${late.slice(0, 3).map((l) => `${l.id} of ${l.cell} at ${l.zone} until ${fmt(run, l.t)}`).join(' | ')}` : ''),
    };
  },
});

