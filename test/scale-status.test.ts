// `cellctl status` at a thousand gateways (issue 15): by default the live gateways are
// counted per revision and only the stragglers are named (the first 20); --gateways lists
// every one; --json keeps the full list and adds the counts.
import test from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createFileStore } from '../src/store/file-store';
import type { PresenceRecord, PresenceRegistration } from '../src/store/types';
import { cellctl } from './helpers/cli';
import { demoTable } from './helpers/fixtures';

test('status summarises many gateways: counts per revision, stragglers named, --gateways lists all', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'cellgate-status-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'table.json');
  const store = createFileStore(path, { pollIntervalMs: 50 });
  t.teardown(() => store.close());
  const cas = await store.compareAndSwap(0, demoTable());
  if (!cas.ok) throw new Error('init failed');
  const now = new Date().toISOString();
  const record = (id: string, version: number, checksum: string): PresenceRecord => ({ id, zone: 'sh-a', appliedVersion: version, checksum, inFlight: 0, startedAt: now, updatedAt: now, pid: 1, host: 'h' });
  const regs: PresenceRegistration[] = [];
  t.teardown(() => Promise.all(regs.map((r) => r.close())).then(() => undefined));
  for (let i = 0; i < 45; i++) {
    const behind = i % 20 === 7; // gw-007, gw-027
    const r = record(`gw-${String(i).padStart(3, '0')}`, behind ? cas.version - 1 : cas.version, behind ? 'sha256:old' : cas.checksum);
    // gw-000, gw-015, gw-030: written by a presence relay.
    regs.push(await store.presence.register(i % 15 === 0 ? { ...r, relay: 'relay-sh' } : r, 60));
  }
  const text = await cellctl(['status', '--file', path]);
  t.is(text.code, 0, text.stderr);
  t.regex(text.stdout, /45 live gateway\(s\), 2 not on revision \d+, 3 through a presence relay:/);
  t.regex(text.stdout, new RegExp(`\\b${cas.version}\\s+${cas.checksum}\\s+43\\s+current`));
  t.regex(text.stdout, /\b0\s+sha256:old\s+2\s+BEHIND/);
  t.regex(text.stdout, /gw-007 .*BEHIND/);
  t.regex(text.stdout, /gw-027 .*BEHIND/);
  t.notRegex(text.stdout, /gw-000/, 'gateways on the revision are counted, not listed');
  t.true(text.stdout.split('\n').length < 45, 'fewer lines than gateways');

  const all = await cellctl(['status', '--file', path, '--gateways']);
  t.is(all.code, 0, all.stderr);
  for (let i = 0; i < 45; i++) t.regex(all.stdout, new RegExp(`gw-${String(i).padStart(3, '0')} `));

  const json = await cellctl(['status', '--file', path, '--json']);
  const report = JSON.parse(json.stdout) as { gateways: unknown[]; gatewaysByRevision: { revision: number; gateways: number; current: boolean }[] };
  t.is(report.gateways.length, 45);
  t.deepEqual(report.gatewaysByRevision.map((g) => [g.revision, g.gateways, g.current]), [[cas.version, 43, true], [cas.version - 1, 2, false]]);
});
