// nginx in the gateway benchmark, one worker, no access log, everything (config, pid, logs,
// temp dirs) in a temp prefix, in one of two roles:
//  - a comparison point: `hash $http_x_user_id consistent` over one upstream server (what a
//    cell router built from nginx would do per request), keep-alive to the upstream;
//  - the upstream itself: `return 200` with a fixed JSON body (the fastest local upstream).
import { accessSync, constants as fsConstants } from 'node:fs';
import { chmod, writeFile } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { freePort } from '../test/helpers/ports';
import { makeTempDir, removeTempDir, startChild, type BenchChild } from './children';

/** The nginx binary on PATH (or /usr/sbin), or null when nginx is not installed. */
export function findNginx(): string | null {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin', '/usr/local/nginx/sbin'];
  for (const dir of dirs) {
    if (dir === '') continue;
    const candidate = join(dir, 'nginx');
    try {
      accessSync(candidate, fsConstants.X_OK);
      return candidate;
    } catch { /* keep looking */ }
  }
  return null;
}

/**
 * What the nginx started does: proxy to an upstream by the user's hash, proxy round robin over
 * many upstream servers (`address:port` each; bench/endpoint-spread.ts), or be the upstream itself.
 */
export type NginxRole = { readonly proxyTo: number } | { readonly roundRobin: readonly string[] } | { readonly upstream: true };

/** The upstream's fixed answer (the same bytes the node upstream sends). */
const FIXED_BODY = '{"ok":true,"service":"bench-upstream"}';

function location(role: NginxRole): string {
  if ('upstream' in role) return `location / {
      default_type application/json;
      return 200 '${FIXED_BODY}';
    }`;
  return `location / {
      proxy_pass http://cells;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }`;
}

/** One worker, no daemon, every file under `dir`, no access log: the head of every bench nginx config, up to inside `http {`. */
export function nginxPreamble(dir: string): string {
  return `daemon off;
master_process on;
worker_processes 1;
error_log ${dir}/error.log warn;
pid ${dir}/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
`;
}

function upstreamBlock(role: NginxRole): string {
  if ('proxyTo' in role) return `upstream cells {
    hash $http_x_user_id consistent;
    server 127.0.0.1:${role.proxyTo};
    keepalive 128;
  }`;
  // Idle connections kept: enough for every server to keep a few (nginx's cache is per worker).
  if ('roundRobin' in role) return `upstream cells {
${role.roundRobin.map((server) => `    server ${server};`).join('\n')}
    keepalive ${Math.max(128, role.roundRobin.length * 4)};
    keepalive_requests 1000000;
  }`;
  return '';
}

function config(dir: string, port: number, role: NginxRole): string {
  return `${nginxPreamble(dir)}  ${upstreamBlock(role)}
  server {
    listen 127.0.0.1:${port};
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    ${location(role)}
  }
}
`;
}

export interface RunningNginx {
  readonly port: number;
  /** The master's pid, also its process group (its worker is in it). */
  readonly pid: number | undefined;
  stop(): Promise<void>;
}

/** Starts nginx (one worker) in `role`; resolves once it answers on its port. */
export async function startNginx(binary: string, role: NginxRole, ready: (port: number) => Promise<void>): Promise<RunningNginx> {
  const dir = await makeTempDir('cellgate-bench-nginx-');
  // Started as root, nginx's workers run as an unprivileged user that must reach the temp dirs.
  await chmod(dir, 0o755);
  let child: BenchChild | null = null;
  try {
    const port = await freePort();
    await writeFile(join(dir, 'nginx.conf'), config(dir, port, role));
    child = startChild('nginx', binary, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')]);
    await ready(port);
    const running = child;
    return {
      port,
      pid: running.pid,
      async stop() {
        await running.stop();
        await removeTempDir(dir);
      },
    };
  } catch (err) {
    await child?.stop();
    await removeTempDir(dir);
    throw err;
  }
}
