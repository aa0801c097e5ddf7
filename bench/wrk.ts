// wrk (C, Debian `wrk`) as the closed-loop load generator of the gateway benchmark: it costs a
// fraction of the CPU a Node generator does, which matters when the generator, the proxy and
// the upstream share two cores. Distinct user ids come from a Lua script that prebuilds one
// request per user (the same ids as userPool) and sends them round-robin.
import { spawn } from 'node:child_process';
import { accessSync, constants as fsConstants } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { delimiter, join } from 'node:path';

/** The wrk binary on PATH, or null. */
export function findWrk(): string | null {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    try {
      accessSync(join(dir, 'wrk'), fsConstants.X_OK);
      return join(dir, 'wrk');
    } catch { /* keep looking */ }
  }
  return null;
}

/**
 * The Lua script of `users` distinct ids (those of userPool(users)), one prebuilt GET each, sent
 * round-robin; user i asks for paths[(i - 1) mod paths.length].
 */
export function usersScript(users: number, paths: readonly string[]): string {
  return `-- ${users} distinct users over ${paths.length} path(s), one prebuilt request each, sent round-robin
local paths = { ${paths.map((p) => JSON.stringify(p)).join(', ')} }
local reqs = {}
local n = 0
init = function(args)
  for i = 1, ${users} do
    local id = string.format("u%012x", (i * 2654435761) % 281474976710656)
    reqs[i] = wrk.format("GET", paths[(i - 1) % ${paths.length} + 1], { ["x-user-id"] = id })
  end
end
request = function()
  n = n % ${users} + 1
  return reqs[n]
end
`;
}

/** Writes usersScript(users, [path]) to `dir`; returns its path. */
export async function writeUsersScript(dir: string, users: number, path = '/api/items'): Promise<string> {
  const script = usersScript(users, [path]);
  const file = join(dir, 'users.lua');
  await writeFile(file, script);
  return file;
}

export interface WrkResult {
  readonly rps: number;
  readonly total: number;
  /** Non-2xx/3xx answers plus socket errors (connect, read, write, timeout). */
  readonly bad: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

function toMs(text: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text.trim());
  if (!m) return Number.NaN;
  const v = Number(m[1]);
  return m[2] === 'us' ? v / 1000 : m[2] === 'ms' ? v : m[2] === 's' ? v * 1000 : v * 60_000;
}

/** Parses wrk's --latency output. */
export function parseWrk(out: string): WrkResult {
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? Number.NaN);
  const total = Number(/(\d+) requests in/.exec(out)?.[1] ?? Number.NaN);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const errors = sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0;
  return {
    rps, total, bad: non2xx + errors,
    p50Ms: toMs(/\n\s+50%\s+(\S+)/.exec(out)?.[1] ?? ''),
    p99Ms: toMs(/\n\s+99%\s+(\S+)/.exec(out)?.[1] ?? ''),
  };
}

export interface WrkOptions {
  readonly binary: string;
  readonly script: string;
  readonly port: number;
  readonly threads: number;
  readonly connections: number;
  readonly durationS: number;
}

/** One wrk run against http://127.0.0.1:port/ (bounded: wrk's own -d plus a kill deadline). */
export function runWrk(o: WrkOptions): Promise<WrkResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(o.binary, [
      `-t${o.threads}`, `-c${o.connections}`, `-d${o.durationS}s`, '--latency', '-s', o.script, `http://127.0.0.1:${o.port}/api/items`,
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (out += c));
    const killer = setTimeout(() => child.kill('SIGKILL'), (o.durationS + 15) * 1000);
    child.once('error', (err) => { clearTimeout(killer); reject(err); });
    child.once('exit', (code) => {
      clearTimeout(killer);
      if (code !== 0) return reject(new Error(`wrk exited ${code}: ${out.slice(-500)}`));
      const r = parseWrk(out);
      if (Number.isNaN(r.rps)) return reject(new Error(`could not read wrk's output: ${out.slice(-500)}`));
      resolve(r);
    });
  });
}
