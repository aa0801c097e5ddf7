// Moves with long-lived connections, end to end: a real etcd, a `cellgate serve` process,
// upstreams on 127.0.0.1 (WebSocket echo, a never-ending download) and `cellctl` as a
// process. A WebSocket and a slow download on a cell do not veto `cellctl cell move`: the
// move succeeds within the freeze window, the WebSocket is closed with 1012 and reconnects
// to the new zone, the download is cut after the grace; `zone down` closes at once.
import { request as httpRequest } from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import WebSocket from 'ws';
import { RoutingView } from '../src/cells/lookup';
import { openStore } from '../src/store/open';
import { cellctl } from './helpers/cli';
import { startGatewayProcess, topologyYaml, type GatewayProcess } from './helpers/e2e';
import { startEtcd, type EtcdHandle } from './helpers/etcd';
import { startUpstreams, stopAll, type Upstream } from './helpers/upstreams';
import { until } from './helpers/wait';

const FREEZE_MS = 8_000;
let etcd: EtcdHandle;
let dir: string;

test.before(async () => {
  etcd = await startEtcd();
  dir = await mkdtemp(join(tmpdir(), 'cellgate-e2e-moves-'));
});
test.after.always(async () => {
  await etcd?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

interface World {
  readonly gw: GatewayProcess;
  readonly flags: string[];
  readonly view: () => Promise<RoutingView>;
}

function slowDownloads(upstreams: readonly Upstream[], t: ExecutionContext): void {
  const timers = new Set<NodeJS.Timeout>();
  t.teardown(() => timers.forEach(clearInterval));
  for (const u of upstreams) {
    u.behave = (req, res) => {
      if (!req.url?.startsWith('/download')) return false;
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const timer = setInterval(() => res.write(Buffer.alloc(1024, 120)), 50);
      timers.add(timer);
      res.once('close', () => {
        clearInterval(timer);
        timers.delete(timer);
      });
      return true;
    };
  }
}

async function world(t: ExecutionContext, name: string, a: Upstream, b: Upstream): Promise<World> {
  const prefix = `/e2e-moves-${name}`;
  const endpoints = etcd.endpoints.join(',');
  const topology = join(dir, `${name}.yaml`);
  await writeFile(topology, topologyYaml([
    { name: 'za', region: 'east', city: 'xa', url: a.url },
    { name: 'zb', region: 'east', city: 'xb', url: b.url },
  ], 8));
  const flags = ['--etcd', endpoints, '--prefix', prefix];
  const init = await cellctl(['init', '--topology', topology, ...flags]);
  if (init.code !== 0) throw new Error(init.stderr);
  const store = openStore(`etcd:${endpoints}`, { prefix });
  const gw = await startGatewayProcess(['--store', `etcd:${endpoints}`, '--prefix', prefix, '--port', '0', '--admin-port', '0'], `gw-${name}`);
  t.teardown(async () => {
    await gw.stop();
    await store.close();
  });
  // cellctl waits for the live gateways: this one must be registered with the table first.
  await until('the gateway to register', async () => (await store.presence.list()).some((r) => r.id === `gw-${name}` && r.appliedVersion > 0), 20_000);
  return { gw, flags, view: async () => new RoutingView((await store.load())!) };
}

async function usersOfOneCell(w: World, zone: string, skip: readonly string[] = []): Promise<{ cell: string; users: string[] }> {
  const view = await w.view();
  const all = Array.from({ length: 400 }, (_, i) => `u${i}`);
  const first = all.find((u) => {
    const r = view.routeUnit(u, Date.now());
    return r.ok && r.zone.name === zone && !skip.includes(r.cell as string);
  })!;
  const cell = view.cellOfUser(first);
  return { cell, users: all.filter((u) => view.cellOfUser(u) === cell) };
}

interface Sock {
  readonly ws: WebSocket;
  readonly upstream: string;
  readonly closed: Promise<{ code: number; reason: string }>;
}

function openSocket(t: ExecutionContext, w: World, user: string): Promise<Sock> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${w.gw.traffic.replace('http:', 'ws:')}/live`, { headers: { 'x-user-id': user } });
    t.teardown(() => ws.terminate());
    const closed = new Promise<{ code: number; reason: string }>((r) => ws.once('close', (code, reason) => r({ code, reason: reason.toString() })));
    ws.once('message', (d) => resolve({ ws, upstream: (JSON.parse(d.toString()) as { upstream: string }).upstream, closed }));
    ws.once('unexpected-response', (_req, res) => reject(new Error(`status ${res.statusCode}`)));
    ws.once('error', reject);
  });
}

/** A download through the gateway; resolves 'cut' or 'complete' once it ends, after its first bytes. */
function download(t: ExecutionContext, w: World, user: string): { started: Promise<void>; ended: Promise<'cut' | 'complete'> } {
  let started!: () => void;
  const startedP = new Promise<void>((r) => (started = r));
  const ended = new Promise<'cut' | 'complete'>((resolve) => {
    const req = httpRequest(`${w.gw.traffic}/download`, { headers: { 'x-user-id': user }, agent: false }, (res) => {
      res.on('data', () => started());
      res.on('end', () => resolve('complete'));
      res.on('aborted', () => resolve('cut'));
      res.on('error', () => resolve('cut'));
    });
    req.on('error', () => resolve('cut'));
    req.end();
    t.teardown(() => req.destroy());
  });
  return { started: startedP, ended };
}

test('cellctl cell move with a WebSocket and a slow download open: succeeds within the freeze window; 1012, reconnect to the new zone; download cut', async (t) => {
  const [a, b] = await startUpstreams('a', 'b');
  t.teardown(() => stopAll([a!, b!]));
  slowDownloads([a!, b!], t);
  const w = await world(t, 'move', a!, b!);
  const { cell, users } = await usersOfOneCell(w, 'za');
  const sock = await openSocket(t, w, users[0]!);
  t.is(sock.upstream, 'a');
  const dl = download(t, w, users[0]!);
  await dl.started;
  const reconnect = sock.closed.then(() => openSocket(t, w, users[0]!));

  const started = Date.now();
  const move = await cellctl(['cell', 'move', cell, 'zb', '--reason', 'e2e move with long-lived connections', '--yes', '--freeze-ms', String(FREEZE_MS), ...w.flags]);
  const tookMs = Date.now() - started;
  t.is(move.code, 0, move.stderr);
  t.log(`cellctl cell move with a WebSocket and a slow download open: ${tookMs} ms (freeze window ${FREEZE_MS} ms, default grace 2000 ms)`);
  t.true(tookMs < FREEZE_MS + 1000, `took ${tookMs} ms`);
  t.deepEqual(await sock.closed, { code: 1012, reason: 'cell moving' });
  t.is(await dl.ended, 'cut');
  t.is((await reconnect).upstream, 'b', 'the reconnect lands on the new zone');
  const metrics = await (await fetch(`${w.gw.admin}/metrics`)).text();
  t.regex(metrics, /cellgate_freeze_cut_requests_total\{reason="mid_response"\} 1\n/);
});

test('cellctl zone down: every WebSocket of the moved cells is closed with 1012 at once and reconnects to the new zone', async (t) => {
  const [a, b] = await startUpstreams('a', 'b');
  t.teardown(() => stopAll([a!, b!]));
  const w = await world(t, 'down', a!, b!);
  const one = await usersOfOneCell(w, 'za');
  const two = await usersOfOneCell(w, 'za', [one.cell]);
  const socks = await Promise.all([one.users[0]!, two.users[0]!].map((u) => openSocket(t, w, u)));
  t.deepEqual(socks.map((s) => s.upstream), ['a', 'a']);
  const reconnects = socks.map((s, i) => s.closed.then(() => openSocket(t, w, [one.users[0]!, two.users[0]!][i]!)));
  const down = await cellctl(['zone', 'down', 'za', '--reason', 'e2e zone down with WebSockets', '--yes', '--force', ...w.flags]);
  t.is(down.code, 0, down.stderr);
  for (const s of socks) t.deepEqual(await s.closed, { code: 1012, reason: 'cell moved' });
  for (const r of reconnects) t.is((await r).upstream, 'b');
});
