import { cgError } from '../../errors';
import { decimal } from '../args';
import type { Command } from '../command';
import { formatTable } from '../output';

export const historyCommand: Command = {
  words: ['history'],
  usage: 'cellctl history (--file PATH | --etcd HOST:PORT) [--limit N] [--json]',
  summary: 'every change: when, who, why, revisions before and after, what moved',
  examples: ['cellctl history --etcd etcd-1.internal:2379 --limit 20', 'cellctl history --file table.json --json'],
  options: { limit: { type: 'string' } },
  async run({ args, out, store }) {
    const limitRaw = args.values.limit;
    const limit = limitRaw === undefined ? 50 : decimal(String(limitRaw));
    if (!Number.isInteger(limit) || limit < 1) throw cgError('USAGE', `--limit must be a positive integer, got "${String(limitRaw)}"`);
    if (args.positionals.length) throw cgError('USAGE', `unexpected argument ${args.positionals[0]}`);
    const entries = (await store().listHistory()).slice(-limit);
    if (out.json) {
      for (const { table: _table, ...entry } of entries) out.data(entry);
      return 0;
    }
    out.text(formatTable([
      ['REVISION', 'AT', 'ACTOR', 'ACTION', 'REASON', 'CHANGES'],
      ...entries.map((e) => [`${e.versionBefore}->${e.versionAfter}`, e.at, e.actor, e.action, e.reason, summarize(e.summary)]),
    ]));
    return 0;
  },
};

function summarize(summary: readonly string[]): string {
  return summary.length <= 3 ? summary.join(', ') : `${summary.slice(0, 3).join(', ')} … (${summary.length} in all)`;
}
