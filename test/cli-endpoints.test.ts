// `cellctl endpoints` over the file store: the registry and what each gateway applied, filters,
// --json, operator text escaped, more than 20 gateways summarised, bad filters exit 2.
import test, { type ExecutionContext } from 'ava';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { registryChecksum } from '../src/store/endpoint-record';
import { createFileStore } from '../src/store/file-store';
import type { PresenceRecord, RegistryDigest } from '../src/store/types';
import { cellctl } from './helpers/cli';
import { demoTable } from './helpers/fixtures';

async function setup(t: ExecutionContext) {
  const dir = await mkdtemp(join(tmpdir(), 'cellgate-endpoints-'));
  const path = join(dir, 'table.json');
  const store = createFileStore(path);
  t.teardown(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });
  await store.compareAndSwap(0, demoTable());
  return { path, store };
}

function gateway(id: string, registry?: RegistryDigest): PresenceRecord {
  const now = new Date().toISOString();
  return { id, zone: 'sh-a', appliedVersion: 1, checksum: 'sha256:x', inFlight: 0, startedAt: now, updatedAt: now, pid: 1, host: 'h', ...(registry ? { registry } : {}) };
}

test('cellctl endpoints lists the registry, filters it, and says which gateway is behind; text is escaped', async (t) => {
  const { path, store } = await setup(t);
  await store.registry.register({ zone: 'sh-a', service: 'orders', id: 'o-1', url: 'http://127.0.0.1:9001', weight: 3 });
  await store.registry.register({ zone: 'sh-b', service: 'default', id: 'evil\u001b[31m\nrow', url: 'http://127.0.0.1:9002' });
  await mkdir(`${path}.endpoints`, { recursive: true });
  await writeFile(join(`${path}.endpoints`, 'sh-a@orders@junk.json'), 'not json');
  const current = registryChecksum(await store.registry.snapshot());
  await store.presence.register(gateway('gw-current', { count: 2, version: 0, checksum: current }), 30);
  await store.presence.register(gateway('gw-behind', { count: 1, version: 0, checksum: 'sha256:old' }), 30);
  await store.presence.register(gateway('gw-old-build'), 30);

  const text = await cellctl(['endpoints', '--file', path]);
  t.is(text.code, 0, text.stderr);
  t.regex(text.stdout, /endpoint registry: 2 endpoint\(s\)/);
  t.regex(text.stdout, /sh-a\s+orders\s+o-1\s+http:\/\/127\.0\.0\.1:9001\s+3/);
  t.false(text.stdout.includes('\u001b'), 'no raw escape reaches the terminal');
  t.true(text.stdout.includes('evil\\x1b[31m\\nrow'), 'shown escaped, on one line');
  t.regex(text.stdout, /1 record\(s\) refused/);
  t.regex(text.stdout, /gw-behind\s+sh-a\s+1\s+sha256:old\s+BEHIND/);
  t.regex(text.stdout, /gw-old-build\s+sh-a\s+-\s+none published\s+BEHIND/);
  t.notRegex(text.stdout, /gw-current.*BEHIND/);

  const json = await cellctl(['endpoints', '--file', path, '--zone', 'sh-a', '--json']);
  const report = JSON.parse(json.stdout) as { endpoints: { id: string; weight: number }[]; gateways: { id: string; current: boolean }[]; refusedCount: number };
  t.deepEqual(report.endpoints.map((e) => [e.id, e.weight]), [['o-1', 3]]);
  t.is(report.refusedCount, 1);
  t.deepEqual(report.gateways.map((g) => [g.id, g.current]), [['gw-behind', false], ['gw-current', true], ['gw-old-build', false]]);
  const none = JSON.parse((await cellctl(['endpoints', '--file', path, '--service', 'payments', '--json'])).stdout) as { endpoints: unknown[] };
  t.deepEqual(none.endpoints, []);

  const bad = await cellctl(['endpoints', '--file', path, '--zone', 'a/b']);
  t.is(bad.code, 2);
  t.regex(bad.stderr, /--zone must be a zone or service name/);
});

test('cellctl endpoints: more than 20 gateways are counted per registry, laggards named', async (t) => {
  const { path, store } = await setup(t);
  await store.registry.register({ zone: 'sh-a', service: 'default', id: 'i-1', url: 'http://127.0.0.1:9001' });
  const current = registryChecksum(await store.registry.snapshot());
  for (let i = 0; i < 24; i++) await store.presence.register(gateway(`gw-${String(i).padStart(2, '0')}`, { count: 1, version: 0, checksum: current }), 30);
  await store.presence.register(gateway('gw-late', { count: 0, version: 0, checksum: 'sha256:empty' }), 30);
  const r = await cellctl(['endpoints', '--file', path]);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /25 live gateway\(s\), 1 not on this registry/);
  t.regex(r.stdout, new RegExp(`${current}\\s+1\\s+24\\s+current`));
  t.regex(r.stdout, /not on this registry:\n.*\ngw-late/);
  t.notRegex(r.stdout, /gw-07/, 'current gateways are counted, not listed');
});
