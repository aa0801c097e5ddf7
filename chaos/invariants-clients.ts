// Invariants about the scenario's odd, slow and long-lived clients (clients.ts,
// ws-clients.ts) and the zone servers' stream log: deadlines, ejections of healthy
// endpoints, hop-by-hop headers, WebSockets across moves, slow requests across a drain.
import { RoutingView } from '../src/cells/lookup';
import { versioned } from '../src/cells/table';
import { appliedAt, cellOf, failed, stepByLabel, validTables } from './analysis';
import type { ClientRecord } from './clients';
import type { Invariant, RunData } from './scenario';
import type { WsClientSpec, WsSession } from './ws-clients';

/** A WebSocket message passed on by a gateway just before it applied an unplanned flip may reach the zone this much later. */
const TRANSIT_MS = 100;

const fmt = (run: RunData, t: number) => `t+${((t - run.t0) / 1000).toFixed(2)}s`;
const countBy = <T>(xs: readonly T[], key: (x: T) => string) => {
  const m: Record<string, number> = {};
  for (const x of xs) m[key(x)] = (m[key(x)] ?? 0) + 1;
  return m;
};
const outcome = (r: { status: number; error: string | null }) => (r.error === null && r.status === 200 ? '200' : `${r.status} ${r.error}`);

/** user -> cell with the first table (scenarios never change the ring). */
function userCells(run: RunData): (user: string) => string | null {
  const first = validTables(run)[0];
  if (!first) return () => null;
  const view = new RoutingView(versioned(first.table, first.version));
  return (user) => view.cellOfUser(user);
}

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
 * No client waited longer than its deadline: the load's requests (`loadDeadlineMs`), every
 * client request (its own deadline: the contract's plus its planned length), every
 * WebSocket message's echo (unless its socket was closed first) and every reconnect after
 * the gateway closed a socket. Slow-header connections have no deadline (they are the ones
 * who never finish).
 */
export const noClientPastDeadline = (opts: { loadDeadlineMs: number }): Invariant => ({
  name: 'no client waits past its deadline',
  check(run) {
    const late: string[] = [];
    const lateLoad = run.requests.filter((r) => r.done === 0 || r.done - r.sent > opts.loadDeadlineMs);
    for (const r of lateLoad.slice(0, 3)) late.push(`load ${r.id} ${r.done ? `${r.done - r.sent} ms` : 'never answered'} (${outcome(r)})`);
    const bounded = run.clients.filter((c) => Number.isFinite(c.deadlineMs));
    const lateClients = bounded.filter((c) => c.done === 0 || c.done - c.sent > c.deadlineMs);
    for (const c of lateClients.slice(0, 3)) late.push(`${c.kind} ${c.id} ${c.done ? `${c.done - c.sent} ms > ${c.deadlineMs}` : 'never answered'} (${outcome(c)})`);
    const ws = wsWaits(run);
    late.push(...ws.late.slice(0, 3));
    const total = lateLoad.length + lateClients.length + ws.late.length;
    return {
      passed: total === 0 && run.requests.length > 0,
      detail: `${run.requests.length} load requests (deadline ${opts.loadDeadlineMs} ms): ${lateLoad.length} late; ${bounded.length} client requests: ${lateClients.length} late`
        + `; ${ws.echoes} WebSocket messages echoed in time, ${ws.cutByClose} cut by their socket's close; ${ws.reconnects} reconnects in time; ${ws.late.length} late`
        + (late.length ? `; e.g. ${late.join(' | ')}` : ''),
    };
  },
});

function wsSpecs(run: RunData): WsClientSpec[] {
  return (run.scenario.clients ?? []).filter((s): s is WsClientSpec => s.kind === 'websocket');
}

function wsWaits(run: RunData): { late: string[]; echoes: number; cutByClose: number; reconnects: number } {
  const spec = wsSpecs(run)[0];
  const out = { late: [] as string[], echoes: 0, cutByClose: 0, reconnects: 0 };
  if (!spec) return out;
  const sessions = new Map(run.ws.sessions.map((s) => [s.id, s]));
  for (const m of run.ws.messages) {
    const s = sessions.get(m.session);
    if (m.echoAt > 0 && m.echoAt - m.sentAt <= spec.echoDeadlineMs) out.echoes++;
    else if (m.echoAt === 0 && s && s.closedAt > 0 && s.closedAt - m.sentAt <= spec.echoDeadlineMs) out.cutByClose++;
    else out.late.push(`ws message ${m.session}#${m.seq} ${m.echoAt ? `echoed after ${m.echoAt - m.sentAt} ms` : 'never echoed'}`);
  }
  const byClient = new Map<string, WsSession[]>();
  for (const s of run.ws.sessions) byClient.set(s.client, [...(byClient.get(s.client) ?? []), s]);
  for (const list of byClient.values()) {
    list.forEach((s, i) => {
      if (s.closedBy !== 'server') return;
      const next = list.slice(i + 1).find((x) => x.openedAt > 0);
      const waited = (next ? next.openedAt : run.tLoadEnd) - s.closedAt;
      if (next ? waited <= spec.reconnectDeadlineMs : waited <= spec.reconnectDeadlineMs + 1_000) out.reconnects += next ? 1 : 0;
      else out.late.push(`ws ${s.id} closed ${s.code} at ${fmt(run, s.closedAt)}, ${next ? `reopened after ${waited} ms` : 'never reopened'} (deadline ${spec.reconnectDeadlineMs} ms)`);
    });
  }
  return out;
}

/**
 * No gateway ejected an endpoint of a zone whose servers were healthy: every sample of
 * cellgate_upstream_ejected_endpoints is 0 for a zone until its fault step (given per zone)
 * began. Hostile requests must never count against an endpoint's health.
 */
export const noEjectionWhileHealthy = (faults: Readonly<Record<string, string>> = {}): Invariant => ({
  name: 'no endpoint ejected while its server is healthy',
  check(run) {
    const healthyUntil = new Map(Object.entries(faults).map(([zone, label]) => [zone, stepByLabel(run, label).t0]));
    const bad = run.ejections.filter((s) => s.ejected > 0 && s.t < (healthyUntil.get(s.zone) ?? Number.POSITIVE_INFINITY));
    const spans = new Map<string, { from: number; to: number; max: number }>();
    for (const s of bad) {
      const key = `${s.zone} at ${s.gateway}`;
      const span = spans.get(key) ?? { from: s.t, to: s.t, max: 0 };
      spans.set(key, { from: Math.min(span.from, s.t), to: Math.max(span.to, s.t), max: Math.max(span.max, s.ejected) });
    }
    const gateways = new Set(run.ejections.map((s) => s.gateway));
    return {
      passed: bad.length === 0 && run.ejections.length > 0,
      detail: `${run.ejections.length} samples from ${gateways.size} gateways; ${bad.length} show an endpoint of a healthy zone ejected`
        + (spans.size ? `: ${[...spans].slice(0, 4).map(([k, v]) => `${k}: ${v.max} endpoint(s) ejected ${fmt(run, v.from)}–${fmt(run, v.to)}`).join(', ')}` : ''),
    };
  },
});

/** Hop-by-hop headers (and those named in Connection) never reach a zone server. */
export const hopHeadersStripped = (): Invariant => ({
  name: 'hop-by-hop headers never reach a zone server',
  check(run) {
    const odd = new Set(run.clients.filter((c) => c.kind === 'odd-headers').map((c) => c.id));
    const reached = run.zoneLog.filter((l) => l.rid !== null && odd.has(l.rid));
    const leaked = run.zoneLog.filter((l) => (l.hop?.length ?? 0) > 0);
    return {
      passed: leaked.length === 0 && reached.length > 0,
      detail: `${reached.length} odd-header requests reached a zone server; ${leaked.length} requests carried hop-by-hop headers there`
        + (leaked.length ? ` ${JSON.stringify(countBy(leaked.flatMap((l) => l.hop ?? []), (h) => h))}` : ''),
    };
  },
});

/**
 * Odd-header requests get what the contract says: hop-by-hop headers and Expect are
 * handled by the gateway (200, the body echoed intact), two different user ids are refused
 * 400 BAD_USER_ID, the same id twice routes as that id (or is refused BAD_USER_ID).
 * Failures like the normal load's are allowed inside the failover's error window.
 */
export const oddHeadersAnswered = (window: { fault: string; until: string; boundMs: number }): Invariant => ({
  name: 'odd-header requests answered per the contract',
  check(run) {
    const from = stepByLabel(run, window.fault).t0;
    const to = stepByLabel(run, window.until).t1 + window.boundMs;
    const cellOfUser = userCells(run);
    const odd = run.clients.filter((c) => c.kind === 'odd-headers');
    const wrong = odd.filter((c) => {
      const refused = c.status === 400 && c.error === 'BAD_USER_ID';
      if (c.variant === 'user-id-conflict') return !refused;
      if (c.variant === 'user-id-repeated' && refused) return false;
      if (failed(c)) return !(c.done >= from && c.done <= to);
      return c.variant === 'user-id-repeated' && c.cell !== cellOfUser(c.user);
    });
    const byVariant = Object.entries(countBy(odd, (c) => c.variant)).map(([v, n]) => `${v} ${n - wrong.filter((c) => c.variant === v).length}/${n}`);
    return {
      passed: wrong.length === 0 && odd.length > 0,
      detail: `${odd.length} odd-header requests, answered right: ${byVariant.join(', ')}`
        + (wrong.length ? `; wrong: ${JSON.stringify(countBy(wrong, (c) => `${c.variant}: ${outcome(c)}${c.cell ? ` cell ${c.cell}` : ''}`))}` : '')
        + `; slow-header connections: ${JSON.stringify(countBy(run.clients.filter((c) => c.kind === 'slow-headers'), (c) => (c.done ? `cut after ${Math.round((c.done - c.sent) / 1000)} s` : 'open at the end')))}`,
    };
  },
});

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

/** A cellctl step exited 0 within `boundMs`. */
export const cellctlWithin = (label: string, boundMs: number): Invariant => ({
  name: `cellctl "${label}" completes within ${boundMs} ms`,
  check(run) {
    const c = stepByLabel(run, label).cellctl;
    if (!c) return { passed: false, detail: `step "${label}" did not run cellctl` };
    const took = c.endedAt - c.startedAt;
    return { passed: c.code === 0 && took <= boundMs, detail: `exit ${c.code ?? c.signal} after ${took} ms` };
  },
});
