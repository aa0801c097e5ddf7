import type { RoutingView } from '../../cells/lookup';
import type { PresenceRecord } from '../../store/types';
import type { Command } from '../command';
import { formatTable } from '../output';
import { loadView } from './route';

export interface StatusReport {
  readonly name: string;
  readonly revision: number;
  readonly checksum: string;
  readonly zones: { name: string; region: string; city: string; status: string; capacity: number; cells: number; homeCells: number }[];
  readonly cellsAwayFromHome: { cell: string; home: string; zone: string; epoch: number }[];
  readonly frozenCells: { cell: string; zone: string; movingTo: string | null; frozenUntil: string }[];
  readonly global: { home: string; zone: string; epoch: number };
  readonly gateways: (PresenceRecord & { readonly current: boolean })[];
  readonly cells?: { cell: string; home: string; zone: string; epoch: number; state: string }[];
}

export function statusReport(view: RoutingView, gateways: readonly PresenceRecord[], withCells: boolean): StatusReport {
  const t = view.table;
  const all = [...t.cells, t.global];
  return {
    name: t.name,
    revision: view.version,
    checksum: view.checksum,
    zones: t.zones.map((z) => ({
      name: z.name, region: z.region, city: z.city, status: z.status, capacity: z.capacity,
      cells: t.cells.filter((c) => c.zone === z.name).length, homeCells: t.cells.filter((c) => c.home === z.name).length,
    })),
    cellsAwayFromHome: all.filter((c) => c.zone !== c.home).map((c) => ({ cell: c.name, home: c.home, zone: c.zone, epoch: c.epoch })),
    frozenCells: all.filter((c) => c.state === 'frozen').map((c) => ({
      cell: c.name, zone: c.zone, movingTo: c.movingTo ?? null, frozenUntil: new Date(c.frozenUntilMs ?? 0).toISOString(),
    })),
    global: { home: t.global.home, zone: t.global.zone, epoch: t.global.epoch },
    gateways: [...gateways].sort((a, b) => a.id.localeCompare(b.id))
      .map((g) => ({ ...g, current: g.appliedVersion === view.version && g.checksum === view.checksum })),
    ...(withCells ? { cells: t.cells.map((c) => ({ cell: c.name, home: c.home, zone: c.zone, epoch: c.epoch, state: c.state })) } : {}),
  };
}

function statusText(r: StatusReport): string {
  const lines = [`table "${r.name}" revision ${r.revision} ${r.checksum}`, ''];
  lines.push(formatTable([
    ['ZONE', 'REGION', 'CITY', 'STATUS', 'CAPACITY', 'CELLS', 'HOME CELLS'],
    ...r.zones.map((z) => [z.name, z.region, z.city, z.status, z.capacity, z.cells, z.homeCells]),
  ]));
  lines.push('', `global zone: ${r.global.zone}${r.global.zone !== r.global.home ? ` (home ${r.global.home})` : ''}, epoch ${r.global.epoch}`);
  if (r.cellsAwayFromHome.length) {
    lines.push('', `${r.cellsAwayFromHome.length} cell(s) away from home:`);
    lines.push(formatTable([['CELL', 'HOME', 'ZONE', 'EPOCH'], ...r.cellsAwayFromHome.map((c) => [c.cell, c.home, c.zone, c.epoch])]));
  } else lines.push('', 'every cell is at home');
  if (r.frozenCells.length) {
    lines.push('', `${r.frozenCells.length} frozen cell(s):`);
    lines.push(formatTable([['CELL', 'ZONE', 'MOVING TO', 'FROZEN UNTIL'], ...r.frozenCells.map((c) => [c.cell, c.zone, c.movingTo ?? '-', c.frozenUntil])]));
  }
  if (r.cells) {
    lines.push('', formatTable([['CELL', 'HOME', 'ZONE', 'EPOCH', 'STATE'], ...r.cells.map((c) => [c.cell, c.home, c.zone, c.epoch, c.state])]));
  }
  const behind = r.gateways.filter((g) => !g.current).length;
  lines.push('', `${r.gateways.length} live gateway(s)${behind ? `, ${behind} not on revision ${r.revision}` : ''}:`);
  if (r.gateways.length) {
    lines.push(formatTable([
      ['GATEWAY', 'ZONE', 'REVISION', 'CHECKSUM', 'IN FLIGHT', 'SINCE', ''],
      ...r.gateways.map((g) => [g.id, g.zone ?? '-', g.appliedVersion, g.checksum, g.inFlight, g.startedAt, g.current ? '' : 'BEHIND']),
    ]));
  }
  return lines.join('\n');
}

export const statusCommand: Command = {
  words: ['status'],
  usage: 'cellctl status (--file PATH | --etcd HOST:PORT) [--cells] [--json]',
  summary: 'zones, cells away from home, frozen cells and the live gateways with the revision each has applied',
  examples: ['cellctl status --etcd etcd-1.internal:2379', 'cellctl status --file table.json --cells --json'],
  options: { cells: { type: 'boolean' } },
  async run({ args, out, store }) {
    const s = store();
    const view = await loadView(s);
    const report = statusReport(view, await s.presence.list(), args.values.cells === true);
    if (out.json) out.data(report);
    else out.text(statusText(report));
    return 0;
  },
};
