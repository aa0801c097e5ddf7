// Invariants of an elastic peak: while cells are lent to an elastic zone, that zone alone
// serves them (and it carries the share asked for); once they are given back, it serves
// nothing.
import { failed, stepByLabel, tableAt } from './analysis';
import type { Invariant } from './scenario';

const fmtCount = (m: Map<string, number>) => [...m].map(([k, v]) => `${k} ${v}`).join(', ');

/**
 * After step `onto` returned and before step `off` began, the table had `cells` cells on
 * `zone`, and every answered request of those cells sent in that window was served by it.
 */
export const elasticCarried = (opts: { zone: string; cells: number; onto: string; off: string }): Invariant => ({
  name: `${opts.zone} carried ${opts.cells} cells between "${opts.onto}" and "${opts.off}", alone`,
  check(run) {
    const from = stepByLabel(run, opts.onto).t1;
    const until = stepByLabel(run, opts.off).t0;
    const table = tableAt(run, from)?.table;
    const lent = new Set((table?.cells ?? []).filter((c) => c.zone === opts.zone).map((c) => c.name));
    const reqs = run.requests.filter((r) => r.cell !== null && lent.has(r.cell) && r.sent >= from && r.sent <= until && !failed(r));
    const elsewhere = new Map<string, number>();
    for (const r of reqs) if (r.zone !== opts.zone) elsewhere.set(r.zone ?? '?', (elsewhere.get(r.zone ?? '?') ?? 0) + 1);
    const homes = new Map<string, number>();
    for (const c of table?.cells ?? []) if (lent.has(c.name)) homes.set(c.home, (homes.get(c.home) ?? 0) + 1);
    return {
      passed: lent.size === opts.cells && reqs.length > 0 && elsewhere.size === 0,
      detail: `${lent.size} cells on ${opts.zone} (homes: ${fmtCount(homes)}); ${reqs.length} answered requests of them in the window, ${reqs.length - [...elsewhere.values()].reduce((a, b) => a + b, 0)} served by ${opts.zone}`
        + (elsewhere.size ? `; elsewhere: ${fmtCount(elsewhere)}` : ''),
    };
  },
});

/** No request sent after step `off` returned was served by `zone` (every lent cell went home). */
export const elasticReleased = (opts: { zone: string; off: string }): Invariant => ({
  name: `${opts.zone} serves nothing once "${opts.off}" returned`,
  check(run) {
    const from = stepByLabel(run, opts.off).t1;
    const after = run.requests.filter((r) => r.sent >= from && !failed(r));
    const there = after.filter((r) => r.zone === opts.zone);
    return {
      passed: after.length > 0 && there.length === 0,
      detail: `${after.length} answered requests sent after it; ${there.length} served by ${opts.zone}`,
    };
  },
});
