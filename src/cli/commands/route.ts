import { createInterface } from 'node:readline';
import { RoutingView } from '../../cells/lookup';
import { USER_ID_PROBLEM_TEXT, decodeUserId } from '../../cells/user-id';
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

/** The gateway's decoding and rules: arguments are text, stdin lines are raw bytes (like a header). */
function checkUser(user: string, encoding: 'text' | 'wire' = 'text'): string {
  const r = decodeUserId(user, encoding);
  if (typeof r !== 'string') throw cgError('USAGE', `bad user id ${JSON.stringify(user.slice(0, 40))}: it ${USER_ID_PROBLEM_TEXT[r.problem]}`);
  return r;
}

/** Raw lines of stdin, one char per byte: decoded by checkUser like a header, so bad UTF-8 is refused, not replaced. */
async function* stdinUsers(stdin: NodeJS.ReadableStream): AsyncGenerator<string> {
  stdin.setEncoding('latin1');
  for await (const line of createInterface({ input: stdin, crlfDelay: Infinity })) {
    // ASCII blanks only: a trailing 0xA0 byte may be the end of a UTF-8 character.
    const user = line.replace(/^[ \t\r]+|[ \t\r]+$/g, '');
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
    args.positionals.forEach((u) => checkUser(u));
    const view = await loadView(store());
    const now = Date.now();
    if (out.json) {
      // One object per line, streamed: --stdin may carry millions of users.
      const users = fromStdin ? stdinUsers(stdin) : args.positionals;
      for await (const raw of users) {
        const user = checkUser(raw, fromStdin ? 'wire' : 'text');
        out.data(routeOfUser(view, user, now));
      }
      return 0;
    }
    const rows: (string | number)[][] = [['USER', 'CELL', 'ZONE', 'EPOCH', 'REVISION']];
    const users = fromStdin ? stdinUsers(stdin) : args.positionals;
    for await (const raw of users) {
      const user = checkUser(raw, fromStdin ? 'wire' : 'text');
      const r = routeOfUser(view, user, now);
      rows.push([r.user, r.cell, r.error ? `${r.zone} (${r.error})` : (r.zone as string), r.epoch, r.revision]);
    }
    out.text(formatTable(rows));
    return 0;
  },
};
