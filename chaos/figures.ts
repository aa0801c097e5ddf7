// The numbers a drill report shows, and the timeline chart's data.
//   failoverConvergenceMs — from a cellctl change starting to every live gateway applying
//                           its final revision (the slowest change of the run);
//   errorWindowMs         — from the first failed request being sent to the last failed
//                           answer (unplanned failures; 0 when nothing failed);
//   longestHeldMs         — the longest a request of a frozen cell waited (planned moves);
//   requests              — sent, answered 200, failed.
import {
  appliedAt, describeChange, failed, heldRequests, impairedAt, percentile, revisionLags, validTables,
} from './analysis';
import { judgeRoutes } from './invariants';
import type { RunData } from './scenario';

export interface OperationFigure {
  readonly label: string;
  readonly exit: number | string | null;
  readonly commandMs: number;
  readonly versionAfter: number | null;
  /** Start of the command until every live gateway applied versionAfter. */
  readonly convergedMs: number | null;
}

export interface Figures {
  readonly requests: { sent: number; ok: number; failed: number; skipped: number; posts: number; byZone: Record<string, number>; errors: Record<string, number> };
  readonly latencyMs: { p50: number | null; p99: number | null; max: number | null };
  readonly failoverConvergenceMs: number | null;
  readonly operations: readonly OperationFigure[];
  readonly tableApplyLagMs: { revisions: number; p50: number | null; max: number | null };
  readonly errorWindowMs: number;
  readonly longestHeldMs: number | null;
  readonly heldRequests: number;
  readonly fencedInTransition: number;
  readonly finalConvergenceMs: number | null;
}

export interface Marker {
  /** ms since the load started. */
  readonly t: number;
  readonly t1?: number;
  /** `frozen`: some cell was frozen (a planned move holding its requests) from t to t1. */
  readonly kind: 'fault' | 'heal' | 'op' | 'mark' | 'table' | 'bad-table' | 'frozen';
  readonly label: string;
  readonly ok?: boolean;
}

export interface Timeline {
  readonly bucketMs: number;
  readonly durationMs: number;
  /** requests/s answered 200, by serving zone, per bucket. */
  readonly zones: Record<string, number[]>;
  /** failed requests/s per bucket. */
  readonly errors: number[];
  /** p99 latency (ms) of the requests answered 200 in each bucket (null: none). */
  readonly p99LatencyMs: (number | null)[];
  readonly markers: readonly Marker[];
}

export function computeFigures(run: RunData): Figures {
  const ok = run.requests.filter((r) => !failed(r));
  const bad = run.requests.filter(failed);
  const latencies = ok.map((r) => r.done - r.sent).sort((a, b) => a - b);
  const byZone: Record<string, number> = {};
  for (const r of ok) byZone[r.zone ?? '?'] = (byZone[r.zone ?? '?'] ?? 0) + 1;
  const errors: Record<string, number> = {};
  for (const r of bad) errors[`${r.status} ${r.error}`] = (errors[`${r.status} ${r.error}`] ?? 0) + 1;

  const operations: OperationFigure[] = run.steps.filter((s) => s.cellctl).map((s) => {
    const c = s.cellctl!;
    let convergedMs: number | null = null;
    if (c.versionAfter !== null) {
      const live = run.gatewayIds.filter((id) => !impairedAt(run, id, c.startedAt, 200));
      const times = live.map((id) => appliedAt(run, id, c.versionAfter as number));
      if (times.every((x) => x !== null)) convergedMs = Math.max(...(times as number[])) - c.startedAt;
    }
    return { label: s.label, exit: c.code ?? c.signal, commandMs: c.endedAt - c.startedAt, versionAfter: c.versionAfter, convergedMs };
  });
  const converged = operations.map((o) => o.convergedMs).filter((x): x is number => x !== null);

  const lags = revisionLags(run).map((l) => l.lagMs).filter((x): x is number => x !== null).sort((a, b) => a - b);
  const held = heldRequests(run).filter((r) => !failed(r));
  const firstBad = bad.reduce((m, r) => Math.min(m, r.sent), Number.POSITIVE_INFINITY);
  const lastBad = bad.reduce((m, r) => Math.max(m, r.done), 0);

  return {
    requests: { sent: run.requests.length, ok: ok.length, failed: bad.length, skipped: run.skipped, posts: run.requests.filter((r) => r.method === 'POST').length, byZone, errors },
    latencyMs: { p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: latencies.length ? latencies[latencies.length - 1]! : null },
    failoverConvergenceMs: converged.length ? Math.max(...converged) : null,
    operations,
    tableApplyLagMs: { revisions: lags.length, p50: percentile(lags, 50), max: lags.length ? lags[lags.length - 1]! : null },
    errorWindowMs: bad.length ? lastBad - firstBad : 0,
    longestHeldMs: held.length ? Math.max(...held.map((r) => r.done - r.sent)) : null,
    heldRequests: held.length,
    fencedInTransition: judgeRoutes(run).fencedInTransition,
    finalConvergenceMs: run.final.convergedAt === null ? null : Math.max(0, run.final.convergedAt - run.tLoadEnd),
  };
}

/** When some cell was frozen: from the table that froze it to the next table without a live freeze, or the deadline. */
function frozenSpans(run: RunData): Marker[] {
  const tables = validTables(run);
  const out: Marker[] = [];
  tables.forEach((e, i) => {
    const frozen = [...e.table.cells, e.table.global].filter((c) => c.state === 'frozen' && (c.frozenUntilMs ?? 0) > e.t);
    if (frozen.length === 0) return;
    const next = tables[i + 1]?.t ?? run.tLoadEnd;
    const deadline = Math.min(...frozen.map((c) => c.frozenUntilMs as number));
    const end = Math.min(next, deadline, run.tLoadEnd);
    out.push({ t: e.t - run.t0, t1: end - run.t0, kind: 'frozen', label: `frozen: ${frozen.map((c) => c.name).slice(0, 4).join(', ')}${frozen.length > 4 ? ` +${frozen.length - 4}` : ''} (${end - e.t} ms)` });
  });
  return out;
}

export function computeTimeline(run: RunData, bucketMs = 250): Timeline {
  const durationMs = Math.max(run.tLoadEnd - run.t0, 1);
  const n = Math.ceil(durationMs / bucketMs) + 1;
  const perSec = 1000 / bucketMs;
  const zones: Record<string, number[]> = {};
  const errors = new Array<number>(n).fill(0);
  const latencies: number[][] = Array.from({ length: n }, () => []);
  for (const r of run.requests) {
    const i = Math.min(n - 1, Math.max(0, Math.floor((r.done - run.t0) / bucketMs)));
    if (failed(r)) errors[i]! += perSec;
    else {
      (zones[r.zone ?? '?'] ??= new Array<number>(n).fill(0))[i]! += perSec;
      latencies[i]!.push(r.done - r.sent);
    }
  }
  const p99LatencyMs = latencies.map((l) => percentile(l.sort((a, b) => a - b), 99));
  const markers: Marker[] = run.steps.map((s) => ({ t: s.t0 - run.t0, t1: s.t1 - run.t0, kind: s.kind, label: s.label, ok: s.ok }));
  let prev = null as ReturnType<typeof validTables>[number]['table'] | null;
  for (const e of run.tables) {
    if (e.t >= run.t0) markers.push({ t: e.t - run.t0, kind: e.table ? 'table' : 'bad-table', label: `rev ${e.version}: ${describeChange(prev, e.table)}` });
    if (e.table) prev = e.table;
  }
  markers.push(...frozenSpans(run));
  return { bucketMs, durationMs, zones, errors, p99LatencyMs, markers: markers.sort((a, b) => a.t - b.t) };
}
