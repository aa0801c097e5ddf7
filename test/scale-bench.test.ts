// The gateway simulator (`npm run bench scale`) at a tiny N: it writes scale.json with the
// issue's keys, and the detail separates the versions of a change — a one-version change,
// and a planned change's freeze and flip — each timed from its write to the executor seeing
// every gateway on it. Every figure here was observed by the run (nothing constant).
import test from 'ava';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Report } from '../bench/report';
import { run, scaleArgs } from '../bench/scale';

test('the simulator writes the issue\'s keys and times the freeze and the flip of a planned change apart', async (t) => {
  const out = await mkdtemp(join(tmpdir(), 'cellgate-scale-'));
  t.teardown(() => rm(out, { recursive: true, force: true }));
  const lines: string[] = [];
  await run(new Report((line) => lines.push(line)), ['--gateways', '4', '--changes', '2', '--processes', '2', '--out', out]);
  const scale = JSON.parse(await readFile(join(out, 'scale.json'), 'utf8')) as Record<string, number>;
  t.deepEqual(Object.keys(scale), ['gateways', 'changes', 'applyAllP50Ms', 'applyAllP99Ms', 'applyAllMaxMs', 'presenceWritesPerChange', 'etcdCpuMsPerChange', 'applyCpuMsPerGateway']);
  t.is(scale.gateways, 4);
  t.is(scale.presenceWritesPerChange, 6, 'one write per gateway per version: 1 + 2 versions over 2 changes');
  const detail = JSON.parse(await readFile(join(out, 'scale-detail.json'), 'utf8')) as Record<string, number>;
  t.is(detail.versionsPerChange, 1.5);
  // Change 1 is `zone down` (one version), change 2 the planned `zone up` (freeze, then flip).
  for (const key of ['changeVersionP50Ms', 'freezeVersionP50Ms', 'flipVersionP50Ms']) t.true(detail[key]! > 0, `${key} = ${detail[key]}`);
  t.true(detail.freezeVersionP50Ms! + detail.flipVersionP50Ms! <= detail.applyAllMaxMs!, 'the two versions are parts of the planned change');
  t.true(detail.etcdSentBytesPerChange! > 0);
  t.true(detail.loadAverageAtStart! >= 0 && detail.loadAverageAtEnd! >= 0);
  t.true(lines.some((l) => l.includes('flipVersionP50Ms')), 'printed in the table');
});

test('--shared-client is --clients per-process', (t) => {
  t.is(scaleArgs(['--shared-client']).clients, 'per-process');
  t.is(scaleArgs([]).clients, 'per-gateway');
  t.throws(() => scaleArgs(['--clients', 'some']), { message: /--clients must be per-gateway or per-process/ });
});

test('--relays: the simulated gateways send presence through real relays; etcd takes few writes per version', async (t) => {
  const out = await mkdtemp(join(tmpdir(), 'cellgate-scale-relay-'));
  t.teardown(() => rm(out, { recursive: true, force: true }));
  await run(new Report(() => undefined), ['--gateways', '40', '--changes', '2', '--processes', '2', '--relays', '1', '--out', out]);
  const detail = JSON.parse(await readFile(join(out, 'scale-detail.json'), 'utf8')) as Record<string, number>;
  t.is(detail.relays, 1);
  t.is(detail.presenceWritesPerVersion, 40, 'every gateway still acknowledges every version');
  // Without a relay: 40 presence puts + the executor's write per version.
  t.true(detail.etcdProposalsPerVersion! < 20, `etcd proposals per version: ${detail.etcdProposalsPerVersion}`);
  t.true(detail.relayCpuMsPerChange! > 0, 'the relay process did the work');
  t.true(detail.applyAllMaxMs! > 0);
});
