import { readFileSync } from 'node:fs';
import { parseTableJson } from '../../cells/table';
import { tableFromTopologyText } from '../../cells/topology';
import { tableChecksum } from '../../cells/checksum';
import { cgError } from '../../errors';
import type { Command } from '../command';
import { escapeForTerminal as esc } from '../output';

export function readInputFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw cgError('USAGE', `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

export const validateCommand: Command = {
  words: ['validate'],
  usage: 'cellctl validate FILE [--json]',
  summary: 'check a topology (YAML) or routing-table (JSON) file without touching any store',
  examples: ['cellctl validate config/demo-topology.yaml'],
  options: {},
  async run({ args, out }) {
    const [file, ...rest] = args.positionals;
    if (!file || rest.length) throw cgError('USAGE', 'validate takes exactly one FILE');
    const text = readInputFile(file);
    // A table document is JSON with "format"; anything else is a topology.
    const isTable = /^\s*\{[\s\S]*"format"\s*:/.test(text);
    const table = isTable ? parseTableJson(text) : tableFromTopologyText(text);
    const summary = {
      valid: true, kind: isTable ? 'table' : 'topology', name: table.name,
      cells: table.cells.length, zones: table.zones.length, checksum: tableChecksum(table),
    };
    if (out.json) out.data(summary);
    else out.text(`${esc(file)}: valid ${summary.kind} "${esc(table.name)}" (${summary.cells} cells, ${summary.zones} zones, ${summary.checksum})`);
    return 0;
  },
};
