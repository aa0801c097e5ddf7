// `cellgate demo` on ports the test chooses: --base-port moves its 8 zone servers, --reset
// starts from a fresh table, and a table made for other ports is refused with a clear word.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';

const CELLGATE = join(__dirname, '..', 'src', 'cli', 'cellgate.js');

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** A base port with the 8 ports from it free (bounded tries). */
async function freeRange(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 40_000);
    let ok = true;
    for (let p = base; p < base + 8 && ok; p++) ok = await portFree(p);
    if (ok) return base;
  }
  throw new Error('no 8 consecutive free ports found');
}

interface Demo {
  readonly child: ChildProcess;
  readonly traffic: string;
  readonly admin: string;
}

function startDemo(t: ExecutionContext, args: string[]): Promise<Demo> {
  const child = spawn(process.execPath, [CELLGATE, 'demo', '--port', '0', '--admin-port', '0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
  let out = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`demo did not start: ${out}`)), 20_000);
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const m = /gateway (http:\/\/\S+) \(admin (http:\/\/\S+)\)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ child, traffic: m[1]!, admin: m[2]! });
      }
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`demo exited ${code}: ${out}`)); });
  });
}

function run(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CELLGATE, 'demo', '--port', '0', '--admin-port', '0', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.once('exit', (code) => { clearTimeout(timer); resolve({ code, stderr }); });
  });
}

function stop(demo: Demo): Promise<number | null> {
  return new Promise((resolve) => {
    demo.child.once('exit', (code) => resolve(code));
    demo.child.kill('SIGTERM');
  });
}

async function upstreamPorts(admin: string): Promise<number[]> {
  const body = await (await fetch(`${admin}/admin/table`)).text();
  const table = JSON.parse(body) as { table?: { zones: { upstreams: string[] }[] } };
  if (!table.table) throw new Error(`/admin/table: ${body}`);
  return table.table.zones.flatMap((z) => z.upstreams.map((u) => Number(new URL(u).port)));
}

test('demo --base-port puts its zone servers on N … N+7 and serves users; a table for other ports needs --reset', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'cellgate-demo-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const base = await freeRange();
  const demo = await startDemo(t, ['--dir', dir, '--base-port', String(base)]);
  t.deepEqual(await upstreamPorts(demo.admin), [0, 1, 2, 3, 4, 5, 6, 7].map((i) => base + i));
  const res = await fetch(`${demo.traffic}/hello`, { headers: { 'x-user-id': 'alice' } });
  t.is(res.status, 200, await res.clone().text());
  t.is(await stop(demo), 0, 'SIGTERM stops the demo cleanly');

  const other = await freeRange();
  const refused = await run(['--dir', dir, '--base-port', String(other)]);
  t.is(refused.code, 2);
  t.regex(refused.stderr, new RegExp(`from port ${base}: add --reset`));

  const fresh = await startDemo(t, ['--dir', dir, '--base-port', String(other), '--reset']);
  t.deepEqual(await upstreamPorts(fresh.admin), [0, 1, 2, 3, 4, 5, 6, 7].map((i) => other + i));
  t.is(await stop(fresh), 0);
});
