import { createInterface } from 'node:readline';
import { RoutingView } from '../../cells/lookup';
import { MAX_USER_ID_LENGTH } from '../../cells/table';
import { cgError } from '../../errors';
import type { TableStore } from '../../store/types';
import type { Command } from '../command';
import { formatTable } from '../output';

export async function loadView(store: TableStore): Promise<RoutingView> {
  const vt = await store.load();
  if (!vt) throw cgError('NOT_INITIALIZED', `${store.description} holds no routing table (run cellctl init)`);
  return new RoutingView(vt);
}

export interface UserRoute {
  readonly user: string;
  readonly cell: string;
  readonly zone: string | null;
  readonly epoch: number;
  readonly revision: number;
  readonly error?: string;
}

export function routeOfUser(view: RoutingView, user: string, nowMs: number): UserRoute {
  const r = view.routeUnit(user, nowMs);
  const cell = r.cell as string;
  if (r.ok) return { user, cell, zone: r.zone.name, epoch: r.epoch, revision: view.version };
  const c = view.cell(cell);
  return { user, cell, zone: c?.zone ?? null, epoch: c?.epoch ?? 0, revision: view.version, error: r.error };
}

function checkUser(user: string): void {
  if (user.length === 0 || user.length > MAX_USER_ID_LENGTH || /[\u0000-\u001f\u007f]/.test(user)) {
    throw cgError('USAGE', `bad user id ${JSON.stringify(user.slice(0, 40))}: 1-${MAX_USER_ID_LENGTH} characters, no control characters`);
  }
}

async function* stdinUsers(stdin: NodeJS.ReadableStream): AsyncGenerator<string> {
  for await (const line of createInterface({ input: stdin, crlfDelay: Infinity })) {
    const user = line.trim();
    if (user) yield user;
  }
}

export const routeCommand: Command = {
  words: ['route'],
  usage: 'cellctl route USER… | --stdin (--file PATH | --etcd HOST:PORT) [--json]',
  summary: 'show the cell, zone and epoch each user is routed to',
  examples: ['cellctl route alice bob --file table.json', 'cut -f1 users.tsv | cellctl route --stdin --json --etcd etcd-1.internal:2379'],
  options: { stdin: { type: 'boolean' } },
  async run({ args, out, store, stdin }) {
    const fromStdin = args.values.stdin === true;
    if (fromStdin === (args.positionals.length > 0)) throw cgError('USAGE', 'give user ids as arguments or --stdin, not both or neither');
    args.positionals.forEach(checkUser);
    const view = await loadView(store());
    const now = Date.now();
    if (out.json) {
      // One object per line, streamed: --stdin may carry millions of users.
      const users = fromStdin ? stdinUsers(stdin) : args.positionals;
      for await (const user of users) {
        checkUser(user);
        out.data(routeOfUser(view, user, now));
      }
      return 0;
    }
    const rows: (string | number)[][] = [['USER', 'CELL', 'ZONE', 'EPOCH', 'REVISION']];
    const users = fromStdin ? stdinUsers(stdin) : args.positionals;
    for await (const user of users) {
      checkUser(user);
      const r = routeOfUser(view, user, now);
      rows.push([r.user, r.cell, r.error ? `${r.zone} (${r.error})` : (r.zone as string), r.epoch, r.revision]);
    }
    out.text(formatTable(rows));
    return 0;
  },
};
