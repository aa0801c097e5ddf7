// nginx as a comparison point: one worker, `hash $http_x_user_id consistent` over one
// upstream server (what a cell router built from nginx would do per request), keep-alive to
// the upstream, no access log, everything (config, pid, logs, temp dirs) in a temp prefix.
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

function config(dir: string, port: number, upstreamPort: number): string {
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
  upstream cells {
    hash $http_x_user_id consistent;
    server 127.0.0.1:${upstreamPort};
    keepalive 128;
  }
  server {
    listen 127.0.0.1:${port};
    keepalive_requests 1000000;
    location / {
      proxy_pass http://cells;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
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

/** Starts nginx in front of 127.0.0.1:upstreamPort; resolves once it answers on its port. */
export async function startNginx(binary: string, upstreamPort: number, ready: (port: number) => Promise<void>): Promise<RunningNginx> {
  const dir = await makeTempDir('cellgate-bench-nginx-');
  // Started as root, nginx's workers run as an unprivileged user that must reach the temp dirs.
  await chmod(dir, 0o755);
  let child: BenchChild | null = null;
  try {
    const port = await freePort();
    await writeFile(join(dir, 'nginx.conf'), config(dir, port, upstreamPort));
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
