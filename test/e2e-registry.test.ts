// The endpoint registry end to end: a real etcd, a `cellgate serve` gateway process and
// `cellgate register` sidecar processes in front of instances (HTTP servers in this process).
// Instances appear in the gateway within 1 s of their registration; after kill -9 of an
// instance and its sidecar it vanishes within the lease TTL, with no failed request while
// another instance of the service is left (a safe request to the vanished one is retried on
// another); a gracefully stopped one vanishes at once; bad flags exit 2 with one line.
import test, { type ExecutionContext } from 'ava';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3, EtcdLeaseInvalidError } from 'etcd3';
import { openStore } from '../src/store/open';
import type { RegistrySnapshot, TableStore } from '../src/store/types';
import { cellctl, CELLGATE, runCli } from './helpers/cli';
import { RecordingZone, send, startGatewayProcess, topologyYaml } from './helpers/e2e';
import { startEtcd, type EtcdHandle } from './helpers/etcd';
import { freePort } from './helpers/ports';
import { startRegistrar, type RegistrarProcess } from './helpers/registrar';
import { startUpstreams, stopAll, type Upstream } from './helpers/upstreams';

const TTL_S = 2;

let dir: string;
test.before(async () => { dir = await mkdtemp(join(tmpdir(), 'cellgate-e2e-registry-')); });
test.after.always(async () => { if (dir) await rm(dir, { recursive: true, force: true }); });

interface Setup {
  readonly etcd: EtcdHandle;
  readonly store: TableStore;
  readonly prefix: string;
  readonly etcdSpec: string;
  readonly gw: { traffic: string; admin: string };
  readonly instances: Upstream[];
  /** Registry snapshots the test's own watch saw, with when. */
  readonly seen: { at: number; snapshot: RegistrySnapshot }[];
}

async function setup(t: ExecutionContext): Promise<Setup> {
  const etcd = await startEtcd();
  const prefix = '/registry-e2e';
  const etcdSpec = `etcd:${etcd.endpoints.join(',')}`;
  const store = openStore(etcdSpec, { prefix });
  const zone = await new RecordingZone('za', store).start();
  const instances = await startUpstreams('i1', 'i2');
  const seen: Setup['seen'] = [];
  const watch = store.registry.watch({ onSnapshot: (snapshot) => seen.push({ at: Date.now(), snapshot }) });
  t.teardown(async () => {
    await watch.close();
    await stopAll(instances);
    await zone.stop();
    await store.close();
    await etcd.stop();
  });
  const topology = join(dir, 'topology.yaml');
  await writeFile(topology, topologyYaml([{ name: 'za', region: 'r1', city: 'c1', url: zone.url }], 8));
  const init = await cellctl(['init', '--topology', topology, '--etcd', etcd.endpoints.join(','), '--prefix', prefix]);
  if (init.code !== 0) throw new Error(init.stderr);
  const gw = await startGatewayProcess(['--store', etcdSpec, '--prefix', prefix, '--port', '0', '--admin-port', '0'], 'gw-registry');
  t.teardown(() => gw.kill());
  return { etcd, store, prefix, etcdSpec, gw, instances, seen };
}

/** The gateway's count of registered endpoints it routes to in za/default (null: none). */
async function routed(admin: string): Promise<number | null> {
  const text = String((await send(admin, '/metrics')).json.raw ?? '');
  const line = text.split('\n').find((l) => l.startsWith('cellgate_registry_endpoints{zone="za",service="default"}'));
  return line ? Number(line.split(' ').pop()) : null;
}

/** Waits until `check` holds; returns when it first did (ms since epoch). */
async function until(check: () => Promise<boolean>, what: string, timeoutMs = 15_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return Date.now();
}

function sidecar(s: Setup, id: string, url: string): RegistrarProcess {
  return startRegistrar(['--store', s.etcdSpec, '--prefix', s.prefix, '--zone', 'za', '--service', 'default', '--url', url, '--id', id,
    '--ttl', String(TTL_S), '--check-path', '/healthz', '--check-interval', '0.2']);
}

/** The sidecar's exit code; fails the test if it has not exited within `ms`. */
async function exitCode(r: RegistrarProcess, ms = 15_000): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`the sidecar did not exit within ${ms} ms: ${r.stderr()}`)), ms); });
  return Promise.race([r.exited, late]).finally(() => clearTimeout(timer));
}

/** When the test's own watch first saw the registry with `n` endpoints. */
function seenAt(s: Setup, n: number): number | undefined {
  return s.seen.find((x) => x.snapshot.endpoints.length === n)?.at;
}

test.serial('register sidecars: appear within 1 s; kill -9 vanishes within the TTL with no failed request; SIGTERM withdraws at once', async (t) => {
  const s = await setup(t);
  const [i1, i2] = s.instances;
  const r1 = sidecar(s, 'i1', i1!.url);
  const r2 = sidecar(s, 'i2', i2!.url);
  t.teardown(() => { r1.kill(); r2.kill(); });
  await Promise.all([r1.registered(), r2.registered()]);
  const inGateway = await until(async () => (await routed(s.gw.admin)) === 2, 'both instances in the gateway');
  const inEtcd = seenAt(s, 2);
  t.truthy(inEtcd);
  t.log(`registered -> routed by the gateway: ${inGateway - inEtcd!} ms (the test polls every 10 ms)`);
  t.true(inGateway - inEtcd! < 1_000, `appeared in ${inGateway - inEtcd!} ms`);

  // cellctl endpoints lists them, and the gateway is on this registry.
  await until(async () => {
    const r = await cellctl(['endpoints', '--etcd', s.etcd.endpoints.join(','), '--prefix', s.prefix, '--json']);
    const report = JSON.parse(r.stdout) as { endpoints: { id: string }[]; gateways: { id: string; current: boolean }[] };
    return report.endpoints.map((e) => e.id).join() === 'i1,i2' && report.gateways.some((g) => g.id === 'gw-registry' && g.current);
  }, 'cellctl endpoints to show both and a current gateway');

  // Load: safe requests all along (users of za; three at a time).
  const statuses: number[] = [];
  let loading = true;
  const loader = async (n: number) => {
    for (let k = 0; loading; k++) statuses.push((await send(s.gw.traffic, `/x/${n}/${k}`, { headers: { 'x-user-id': `user-${n}-${k % 50}` } })).status);
  };
  const load = Promise.all([0, 1, 2].map(loader));
  await until(async () => statuses.length > 30 && i1!.received.length > 0, 'traffic on i1');

  // kill -9 the first instance and its sidecar: its lease runs out.
  const killedAt = Date.now();
  r1.kill();
  await i1!.stop();
  const gone = await until(async () => (await routed(s.gw.admin)) === 1, 'i1 gone from the gateway', 15_000);
  t.log(`kill -9 -> gone from the gateway: ${gone - killedAt} ms (TTL ${TTL_S} s)`);
  t.true(gone - killedAt <= TTL_S * 1000 + 1_000, `vanished ${gone - killedAt} ms after kill -9`);
  const atGone = statuses.length;
  await until(async () => statuses.length > atGone + 30, 'more traffic after');

  // SIGTERM the second sidecar: withdrawn at once, well before its TTL.
  const stoppedAt = Date.now();
  const code = r2.stop();
  const withdrawn = await until(async () => (await routed(s.gw.admin)) === null || (await routed(s.gw.admin)) === 0, 'i2 withdrawn');
  t.is(await code, 0);
  t.log(`SIGTERM -> gone from the gateway: ${withdrawn - stoppedAt} ms`);
  t.true(withdrawn - stoppedAt < TTL_S * 1000, `withdrawn in ${withdrawn - stoppedAt} ms`);
  loading = false;
  await load;

  const failed = statuses.filter((x) => x !== 200);
  t.log(`${statuses.length} requests under churn, ${failed.length} failed`);
  t.deepEqual(failed, [], 'no failed request while another endpoint of the service was alive');
  t.true(i2!.received.length > 0);
  t.regex(r2.stderr(), /"event":"register.withdrawn"/);
});

test.serial('a failing check withdraws the instance and it comes back when the check passes', async (t) => {
  const s = await setup(t);
  const [i1] = s.instances;
  let healthy = true;
  i1!.behave = (req, res) => {
    if (req.url !== '/healthz' || healthy) return false;
    res.writeHead(503);
    res.end();
    return true;
  };
  const r1 = sidecar(s, 'i1', i1!.url);
  t.teardown(() => r1.kill());
  await r1.registered();
  await until(async () => (await routed(s.gw.admin)) === 1, 'i1 routed');
  healthy = false;
  await until(async () => (await routed(s.gw.admin)) === null || (await routed(s.gw.admin)) === 0, 'i1 withdrawn on a failing check', 5_000);
  t.regex(r1.stderr(), /"event":"register.check_failed"/);
  healthy = true;
  await until(async () => (await routed(s.gw.admin)) === 1, 'i1 back once the check passes', 5_000);
  t.is(await r1.stop(), 0);
});

test('cellgate register: bad flags exit 2 with one clear line, and register nothing', async (t) => {
  const cases: [string[], RegExp][] = [
    [['--zone', 'za', '--service', 's', '--url', 'http://127.0.0.1:1'], /no store/],
    [['--store', 'file:/nonexistent/t.json', '--service', 's', '--url', 'http://127.0.0.1:1'], /needs --zone/],
    [['--store', 'file:/nonexistent/t.json', '--zone', 'za', '--service', 's', '--url', 'ftp://h:1'], /url: "ftp:\/\/h:1" must be an http\(s\) URL/],
    [['--store', 'file:/nonexistent/t.json', '--zone', 'z/a', '--service', 's', '--url', 'http://127.0.0.1:1'], /zone/],
    [['--store', 'file:/nonexistent/t.json', '--zone', 'za', '--service', 's', '--url', 'http://127.0.0.1:1', '--weight', '0'], /--weight must be an integer/],
    [['--store', 'file:/nonexistent/t.json', '--zone', 'za', '--service', 's', '--url', 'http://127.0.0.1:1', '--ttl', 'x'], /--ttl must be a number of seconds/],
    [['--store', 'file:/nonexistent/t.json', '--zone', 'za', '--service', 's', '--url', 'http://127.0.0.1:1', '--check-path', 'healthz'], /checkPath must start with/],
    [['--store', 'file:/nonexistent/t.json', '--zone', 'za', '--service', 's', '--url', 'http://127.0.0.1:1', '--bogus'], /unknown flag --bogus/],
  ];
  for (const [args, message] of cases) {
    const r = await runCli(CELLGATE, ['register', ...args], { timeoutMs: 15_000 });
    t.is(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    t.regex(r.stderr, message);
    t.is(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
  }
});

test('cellgate register against an etcd that is not there: one line naming its own flag (--store), exit 1', async (t) => {
  const port = await freePort();
  const r = await runCli(CELLGATE, ['register', '--store', `etcd:127.0.0.1:${port}`, '--zone', 'za', '--service', 's', '--url', 'http://127.0.0.1:1'], { timeoutMs: 30_000 });
  t.is(r.code, 1, r.stderr);
  t.regex(r.stderr, new RegExp(`cannot reach etcd at 127\\.0\\.0\\.1:${port} .*check --store\\)`));
  t.false(r.stderr.includes('--etcd'), 'cellgate register has no --etcd flag');
  // Beside its JSON log, one line for the operator.
  const said = r.stderr.trim().split('\n').filter((l) => !l.startsWith('{'));
  t.is(said.length, 1, `one line: ${r.stderr}`);
  t.regex(said[0]!, /^cellgate: cannot reach etcd/);
});

test.serial('one id, two sidecars: another URL is refused (exit 3, one line naming the holder) and the holder keeps its traffic; the same URL restarted takes the record at once', async (t) => {
  const s = await setup(t);
  const [i1, i2] = s.instances;
  const r1 = sidecar(s, 'i1', i1!.url);
  t.teardown(() => r1.kill());
  await r1.registered();
  await until(async () => (await routed(s.gw.admin)) === 1, 'i1 routed');

  const r2 = sidecar(s, 'i1', i2!.url);
  t.teardown(() => r2.kill());
  t.is(await exitCode(r2), 3, r2.stderr());
  const said = r2.stderr().trim().split('\n').filter((l) => !l.startsWith('{'));
  t.is(said.length, 1, r2.stderr());
  t.is(said[0], `cellgate: endpoint za/default/"i1" is registered by another live instance at ${i1!.url}; not registering ${i2!.url} (give this instance another --id, or stop that one)`);
  const listed = (await s.store.registry.snapshot()).endpoints.map((e) => e.url);
  t.deepEqual(listed, [i1!.url], 'the first instance still holds the id');
  // The zone's static endpoint and i1 share za's traffic (round robin); i2 gets none.
  for (let k = 0; k < 6; k++) t.is((await send(s.gw.traffic, '/after', { headers: { 'x-user-id': `someone-${k}` } })).status, 200);
  t.true(i1!.received.some((r) => r.url === '/after'), 'and gets its traffic');
  t.false(i2!.received.some((r) => r.url === '/after'));

  // kill -9 of the first sidecar, restarted at once: same id and URL, the old lease still live.
  r1.kill();
  await exitCode(r1);
  const restartedAt = Date.now();
  const r1b = sidecar(s, 'i1', i1!.url);
  t.teardown(() => r1b.kill());
  await r1b.registered();
  const took = Date.now() - restartedAt;
  t.log(`restart -> registered again: ${took} ms (TTL ${TTL_S} s)`);
  t.false(/register\.(taken|register_failed)/.test(r1b.stderr()), r1b.stderr());
  // Its withdrawal is at once: the record is its own, not the dead sidecar's lease's.
  t.is(await r1b.stop(), 0);
  await until(async () => (await s.store.registry.snapshot()).endpoints.length === 0, 'withdrawn at once', TTL_S * 1000 - 200);
});

test.serial('a sidecar whose id was taken while its lease was lost stops claiming it: register.taken, one line, exit 3; the other instance keeps it', async (t) => {
  const s = await setup(t);
  const [i1, i2] = s.instances;
  const admin = new Etcd3({ hosts: s.etcd.endpoints.map((e) => `http://${e}`) });
  t.teardown(() => admin.close());
  const r1 = sidecar(s, 'i1', i1!.url);
  t.teardown(() => r1.kill());
  await r1.registered();
  const key = `${s.prefix}/endpoints/za/default/i1`;
  const own = (await admin.get(key).exec()).kvs[0]!;
  // Another instance takes the id (its record on its own lease), then the sidecar's lease is lost.
  const other = admin.lease(60);
  t.teardown(() => other.revoke().catch(() => undefined));
  await other.put(key).value(JSON.stringify({ url: i2!.url, weight: 1, registeredAt: new Date().toISOString(), instance: 'other' }));
  // The sidecar may have seen the other record first (it watches its key) and revoked its own lease already.
  await admin.leaseClient.leaseRevoke({ ID: own.lease }).catch((err: unknown) => {
    if (!(err instanceof EtcdLeaseInvalidError)) throw err;
  });
  t.is(await exitCode(r1), 3, r1.stderr());
  t.regex(r1.stderr(), /"event":"register.taken"/);
  const said = r1.stderr().trim().split('\n').filter((l) => !l.startsWith('{'));
  t.deepEqual(said, [`cellgate: endpoint za/default/"i1" was taken by another instance at ${i2!.url} while this one (${i1!.url}) did not hold its record (lease lost, or its record withdrawn by another registration of its URL); no longer registered`]);
  t.deepEqual((await s.store.registry.snapshot()).endpoints.map((e) => e.url), [i2!.url], 'not fought over');
});

// review15: a second sidecar with the same id and URL took the record over; when it died, the
// first one, alive and healthy, kept a lease that held nothing and the instance was unrouted.
test.serial('two sidecars of one id and URL: the second takes the record over; killed -9, its lease ends and the first puts its record back at once, without exiting', async (t) => {
  const s = await setup(t);
  const [i1] = s.instances;
  const admin = new Etcd3({ hosts: s.etcd.endpoints.map((e) => `http://${e}`) });
  t.teardown(() => admin.close());
  const key = `${s.prefix}/endpoints/za/default/i1`;
  const leaseOfKey = async () => String((await admin.get(key).exec()).kvs[0]?.lease ?? 'none');
  const r1 = sidecar(s, 'i1', i1!.url);
  t.teardown(() => r1.kill());
  await r1.registered();
  const first = await leaseOfKey();
  const r2 = sidecar(s, 'i1', i1!.url);
  t.teardown(() => r2.kill());
  await r2.registered();
  const second = await leaseOfKey();
  t.not(second, first, 'the second sidecar holds the record');
  r2.kill();
  await exitCode(r2);
  const killedAt = Date.now();
  await until(async () => { const l = await leaseOfKey(); return l !== second && l !== 'none'; }, 'the first sidecar\'s record back', TTL_S * 1000 + 10_000);
  t.log(`kill -9 of the second -> the first's record back: ${Date.now() - killedAt} ms (TTL ${TTL_S} s)`);
  t.is(r1.child.exitCode, null, 'the first sidecar runs on');
  t.false(/register\.taken/.test(r1.stderr()), r1.stderr());
  await until(async () => (await routed(s.gw.admin)) === 1, 'i1 routed');
  t.is(await r1.stop(), 0);
  await until(async () => (await s.store.registry.snapshot()).endpoints.length === 0, 'withdrawn at once', TTL_S * 1000 - 200);
});
