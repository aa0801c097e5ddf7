// Rebalance and elastic zones end to end, under load: a real etcd, two `cellgate serve`
// gateways, zone servers fenced with cellgate's plugin, `cellctl` as a process. A zone is
// added and `rebalance` gives it its capacity share; an elastic zone is added, takes a quarter
// of the cells (`--onto-elastic 0.25`), gives them back (`--off-elastic`) and is removed.
// Throughout, GET and POST load through both gateways: no request fails, every POST body
// arrives once and intact.
import test from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RoutingTable } from '../src/cells/types';
import { openStore } from '../src/store/open';
import { cellctl } from './helpers/cli';
import { RecordingZone, send, startGatewayProcess, topologyYaml, type GatewayProcess } from './helpers/e2e';
import { startEtcd, type EtcdHandle } from './helpers/etcd';
import { until } from './helpers/wait';

let etcd: EtcdHandle;
let dir: string;

test.before(async () => {
  etcd = await startEtcd();
  dir = await mkdtemp(join(tmpdir(), 'cellgate-e2e-rebalance-'));
});
test.after.always(async () => {
  await etcd?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const ZONES = [
  { name: 'sh-a', region: 'east', city: 'shanghai' },
  { name: 'sh-b', region: 'east', city: 'shanghai' },
  { name: 'sz-a', region: 'south', city: 'shenzhen' },
];

function perZone(t: RoutingTable): Record<string, number> {
  return Object.fromEntries(t.zones.map((z) => [z.name, t.cells.filter((c) => c.zone === z.name).length]));
}

test('zone add + rebalance, then onto and off an elastic zone, under GET and POST load through two gateways: zero failed requests', async (t) => {
  const endpoints = etcd.endpoints.join(',');
  const prefix = '/e2e-rebalance';
  const store = openStore(`etcd:${endpoints}`, { prefix });
  const zones = new Map<string, RecordingZone>();
  const gateways: GatewayProcess[] = [];
  t.teardown(async () => {
    await Promise.all(gateways.map((g) => g.stop()));
    await Promise.all([...zones.values()].map((z) => z.stop()));
    await store.close();
  });
  for (const name of [...ZONES.map((z) => z.name), 'sh-c', 'pk-a']) zones.set(name, await new RecordingZone(name, store).start());
  const topology = join(dir, 'topology.yaml');
  await writeFile(topology, topologyYaml(ZONES.map((z) => ({ ...z, url: zones.get(z.name)!.url }))));
  const flags = ['--etcd', endpoints, '--prefix', prefix];
  const init = await cellctl(['init', '--topology', topology, ...flags]);
  t.is(init.code, 0, init.stderr);
  for (const id of ['gw-1', 'gw-2']) {
    gateways.push(await startGatewayProcess(['--store', `etcd:${endpoints}`, '--prefix', prefix, '--port', '0', '--admin-port', '0', '--zone', 'sh-a'], id));
  }
  await until('both gateways to register with the table', async () => (await store.presence.list()).filter((r) => r.appliedVersion > 0).length === 2, 20_000);

  // Load: 4 workers, users spread over every cell, alternating GET and POST, both gateways.
  const users = Array.from({ length: 200 }, (_, i) => `user-${i}`);
  const sent = new Map<string, string>();
  const failures: string[] = [];
  let stop = false;
  let n = 0;
  const worker = async (w: number) => {
    while (!stop) {
      const i = n++;
      const id = `r${w}-${i}`;
      const post = i % 2 === 0;
      const body = post ? randomBytes(1024 + (i % 5) * 512) : undefined;
      if (body) sent.set(id, createHash('sha256').update(body).digest('hex'));
      try {
        const r = await send(gateways[i % 2]!.traffic, '/orders', { method: post ? 'POST' : 'GET', headers: { 'x-user-id': users[i % users.length]!, 'x-request-id': id }, body, timeoutMs: 20_000 });
        if (r.status !== 200) failures.push(`${id} ${r.status} ${JSON.stringify(r.json)}`);
      } catch (err) {
        failures.push(`${id} ${(err as Error).message}`);
      }
    }
  };
  const load = Promise.all([0, 1, 2, 3].map(worker));
  const step = async (args: string[]) => {
    const r = await cellctl([...args, '--reason', 'e2e rebalance', '--yes', ...flags], { timeoutMs: 90_000 });
    t.is(r.code, 0, `cellctl ${args.join(' ')}: ${r.stderr}`);
    return r;
  };
  const table = async () => (await store.load())!.table;
  try {
    await until('load to flow', async () => n > 40, 10_000);
    await step(['zone', 'add', 'sh-c', '--region', 'east', '--city', 'shanghai', '--capacity', '100', '--upstream', zones.get('sh-c')!.url]);
    await step(['rebalance', '--batch', '2']);
    // 16 cells over 4 zones of equal capacity: 4 each.
    t.deepEqual(perZone(await table()), { 'sh-a': 4, 'sh-b': 4, 'sz-a': 4, 'sh-c': 4 });
    await until('sh-c to serve requests', async () => zones.get('sh-c')!.deliveries.length > 20, 10_000);

    await step(['zone', 'add', 'pk-a', '--region', 'east', '--city', 'shanghai', '--capacity', '8', '--elastic', '--upstream', zones.get('pk-a')!.url]);
    await step(['rebalance', '--onto-elastic', '0.25']);
    t.is(perZone(await table())['pk-a'], 4, 'a quarter of the 16 cells on the elastic zone');
    await until('pk-a to serve requests', async () => zones.get('pk-a')!.deliveries.length > 20, 10_000);
    await step(['rebalance', '--off-elastic', '--batch', '3']);
    await step(['zone', 'remove', 'pk-a']);
    const last = await table();
    t.true(last.cells.every((c) => c.zone === c.home && c.state === 'active'), 'every cell home');
    t.false(last.zones.some((z) => z.name === 'pk-a'));
    const sentSoFar = n;
    await until('more load after the elastic zone left', async () => n > sentSoFar + 100, 10_000);
  } finally {
    stop = true;
    await load;
  }
  t.deepEqual(failures, [], 'no request failed');
  t.true(sent.size > 100, `${sent.size} POSTs sent`);
  const posts = [...zones.values()].flatMap((z) => z.deliveries).filter((d) => d.method === 'POST');
  const seen = new Map<string, number>();
  for (const d of posts) {
    seen.set(d.id, (seen.get(d.id) ?? 0) + 1);
    t.is(d.bodySha256, sent.get(d.id) ?? '(never sent)', `${d.id} intact`);
  }
  t.is(seen.size, sent.size, 'every POST delivered');
  t.true([...seen.values()].every((k) => k === 1), 'each POST delivered once');
  t.log(`${n} requests, ${sent.size} POSTs; served by sh-c ${zones.get('sh-c')!.deliveries.length}, by pk-a ${zones.get('pk-a')!.deliveries.length}`);
});
