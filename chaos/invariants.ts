// The invariants a run is judged by. Each has a stable name (what the report and the tests
// match on) and explains itself in `detail` whether it passed or not.
import type { RoutingTable } from '../src/cells/types';
import {
  appliedAt, cellOf, failed, impairedAt, revisionLags, stepByLabel, tableByVersion, validTables,
} from './analysis';
import type { RequestRecord } from './load';
import type { Invariant, RunData } from './scenario';
import type { ZoneLogLine } from './zone-server';

/** A client may send a request this long before its gateway routes it. */
const ROUTE_GRACE_MS = 100;

const fmt = (run: RunData, t: number) => `t+${((t - run.t0) / 1000).toFixed(2)}s`;
const sample = <T>(xs: readonly T[], n = 3) => xs.slice(0, n);
const countBy = <T>(xs: readonly T[], key: (x: T) => string) => {
  const m: Record<string, number> = {};
  for (const x of xs) m[key(x)] = (m[key(x)] ?? 0) + 1;
  return m;
};

function requestsById(run: RunData): Map<string, RequestRecord> {
  return new Map(run.requests.map((r) => [r.id, r]));
}

export type MisrouteKind = 'wrong zone endpoint' | 'served by a non-owner' | 'stale route after convergence' | 'table and fence disagree';

export interface MisrouteVerdicts {
  readonly misroutes: { line: ZoneLogLine; kind: MisrouteKind }[];
  /** Stale routes the fence refused while gateways were still moving to the new table. */
  fencedInTransition: number;
  /** The zone server could not catch up with the gateway's revision in time (not the gateway's fault). */
  oracleLag: number;
}

/** Judges every request a zone server saw with the table history (see `no misrouted request`). */
export function judgeRoutes(run: RunData): MisrouteVerdicts {
  const tables = tableByVersion(run);
  const versions = [...tables.keys()].sort((a, b) => a - b);
  const byId = requestsById(run);
  const out: MisrouteVerdicts = { misroutes: [], fencedInTransition: 0, oracleLag: 0 };
  for (const line of run.zoneLog) {
    if (line.rid === null) continue;
    if (line.hdrZone !== null && line.hdrZone !== line.zone) {
      out.misroutes.push({ line, kind: 'wrong zone endpoint' });
      continue;
    }
    if (line.verdict !== 'notOwned') continue;
    if (line.status < 400) {
      out.misroutes.push({ line, kind: 'served by a non-owner' });
      continue;
    }
    const routedWith = line.rev === null ? undefined : tables.get(line.rev);
    const cell = line.cell ?? '';
    const before = routedWith ? cellOf(routedWith, cell) : undefined;
    // The first later revision that assigns the cell differently: what made the route stale.
    const changedIn = versions.find((v) => {
      if (line.rev === null || v <= line.rev) return false;
      const c = cellOf(tables.get(v) as RoutingTable, cell);
      return !before || !c || c.zone !== before.zone || c.epoch !== before.epoch;
    });
    if (changedIn === undefined) {
      if (line.view !== null && line.rev !== null && line.view < line.rev) out.oracleLag++;
      else out.misroutes.push({ line, kind: 'table and fence disagree' });
      continue;
    }
    const req = byId.get(line.rid);
    const gatewayId = req ? run.gatewayIds[req.gw] : undefined;
    const reported = gatewayId ? appliedAt(run, gatewayId, changedIn) : null;
    if (req && reported !== null && req.sent > reported + ROUTE_GRACE_MS) out.misroutes.push({ line, kind: 'stale route after convergence' });
    else out.fencedInTransition++;
  }
  return out;
}

/**
 * No request reached a zone that did not own its cell at its epoch, once the gateways had
 * converged: a request sent to an endpoint of another zone than the gateway meant, served
 * by a non-owner, routed with an older revision by a gateway that had already reported a
 * newer one, or refused by the fence although no table explains it. Stale routes refused
 * while the gateways were still moving to a new table are the fence doing its job: counted,
 * not failed.
 */
export const noMisroute = (): Invariant => ({
  name: 'no misrouted request',
  check(run) {
    const v = judgeRoutes(run);
    const kinds = countBy(v.misroutes, (m) => m.kind);
    const examples = sample(v.misroutes).map((m) => `${m.line.rid} ${m.line.cell}@${m.line.epoch} rev ${m.line.rev} → ${m.line.zone}/${m.line.srv} (${m.kind}${m.line.why ? `: ${m.line.why}` : ''})`);
    return {
      passed: v.misroutes.length === 0,
      detail: `${v.misroutes.length} misrouted ${JSON.stringify(kinds)}; ${v.fencedInTransition} stale routes fenced (421) in transition; ${v.oracleLag} oracle lag`
        + (examples.length ? `; e.g. ${examples.join(' | ')}` : ''),
    };
  },
});

/** Epoch fencing holds: every (cell, epoch) was served by exactly one zone during the whole run. */
export const oneOwnerPerEpoch = (): Invariant => ({
  name: 'one zone per cell epoch',
  check(run) {
    const owners = new Map<string, Set<string>>();
    for (const l of run.zoneLog) {
      if (l.rid === null || l.cell === null || l.status >= 400) continue;
      const key = `${l.cell}@${l.epoch}`;
      let set = owners.get(key);
      if (!set) owners.set(key, (set = new Set()));
      set.add(l.zone);
    }
    const split = [...owners].filter(([, zones]) => zones.size > 1);
    return {
      passed: split.length === 0,
      detail: `${owners.size} (cell, epoch) pairs served; ${split.length} served by more than one zone`
        + (split.length ? `: ${sample(split).map(([k, z]) => `${k} by ${[...z].join(' and ')}`).join(', ')}` : ''),
    };
  },
});

/** Every POST answered 200 reached exactly one zone server once, with the bytes the client sent; none reached one twice. */
export const postsIntact = (): Invariant => ({
  name: 'POST bodies delivered once and intact',
  check(run) {
    const served = new Map<string, ZoneLogLine[]>();
    for (const l of run.zoneLog) {
      if (l.rid === null || l.method !== 'POST' || l.status >= 400) continue;
      const list = served.get(l.rid) ?? [];
      list.push(l);
      served.set(l.rid, list);
    }
    const posts = run.requests.filter((r) => r.method === 'POST');
    const problems: string[] = [];
    let ok = 0;
    for (const r of posts) {
      const lines = served.get(r.id) ?? [];
      if (lines.length > 1) problems.push(`${r.id} delivered ${lines.length} times`);
      if (lines.some((l) => l.sha !== r.sha || l.bytes !== r.bytes)) problems.push(`${r.id} delivered with a different body`);
      if (r.status === 200) {
        if (r.error === 'BAD_ECHO') problems.push(`${r.id} answered with a wrong echo`);
        else if (lines.length === 0) problems.push(`${r.id} answered 200 but no zone server saw it`);
        else ok++;
      }
    }
    return {
      passed: problems.length === 0,
      detail: `${posts.length} POSTs, ${ok} answered 200 and delivered once intact; ${problems.length} problems${problems.length ? `: ${sample(problems, 5).join('; ')}` : ''}`,
    };
  },
});

/** No request failed (planned operations). Between two steps' starts when given. */
export const zeroFailed = (opts: { from?: string; until?: string } = {}): Invariant => ({
  name: 'zero failed requests',
  check(run) {
    const from = opts.from ? stepByLabel(run, opts.from).t0 : Number.NEGATIVE_INFINITY;
    const until = opts.until ? stepByLabel(run, opts.until).t1 : Number.POSITIVE_INFINITY;
    const inWindow = run.requests.filter((r) => r.sent >= from && r.sent <= until);
    const bad = inWindow.filter(failed);
    return {
      passed: bad.length === 0 && inWindow.length > 0,
      detail: `${bad.length} of ${inWindow.length} requests failed${opts.from ? ` (from "${opts.from}")` : ''}`
        + (bad.length ? `: ${JSON.stringify(countBy(bad, (r) => `${r.status} ${r.error}`))}; first at ${fmt(run, bad[0]!.sent)}` : ''),
    };
  },
});

/**
 * The errors of an unplanned failure stay in a bounded window: none before the fault, none
 * answered later than `boundMs` after the `until` step started (e.g. the `zone down`).
 */
export const errorWindow = (opts: { fault: string; until: string; boundMs: number; edge?: 'start' | 'end' }): Invariant => ({
  name: 'bounded error window',
  check(run) {
    const fault = stepByLabel(run, opts.fault);
    const until = stepByLabel(run, opts.until);
    const limit = (opts.edge === 'end' ? until.t1 : until.t0) + opts.boundMs;
    const bad = run.requests.filter(failed);
    const early = bad.filter((r) => r.done < fault.t0);
    const late = bad.filter((r) => r.done > limit);
    const last = bad.reduce((m, r) => Math.max(m, r.done), 0);
    return {
      passed: early.length === 0 && late.length === 0,
      detail: `${bad.length} failed requests; ${early.length} before "${opts.fault}", ${late.length} later than ${opts.boundMs} ms after "${opts.until}"`
        + (bad.length ? `; last error ${last - (opts.edge === 'end' ? until.t1 : until.t0)} ms after "${opts.until}" ${opts.edge === 'end' ? 'ended' : 'started'}` : '')
        + (late.length ? `; late: ${JSON.stringify(countBy(late, (r) => `${r.status} ${r.error}`))}` : ''),
    };
  },
});

/**
 * Every live gateway applies every revision within the bound (gateways killed or cut off
 * are excused while impaired), and at the end every running gateway is on the store's
 * revision and checksum.
 */
export const gatewaysConverge = (): Invariant => ({
  name: 'gateways converge on one revision and checksum',
  check(run) {
    const bound = run.scenario.convergeBoundMs ?? 3_000;
    const lags = revisionLags(run);
    const slow = lags.filter((l) => l.lagMs === null || l.lagMs > bound);
    const store = run.final.store;
    const running = run.final.gateways.filter((g) => g.running);
    const off = running.filter((g) => !store || g.version !== store.version || g.checksum !== store.checksum);
    const worst = lags.reduce((m, l) => Math.max(m, l.lagMs ?? Number.POSITIVE_INFINITY), 0);
    return {
      passed: slow.length === 0 && off.length === 0 && store !== null && running.length > 0,
      detail: `${lags.length} revisions written, slowest applied by all live gateways in ${Number.isFinite(worst) ? `${worst} ms` : 'never'} (bound ${bound} ms)`
        + (slow.length ? `; late: ${sample(slow).map((l) => `rev ${l.version} ${l.lagMs === null ? `never by ${l.laggards.join(',')}` : `${l.lagMs} ms`}`).join(', ')}` : '')
        + `; at the end ${running.length - off.length}/${running.length} running gateways on revision ${store?.version ?? '?'} ${store?.checksum ?? ''}`
        + (off.length ? ` (off: ${off.map((g) => `${g.id} on ${g.version}`).join(', ')})` : ''),
    };
  },
});

const LOST = new Set(['CLIENT_TIMEOUT', 'ECONNRESET', 'RESPONSE_ABORTED', 'EPIPE', 'CLIENT_ERROR']);

/**
 * Every request got an answer: none timed out at the client, none was cut off — except
 * those in flight on a gateway at the moment it was killed —, no held request was answered
 * BUFFER_TIMEOUT, and no gateway has requests still held at the end.
 */
export const noLostRequests = (opts: { allowBufferTimeouts?: boolean } = {}): Invariant => ({
  name: 'no buffered request lost',
  check(run) {
    const kills = run.steps.filter((s) => s.gateway?.impaired && s.kind === 'fault' && s.label.startsWith('kill'));
    const lost = run.requests.filter((r) => r.error !== null && LOST.has(r.error));
    const excused = lost.filter((r) => kills.some((k) => run.gatewayIds[r.gw] === k.gateway?.id && r.sent <= k.t1 && r.done >= k.t0 - 50));
    const unexplained = lost.filter((r) => !excused.includes(r));
    const timeouts = opts.allowBufferTimeouts ? [] : run.requests.filter((r) => r.error === 'BUFFER_TIMEOUT');
    const leftHeld = run.final.gateways.filter((g) => g.running && (g.buffered ?? 0) > 0);
    return {
      passed: unexplained.length === 0 && timeouts.length === 0 && leftHeld.length === 0,
      detail: `${unexplained.length} requests without an answer${unexplained.length ? ` ${JSON.stringify(countBy(unexplained, (r) => r.error ?? ''))}` : ''}`
        + `, ${excused.length} cut off by a gateway kill; ${timeouts.length} BUFFER_TIMEOUT; held at the end: ${leftHeld.length ? leftHeld.map((g) => `${g.id}=${g.buffered}`).join(', ') : 'none'}`,
    };
  },
});

/** A cellctl step exited with one of `codes`, and its output names `mentions` when given. */
export const cellctlExit = (label: string, codes: readonly number[], mentions?: string): Invariant => ({
  name: `cellctl "${label}" exits ${codes.join(' or ')}`,
  check(run) {
    const s = stepByLabel(run, label);
    const c = s.cellctl;
    if (!c) return { passed: false, detail: `step "${label}" did not run cellctl (${s.detail})` };
    const text = `${JSON.stringify(c.json)} ${c.stderr}`;
    const named = mentions === undefined || text.includes(mentions);
    return {
      passed: c.code !== null && codes.includes(c.code) && named,
      detail: `exit ${c.code ?? c.signal} after ${c.endedAt - c.startedAt} ms${mentions ? `, output ${named ? 'names' : 'does not name'} ${mentions}` : ''}`
        + (c.code !== 0 ? `: ${(c.stderr.trim().split('\n').pop() ?? '').slice(0, 300)}` : ''),
    };
  },
});

/** A predicate on the last valid table of the run (returns null when fine, else what is wrong). */
export const finalTable = (name: string, problem: (t: RoutingTable, run: RunData) => string | null): Invariant => ({
  name,
  check(run) {
    const tables = validTables(run);
    const last = tables[tables.length - 1];
    if (!last) return { passed: false, detail: 'no valid table recorded' };
    const p = problem(last.table, run);
    return { passed: p === null, detail: p ?? `holds at revision ${last.version}` };
  },
});

/** No cell (nor the global zone) is left on a zone that is down. */
export const noCellOnDownZone = (): Invariant => finalTable('no cell on a down zone', (t) => {
  const down = new Set(t.zones.filter((z) => z.status === 'down').map((z) => z.name));
  const stuck = [...t.cells, t.global].filter((c) => down.has(c.zone));
  return stuck.length ? `${stuck.length} cells on down zones: ${sample(stuck, 5).map((c) => `${c.name}@${c.zone}`).join(', ')}` : null;
});

/**
 * Answered requests of `cell` sent from the `after` step (its start + delayMs, or its end
 * with `edge: 'end'`, i.e. once the command returned) until the `until` step started were
 * all served by `zone`.
 */
export const servedBy = (opts: { cell: string; zone: string; after: string; edge?: 'start' | 'end'; delayMs?: number; until?: string }): Invariant => ({
  name: `${opts.cell} served by ${opts.zone} ${opts.edge === 'end' ? 'once' : 'after'} "${opts.after}"${opts.edge === 'end' ? ' returned' : ''}`,
  check(run) {
    const step = stepByLabel(run, opts.after);
    const from = (opts.edge === 'end' ? step.t1 : step.t0) + (opts.delayMs ?? 0);
    const until = opts.until ? stepByLabel(run, opts.until).t0 : run.tLoadEnd;
    const reqs = run.requests.filter((r) => r.cell === opts.cell && r.sent >= from && r.sent <= until && !failed(r));
    const elsewhere = reqs.filter((r) => r.zone !== opts.zone);
    return {
      passed: reqs.length > 0 && elsewhere.length === 0,
      detail: `${reqs.length} answered requests of ${opts.cell} sent between ${fmt(run, from)} and ${fmt(run, until)}; ${elsewhere.length} served elsewhere`
        + (elsewhere.length ? ` (${JSON.stringify(countBy(elsewhere, (r) => r.zone ?? '?'))})` : ''),
    };
  },
});

/** Every gateway rejected the corrupted table and kept routing (counted in its metrics). */
export const corruptTableRejected = (): Invariant => ({
  name: 'corrupted table rejected by every gateway',
  check(run) {
    const invalid = run.tables.filter((e) => e.table === null);
    const running = run.final.gateways.filter((g) => g.running);
    const notCounted = running.filter((g) => (g.rejectedTables ?? 0) < 1);
    const applied = run.presence.filter((p) => invalid.some((e) => e.version === p.appliedVersion));
    return {
      passed: invalid.length > 0 && notCounted.length === 0 && applied.length === 0,
      detail: `${invalid.length} invalid revisions written (${invalid.map((e) => e.version).join(', ')}); `
        + `rejections counted by ${running.length - notCounted.length}/${running.length} gateways; ${applied.length} presence records claim an invalid revision`,
    };
  },
});

/** The gateways that were not impaired at `t` (for scenario-specific checks). */
export function liveGatewaysAt(run: RunData, t: number): string[] {
  return run.gatewayIds.filter((id) => !impairedAt(run, id, t));
}

/** The standard invariants every scenario is judged by. */
export function standardInvariants(): Invariant[] {
  return [noMisroute(), oneOwnerPerEpoch(), postsIntact(), gatewaysConverge(), noLostRequests()];
}
