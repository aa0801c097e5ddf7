// One upstream process answering on many loopback address:port pairs (bench/registry-load.ts:
// 500 registered endpoints must be 500 distinct origins that all reach it): nginx `return 200`
// with one worker and one `listen` per pair when nginx is installed, else bench/upstream-server.ts
// with --listen. Only 127.0.0.0/8 addresses are accepted.
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { benchScript, makeTempDir, removeTempDir, startChild, startNode, type BenchChild } from './children';
import { statusOf } from './load';
import { nginxPreamble } from './nginx';

const READY_TIMEOUT_MS = 20_000;
/** The same bytes as bench/nginx.ts and bench/upstream-server.ts send. */
const FIXED_BODY = '{"ok":true,"service":"bench-upstream"}';

export interface MultiUpstream {
  readonly name: string;
  readonly pid: number | undefined;
  stop(): Promise<void>;
}

function checkLoopback(listens: readonly string[]): void {
  for (const l of listens) if (!/^127\.\d+\.\d+\.\d+:\d+$/.test(l)) throw new Error(`upstream listen ${l} is not a 127.0.0.0/8 address:port`);
}

function nginxConfig(dir: string, listens: readonly string[]): string {
  return `${nginxPreamble(dir)}  server {
${listens.map((l) => `    listen ${l};`).join('\n')}
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    location / {
      default_type application/json;
      return 200 '${FIXED_BODY}';
    }
  }
}
`;
}

/** GET http://<listen>/ answers 200, retried until the bound. */
async function waitAnswers(listen: string, child: BenchChild): Promise<void> {
  const [host, port] = listen.split(':');
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (!child.running) throw new Error(`${child.name} exited during start-up\n${child.tail()}`);
    const status = await statusOf(host as string, Number(port), '/');
    if (status === 200) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`upstream ${listen} did not answer 200 within ${READY_TIMEOUT_MS} ms\n${child.tail()}`);
}

/** Starts the upstream on every `listens` pair; resolves once the first and last answer. */
export async function startMultiUpstream(nginx: string | null, listens: readonly string[]): Promise<MultiUpstream> {
  checkLoopback(listens);
  const dir = nginx ? await makeTempDir('cellgate-bench-multi-') : null;
  let child: BenchChild | null = null;
  try {
    if (nginx && dir) {
      // Started as root, nginx's workers run as an unprivileged user that must reach the temp dirs.
      await chmod(dir, 0o755);
      await writeFile(join(dir, 'nginx.conf'), nginxConfig(dir, listens));
      child = startChild('nginx (upstream)', nginx, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')]);
    } else {
      child = startNode('upstream', benchScript('upstream-server'), ['--listen', listens.join(',')]);
    }
    await waitAnswers(listens[0]!, child);
    await waitAnswers(listens[listens.length - 1]!, child);
  } catch (err) {
    await child?.stop();
    if (dir) await removeTempDir(dir);
    throw err;
  }
  const running = child;
  return {
    name: nginx ? `nginx \`return 200\` (one worker) on ${listens.length} loopback address:port pairs` : `node:http (nginx not installed) on ${listens.length} loopback address:port pairs`,
    pid: running.pid,
    async stop() {
      await running.stop();
      if (dir) await removeTempDir(dir);
    },
  };
}
