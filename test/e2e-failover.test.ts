// End to end: real etcd, real `cellgate serve` gateway processes, real zone servers fenced
// with cellgate's plugin, and `cellctl` as a process — the failover claims of DESIGN §2.
import test, { type ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { randomBytes, createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RoutingView } from '../src/cells/lookup';
import { openStore } from '../src/store/open';
import type { TableStore } from '../src/store/types';
import { CELLCTL, cellctl } from './helpers/cli';
import { RecordingZone, send, startGatewayProcess, topologyYaml, type GatewayProcess } from './helpers/e2e';
import { startEtcd, type EtcdHandle } from './helpers/etcd';

let etcd: EtcdHandle;
let dir: string;
let prefixes = 0;

test.before(async () => {
  etcd = await startEtcd();
  dir = await mkdtemp(join(tmpdir(), 'cellgate-e2e-'));
});
test.after.always(async () => {
  await etcd?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

interface Cluster {
  readonly store: TableStore;
  readonly flags: string[];
  readonly zones: Map<string, RecordingZone>;
  readonly gateways: GatewayProcess[];
  view(): Promise<RoutingView>;
}

const ZONES = [
  { name: 'sh-a', region: 'east', city: 'shanghai' },
  { name: 'sh-b', region: 'east', city: 'shanghai' },
  { name: 'hz-a', region: 'east', city: 'hangzhou' },
  { name: 'sz-a', region: 'south', city: 'shenzhen' },
];

/** A fresh prefix with 4 zones, an initialised table and `gatewayCount` gateway processes. */
async function cluster(t: ExecutionContext, gatewayCount: number): Promise<Cluster> {
  const prefix = `/e2e-${++prefixes}`;
  const endpoints = etcd.endpoints.join(',');
  const store = openStore(`etcd:${endpoints}`, { prefix });
  const zones = new Map<string, RecordingZone>();
  const gateways: GatewayProcess[] = [];
  t.teardown(async () => {
    await Promise.all(gateways.map((g) => g.stop()));
    await Promise.all([...zones.values()].map((z) => z.stop()));
    await store.close();
  });
  for (const z of ZONES) zones.set(z.name, await new RecordingZone(z.name, store).start());
  const topology = join(dir, `topology-${prefixes}.yaml`);
  await writeFile(topology, topologyYaml(ZONES.map((z) => ({ ...z, url: (zones.get(z.name) as RecordingZone).url }))));
  const flags = ['--etcd', endpoints, '--prefix', prefix];
  const init = await cellctl(['init', '--topology', topology, ...flags]);
  if (init.code !== 0) throw new Error(init.stderr);
  for (let i = 0; i < gatewayCount; i++) {
    gateways.push(await startGatewayProcess(['--store', `etcd:${endpoints}`, '--prefix', prefix, '--port', '0', '--admin-port', '0', '--zone', 'sh-a'], `gw-${i + 1}`));
  }
  const view = async () => new RoutingView((await store.load())!);
  // Every gateway ready (table applied) before the test starts.
  for (const g of gateways) {
    for (let i = 0; (await send(g.admin, '/readyz').catch(() => ({ status: 0 }))).status !== 200; i++) {
      if (i > 100) throw new Error(`${g.id} never became ready`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return { store, flags, zones, gateways, view };
}

/** The first `n` users (u0, u1, …) that `wanted` accepts. */
function usersWhere(wanted: (user: string) => boolean, n: number): string[] {
  const out: string[] = [];
  for (let i = 0; out.length < n && i < 100_000; i++) if (wanted(`u${i}`)) out.push(`u${i}`);
  return out;
}

const zoneOfUser = (view: RoutingView, user: string) => view.cell(view.cellOfUser(user))!.zone;

test.serial('every gateway routes hundreds of users exactly as `cellctl route` says', async (t) => {
  const c = await cluster(t, 2);
  const users = Array.from({ length: 300 }, (_, i) => `user-${i}`);
  const route = await cellctl(['route', '--stdin', '--json', ...c.flags], { input: users.join('\n') });
  t.is(route.code, 0, route.stderr);
  const expected = route.stdout.trim().split('\n').map((l) => JSON.parse(l) as { user: string; cell: string; zone: string; epoch: number });
  t.is(expected.length, users.length);
  for (const g of c.gateways) {
    for (const e of expected) {
      const r = await send(g.traffic, '/check', { headers: { 'x-user-id': e.user } });
      t.is(r.status, 200);
      t.deepEqual([r.json.zone, r.json.cell, r.json.epoch], [e.zone, e.cell, String(e.epoch)], `${e.user} via ${g.id}`);
    }
  }
});

test.serial('zone down: moved users reach the same-city peer through every gateway when cellctl returns; a city down crosses cities', async (t) => {
  const c = await cluster(t, 2);
  const before = await c.view();
  const moved = usersWhere((u) => zoneOfUser(before, u) === 'sh-a', 40);
  const down = await cellctl(['zone', 'down', 'sh-a', '--reason', 'e2e outage', '--yes', ...c.flags]);
  t.is(down.code, 0, down.stderr);
  t.regex(down.stdout, /2 live gateway\(s\) applied it/);
  // No waiting: when the command returns, every gateway routes with the new table.
  for (const g of c.gateways) {
    for (const user of moved) {
      const r = await send(g.traffic, '/e2e', { headers: { 'x-user-id': user } });
      t.is(r.status, 200);
      t.is(r.json.zone, 'sh-b', `${user} via ${g.id}`);
    }
  }
  const after = await c.view();
  t.true(after.table.cells.filter((x) => x.home === 'sh-a').every((x) => x.zone === 'sh-b' && x.epoch === 2));

  // The whole city down: sh-b's cells (its own and sh-a's) leave Shanghai for Hangzhou.
  const city = await cellctl(['zone', 'down', 'sh-b', '--reason', 'e2e city outage', '--yes', '--force', ...c.flags]);
  t.is(city.code, 0, city.stderr);
  const last = await c.view();
  t.true(last.table.cells.every((x) => x.zone !== 'sh-a' && x.zone !== 'sh-b'));
  for (const g of c.gateways) {
    for (const user of moved.slice(0, 10)) {
      const r = await send(g.traffic, '/e2e', { headers: { 'x-user-id': user } });
      t.is(r.status, 200);
      t.is(r.json.zone, zoneOfUser(last, user));
      t.not(r.json.zone, 'sh-b');
    }
  }
});

test.serial('planned cell move under continuous GET and POST load through two gateways: zero failures, every POST body once and intact', async (t) => {
  const c = await cluster(t, 2);
  const view = await c.view();
  const cell = view.table.cells.find((x) => x.zone === 'sh-a')!.name;
  const users = usersWhere((u) => view.cellOfUser(u) === cell, 8).concat(usersWhere((u) => view.cellOfUser(u) !== cell, 4));
  const sent = new Map<string, string>(); // request id -> body sha256
  const failures: string[] = [];
  let stop = false;
  let n = 0;
  const worker = async (w: number) => {
    while (!stop) {
      const id = `r${w}-${n++}`;
      const user = users[n % users.length];
      const gateway = c.gateways[n % c.gateways.length];
      const post = n % 2 === 0;
      const body = post ? randomBytes(2048 + (n % 7) * 1000) : undefined;
      if (body) sent.set(id, createHash('sha256').update(body).digest('hex'));
      try {
        const r = await send(gateway.traffic, '/orders', { method: post ? 'POST' : 'GET', headers: { 'x-user-id': user, 'x-request-id': id }, body });
        if (r.status !== 200) failures.push(`${id} ${r.status} ${JSON.stringify(r.json)}`);
      } catch (err) {
        failures.push(`${id} ${(err as Error).message}`);
      }
    }
  };
  const load = Promise.all([0, 1, 2, 3].map(worker));
  await new Promise((r) => setTimeout(r, 500));
  const move = await cellctl(['cell', 'move', cell, 'sz-a', '--reason', 'e2e planned move', '--yes', ...c.flags]);
  await new Promise((r) => setTimeout(r, 500));
  stop = true;
  await load;
  t.is(move.code, 0, move.stderr);
  t.deepEqual(failures, [], 'no request failed');
  const deliveries = [...c.zones.values()].flatMap((z) => z.deliveries);
  const posts = deliveries.filter((d) => d.method === 'POST');
  t.true(sent.size > 20, `${sent.size} POSTs sent`);
  const seen = new Map<string, number>();
  for (const d of posts) {
    seen.set(d.id, (seen.get(d.id) ?? 0) + 1);
    t.is(d.bodySha256, sent.get(d.id) ?? "(never sent)", `${d.id} intact`);
  }
  t.is(seen.size, sent.size, 'every POST delivered');
  t.true([...seen.values()].every((k) => k === 1), 'each POST delivered once');
  const onNew = deliveries.filter((d) => d.cell === cell && d.zone === 'sz-a');
  t.true(onNew.length > 0, 'the cell is served by its new zone after the move');
  t.true(onNew.every((d) => d.epoch === '2'));
  t.true(deliveries.filter((d) => d.cell === cell && d.zone === 'sh-a').every((d) => d.epoch === '1'));
});

test.serial('an operator killed half-way through a planned move: gateways route the cell to its old zone again within the freeze deadline', async (t) => {
  const c = await cluster(t, 2);
  const view = await c.view();
  const cell = view.table.cells.find((x) => x.zone === 'sh-b')!.name;
  const user = usersWhere((u) => view.cellOfUser(u) === cell, 1)[0];
  // A gateway that never acknowledges the freeze keeps cellctl waiting between freeze and flip.
  const stuck = await c.store.presence.register({
    id: 'stuck-gateway', zone: null, appliedVersion: 0, checksum: 'none', inFlight: 0,
    startedAt: new Date().toISOString(), updatedAt: new Date().toISOString(), pid: 0, host: 'nowhere',
  });
  t.teardown(() => stuck.close());
  const operator = spawn(process.execPath, [CELLCTL, 'cell', 'move', cell, 'hz-a', '--freeze-ms', '3000', '--timeout', '30', '--reason', 'killed mid-way', '--yes', ...c.flags], { stdio: 'ignore' });
  t.teardown(() => { operator.kill('SIGKILL'); });
  let frozenUntil = 0;
  for (let i = 0; i < 200 && !frozenUntil; i++) {
    const x = (await c.view()).cell(cell)!;
    if (x.state === 'frozen') frozenUntil = x.frozenUntilMs!;
    else await new Promise((r) => setTimeout(r, 25));
  }
  t.true(frozenUntil > 0, 'the cell was frozen');
  operator.kill('SIGKILL');
  // Held, then released to the old zone once the deadline passes.
  const held = await send(c.gateways[0].traffic, '/e2e', { headers: { 'x-user-id': user }, timeoutMs: 10_000 });
  t.is(held.status, 200);
  t.is(held.json.zone, 'sh-b');
  t.true(Date.now() >= frozenUntil - 50, 'answered after the deadline, not before');
  t.true(Date.now() <= frozenUntil + 2000, 'answered soon after the deadline');
  for (const g of c.gateways) {
    const r = await send(g.traffic, '/e2e', { headers: { 'x-user-id': user } });
    t.is(r.status, 200);
    t.is(r.json.zone, 'sh-b');
    t.true(r.ms < 1000, 'no longer held');
  }
});

test.serial('a gateway that does not follow makes cellctl exit 4 and name it', async (t) => {
  const c = await cluster(t, 2);
  c.gateways[1].pause();
  t.teardown(() => c.gateways[1].resume());
  const r = await cellctl(['zone', 'down', 'hz-a', '--reason', 'e2e', '--yes', '--timeout', '2', ...c.flags]);
  t.is(r.code, 4, r.stderr);
  const verdict = r.stderr.split('\n').find((l) => l.startsWith('cellctl:')) ?? '';
  t.regex(verdict, /gw-2 \(on \d+\)/);
  t.notRegex(verdict, /gw-1/, 'the gateway that followed is not blamed');
  c.gateways[1].resume();
});
