// `cellctl endpoints`: what the endpoint registry holds (zone, service, id, url, weight,
// age) and what each live gateway sees of it (the digest in its presence record: count and
// checksum of the registry it applied). Past GATEWAYS_LISTED gateways, they are counted per
// digest and only those not on the current one are named, like `cellctl status`. Everything
// shown was written by other processes: formatTable escapes every cell.
import { registryChecksum, registryPriorityOf } from '../../store/endpoint-record';
import type { PresenceSnapshot, RefusedEndpoint, RegistryDigest, RegistrySnapshot } from '../../store/types';
import { cgError } from '../../errors';
import { NAME } from '../../cells/check';
import type { Command } from '../command';
import { formatTable } from '../output';
import { GATEWAYS_LISTED } from './status';

export interface EndpointsReport {
  /** The whole registry's checksum now (what a gateway that is current has applied). */
  readonly registry: { readonly count: number; readonly checksum: string };
  readonly endpoints: { zone: string; service: string; id: string; url: string; weight: number; registeredAt: string; ageS: number }[];
  readonly refusedCount: number;
  readonly refused: readonly RefusedEndpoint[];
  readonly gateways: { id: string; zone: string | null; registry: RegistryDigest | null; current: boolean }[];
  readonly gatewaysByDigest: { checksum: string | null; count: number | null; gateways: number; current: boolean }[];
}

export function endpointsReport(reg: RegistrySnapshot, presence: PresenceSnapshot, filter: { zone?: string; service?: string }, nowMs: number): EndpointsReport {
  const checksum = registryChecksum(reg);
  const gateways = presence.records.map((g) => ({ id: g.id, zone: g.zone, registry: g.registry ?? null, current: g.registry?.checksum === checksum }));
  const groups = new Map<string, EndpointsReport['gatewaysByDigest'][number]>();
  for (const g of gateways) {
    const key = g.registry ? `${g.registry.checksum} ${g.registry.count}` : '-';
    const group = groups.get(key);
    if (group) group.gateways += 1;
    else groups.set(key, { checksum: g.registry?.checksum ?? null, count: g.registry?.count ?? null, gateways: 1, current: g.current });
  }
  return {
    registry: { count: reg.endpoints.length, checksum },
    endpoints: reg.endpoints
      .filter((e) => (filter.zone === undefined || e.zone === filter.zone) && (filter.service === undefined || e.service === filter.service))
      .map((e) => ({ ...e, ageS: Math.max(0, Math.round((nowMs - Date.parse(e.registeredAt)) / 1000)) })),
    refusedCount: reg.refusedCount,
    refused: reg.refused,
    gateways,
    gatewaysByDigest: [...groups.values()].sort((a, b) => b.gateways - a.gateways),
  };
}

function gatewayLines(r: EndpointsReport): string[] {
  const behind = r.gateways.filter((g) => !g.current);
  const lines = [`${r.gateways.length} live gateway(s)${behind.length ? `, ${behind.length} not on this registry (a gateway publishes its view at most every 5 s)` : ''}:`];
  const row = (g: EndpointsReport['gateways'][number]) => [g.id, g.zone ?? '-', g.registry?.count ?? '-', g.registry?.checksum ?? 'none published', g.current ? '' : 'BEHIND'];
  const header = ['GATEWAY', 'ZONE', 'ENDPOINTS', 'REGISTRY CHECKSUM', ''];
  if (r.gateways.length <= GATEWAYS_LISTED) {
    if (r.gateways.length) lines.push(formatTable([header, ...r.gateways.map(row)]));
    return lines;
  }
  lines.push(formatTable([['REGISTRY CHECKSUM', 'ENDPOINTS', 'GATEWAYS', ''], ...r.gatewaysByDigest.map((g) => [g.checksum ?? 'none published', g.count ?? '-', g.gateways, g.current ? 'current' : 'BEHIND'])]));
  if (behind.length) {
    lines.push('', 'not on this registry:', formatTable([header, ...behind.slice(0, GATEWAYS_LISTED).map(row)]));
    if (behind.length > GATEWAYS_LISTED) lines.push(`… and ${behind.length - GATEWAYS_LISTED} more (--json lists every gateway)`);
  }
  return lines;
}

function endpointsText(r: EndpointsReport): string {
  const lines = [`endpoint registry: ${r.registry.count} endpoint(s), ${r.registry.checksum}`, ''];
  if (r.endpoints.length) {
    lines.push(formatTable([['ZONE', 'SERVICE', 'ID', 'URL', 'WEIGHT', 'AGE'], ...r.endpoints.map((e) => [e.zone, e.service, e.id, e.url, e.weight, `${e.ageS}s`])]));
  } else lines.push('no registered endpoint matches');
  if (r.refusedCount) {
    lines.push('', `${r.refusedCount} record(s) refused (never routed to):`, formatTable([['KEY', 'PROBLEM'], ...r.refused.map((x) => [x.key, x.problem])]));
  }
  lines.push('', ...gatewayLines(r));
  return lines.join('\n');
}

function nameFlag(v: unknown, flag: string): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !NAME.test(v)) throw cgError('USAGE', `--${flag} must be a zone or service name (${NAME}), got ${JSON.stringify(v)}`);
  return v;
}

export const endpointsCommand: Command = {
  words: ['endpoints'],
  usage: 'cellctl endpoints (--file PATH | --etcd HOST:PORT) [--zone Z] [--service S] [--json]',
  summary: 'the endpoint registry: registered instances (zone, service, id, url, weight, age) and what each live gateway has applied of it',
  examples: ['cellctl endpoints --etcd etcd-1.internal:2379', 'cellctl endpoints --etcd etcd-1.internal:2379 --zone sh-a --service orders --json'],
  options: { zone: { type: 'string' }, service: { type: 'string' } },
  async run({ args, out, store }) {
    const filter = { zone: nameFlag(args.values.zone, 'zone'), service: nameFlag(args.values.service, 'service') };
    if (args.positionals.length > 0) throw cgError('USAGE', `cellctl endpoints takes no arguments, got "${args.positionals.join(' ')}"`);
    const s = store();
    // Over the registry's bound, ranked as the gateways rank it (by the table's zones), so that their digests compare.
    const table = await s.load().catch(() => null); // no table, or a bad one: by key
    const [reg, presence] = await Promise.all([s.registry.snapshot(table ? registryPriorityOf(table.table).priority : undefined), s.presence.snapshot()]);
    const report = endpointsReport(reg, presence, filter, Date.now());
    if (out.json) out.data(report);
    else out.text(endpointsText(report));
    return 0;
  },
};
