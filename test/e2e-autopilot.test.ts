// End to end for `cellgate autopilot`: real etcd, real `cellgate serve` gateways (3, in three
// zones), real zone servers, autopilot replicas as processes. Serial: each test starts ~6 processes.
import test, { type ExecutionContext } from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../src/store/open';
import type { TableStore } from '../src/store/types';
import { CELLGATE, cellctl } from './helpers/cli';
import { RecordingZone, send, startGatewayProcess, topologyYaml, type GatewayProcess } from './helpers/e2e';
import { startEtcd, type EtcdHandle } from './helpers/etcd';
import { metricValue, until } from './helpers/wait';

let etcd: EtcdHandle;
let dir: string;
let prefixes = 0;

test.before(async () => {
  etcd = await startEtcd();
  dir = await mkdtemp(join(tmpdir(), 'cellgate-autopilot-'));
});
test.after.always(async () => {
  await etcd?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const ZONES = [
  { name: 'sh-a', region: 'east', city: 'shanghai' },
  { name: 'sh-b', region: 'east', city: 'shanghai' },
  { name: 'hz-a', region: 'east', city: 'hangzhou' },
];

interface Autopilot {
  readonly admin: string;
  readonly child: ChildProcess;
  log(): string;
  kill(): void;
}

interface World {
  readonly store: TableStore;
  readonly flags: string[];
  readonly storeSpec: string;
  readonly prefix: string;
  readonly zones: Map<string, RecordingZone>;
  readonly gateways: GatewayProcess[];
  autopilot(id: string, args?: string[]): Promise<Autopilot>;
  zoneStatus(zone: string): Promise<string | undefined>;
}

/** Zone upstreams: recording zones, or (by name) a URL the test supplies. */
async function world(t: ExecutionContext, upstreamOf: Record<string, string> = {}, allHealthy = true): Promise<World> {
  const prefix = `/ap-${++prefixes}`;
  const endpoints = etcd.endpoints.join(',');
  const storeSpec = `etcd:${endpoints}`;
  const store = openStore(storeSpec, { prefix });
  const zones = new Map<string, RecordingZone>();
  const gateways: GatewayProcess[] = [];
  const autopilots: ChildProcess[] = [];
  t.teardown(async () => {
    for (const a of autopilots) if (a.exitCode === null && a.signalCode === null) a.kill('SIGKILL');
    await Promise.all(gateways.map((g) => g.stop()));
    await Promise.all([...zones.values()].map((z) => z.stop()));
    await store.close();
  });
  for (const z of ZONES) zones.set(z.name, await new RecordingZone(z.name, store).start());
  const topology = join(dir, `topology-${prefixes}.yaml`);
  await writeFile(topology, topologyYaml(ZONES.map((z) => ({ ...z, url: upstreamOf[z.name] ?? zones.get(z.name)!.url }))));
  const flags = ['--etcd', endpoints, '--prefix', prefix];
  const init = await cellctl(['init', '--topology', topology, ...flags]);
  if (init.code !== 0) throw new Error(init.stderr);
  for (const [i, z] of ZONES.entries()) {
    gateways.push(await startGatewayProcess(['--store', storeSpec, '--prefix', prefix, '--port', '0', '--admin-port', '0', '--zone', z.name], `gw-${i + 1}`));
  }
  // Every gateway publishes its view of every zone before the test starts.
  await until('every gateway reports every zone', async () => {
    const records = await store.presence.list();
    return records.length === ZONES.length && records.every((r) => ZONES.every((z) => r.zoneHealth?.[z.name] !== undefined && (!allHealthy || r.zoneHealth[z.name]!.healthy)));
  }, 30_000, 100);
  const autopilot = (id: string, args: string[] = []): Promise<Autopilot> => {
    const child = spawn(process.execPath, [CELLGATE, 'autopilot', '--store', storeSpec, '--prefix', prefix, '--id', id, '--admin-port', '0', '--lease-ttl', '2', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    autopilots.push(child);
    let log = '';
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`autopilot ${id} did not start: ${log}`)), 20_000);
      child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
        log += chunk;
        const line = log.split('\n').find((l) => l.includes('"event":"listening"'));
        if (!line || !timer) return;
        clearTimeout(timer);
        resolve({ admin: (JSON.parse(line) as { admin: string }).admin, child, log: () => log, kill: () => child.kill('SIGKILL') });
      });
      child.on('exit', (code) => reject(new Error(`autopilot ${id} exited ${code}: ${log}`)));
    });
  };
  const zoneStatus = async (zone: string) => (await store.load())!.table.zones.find((z) => z.name === zone)?.status;
  return { store, flags, storeSpec, prefix, zones, gateways, autopilot, zoneStatus };
}

async function isLeader(a: Autopilot): Promise<boolean> {
  const text = (await send(a.admin, '/metrics')).json.raw as string;
  return metricValue(text, 'cellgate_autopilot_leader') === 1;
}

async function zoneView(a: Autopilot, zone: string): Promise<{ result: string; why: string } | undefined> {
  const status = (await send(a.admin, '/status')).json as { zones?: { zone: string; result: string; why: string }[] };
  return status.zones?.find((z) => z.zone === zone);
}

test.serial('zone servers killed: the leader is killed first, the standby takes over and fails the zone over within down-after + 5 s, actor autopilot', async (t) => {
  const w = await world(t);
  const a = await w.autopilot('ap-1');
  await until('ap-1 leads', () => isLeader(a), 20_000, 100);
  const b = await w.autopilot('ap-2');
  await until('ap-2 ready, standing by', async () => (await send(b.admin, '/readyz')).status === 200, 20_000, 100);
  t.false(await isLeader(b));
  a.kill();
  await until('the standby leads', () => isLeader(b), 20_000, 100);

  const killedAt = Date.now();
  await w.zones.get('sh-a')!.stop();
  await until('sh-a down in the table', async () => (await w.zoneStatus('sh-a')) === 'down', 30_000, 100);
  const tookMs = Date.now() - killedAt;
  t.log(`zone servers killed -> zone down in the table: ${tookMs} ms`);
  t.true(tookMs <= 5_000 + 5_000, `within down-after + 5 s (${tookMs} ms)`);
  const last = (await w.store.listHistory()).at(-1)!;
  t.is(last.actor, 'autopilot');
  t.is(last.action, 'zone down sh-a');
  t.regex(last.reason, /live gateways .* see sh-a unhealthy: gw-\d@/);
  // Users of sh-a's cells are served by other zones now (the answer names the zone that served it).
  const servedBy = new Set<string>();
  await until('every gateway serves every user with 200', async () => {
    servedBy.clear();
    for (const g of w.gateways) {
      for (let i = 0; i < 30; i++) {
        const answer = await send(g.traffic, '/x', { headers: { 'x-user-id': `u${i}` } });
        if (answer.status !== 200) return false;
        servedBy.add(String(answer.json.zone));
      }
    }
    return true;
  }, 20_000, 200);
  t.false(servedBy.has('sh-a'));
  t.true(servedBy.size >= 2, [...servedBy].join(','));
});

test.serial('a zone unreachable from one gateway only: no action; pause: no action until resumed', async (t) => {
  // sh-b's endpoint answers gw-1's probes 503 and everything else 200.
  const oneSided: Server = createServer((req, res) => res.writeHead(req.headers['x-cellgate-probe'] === 'gw-1' ? 503 : 200).end('{}'));
  await new Promise<void>((r) => oneSided.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => new Promise<void>((r) => { oneSided.closeAllConnections(); oneSided.close(() => r()); }));
  const url = `http://127.0.0.1:${(oneSided.address() as AddressInfo).port}`;
  const w = await world(t, { 'sh-b': url }, false);
  const a = await w.autopilot('ap-1', ['--down-after', '1', '--cooldown', '0']);
  await until('ap-1 leads', () => isLeader(a), 20_000, 100);
  await until('the leader sees one gateway against sh-b, not enough', async () => /not enough evidence: 1 of 3/.test((await zoneView(a, 'sh-b'))?.why ?? ''), 20_000, 100);
  // Observe for three times down-after: the verdict stays, the table does not change.
  const until3 = Date.now() + 3_000;
  await until('3 s of observation', async () => Date.now() > until3 && (await zoneView(a, 'sh-b'))?.result === 'no_evidence', 10_000, 200);
  t.is(await w.zoneStatus('sh-b'), 'up');
  t.is((await w.store.listHistory()).length, 1, 'only init in the history');

  const paused = await cellctl(['autopilot', 'pause', '--reason', 'e2e', ...w.flags]);
  t.is(paused.code, 0, paused.stderr);
  const status = await cellctl(['autopilot', 'status', '--json', ...w.flags]);
  t.like(JSON.parse(status.stdout), { paused: true, reason: 'e2e', leader: 'ap-1' });
  t.regex((await cellctl(['status', ...w.flags])).stdout, /autopilot: PAUSED by \S+ at \S+ \(e2e\); leader: ap-1/);
  await w.zones.get('hz-a')!.stop();
  await until('hz-a: paused verdict', async () => (await zoneView(a, 'hz-a'))?.result === 'paused', 20_000, 100);
  t.is(await w.zoneStatus('hz-a'), 'up', 'paused: nothing written');
  t.is((await w.store.listHistory()).length, 1);
  t.is((await cellctl(['autopilot', 'resume', ...w.flags])).code, 0);
  await until('resumed: hz-a down', async () => (await w.zoneStatus('hz-a')) === 'down', 20_000, 100);
});

test.serial('--dry-run decides and logs, writes nothing; two zones die with max-down-share for one: one acted on, the other reported', async (t) => {
  const w = await world(t);
  const dry = await w.autopilot('ap-dry', ['--down-after', '1', '--dry-run']);
  await until('ap-dry leads', () => isLeader(dry), 20_000, 100);
  await w.zones.get('sh-a')!.stop();
  await until('dry-run decision logged', () => /"event":"autopilot.decision","zone":"sh-a","action":"zone_down","result":"dry_run"/.test(dry.log()), 20_000, 100);
  t.is(await w.zoneStatus('sh-a'), 'up');
  t.is((await w.store.listHistory()).length, 1);
  dry.kill();

  await w.zones.get('sh-b')!.stop();
  const a = await w.autopilot('ap-1', ['--down-after', '1', '--max-down-share', '0.34']);
  await until('one of the two zones down', async () => (await w.zoneStatus('sh-a')) === 'down' || (await w.zoneStatus('sh-b')) === 'down', 30_000, 100);
  const [first, other] = (await w.zoneStatus('sh-a')) === 'down' ? ['sh-a', 'sh-b'] : ['sh-b', 'sh-a'];
  await until(`${other} reported over max-down-share`, async () => (await zoneView(a, other))?.result === 'max_down_share', 20_000, 100);
  t.regex(a.log(), new RegExp(`"zone":"${other}","action":"zone_down","result":"max_down_share"`));
  t.is(await w.zoneStatus(other), 'up');
  t.is(await w.zoneStatus(first), 'down');
  t.is((await w.store.listHistory()).filter((h) => h.actor === 'autopilot').length, 1);
});
