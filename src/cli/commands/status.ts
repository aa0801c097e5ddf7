import type { RoutingView } from '../../cells/lookup';
import type { Cell, RoutingTable } from '../../cells/types';
import type { MalformedPresence, PresenceRecord, PresenceSnapshot } from '../../store/types';
import type { Command } from '../command';
import { escapeForTerminal, formatTable } from '../output';
import { loadView } from './route';
import { autopilotStatusOf, autopilotStatusText } from '../autopilot-ctl';

export interface StatusReport {
  readonly name: string;
  readonly revision: number;
  readonly checksum: string;
  readonly zones: { name: string; region: string; city: string; status: string; capacity: number; cells: number; homeCells: number; elastic: boolean }[];
  /** `lentToElastic`: on an elastic zone for a peak (`rebalance --onto-elastic`), not failed over. */
  readonly cellsAwayFromHome: { cell: string; home: string; zone: string; epoch: number; lentToElastic: boolean }[];
  readonly frozenCells: { cell: string; zone: string; movingTo: string | null; frozenUntil: string }[];
  readonly global: { home: string; zone: string; epoch: number };
  readonly gateways: (PresenceRecord & { readonly current: boolean })[];
  /** Live presence records that are not valid: they prove nothing about their gateway. */
  readonly malformedGateways: readonly MalformedPresence[];
  /** Moves left half-done by a cellctl that died: what is stale, and what to run. */
  readonly staleMoves: { kind: 'freeze' | 'drain'; cells: string[]; zone: string; expiredAgoS: number | null; message: string }[];
  readonly cells?: { cell: string; home: string; zone: string; epoch: number; state: string }[];
  /** The gateways counted by the revision and checksum they applied (newest first). */
  readonly gatewaysByRevision: { revision: number; checksum: string; gateways: number; current: boolean }[];
}

/** Up to this many live gateways are listed one per line; more are summarised (`--gateways` lists them all). */
export const GATEWAYS_LISTED = 20;

/**
 * Freezes whose deadline passed and drains that did not finish: a cellctl was killed
 * mid-move. Gateways already route such cells to their old zone; the table still says
 * frozen / draining until a change touches them (the planner cleans expired freezes).
 */
export function staleMoves(t: RoutingTable, nowMs: number): StatusReport['staleMoves'] {
  const all = [...t.cells, t.global];
  const expired = all.filter((c) => c.state === 'frozen' && (c.frozenUntilMs ?? 0) <= nowMs);
  const ago = (cs: readonly Cell[]) => (cs.length ? Math.round((nowMs - Math.max(...cs.map((c) => c.frozenUntilMs ?? 0))) / 1000) : null);
  const found: StatusReport['staleMoves'] = [];
  for (const z of t.zones.filter((zone) => zone.status === 'draining')) {
    const left = all.filter((c) => c.zone === z.name && !(c.state === 'frozen' && (c.frozenUntilMs ?? 0) > nowMs));
    if (left.length === 0) continue;
    const stale = expired.filter((c) => c.zone === z.name);
    const agoS = ago(stale);
    const head = agoS === null ? `zone ${z.name} is draining but still serves ${left.length} cell(s)` : `freeze expired ${agoS} s ago`;
    found.push({
      kind: 'drain', zone: z.name, cells: left.map((c) => c.name), expiredAgoS: agoS,
      message: `${head}, drain of ${z.name} not finished: re-run \`cellctl zone drain ${z.name}\` or \`zone up ${z.name}\``,
    });
  }
  const drained = new Set(found.map((f) => f.zone));
  for (const c of expired.filter((cell) => !drained.has(cell.zone))) {
    found.push({
      kind: 'freeze', zone: c.zone, cells: [c.name], expiredAgoS: ago([c]),
      message: `freeze of ${c.name} (${c.zone} -> ${c.movingTo ?? '?'}) expired ${ago([c])} s ago, the move did not finish: it is served by ${c.zone}; re-run \`cellctl cell move ${c.name} ${c.movingTo ?? 'ZONE'}\` or any change to clear it`,
    });
  }
  return found;
}

export function statusReport(view: RoutingView, presence: PresenceSnapshot, withCells: boolean, nowMs = Date.now()): StatusReport {
  const t = view.table;
  const gateways = presence.records;
  const all = [...t.cells, t.global];
  const elastic = new Set(t.zones.filter((z) => z.elastic === true).map((z) => z.name));
  return {
    name: t.name,
    revision: view.version,
    checksum: view.checksum,
    zones: t.zones.map((z) => ({
      name: z.name, region: z.region, city: z.city, status: z.status, capacity: z.capacity,
      cells: t.cells.filter((c) => c.zone === z.name).length, homeCells: t.cells.filter((c) => c.home === z.name).length, elastic: elastic.has(z.name),
    })),
    cellsAwayFromHome: all.filter((c) => c.zone !== c.home).map((c) => ({ cell: c.name, home: c.home, zone: c.zone, epoch: c.epoch, lentToElastic: elastic.has(c.zone) })),
    frozenCells: all.filter((c) => c.state === 'frozen').map((c) => ({
      cell: c.name, zone: c.zone, movingTo: c.movingTo ?? null, frozenUntil: new Date(c.frozenUntilMs ?? 0).toISOString(),
    })),
    global: { home: t.global.home, zone: t.global.zone, epoch: t.global.epoch },
    gateways: [...gateways].sort((a, b) => a.id.localeCompare(b.id))
      .map((g) => ({ ...g, current: g.appliedVersion === view.version && g.checksum === view.checksum })),
    malformedGateways: presence.malformed,
    staleMoves: staleMoves(t, nowMs),
    gatewaysByRevision: byRevision(gateways, view),
    ...(withCells ? { cells: t.cells.map((c) => ({ cell: c.name, home: c.home, zone: c.zone, epoch: c.epoch, state: c.state })) } : {}),
  };
}

function byRevision(gateways: readonly PresenceRecord[], view: RoutingView): StatusReport['gatewaysByRevision'] {
  const groups = new Map<string, { revision: number; checksum: string; gateways: number; current: boolean }>();
  for (const g of gateways) {
    const key = `${g.appliedVersion} ${g.checksum}`;
    const group = groups.get(key);
    if (group) group.gateways += 1;
    else groups.set(key, { revision: g.appliedVersion, checksum: g.checksum, gateways: 1, current: g.appliedVersion === view.version && g.checksum === view.checksum });
  }
  return [...groups.values()].sort((a, b) => b.revision - a.revision || a.checksum.localeCompare(b.checksum));
}

function gatewayLines(r: StatusReport, all: boolean): string[] {
  const behind = r.gateways.filter((g) => !g.current);
  const bad = r.malformedGateways;
  const relayed = r.gateways.filter((g) => g.relay !== undefined).length;
  const lines = [`${r.gateways.length + bad.length} live gateway(s)${behind.length ? `, ${behind.length} not on revision ${r.revision}` : ''}${bad.length ? `, ${bad.length} with a malformed record` : ''}${relayed ? `, ${relayed} through a presence relay` : ''}:`];
  // Everything in a presence record was written by another process: escaped for the terminal.
  const row = (g: StatusReport['gateways'][number]) => [g.id, g.zone ?? '-', g.appliedVersion, g.checksum, g.inFlight, g.startedAt, g.current ? '' : 'BEHIND'];
  const badRow = (m: MalformedPresence) => [m.id, '?', '?', '?', '?', '?', `MALFORMED: ${m.problem}`];
  const header = ['GATEWAY', 'ZONE', 'REVISION', 'CHECKSUM', 'IN FLIGHT', 'SINCE', ''];
  if (all || r.gateways.length + bad.length <= GATEWAYS_LISTED) {
    if (r.gateways.length || bad.length) lines.push(formatTable([header, ...r.gateways.map(row), ...bad.map(badRow)]));
    return lines;
  }
  // A thousand gateways: counts per revision, then the stragglers by name (the first few).
  lines.push(formatTable([['REVISION', 'CHECKSUM', 'GATEWAYS', ''], ...r.gatewaysByRevision.map((g) => [g.revision, g.checksum, g.gateways, g.current ? 'current' : 'BEHIND'])]));
  const stragglers = [...behind.map(row), ...bad.map(badRow)];
  if (stragglers.length) {
    lines.push('', `not on revision ${r.revision}:`, formatTable([header, ...stragglers.slice(0, GATEWAYS_LISTED)]));
    if (stragglers.length > GATEWAYS_LISTED) lines.push(`… and ${stragglers.length - GATEWAYS_LISTED} more (--gateways lists every gateway)`);
  }
  return lines;
}

function statusText(r: StatusReport, allGateways: boolean): string {
  const lines = [`table "${r.name}" revision ${r.revision} ${r.checksum}`, ''];
  // Every cell goes through formatTable, which escapes it for the terminal.
  lines.push(formatTable([
    ['ZONE', 'REGION', 'CITY', 'STATUS', 'CAPACITY', 'CELLS', 'HOME CELLS', ''],
    ...r.zones.map((z) => [z.name, z.region, z.city, z.status, z.capacity, z.cells, z.homeCells, z.elastic ? 'elastic' : '']),
  ]));
  lines.push('', `global zone: ${escapeForTerminal(r.global.zone)}${r.global.zone !== r.global.home ? ` (home ${escapeForTerminal(r.global.home)})` : ''}, epoch ${r.global.epoch}`);
  // Lent for a peak is not away after a failure: said apart, so that neither is mistaken for the other.
  const lent = r.cellsAwayFromHome.filter((c) => c.lentToElastic);
  const away = r.cellsAwayFromHome.filter((c) => !c.lentToElastic);
  if (away.length) {
    lines.push('', `${away.length} cell(s) away from home:`);
    lines.push(formatTable([['CELL', 'HOME', 'ZONE', 'EPOCH'], ...away.map((c) => [c.cell, c.home, c.zone, c.epoch])]));
  }
  if (lent.length) {
    lines.push('', `${lent.length} cell(s) lent to elastic zones (rebalance --off-elastic returns them):`);
    lines.push(formatTable([['CELL', 'HOME', 'ELASTIC ZONE', 'EPOCH'], ...lent.map((c) => [c.cell, c.home, c.zone, c.epoch])]));
  }
  if (r.cellsAwayFromHome.length === 0) lines.push('', 'every cell is at home');
  if (r.frozenCells.length) {
    lines.push('', `${r.frozenCells.length} frozen cell(s):`);
    lines.push(formatTable([['CELL', 'ZONE', 'MOVING TO', 'FROZEN UNTIL'], ...r.frozenCells.map((c) => [c.cell, c.zone, c.movingTo ?? '-', c.frozenUntil])]));
  }
  if (r.staleMoves.length) {
    lines.push('', `${r.staleMoves.length} unfinished move(s):`);
    for (const m of r.staleMoves) lines.push(`  STALE: ${m.message}`);
  }
  if (r.cells) {
    lines.push('', formatTable([['CELL', 'HOME', 'ZONE', 'EPOCH', 'STATE'], ...r.cells.map((c) => [c.cell, c.home, c.zone, c.epoch, c.state])]));
  }
  lines.push('', ...gatewayLines(r, allGateways));
  return lines.join('\n');
}

export const statusCommand: Command = {
  words: ['status'],
  usage: 'cellctl status (--file PATH | --etcd HOST:PORT) [--cells] [--gateways] [--json]',
  summary: 'zones, cells away from home, frozen cells and the live gateways with the revision each has applied (more than 20: counted per revision, stragglers named; --gateways lists all)',
  examples: ['cellctl status --etcd etcd-1.internal:2379', 'cellctl status --file table.json --cells --json'],
  options: { cells: { type: 'boolean' }, gateways: { type: 'boolean' } },
  async run({ args, out, store }) {
    const s = store();
    const view = await loadView(s);
    const report = statusReport(view, await s.presence.snapshot(), args.values.cells === true);
    const autopilot = await autopilotStatusOf(s);
    if (out.json) out.data(autopilot ? { ...report, autopilot } : report);
    else out.text(statusText(report, args.values.gateways === true) + (autopilot ? `\n\n${autopilotStatusText(autopilot)}` : ''));
    return 0;
  },
};
