// `cellgate serve --check` (like nginx -t): validates the configuration from the file, the
// CELLGATE_* variables and the flags, prints the effective configuration (secrets redacted)
// and exits 0, or 3 listing every problem — without listening or opening the store.
import { createServer } from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { CELLGATE, runCli } from './helpers/cli';

const check = (args: readonly string[], env: NodeJS.ProcessEnv = {}) => runCli(CELLGATE, ['serve', '--check', ...args], { env, timeoutMs: 20_000 });

test('a good configuration: exit 0, the effective configuration printed (flags > env > file), secrets redacted, nothing listens', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'cellgate-check-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  // A port held by this test: --check must not try to listen on it.
  const held = createServer();
  await new Promise<void>((r) => held.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => new Promise<void>((r) => held.close(() => r())));
  const port = (held.address() as { port: number }).port;
  const file = join(dir, 'gw.yaml');
  await writeFile(file, `store: file:${join(dir, 'absent-table.json')}\nport: 7000\nadminPort: 7001\nzone: sh-a\naccessLogUserKey: super-secret-key-0123456789\nupstream:\n  connectTimeoutMs: 999\n`);
  const r = await check(['--config', file, '--port', String(port)], {
    CELLGATE_ADMIN_PORT: '7101', CELLGATE_UPSTREAM_REQUEST_TIMEOUT_MS: '4321', CELLGATE_PORT: '7200', CELLGATE_UPSTREAM_REQUEST_TIMOUT_MS: '1',
  });
  t.is(r.code, 0, r.stderr);
  const effective = JSON.parse(r.stdout) as Record<string, unknown> & { upstream: Record<string, number> };
  t.like(effective, { port, adminPort: 7101, zone: 'sh-a', accessLogUserKey: '<redacted>' });
  t.is(effective.upstream.requestTimeoutMs, 4321);
  t.is(effective.upstream.connectTimeoutMs, 999);
  t.false(r.stdout.includes('super-secret'));
  t.regex(r.stderr, /configuration OK/);
  t.regex(r.stderr, /warning: CELLGATE_UPSTREAM_REQUEST_TIMOUT_MS is not a configuration variable \(did you mean CELLGATE_UPSTREAM_REQUEST_TIMEOUT_MS\?\)/);
});

test('a bad configuration: exit 3 with every problem and its key path; unreadable TLS files too; no store: exit 2', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'cellgate-check-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'gw.yaml');
  await writeFile(file, 'store: file:/tmp/x.json\nprot: 80\nbuffer:\n  windowMs: -1\nupstream:\n  ejectBaseMs: 5000\n  ejectMaxMs: 10\n');
  const bad = await check(['--config', file], { CELLGATE_ACCESS_LOG: 'perhaps' });
  t.is(bad.code, 3, bad.stderr);
  for (const text of ['prot: unknown key (did you mean port?)', 'buffer.windowMs: must be an integer', 'upstream.ejectMaxMs: must be >= upstream.ejectBaseMs',
    'accessLog (CELLGATE_ACCESS_LOG): must be true or false']) t.true(bad.stderr.includes(text), `${text} in ${bad.stderr}`);
  t.is(bad.stdout, '');
  t.is(bad.stderr.split('invalid gateway configuration').length - 1, 1, 'said once');

  await writeFile(file, `store: file:/tmp/x.json\ntls:\n  cert: ${join(dir, 'nope.crt')}\n  key: ${join(dir, 'nope.key')}\n`);
  const tls = await check(['--config', file]);
  t.is(tls.code, 3);
  t.regex(tls.stderr, /tls\.cert: cannot read/);

  const noStore = await check([], { CELLGATE_STORE: '' });
  t.is(noStore.code, 2);
  t.regex(noStore.stderr, /no store/);
});
