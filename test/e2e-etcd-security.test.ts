// cellctl and cellgate against an etcd that requires TLS with client certificates
// (--client-cert-auth) and a password, with a role limited to the prefix: init, serve and
// zone down end to end; every way of getting it wrong is named in the error, the password
// never shown.
import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RoutingView } from '../src/cells/lookup';
import { quietIpServernameWarning } from '../src/cli/quiet-warnings';
import { openStore } from '../src/store/open';
import type { TableStore } from '../src/store/types';
import { CELLCTL, cellctl } from './helpers/cli';
import { RecordingZone, send, startGatewayProcess, topologyYaml } from './helpers/e2e';
import { startEtcd, type EtcdHandle } from './helpers/etcd';
import { freePort } from './helpers/ports';

quietIpServernameWarning(); // the in-process store connects to https://127.0.0.1 too

const PREFIX = '/secure';
let etcd: EtcdHandle;
let dir: string;
let store: TableStore;
let zones: RecordingZone[] = [];
let topology: string;

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cellgate-etcd-sec-'));
  etcd = await startEtcd({ tls: true, auth: { prefix: PREFIX } });
  const { pki, auth } = etcd;
  store = openStore(`etcd:${etcd.endpoints[0]}`, {
    prefix: PREFIX,
    etcd: { security: { cacert: pki!.caFile, cert: pki!.clientCertFile, key: pki!.clientKeyFile, user: auth!.user, password: auth!.password } },
  });
  zones = [await new RecordingZone('za', store).start(), await new RecordingZone('zb', store).start()];
  topology = join(dir, 'topology.yaml');
  await writeFile(topology, topologyYaml([
    { name: 'za', region: 'r1', city: 'c1', url: zones[0]!.url }, { name: 'zb', region: 'r1', city: 'c1', url: zones[1]!.url },
  ], 8));
});

test.after.always(async () => {
  await Promise.all(zones.map((z) => z.stop()));
  await store?.close();
  await etcd?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The TLS flags with the test CA and client certificate, and the user (no password). */
function tlsFlags(overrides: { cacert?: string } = {}): string[] {
  const pki = etcd.pki!;
  return ['--etcd', etcd.endpoints[0]!, '--prefix', PREFIX, '--etcd-cacert', overrides.cacert ?? pki.caFile,
    '--etcd-cert', pki.clientCertFile, '--etcd-key', pki.clientKeyFile];
}

async function until(check: () => Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const LIBRARY_WORDS = /MemberCoolingDownError|GRPC|No connection established|UNAVAILABLE/;

test.serial('TLS + client certificates + password: cellctl init, cellgate serve, cellctl zone down (flags before the command)', async (t) => {
  const { auth } = etcd;
  const password = auth!.password;
  // init: flags after the command, the password from the environment.
  const init = await cellctl(['init', '--topology', topology, ...tlsFlags(), '--etcd-user', auth!.user], { env: { CELLGATE_ETCD_PASSWORD: password } });
  t.is(init.code, 0, init.stderr);
  t.regex(init.stdout, /initialised/);

  // The gateway takes the whole etcd block from its config file, the password from the environment.
  const pki = etcd.pki!;
  const config = join(dir, 'gateway.yaml');
  await writeFile(config, [
    'etcd:', `  endpoints: ["${etcd.endpoints[0]}"]`, `  cacert: ${pki.caFile}`, `  cert: ${pki.clientCertFile}`, `  key: ${pki.clientKeyFile}`,
    `  user: ${auth!.user}`, `prefix: ${PREFIX}`, 'port: 0', 'adminPort: 0', `snapshotPath: ${join(dir, 'snapshot.json')}`, '',
  ].join('\n'));
  const gw = await startGatewayProcess(['--config', config], 'gw-tls', 20_000, { CELLGATE_ETCD_PASSWORD: password });
  t.teardown(() => gw.kill());
  await until(async () => (await send(gw.admin, '/readyz')).status === 200, 'the gateway ready over TLS');
  const view = new RoutingView((await store.load())!);
  const users = Array.from({ length: 12 }, (_, i) => `user-${i}`);
  const onZa = users.filter((u) => view.cell(view.cellOfUser(u))!.zone === 'za');
  t.true(onZa.length > 0, 'some users live in za');
  for (const u of users) t.is((await send(gw.traffic, '/x', { headers: { 'x-user-id': u } })).json.zone, view.cell(view.cellOfUser(u))!.zone);

  // zone down: store flags before the command words, the password inline.
  const down = await cellctl([...tlsFlags(), '--etcd-user', `${auth!.user}:${password}`, '--json', 'zone', 'down', 'za', '--reason', 'tls drill', '--yes']);
  t.is(down.code, 0, down.stderr);
  const result = JSON.parse(down.stdout) as { converged: boolean; gatewaysOnRevision: string[] };
  t.true(result.converged);
  t.deepEqual(result.gatewaysOnRevision, ['gw-tls']);
  for (const u of onZa) t.is((await send(gw.traffic, '/x', { headers: { 'x-user-id': u } })).json.zone, 'zb', `${u} moved to zb`);

  // The password appears in no output.
  for (const text of [init.stdout, init.stderr, down.stdout, down.stderr, gw.stderr()]) t.false(text.includes(password));
  t.is(await gw.stop(), 0);
});

test.serial('after etcd restarts (auth tokens gone), the gateway authenticates again and follows the next change', async (t) => {
  const { auth } = etcd;
  const config = join(dir, 'gateway.yaml'); // written by the test before
  const gw = await startGatewayProcess(['--config', config], 'gw-tls-restart', 20_000, { CELLGATE_ETCD_PASSWORD: auth!.password });
  t.teardown(() => gw.kill());
  await until(async () => (await send(gw.admin, '/readyz')).status === 200, 'ready');
  await etcd.restart();
  // Its presence record may be re-made after the restart (a lease keep-alive that failed): wait for it, as an operator would see it in status.
  await until(async () => (await store.presence.list()).some((g) => g.id === 'gw-tls-restart'), 'the gateway registered after the restart', 20_000);
  const up = await cellctl([...tlsFlags(), '--etcd-user', auth!.user, 'zone', 'up', 'za', '--reason', 'after restart', '--yes', '--json', '--timeout', '20'],
    { env: { CELLGATE_ETCD_PASSWORD: auth!.password } });
  t.is(up.code, 0, up.stderr);
  t.true((JSON.parse(up.stdout) as { converged: boolean }).converged);
  // The gateway follows: every user routes to its home zone again.
  const view = new RoutingView((await store.load())!);
  t.true(view.table.cells.every((c) => c.zone === c.home), 'every cell is home');
  const users = Array.from({ length: 12 }, (_, i) => `user-${i}`);
  await until(async () => {
    for (const u of users) if ((await send(gw.traffic, '/x', { headers: { 'x-user-id': u } })).json.zone !== view.cell(view.cellOfUser(u))!.zone) return false;
    return true;
  }, 'the gateway to route by the table written after the restart');
  t.is(await gw.stop(), 0);
});

test('a CA that did not sign etcd\'s certificate is reported as a certificate problem', async (t) => {
  const r = await cellctl(['status', ...tlsFlags({ cacert: etcd.pki!.otherCaFile }), '--etcd-user', etcd.auth!.user],
    { env: { CELLGATE_ETCD_PASSWORD: etcd.auth!.password } });
  t.is(r.code, 1);
  t.regex(r.stderr, /^cellctl: certificate problem talking to etcd at https:\/\/127\.0\.0\.1:\d+: .*(verify|certificate)/);
  t.regex(r.stderr, /--etcd-cacert/);
  t.notRegex(r.stderr, LIBRARY_WORDS);
  t.is(r.stderr.trim().split('\n').length, 1, 'one message');
});

test('no client certificate for an etcd with --client-cert-auth: a certificate problem', async (t) => {
  const r = await cellctl(['status', '--etcd', etcd.endpoints[0]!, '--prefix', PREFIX, '--etcd-cacert', etcd.pki!.caFile, '--etcd-user', etcd.auth!.user],
    { env: { CELLGATE_ETCD_PASSWORD: etcd.auth!.password } });
  t.is(r.code, 1);
  t.regex(r.stderr, /certificate problem talking to etcd .*client certificate/);
  t.notRegex(r.stderr, LIBRARY_WORDS);
});

test('a wrong password is an authentication failure, and is not echoed', async (t) => {
  const wrong = 'not-the-password-4711';
  const r = await cellctl(['status', ...tlsFlags(), '--etcd-user', `${etcd.auth!.user}:${wrong}`]);
  t.is(r.code, 1);
  t.regex(r.stderr, /refused authentication for user cellgate: wrong user name or password/);
  t.false(r.stderr.includes(wrong));
  t.notRegex(r.stderr, LIBRARY_WORDS);
  const json = await cellctl(['status', ...tlsFlags(), '--etcd-user', etcd.auth!.user, '--json'], { env: { CELLGATE_ETCD_PASSWORD: wrong } });
  t.is(json.code, 1);
  t.like(JSON.parse(json.stdout), { error: 'STORE_UNAVAILABLE', detail: { reason: 'authentication' } });
  t.false(json.stdout.includes(wrong));
});

test('no user while etcd has auth on; a user whose role does not cover the prefix', async (t) => {
  const noUser = await cellctl(['status', ...tlsFlags()]);
  t.is(noUser.code, 1);
  t.regex(noUser.stderr, /authentication enabled and no user was given: give --etcd-user/);
  const otherPrefix = await cellctl(['status', ...tlsFlags(), '--prefix', '/elsewhere', '--etcd-user', etcd.auth!.user], { env: { CELLGATE_ETCD_PASSWORD: etcd.auth!.password } });
  t.is(otherPrefix.code, 1);
  t.regex(otherPrefix.stderr, /user cellgate has no permission on \/elsewhere\//);
});

test('an etcd that is not there: "cannot reach etcd at …", never the client library\'s words', async (t) => {
  const port = await freePort();
  for (const extra of [[], ['--etcd-cacert', etcd.pki!.caFile]]) {
    const r = await cellctl(['status', '--etcd', `127.0.0.1:${port}`, ...extra]);
    t.is(r.code, 1);
    t.regex(r.stderr, new RegExp(`cannot reach etcd at 127\\.0\\.0\\.1:${port} \\(is it running\\? check --etcd\\)`));
    t.notRegex(r.stderr, LIBRARY_WORDS);
  }
});

test('bad security flags are usage errors (exit 2), each one message', async (t) => {
  const pki = etcd.pki!;
  const cases: [string[], RegExp][] = [
    [['--etcd-cert', pki.clientCertFile], /needs its key: give both --etcd-cert FILE and --etcd-key FILE/],
    [['--etcd-cacert', join(dir, 'missing.pem')], /cannot read the etcd CA certificate \(--etcd-cacert\) .*missing\.pem: ENOENT/],
    [['--etcd-user', 'cellgate'], /etcd user cellgate has no password: give --etcd-user cellgate:PASSWORD or set CELLGATE_ETCD_PASSWORD/],
  ];
  for (const [flags, message] of cases) {
    const r = await cellctl(['status', '--etcd', etcd.endpoints[0]!, '--prefix', PREFIX, ...flags]);
    t.is(r.code, 2, flags.join(' '));
    t.regex(r.stderr, message);
    t.is(r.stderr.trim().split('\n').length, 1);
  }
  const plain = await cellctl(['status', '--etcd', etcd.endpoints[0]!.replace('https://', 'http://'), '--etcd-cacert', pki.caFile]);
  t.is(plain.code, 2);
  t.regex(plain.stderr, /is plain http but TLS is configured: use https:\/\//);
  const file = await cellctl(['status', '--file', join(dir, 't.json'), '--etcd-user', 'x:y']);
  t.is(file.code, 2);
  t.regex(file.stderr, /--etcd-user applies to an etcd store, not --file/);
});

test('cellgate serve with an untrusted CA or a wrong password says which, in its log', async (t) => {
  const pki = etcd.pki!;
  const base = ['--store', `etcd:${etcd.endpoints[0]}`, '--prefix', PREFIX, '--port', '0', '--admin-port', '0', '--etcd-cert', pki.clientCertFile, '--etcd-key', pki.clientKeyFile];
  const cases: [string, string[], NodeJS.ProcessEnv, RegExp][] = [
    ['gw-bad-ca', ['--etcd-cacert', pki.otherCaFile, '--etcd-user', etcd.auth!.user], { CELLGATE_ETCD_PASSWORD: etcd.auth!.password }, /certificate problem talking to etcd at https:\/\/127\.0\.0\.1:\d+/],
    ['gw-bad-password', ['--etcd-cacert', pki.caFile, '--etcd-user', etcd.auth!.user], { CELLGATE_ETCD_PASSWORD: 'wrong-password-0815' }, /refused authentication for user cellgate/],
  ];
  for (const [id, flags, env, message] of cases) {
    const gw = await startGatewayProcess([...base, ...flags], id, 20_000, env);
    t.teardown(() => gw.kill());
    await until(async () => message.test(gw.stderr()), `${id} to log the reason`);
    t.notRegex(gw.stderr(), LIBRARY_WORDS);
    t.false(gw.stderr().includes('wrong-password-0815'));
    t.is((await send(gw.admin, '/readyz')).status, 503, 'not ready without a table');
    t.is(await gw.stop(), 0);
  }
});

/**
 * Runs cellctl on a pseudo-terminal (util-linux `script`), typing `typed` once the prompt
 * shows. `--echo always`: the terminal echoes what is typed unless the program turns echo off.
 */
function cellctlOnTerminal(args: readonly string[], typed: string): Promise<{ code: number | null; screen: string }> {
  const quote = (a: string) => `'${a.replace(/'/g, `'\\''`)}'`;
  const command = [process.execPath, CELLCTL, ...args].map(quote).join(' ');
  const child = spawn('script', ['-q', '--echo', 'always', '-ec', command, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, CELLGATE_ETCD: '', CELLGATE_ETCD_PASSWORD: '' } });
  let screen = '';
  let sent = false;
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    screen += d;
    if (!sent && screen.includes('Password for etcd user cellgate: ')) {
      sent = true;
      child.stdin.write(`${typed}\r`);
    }
  });
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      child.stdin.end();
      resolve({ code, screen });
    });
  });
}

test('on a terminal, a user without a password is asked for it, and what is typed is not echoed', async (t) => {
  const good = await cellctlOnTerminal(['history', '--limit', '1', ...tlsFlags(), '--etcd-user', etcd.auth!.user], etcd.auth!.password);
  t.is(good.code, 0, good.screen);
  t.regex(good.screen, /Password for etcd user cellgate: /);
  t.notRegex(good.screen, /refused authentication|cellctl:/);
  t.false(good.screen.includes(etcd.auth!.password), 'the typed password is not on the screen');
  const wrong = await cellctlOnTerminal(['status', ...tlsFlags(), '--etcd-user', etcd.auth!.user], 'typed-wrong-9931');
  t.is(wrong.code, 1);
  t.regex(wrong.screen, /refused authentication for user cellgate/);
  t.false(wrong.screen.includes('typed-wrong-9931'));
});

test('TLS on one side only: a plain endpoint of a TLS etcd, and https:// to a plain etcd, each said so', async (t) => {
  const plainFlags = ['--etcd', etcd.endpoints[0]!.replace('https://', ''), '--prefix', PREFIX];
  const toTls = await cellctl(['status', ...plainFlags]);
  t.is(toTls.code, 1);
  t.regex(toTls.stderr, /etcd at 127\.0\.0\.1:\d+ requires TLS: use https:\/\/127\.0\.0\.1:\d+ with --etcd-cacert FILE/);
  const plain = await startEtcd();
  t.teardown(() => plain.stop());
  const toPlain = await cellctl(['status', '--etcd', `https://${plain.endpoints[0]}`, '--etcd-cacert', etcd.pki!.caFile]);
  t.is(toPlain.code, 1);
  t.regex(toPlain.stderr, /TLS problem talking to etcd at https:\/\/127\.0\.0\.1:\d+: .*does not seem to speak TLS \(is it an http:\/\/ endpoint\?\)/);
  for (const r of [toTls, toPlain]) t.notRegex(r.stderr, LIBRARY_WORDS);
});
