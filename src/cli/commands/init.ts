import { hostname, userInfo } from 'node:os';
import { tableFromTopologyText } from '../../cells/topology';
import { cgError } from '../../errors';
import { raiseEpochsAbove, storeEpochs } from '../../failover/epochs';
import { stringOption } from '../args';
import type { Command } from '../command';
import { escapeForTerminal as esc } from '../output';
import { readInputFile } from './validate';

/** --actor, or user@host: who made a change, for the history. */
export function actorOf(values: Record<string, unknown>): string {
  if (typeof values.actor === 'string' && values.actor) return values.actor;
  let user = 'unknown';
  try { user = userInfo().username; } catch { /* no passwd entry (containers) */ }
  return `${user}@${hostname()}`;
}

export const initCommand: Command = {
  words: ['init'],
  usage: 'cellctl init --topology FILE (--file PATH | --etcd HOST:PORT) [--reason TEXT] [--force] [--dry-run] [--json]',
  summary: 'write the first routing table, made from a topology, into an empty store (--force: replace the one there)',
  examples: [
    'cellctl init --topology config/demo-topology.yaml --file /var/lib/cellgate/table.json',
    'cellctl init --topology topo.yaml --etcd etcd-1.internal:2379 --prefix /cellgate',
  ],
  options: { topology: { type: 'string' }, reason: { type: 'string' }, actor: { type: 'string' }, 'dry-run': { type: 'boolean' }, force: { type: 'boolean' } },
  async run({ args, out, store }) {
    const topologyPath = stringOption(args.values, 'topology');
    if (!topologyPath) throw cgError('USAGE', 'init needs --topology FILE');
    if (args.positionals.length) throw cgError('USAGE', `unexpected argument ${args.positionals[0]}`);
    const fresh = tableFromTopologyText(readInputFile(topologyPath));
    if (args.values['dry-run']) {
      if (out.json) out.data({ dryRun: true, table: fresh });
      else out.text(`would write "${esc(fresh.name)}": ${fresh.cells.length} cells over ${fresh.zones.length} zones`);
      return 0;
    }
    const s = store();
    // A store that was wiped (or is replaced with --force) may have issued epochs already:
    // the new table's start above every one it shows (failover/epochs.ts).
    const epochs = await storeEpochs(s);
    const existing = epochs.current?.version ?? epochs.invalidVersion ?? 0;
    if (existing && args.values.force !== true) {
      throw cgError('ALREADY_INITIALIZED', `${s.description} already holds a routing table (version ${existing}); --force replaces it`);
    }
    const table = epochs.highWater > 0 ? raiseEpochsAbove(fresh, epochs.highWater) : fresh;
    const result = await s.compareAndSwap(existing, table, {
      actor: actorOf(args.values), at: new Date().toISOString(), reason: stringOption(args.values, 'reason') ?? 'initial table',
      action: `init --topology ${topologyPath}${existing ? ' --force' : ''}`,
      summary: [`${table.cells.length} cells over ${table.zones.length} zones`, ...(epochs.highWater > 0 ? [`epochs start at ${epochs.highWater + 1}, above every epoch issued before`] : [])],
    });
    if (!result.ok) throw cgError(existing ? 'CONFLICT' : 'ALREADY_INITIALIZED', `${s.description} changed meanwhile (now version ${result.current?.version ?? '?'}); nothing written`);
    if (out.json) out.data({ version: result.version, checksum: result.checksum, cells: table.cells.length, zones: table.zones.length });
    else out.text(`initialised ${esc(s.description)}: "${esc(table.name)}", ${table.cells.length} cells over ${table.zones.length} zones, version ${result.version}`);
    return 0;
  },
};
