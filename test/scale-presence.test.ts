// Presence at scale (issue 15): cellctl's convergence wait is driven by the presence watch —
// a gateway that applies late is seen when it publishes, not at a periodic re-read, and one
// that never applies is named when the deadline passes — and the watch's periodic check
// for a silent watcher reads what changed and a count, never every record again.
import test, { type ExecutionContext } from 'ava';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { laggards, waitForConvergence, type ConvergenceStatus } from '../src/failover/convergence';
import type { EtcdPresenceWatch } from '../src/store/etcd-presence-watch';
import { createEtcdStore, type EtcdStoreOptions } from '../src/store/etcd-store';
import type { PresenceRecord, PresenceRegistration, PresenceSnapshot, TableStore } from '../src/store/types';
import { startEtcd, type EtcdHandle } from './helpers/etcd';
import { until } from './helpers/wait';

let etcd: EtcdHandle;
test.before(async () => {
  etcd = await startEtcd();
});
test.after.always(async () => {
  await etcd?.stop();
});

function open(t: ExecutionContext, prefix: string, opts: Partial<EtcdStoreOptions> = {}): TableStore {
  const store = createEtcdStore({ endpoints: etcd.endpoints, prefix, callTimeoutMs: 5_000, ...opts });
  t.teardown(() => store.close());
  return store;
}

function record(id: string, appliedVersion: number): PresenceRecord {
  const now = new Date().toISOString();
  return { id, zone: 'sh-a', appliedVersion, checksum: `c${appliedVersion}`, inFlight: 0, startedAt: now, updatedAt: now, pid: 1, host: 'test' };
}

const prefix = () => `/scale-${randomBytes(4).toString('hex')}`;

test('cellctl waits on the presence watch: a gateway that applies late is seen at once; one that never applies is named at the deadline', async (t) => {
  const p = prefix();
  // The watch's periodic check is a minute away: only watch events can end these waits early.
  const cellctl = open(t, p, { watchdogIntervalMs: 60_000 });
  const gateways = open(t, p);
  const ok = await gateways.presence.register(record('gw-ok', 1));
  const late = await gateways.presence.register(record('gw-late', 1));
  let lateAt: number | null = null;
  const progress: ConvergenceStatus[] = [];
  const started = performance.now();
  const status = await waitForConvergence(cellctl.presence, 2, 'c2', {
    timeoutMs: 30_000,
    onProgress: (s) => {
      progress.push(s);
      const behind = s.behind.map((g) => g.id).join(',');
      if (behind === 'gw-late,gw-ok') void ok.update(record('gw-ok', 2));
      if (behind === 'gw-late') {
        lateAt = performance.now();
        void late.update(record('gw-late', 2));
      }
    },
  });
  const done = performance.now();
  t.true(status.converged);
  t.deepEqual(status.gateways.map((g) => g.id), ['gw-late', 'gw-ok']);
  t.deepEqual(progress.map((s) => s.behind.length), [2, 1, 0], 'each publication observed');
  t.not(lateAt, null);
  t.true(done - (lateAt as unknown as number) < 10_000, `seen ${Math.round(done - (lateAt as unknown as number))} ms after it published (the periodic check is 60 s away)`);
  t.true(done - started < 30_000);

  const never: PresenceRegistration = await gateways.presence.register(record('gw-never', 1));
  t.teardown(() => never.close());
  const deadlineMs = 1_500;
  const t0 = performance.now();
  const stuck = await waitForConvergence(cellctl.presence, 2, 'c2', { timeoutMs: deadlineMs });
  t.true(performance.now() - t0 >= deadlineMs - 50, 'it waited for the deadline');
  t.false(stuck.converged);
  t.deepEqual(stuck.behind.map((g) => g.id), ['gw-never']);
  t.deepEqual(laggards(stuck), ['gw-never (on 1)']);
});

test('the presence watch checks for a silent watcher without re-reading every record', async (t) => {
  const p = prefix();
  const watcherSide = open(t, p, { watchdogIntervalMs: 100 });
  const gateways = open(t, p);
  const regs = await Promise.all(Array.from({ length: 30 }, (_, i) => gateways.presence.register(record(`gw-${i}`, 1))));
  let last: PresenceSnapshot | null = null;
  const watch = watcherSide.presence.watch({ onSnapshot: (s) => { last = s; } }) as EtcdPresenceWatch;
  t.teardown(() => watch.close());
  const allOn = (v: number) => () => last !== null && (last as PresenceSnapshot).records.length === regs.length && (last as PresenceSnapshot).records.every((r) => r.appliedVersion === v);
  await until('30 gateways on version 1', allOn(1));
  await Promise.all(regs.map((r, i) => r.update(record(`gw-${i}`, 2))));
  await until('30 gateways on version 2', allOn(2));
  const checks = watch.checks;
  await until('five more periodic checks', () => watch.checks >= checks + 5, 20_000);
  t.is(watch.fullReads, 1, 'only the first read was a full one');
  await regs.pop()!.close();
  await until('the closed gateway gone', () => last !== null && (last as PresenceSnapshot).records.length === regs.length);
  const afterDelete = watch.checks;
  await until('two more periodic checks', () => watch.checks >= afterDelete + 2, 20_000);
  t.is(watch.fullReads, 1, 'a delete the watcher delivered needs no re-read');
  await Promise.all(regs.map((r) => r.close()));
});
