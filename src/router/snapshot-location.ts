// Where fail-static keeps its snapshot when the configuration does not say: one file per
// store and prefix (two gateways of different clusters on one host never share one), in
// the first directory that is writable of
//   /var/lib/cellgate                (what a package or a systemd StateDirectory= makes)
//   $XDG_STATE_HOME/cellgate         (a user's state, when that variable is set)
//   ./.cellgate                      (the working directory)
// /var/lib/cellgate is used only when it exists (it is not created: that is the
// installer's job); the other two are created when missing.
import { createHash } from 'node:crypto';
import { accessSync, constants as fsConstants, mkdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const SYSTEM_STATE_DIR = '/var/lib/cellgate';

export interface SnapshotLocationInput {
  /** The store spec (`etcd:…` or `file:…`) and prefix the gateway follows. */
  readonly store: string;
  readonly prefix: string;
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  /** Stands in for /var/lib/cellgate in tests. */
  readonly systemDir?: string;
}

export interface SnapshotLocation {
  /** null when no candidate directory is writable: fail-static is then off. */
  readonly path: string | null;
  /** Why this one (for the start-up log line). */
  readonly why: string;
}

/** A short stable name for a store + prefix. */
export function snapshotFileName(store: string, prefix: string): string {
  return `${createHash('sha256').update(`${store}\n${prefix}`).digest('hex').slice(0, 16)}.json`;
}

function writableDir(dir: string, create: boolean): boolean {
  try {
    if (create) mkdirSync(dir, { recursive: true, mode: 0o755 });
    if (!statSync(dir).isDirectory()) return false;
    accessSync(dir, fsConstants.W_OK | fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

export function defaultSnapshotLocation(input: SnapshotLocationInput): SnapshotLocation {
  const env = input.env ?? process.env;
  const name = snapshotFileName(input.store, input.prefix);
  const system = input.systemDir ?? SYSTEM_STATE_DIR;
  if (writableDir(system, false)) return { path: join(system, name), why: `${system} is writable` };
  const xdg = env.XDG_STATE_HOME;
  if (xdg && xdg.startsWith('/')) {
    const dir = join(xdg, 'cellgate');
    if (writableDir(dir, true)) return { path: join(dir, name), why: `${system} is not writable; XDG_STATE_HOME is set` };
  }
  const local = resolve(input.cwd ?? process.cwd(), '.cellgate');
  if (writableDir(local, true)) return { path: join(local, name), why: `${system} is not writable${xdg ? ' (nor XDG_STATE_HOME)' : ' and XDG_STATE_HOME is not set'}: the working directory` };
  return { path: null, why: `no writable directory among ${system}, $XDG_STATE_HOME/cellgate, ${local}` };
}
