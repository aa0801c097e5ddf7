// Run as a separate node process by test/cells-ring.test.ts, to show that two processes
// (each with its own Math.random and module state) map users to the same cells.
//
//   node ring-child.js TABLE_JSON_PATH USERS_PATH [TOPOLOGY_PATH]
//
// Reads the table JSON (as a gateway would from a store) and one user id per line, and
// prints one JSON object: the table's checksum and each user's cell. With a topology path
// it also builds its own table from the topology and maps the users over that one.
import { readFileSync } from 'node:fs';
import { tableChecksum } from '../../src/cells/checksum';
import { CellRing } from '../../src/cells/ring';
import { parseTableJson } from '../../src/cells/table';
import { tableFromTopologyText } from '../../src/cells/topology';

export interface RingChildOutput {
  readonly pid: number;
  readonly checksum: string;
  readonly cells: string[];
  readonly fromTopology: { readonly checksum: string; readonly cells: string[] } | null;
}

function main(argv: readonly string[]): void {
  const [tablePath, usersPath, topologyPath] = argv;
  if (!tablePath || !usersPath) {
    process.stderr.write('usage: ring-child TABLE_JSON_PATH USERS_PATH [TOPOLOGY_PATH]\n');
    process.exit(2);
  }
  // Drawing random numbers first makes sure this process's Math.random state differs from the parent's.
  for (let i = 0; i < 1000; i++) Math.random();
  const users = readFileSync(usersPath, 'utf8').split('\n').slice(0, -1);
  const table = parseTableJson(readFileSync(tablePath, 'utf8'));
  const ring = CellRing.build(table);
  let fromTopology: RingChildOutput['fromTopology'] = null;
  if (topologyPath) {
    const own = tableFromTopologyText(readFileSync(topologyPath, 'utf8'));
    const ownRing = CellRing.build(own);
    fromTopology = { checksum: tableChecksum(own), cells: users.map((u) => ownRing.cellOf(u)) };
  }
  const out: RingChildOutput = { pid: process.pid, checksum: tableChecksum(table), cells: users.map((u) => ring.cellOf(u)), fromTopology };
  process.stdout.write(JSON.stringify(out));
}

main(process.argv.slice(2));
