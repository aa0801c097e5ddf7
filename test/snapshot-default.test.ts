// Fail-static is on without any configuration: where the default snapshot goes, and a
// `cellgate serve` with no snapshotPath that restarts from it while etcd is stopped.
import test, { type ExecutionContext } from 'ava';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RoutingView } from '../src/cells/lookup';
import { parseGatewayConfig } from '../src/router/config';
import { defaultSnapshotLocation, snapshotFileName } from '../src/router/snapshot-location';
import { openStore } from '../src/store/open';
import { cellctl } from './helpers/cli';
import { RecordingZone, send, startGatewayProcess, topologyYaml, type GatewayProcess } from './helpers/e2e';
import { startEtcd } from './helpers/etcd';

let dir: string;
test.before(async () => { dir = await mkdtemp(join(tmpdir(), 'cellgate-snapdefault-')); });
test.after.always(async () => { if (dir) await rm(dir, { recursive: true, force: true }); });

async function fresh(name: string): Promise<string> {
  const d = join(dir, name);
  await mkdir(d, { recursive: true });
  return d;
}

test('the config: snapshotPath defaults to true (the default location), false or null turn it off, a string is a path', (t) => {
  t.is(parseGatewayConfig({}).snapshotPath, true);
  t.is(parseGatewayConfig({ snapshotPath: true }).snapshotPath, true);
  t.is(parseGatewayConfig({ snapshotPath: false }).snapshotPath, false);
  t.is(parseGatewayConfig({ snapshotPath: null }).snapshotPath, false);
  t.is(parseGatewayConfig({ snapshotPath: '/srv/snap.json' }).snapshotPath, '/srv/snap.json');
  const err = t.throws(() => parseGatewayConfig({ snapshotPath: 3 }));
  t.regex(err!.message, /snapshotPath/);
});

test('default location: the system directory when it is writable, else $XDG_STATE_HOME/cellgate, else ./.cellgate', async (t) => {
  const system = await fresh('var-lib-cellgate');
  const xdg = await fresh('xdg');
  const cwd = await fresh('cwd');
  const name = snapshotFileName('etcd:10.0.0.1:2379', '/cellgate');
  const input = { store: 'etcd:10.0.0.1:2379', prefix: '/cellgate', cwd };

  t.is(defaultSnapshotLocation({ ...input, systemDir: system, env: { XDG_STATE_HOME: xdg } }).path, join(system, name));
  const missing = join(dir, 'no-such-dir');
  t.is(defaultSnapshotLocation({ ...input, systemDir: missing, env: { XDG_STATE_HOME: xdg } }).path, join(xdg, 'cellgate', name));
  t.false(existsSync(missing), 'the system directory is not created');
  // A relative XDG_STATE_HOME is ignored (the XDG spec says so), and so is an empty one.
  t.is(defaultSnapshotLocation({ ...input, systemDir: missing, env: { XDG_STATE_HOME: 'relative/state' } }).path, join(cwd, '.cellgate', name));
  t.is(defaultSnapshotLocation({ ...input, systemDir: missing, env: {} }).path, join(cwd, '.cellgate', name));
  // A file where a directory should be is not writable as a directory.
  const file = join(dir, 'a-file');
  await writeFile(file, '');
  t.is(defaultSnapshotLocation({ ...input, systemDir: file, env: {} }).path, join(cwd, '.cellgate', name));
  const nowhere = defaultSnapshotLocation({ ...input, systemDir: missing, env: {}, cwd: join(file, 'sub') });
  t.is(nowhere.path, null);
  t.regex(nowhere.why, /no writable directory/);
});

test('one file per store and prefix', (t) => {
  const names = new Set([
    snapshotFileName('etcd:a:2379', '/cellgate'), snapshotFileName('etcd:b:2379', '/cellgate'),
    snapshotFileName('etcd:a:2379', '/other'), snapshotFileName('file:/x.json', '/cellgate'),
  ]);
  t.is(names.size, 4);
  t.is(snapshotFileName('etcd:a:2379', '/cellgate'), snapshotFileName('etcd:a:2379', '/cellgate'));
  t.regex(snapshotFileName('etcd:a:2379', '/cellgate'), /^[0-9a-f]{16}\.json$/);
});

function snapshotEvent(gw: GatewayProcess): { path: string | null; why: string } {
  const line = gw.stderr().split('\n').find((l) => l.includes('"event":"snapshot"'));
  if (!line) throw new Error(`no snapshot line in ${gw.stderr()}`);
  return JSON.parse(line) as { path: string | null; why: string };
}

async function until(check: () => Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function world(t: ExecutionContext, name: string) {
  const etcd = await startEtcd();
  const prefix = `/${name}`;
  const storeSpec = `etcd:${etcd.endpoints.join(',')}`;
  const store = openStore(storeSpec, { prefix });
  const zones = [await new RecordingZone('za', store).start(), await new RecordingZone('zb', store).start()];
  t.teardown(async () => {
    await Promise.all(zones.map((z) => z.stop()));
    await store.close();
    await etcd.stop();
  });
  const topology = join(dir, `${name}.yaml`);
  await writeFile(topology, topologyYaml([
    { name: 'za', region: 'r1', city: 'c1', url: zones[0]!.url }, { name: 'zb', region: 'r1', city: 'c1', url: zones[1]!.url },
  ], 8));
  const init = await cellctl(['init', '--topology', topology, '--etcd', etcd.endpoints.join(','), '--prefix', prefix]);
  if (init.code !== 0) throw new Error(init.stderr);
  return { etcd, prefix, storeSpec, store };
}

test.serial('cellgate serve with no snapshotPath writes the default snapshot, logs where, and restarts from it with etcd stopped', async (t) => {
  const w = await world(t, 'snapdefault');
  const env = { XDG_STATE_HOME: await fresh('state-e2e') };
  const expected = defaultSnapshotLocation({ store: w.storeSpec, prefix: w.prefix, env });
  t.truthy(expected.path);
  t.teardown(() => rm(expected.path!, { force: true }));
  const args = ['--store', w.storeSpec, '--prefix', w.prefix, '--port', '0', '--admin-port', '0'];

  let gw = await startGatewayProcess(args, 'gw-default-snap', 20_000, env);
  t.teardown(() => gw.kill());
  t.is(snapshotEvent(gw).path, expected.path, 'the snapshot path is logged at start');
  const vt = (await w.store.load())!;
  await until(async () => JSON.parse(await readFile(expected.path!, 'utf8')).version === vt.version, 'the default snapshot written');

  t.is(await gw.stop(), 0);
  await w.etcd.terminate();
  gw = await startGatewayProcess(args, 'gw-default-snap', 20_000, env);
  await until(async () => (await send(gw.admin, '/readyz')).status === 200, 'ready from the default snapshot');
  const view = new RoutingView(vt);
  for (const u of ['alice', 'bob', 'carol', 'dave', 'erin']) {
    const r = await send(gw.traffic, '/x', { headers: { 'x-user-id': u } });
    t.is(r.status, 200);
    t.is(r.json.zone, view.cell(view.cellOfUser(u))!.zone);
  }
  t.is(await gw.stop(), 0);
});

test.serial('snapshotPath: false: fail-static off, said at start, nothing written', async (t) => {
  const w = await world(t, 'snapoff');
  const state = await fresh('state-off');
  const config = join(dir, 'off.yaml');
  await writeFile(config, `store: ${w.storeSpec}\nprefix: ${w.prefix}\nsnapshotPath: false\nport: 0\nadminPort: 0\n`);
  const gw = await startGatewayProcess(['--config', config], 'gw-snap-off', 20_000, { XDG_STATE_HOME: state });
  t.teardown(() => gw.kill());
  await until(async () => (await send(gw.admin, '/readyz')).status === 200, 'ready');
  const event = snapshotEvent(gw);
  t.is(event.path, null);
  t.regex(event.why, /snapshotPath: false/);
  t.is(await gw.stop(), 0);
  t.deepEqual(existsSync(join(state, 'cellgate')) ? await readdir(join(state, 'cellgate')) : [], []);
});

test('config/gateway.yaml shows the true defaults: parsed, it equals the empty config (but its example store)', async (t) => {
  const { parse } = await import('yaml');
  const doc = parse(await readFile(join(__dirname, '..', '..', 'config', 'gateway.yaml'), 'utf8')) as Record<string, unknown>;
  const { id: _a, ...fromFile } = parseGatewayConfig(doc);
  const { id: _b, ...defaults } = parseGatewayConfig({ store: doc.store });
  t.deepEqual(fromFile, defaults);
  t.is(fromFile.snapshotPath, true);
});
