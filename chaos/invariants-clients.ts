// Invariants about the scenario's odd, slow and long-lived clients (clients.ts,
// ws-clients.ts): deadlines, ejections of healthy endpoints, hop-by-hop headers, odd
// requests, how long an operation took. Across moves: invariants-moves.ts.
import { RoutingView } from '../src/cells/lookup';
import { versioned } from '../src/cells/table';
import { failed, stepByLabel, validTables } from './analysis';
import type { Invariant, RunData } from './scenario';
import type { WsClientSpec, WsSession } from './ws-clients';

export const fmt = (run: RunData, t: number) => `t+${((t - run.t0) / 1000).toFixed(2)}s`;
export const countBy = <T>(xs: readonly T[], key: (x: T) => string) => {
  const m: Record<string, number> = {};
  for (const x of xs) m[key(x)] = (m[key(x)] ?? 0) + 1;
  return m;
};
export const outcome = (r: { status: number; error: string | null }) => (r.error === null && r.status === 200 ? '200' : `${r.status} ${r.error}`);

/** user -> cell with the first table (scenarios never change the ring). */
export function userCells(run: RunData): (user: string) => string | null {
  const first = validTables(run)[0];
  if (!first) return () => null;
  const view = new RoutingView(versioned(first.table, first.version));
  return (user) => view.cellOfUser(user);
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
