// Facts derived from a run, shared by the invariants and the figures: which table was in
// force when, where a user's cell is, when each gateway applied a revision, which
// gateways were impaired (killed, cut off) when, and which requests failed.
import { RoutingView } from '../src/cells/lookup';
import { versioned } from '../src/cells/table';
import type { Cell, RoutingTable } from '../src/cells/types';
import type { RequestRecord } from './load';
import type { TableEvent } from './recorder';
import type { RunData } from './scenario';
import type { StepOutcome } from './steps';

export function failed(r: { readonly status: number; readonly error: string | null }): boolean {
  return r.status !== 200 || r.error !== null;
}

export function stepByLabel(run: RunData, label: string): StepOutcome {
  const s = run.steps.find((x) => x.label === label);
  if (!s) throw new Error(`no step labelled "${label}" in scenario ${run.scenario.name}`);
  return s;
}

export function validTables(run: RunData): (TableEvent & { table: RoutingTable })[] {
  return run.tables.filter((e): e is TableEvent & { table: RoutingTable } => e.table !== null);
}

export function tableByVersion(run: RunData): Map<number, RoutingTable> {
  return new Map(validTables(run).map((e) => [e.version, e.table]));
}

/** The valid table the harness had seen at time t (the one gateways were moving to). */
export function tableAt(run: RunData, t: number): (TableEvent & { table: RoutingTable }) | null {
  let found: (TableEvent & { table: RoutingTable }) | null = null;
  for (const e of validTables(run)) if (e.t <= t) found = e;
  return found;
}

export function cellOf(table: RoutingTable, name: string): Cell | undefined {
  return name === 'global' ? table.global : table.cells.find((c) => c.name === name);
}

/** user -> cell, with the ring of the first table (scenarios never change the ring). */
export function cellResolver(run: RunData): (r: RequestRecord) => string | null {
  const first = validTables(run)[0];
  if (!first) return () => null;
  const view = new RoutingView(versioned(first.table, first.version));
  const cache = new Map<string, string>();
  return (r) => {
    if (r.path.startsWith('/g/')) return 'global';
    let c = cache.get(r.user);
    if (c === undefined) cache.set(r.user, (c = view.cellOfUser(r.user)));
    return c;
  };
}

/** The first time gateway `id` reported (presence) a revision >= version, at or after `since`. */
export function appliedAt(run: RunData, id: string, version: number, since = 0): number | null {
  for (const p of run.presence) {
    if (p.id === id && !p.deleted && p.appliedVersion >= version && p.t >= since) return p.t;
  }
  return null;
}

/** Intervals in which a gateway was killed or cut off (from the timeline's gateway steps). */
export function impairedIntervals(run: RunData, id: string): { from: number; to: number }[] {
  const out: { from: number; to: number }[] = [];
  let open: number | null = null;
  for (const s of [...run.steps].sort((a, b) => a.t0 - b.t0)) {
    if (s.gateway?.id !== id) continue;
    if (s.gateway.impaired && open === null) open = s.t0;
    if (!s.gateway.impaired && open !== null) {
      out.push({ from: open, to: s.t1 });
      open = null;
    }
  }
  if (open !== null) out.push({ from: open, to: Number.POSITIVE_INFINITY });
  return out;
}

export function impairedAt(run: RunData, id: string, t: number, slackMs = 0): boolean {
  return impairedIntervals(run, id).some((i) => t >= i.from - slackMs && t <= i.to + slackMs);
}

export interface RevisionLag {
  readonly version: number;
  readonly writtenAt: number;
  /** ms until every gateway that was not impaired applied it (null: some never did). */
  readonly lagMs: number | null;
  readonly laggards: readonly string[];
}

/** For every valid revision written during the run: how long until the unimpaired gateways applied it. */
export function revisionLags(run: RunData): RevisionLag[] {
  const out: RevisionLag[] = [];
  for (const e of validTables(run)) {
    if (e.t < run.t0) continue;
    let worst = 0;
    const laggards: string[] = [];
    for (const id of run.gatewayIds) {
      if (impairedAt(run, id, e.t, 200)) continue;
      const at = appliedAt(run, id, e.version);
      if (at === null) laggards.push(id);
      else worst = Math.max(worst, at - e.t);
    }
    out.push({ version: e.version, writtenAt: e.t, lagMs: laggards.length ? null : Math.max(0, worst), laggards });
  }
  return out;
}

export function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number;
}

/** Requests whose cell was frozen (per the harness's view of the table) when they were sent. */
export function heldRequests(run: RunData): RequestRecord[] {
  const cellOfReq = cellResolver(run);
  return run.requests.filter((r) => {
    const t = tableAt(run, r.sent);
    const name = cellOfReq(r);
    if (!t || !name) return false;
    const c = cellOf(t.table, name);
    return c?.state === 'frozen' && (c.frozenUntilMs ?? 0) > r.sent;
  });
}

/** One line per change between two tables: zone status changes, moves, freezes. */
export function describeChange(prev: RoutingTable | null, next: RoutingTable | null): string {
  if (!next) return 'invalid table written';
  if (!prev) return 'initial table';
  const parts: string[] = [];
  for (const z of next.zones) {
    const before = prev.zones.find((x) => x.name === z.name);
    if (before && before.status !== z.status) parts.push(`${z.name} ${z.status}`);
    if (before && JSON.stringify(before.upstreams) !== JSON.stringify(z.upstreams)) parts.push(`${z.name} upstreams changed`);
  }
  const moved: string[] = [];
  const frozen: string[] = [];
  const thawed: string[] = [];
  for (const c of [...next.cells, next.global]) {
    const before = cellOf(prev, c.name);
    if (!before) continue;
    if (before.zone !== c.zone) moved.push(`${c.name} ${before.zone}→${c.zone}`);
    else if (before.epoch !== c.epoch) moved.push(`${c.name} epoch ${before.epoch}→${c.epoch}`);
    if (c.state === 'frozen' && (before.state !== 'frozen' || before.frozenUntilMs !== c.frozenUntilMs)) frozen.push(c.name);
    if (c.state === 'active' && before.state === 'frozen' && before.zone === c.zone) thawed.push(c.name);
  }
  const list = (xs: string[]) => (xs.length > 3 ? `${xs.slice(0, 3).join(', ')} +${xs.length - 3}` : xs.join(', '));
  if (frozen.length) parts.push(`froze ${list(frozen)}`);
  if (moved.length) parts.push(`moved ${list(moved)}`);
  if (thawed.length) parts.push(`unfroze ${list(thawed)}`);
  return parts.join('; ') || 'no routing change';
}
