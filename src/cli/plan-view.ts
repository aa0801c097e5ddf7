// How a plan and the progress of a change look on a terminal, and as JSON.
import { laggards, type ConvergenceStatus } from '../failover/convergence';
import { pct, type Plan } from '../failover/planner';
import { escapeForTerminal as esc, formatTable } from './output';

export function planText(plan: Plan, version: number): string {
  const lines = [`plan: ${plan.action} (${plan.kind}), against revision ${version}`];
  for (const s of plan.zoneStatus) lines.push(`  zone ${esc(s.zone)}: ${s.from} -> ${s.to}`);
  for (const n of plan.notes ?? []) lines.push(`  ${esc(n)}`);
  if (plan.moves.length === 0) {
    lines.push('  no cell moves');
  } else {
    lines.push('', formatTable([
      ['CELL', 'FROM', 'TO', 'SCOPE', 'USERS', 'EPOCH', ...(plan.moves.some((m) => m.homeAfter) ? ['HOME'] : [])],
      ...plan.moves.map((m) => [m.cell, m.from, m.to, m.scope, m.cell === 'global' ? 'global traffic' : pct(m.userShare), `${m.epochBefore}->${m.epochAfter}`, ...(m.homeAfter ? [`-> ${m.homeAfter}`] : [])]),
    ]).replace(/^/gm, '  '));
    lines.push('', `  ${plan.moves.length} move(s), ${pct(plan.movedCellShare)} of cells, ${pct(plan.movedUserShare)} of users`);
  }
  const touched = new Set(plan.moves.flatMap((m) => [m.from, m.to]).concat(plan.zoneStatus.map((s) => s.zone)));
  const loads = plan.loads.filter((l) => touched.has(l.zone));
  if (loads.length) {
    lines.push('', formatTable([
      ['ZONE', 'STATUS', 'CELLS', 'CAPACITY', 'LOAD AFTER'],
      ...loads.map((l) => [l.zone, l.status, `${l.cellsBefore} -> ${l.cellsAfter}`, l.capacity, l.capacity > 0 ? pct(l.cellsAfter / l.capacity) : '-']),
    ]).replace(/^/gm, '  '));
  }
  if (plan.remaining > 0) lines.push('', `  ${plan.remaining} more cell(s) follow in later batches`);
  for (const g of plan.guard) lines.push(`  GUARD: ${esc(g)}`);
  return lines.join('\n');
}

export function planJson(plan: Plan): Record<string, unknown> {
  return {
    action: plan.action, kind: plan.kind, moves: plan.moves, zoneStatus: plan.zoneStatus, loads: plan.loads,
    movedCellShare: plan.movedCellShare, movedUserShare: plan.movedUserShare, guard: plan.guard, remaining: plan.remaining,
    ...(plan.notes ? { notes: plan.notes } : {}),
  };
}

/** One line of convergence progress: what was observed, naming who is not there yet. */
export function progressText(status: ConvergenceStatus, phase: string): string {
  const live = status.gateways.length + status.malformed.length;
  const on = status.gateways.length - status.behind.length;
  const waiting = laggards(status).map((l) => esc(l));
  return `${on}/${live} gateway(s) on ${phase} revision ${status.version}${waiting.length ? ` (waiting for ${waiting.join(', ')})` : ''}`;
}
