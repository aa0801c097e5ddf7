// cellctl zone add / zone remove: edits of the zone list, written like every change (plan,
// confirm, compare-and-swap with its history entry, wait for the gateways). A new zone holds
// no cells until `cellctl rebalance` (or, elastic, `rebalance --onto-elastic`) gives it some.
import { DEFAULT_SERVICE, type RoutingTable } from '../../cells/types';
import { addZone, removeZone } from '../../cells/zones';
import { cgError } from '../../errors';
import { planZoneListChange } from '../../failover/planner';
import { stringOption, type Parsed } from '../args';
import type { Command, CommandContext } from '../command';
import { CHANGE_OPTIONS, plannerOptions, runChange } from './change';

const STORE = '(--file PATH | --etcd HOST:PORT)';
const CHANGE_FLAGS = '--reason TEXT [--yes] [--dry-run] [--timeout S] [--json]';

function zoneName(ctx: CommandContext): string {
  const names = ctx.args.positionals;
  if (names.length !== 1) throw cgError('USAGE', `expected one zone NAME, got ${names.length ? names.join(' ') : 'nothing'}`);
  return names[0] as string;
}

function list(values: Parsed['values'], name: string): string[] {
  const v = values[name];
  return Array.isArray(v) ? v.map(String) : typeof v === 'string' ? [v] : [];
}

/** A number when the text is one; otherwise the text itself, for validation to name (`zones.x.capacity: must be …`). */
function numberOrText(raw: string): number | string {
  return /^\s*-?\d+(\.\d+)?\s*$/.test(raw) ? Number(raw) : raw;
}

/**
 * The zone document the flags describe: `--upstream URL` (repeatable) are the default
 * service's endpoints, `--service S=URL` (repeatable) adds URL to service S.
 */
export function zoneDocFromFlags(name: string, values: Parsed['values']): Record<string, unknown> {
  const missing = ['region', 'city', 'capacity'].filter((f) => stringOption(values, f) === undefined);
  if (missing.length) throw cgError('USAGE', `zone add needs ${missing.map((f) => `--${f}`).join(', ')}`);
  // A Map, not an object: a service may be named "constructor" or "toString" (both are NAMEs).
  const services = new Map<string, { upstreams: string[] }>();
  const upstreams = list(values, 'upstream');
  for (const spec of list(values, 'service')) {
    const eq = spec.indexOf('=');
    if (eq <= 0 || eq === spec.length - 1) throw cgError('USAGE', `--service takes SERVICE=URL, got ${JSON.stringify(spec)}`);
    const service = spec.slice(0, eq);
    const url = spec.slice(eq + 1);
    // The default service's endpoints are the zone's plain upstreams (today's tables).
    if (service === DEFAULT_SERVICE) upstreams.push(url);
    else if (services.has(service)) services.get(service)!.upstreams.push(url);
    else services.set(service, { upstreams: [url] });
  }
  const healthPath = stringOption(values, 'health-path');
  return {
    name, region: stringOption(values, 'region'), city: stringOption(values, 'city'),
    capacity: numberOrText(stringOption(values, 'capacity') as string), upstreams,
    ...(services.size ? { services: Object.fromEntries(services) } : {}),
    ...(healthPath !== undefined ? { healthPath } : {}),
    ...(values.elastic === true ? { elastic: true } : {}),
  };
}

function describeZone(doc: Record<string, unknown>): string {
  const services = Object.keys((doc.services as Record<string, unknown> | undefined) ?? {});
  const ups = (doc.upstreams as string[]).length;
  return `zone ${String(doc.name)} added${doc.elastic ? ' (elastic)' : ''}: ${String(doc.region)}/${String(doc.city)}, capacity ${String(doc.capacity)}, `
    + `${ups} upstream(s)${services.length ? `, services ${services.join(', ')}` : ''}, status up, no cells`;
}

export const zoneAddCommand: Command = {
  words: ['zone', 'add'],
  usage: `cellctl zone add NAME --region R --city C --capacity N [--elastic] [--upstream URL …] [--service S=URL …] [--health-path P] ${STORE} ${CHANGE_FLAGS}`,
  summary: 'add a zone (up, no cells; --elastic: only rebalance --onto-elastic gives it cells)',
  examples: [
    'cellctl zone add sh-c --region east --city shanghai --capacity 100 --upstream http://10.0.3.10:8080 --reason "new hall" --yes --etcd etcd-1.internal:2379',
    'cellctl zone add peak-a --region east --city shanghai --capacity 40 --elastic --upstream http://10.9.0.10:8080 --service orders=http://10.9.0.11:8080 --reason "festival peak" --yes --etcd etcd-1.internal:2379',
  ],
  options: {
    ...CHANGE_OPTIONS, region: { type: 'string' }, city: { type: 'string' }, capacity: { type: 'string' }, elastic: { type: 'boolean' },
    upstream: { type: 'string', multiple: true }, service: { type: 'string', multiple: true }, 'health-path': { type: 'string' },
  },
  run: (ctx) => {
    const doc = zoneDocFromFlags(zoneName(ctx), ctx.args.values);
    const o = plannerOptions(ctx);
    return runChange(ctx, (t: RoutingTable) => planZoneListChange(t, addZone(t, doc), `zone add ${String(doc.name)}`, [describeZone(doc)], o));
  },
};

/**
 * Gateways started with `--zone NAME` route their city-class traffic to their own zone (or the
 * nearest up one, found by its city and region): with NAME gone from the table they have no
 * zone at all, and every city request fails ZONE_DOWN. Refused while one is live, unless --force.
 */
async function refuseWhileGatewaysLive(ctx: CommandContext, name: string): Promise<void> {
  if (ctx.args.values.force === true) return;
  const live = (await ctx.store().presence.snapshot()).records.filter((g) => g.zone === name).map((g) => g.id).sort();
  if (live.length === 0) return;
  const named = `${live.slice(0, 8).join(', ')}${live.length > 8 ? `, … (${live.length})` : ''}`;
  throw cgError('PLAN_REFUSED', `zone ${name} cannot be removed: ${live.length} live gateway(s) run in it (--zone ${name}): ${named}; `
    + 'without their zone in the table every city-class request they get fails ZONE_DOWN (move them to another --zone first, or --force)', { detail: live });
}

export const zoneRemoveCommand: Command = {
  words: ['zone', 'remove'],
  usage: `cellctl zone remove NAME ${STORE} ${CHANGE_FLAGS}`,
  summary: 'remove a zone that holds no cells, is no cell\'s home, is not the global zone and runs no live gateway (--force: even so)',
  examples: ['cellctl zone remove peak-a --reason "peak over" --yes --etcd etcd-1.internal:2379'],
  options: CHANGE_OPTIONS,
  run: async (ctx) => {
    const name = zoneName(ctx);
    const o = plannerOptions(ctx);
    await refuseWhileGatewaysLive(ctx, name);
    return runChange(ctx, (t: RoutingTable) => planZoneListChange(t, removeZone(t, name), `zone remove ${name}`, [`zone ${name} removed`], o));
  },
};
