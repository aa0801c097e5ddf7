// `cellgate serve` as a real process against a real etcd: SIGTERM drains, restart from the
// snapshot while etcd is down, a corrupted table in etcd is rejected, --workers, bad config.
import test, { type ExecutionContext } from 'ava';
import { Etcd3 } from 'etcd3';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RoutingView } from '../src/cells/lookup';
import { openStore } from '../src/store/open';
import type { TableStore } from '../src/store/types';
import { cellctl, runCli, CELLGATE } from './helpers/cli';
import { RecordingZone, send, startGatewayProcess, topologyYaml } from './helpers/e2e';
import { startEtcd, type EtcdHandle } from './helpers/etcd';
import { freePorts } from './helpers/ports';

let dir: string;
let prefixes = 0;
test.before(async () => { dir = await mkdtemp(join(tmpdir(), 'cellgate-e2e-gw-')); });
test.after.always(async () => { if (dir) await rm(dir, { recursive: true, force: true }); });

interface Setup {
  readonly etcd: EtcdHandle;
  readonly store: TableStore;
  readonly prefix: string;
  readonly storeSpec: string;
  readonly zones: RecordingZone[];
}

/** Its own etcd (tests stop it), two zones and an initialised table. */
async function setup(t: ExecutionContext): Promise<Setup> {
  const etcd = await startEtcd();
  const prefix = `/gw-${++prefixes}`;
  const storeSpec = `etcd:${etcd.endpoints.join(',')}`;
  const store = openStore(storeSpec, { prefix });
  const zones = [await new RecordingZone('za', store).start(), await new RecordingZone('zb', store).start()];
  t.teardown(async () => {
    await Promise.all(zones.map((z) => z.stop()));
    await store.close();
    await etcd.stop();
  });
  const topology = join(dir, `topology-${prefixes}.yaml`);
  await writeFile(topology, topologyYaml([
    { name: 'za', region: 'r1', city: 'c1', url: zones[0].url }, { name: 'zb', region: 'r1', city: 'c1', url: zones[1].url },
  ], 8));
  const init = await cellctl(['init', '--topology', topology, '--etcd', etcd.endpoints.join(','), '--prefix', prefix]);
  if (init.code !== 0) throw new Error(init.stderr);
  return { etcd, store, prefix, storeSpec, zones };
}

async function metric(admin: string, name: string): Promise<number | null> {
  const r = await send(admin, '/metrics');
  const line = String(r.json.raw ?? '').split('\n').find((l) => l.startsWith(name));
  return line ? Number(line.split(' ').pop()) : null;
}

async function until(check: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test.serial('SIGTERM: stops accepting, finishes the in-flight request, deregisters, exits 0', async (t) => {
  const s = await setup(t);
  const gw = await startGatewayProcess(['--store', s.storeSpec, '--prefix', s.prefix, '--port', '0', '--admin-port', '0'], 'gw-drain');
  t.teardown(() => gw.kill());
  await until(async () => (await s.store.presence.list()).some((g) => g.id === 'gw-drain'), 'presence');
  const slow = send(gw.traffic, '/slow?delayMs=1000', { headers: { 'x-user-id': 'alice' } });
  await new Promise((r) => setTimeout(r, 200));
  void gw.stop();
  const answer = await slow;
  t.is(answer.status, 200, 'the in-flight request finished');
  t.is(await gw.exited, 0);
  t.false((await s.store.presence.list()).some((g) => g.id === 'gw-drain'), 'deregistered');
  await t.throwsAsync(send(gw.traffic, '/x', { headers: { 'x-user-id': 'alice' }, timeoutMs: 2000 }), undefined, 'no longer accepting');
});

test.serial('restart from the snapshot while etcd is down: routes the last good table; a corrupted table in etcd is rejected', async (t) => {
  const s = await setup(t);
  const config = join(dir, `gateway-${prefixes}.yaml`);
  await writeFile(config, `store: ${s.storeSpec}\nprefix: ${s.prefix}\nsnapshotPath: ${join(dir, `snapshot-${prefixes}.json`)}\nport: 0\nadminPort: 0\n`);
  const view = new RoutingView((await s.store.load())!);
  const users = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank'];
  const expected = (u: string) => view.cell(view.cellOfUser(u))!.zone;

  let gw = await startGatewayProcess(['--config', config], 'gw-snap');
  t.teardown(() => gw.kill());
  await until(async () => (await send(gw.admin, '/readyz')).status === 200, 'ready');

  // A garbage document written straight into etcd: refused, counted, routing unchanged.
  const client = new Etcd3({ hosts: s.etcd.endpoints.map((e) => `http://${e}`) });
  t.teardown(() => client.close());
  await client.put(`${s.prefix}/table`).value('{"format": 1, "zones": "garbage"');
  await until(async () => ((await metric(gw.admin, 'cellgate_table_updates_total{result="rejected"}')) ?? 0) >= 1, 'the rejection to be counted');
  for (const u of users) {
    const r = await send(gw.traffic, '/x', { headers: { 'x-user-id': u } });
    t.is(r.status, 200);
    t.is(r.json.zone, expected(u));
  }
  t.is(await metric(gw.admin, 'cellgate_routing_table_version'), view.version, 'still on the last good table');
  const flags = ['--etcd', s.etcd.endpoints.join(','), '--prefix', s.prefix];
  t.is((await cellctl(['status', ...flags])).code, 3, 'status refuses the invalid document');
  // cellctl repairs it: a rollback writes the last good table over the invalid version.
  const repair = await cellctl(['rollback', String(view.version), '--reason', 'repair the corrupted table', '--yes', ...flags]);
  t.is(repair.code, 0, repair.stderr);
  await until(async () => ((await metric(gw.admin, 'cellgate_routing_table_version')) ?? 0) > view.version, 'the repaired table');
  t.is((await cellctl(['status', ...flags])).code, 0);

  // Stop the gateway, then etcd; the restarted gateway routes from its snapshot.
  t.is(await gw.stop(), 0);
  await s.etcd.terminate();
  gw = await startGatewayProcess(['--config', config], 'gw-snap');
  await until(async () => (await send(gw.admin, '/readyz')).status === 200, 'ready from the snapshot');
  t.is(await metric(gw.admin, 'cellgate_control_plane_connected'), 0);
  for (const u of users) {
    const r = await send(gw.traffic, '/x', { headers: { 'x-user-id': u } });
    t.is(r.status, 200);
    t.is(r.json.zone, expected(u));
  }
  // etcd back: connected again.
  await s.etcd.restart();
  await until(async () => (await metric(gw.admin, 'cellgate_control_plane_connected')) === 1, 'reconnection', 20_000);
  t.is(await gw.stop(), 0);
});

test.serial('--workers 2: two full gateways on one port, each registered; SIGTERM stops both', async (t) => {
  const s = await setup(t);
  const [port] = await freePorts(1);
  // Admin port 0: every worker gets its own ephemeral one (a fixed N gives worker i N + i).
  const gw = await startGatewayProcess(['--store', s.storeSpec, '--prefix', s.prefix, '--port', String(port), '--admin-port', '0', '--workers', '2'], 'gw-multi');
  t.teardown(() => gw.kill());
  let ids: string[] = [];
  await until(async () => {
    ids = (await s.store.presence.list()).map((g) => g.id).sort();
    return ids.length === 2;
  }, 'two workers registered');
  t.deepEqual(ids, ['gw-multi', 'gw-multi-w1']);
  for (let i = 0; i < 40; i++) {
    const r = await send(`http://127.0.0.1:${port}`, '/x', { headers: { 'x-user-id': `user-${i}` } });
    t.is(r.status, 200);
  }
  t.is(await gw.stop(), 0);
  await until(async () => (await s.store.presence.list()).length === 0, 'both deregistered');
  t.pass();
});

test('bad flags and bad config files stop cellgate before it listens', async (t) => {
  const port = await runCli(CELLGATE, ['serve', '--store', 'file:/tmp/x.json', '--port', '99999']);
  t.is(port.code, 2);
  t.regex(port.stderr, /--port must be an integer/);
  const noStore = await runCli(CELLGATE, ['serve', '--port', '0']);
  t.is(noStore.code, 2);
  t.regex(noStore.stderr, /no store/);
  const config = join(dir, 'bad-gateway.yaml');
  await writeFile(config, 'store: file:/tmp/x.json\nport: 8080\nadminPort: 8080\nbuffer: { windowMs: -1 }\ncolour: blue\n');
  const bad = await runCli(CELLGATE, ['serve', '--config', config]);
  t.is(bad.code, 3);
  t.regex(bad.stderr, /adminPort: must differ from port/);
  t.regex(bad.stderr, /colour: unknown key/);
  t.regex(bad.stderr, /buffer\.windowMs/);
  const unknown = await runCli(CELLGATE, ['frobnicate']);
  t.is(unknown.code, 2);
});
