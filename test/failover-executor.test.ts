// The failover executor against both stores (file, and a real etcd): unplanned flips,
// the freeze protocol of planned moves, convergence of followers (and naming the ones that
// do not follow), conflicts with a second operator, history, and batched failback.
import test, { type ExecutionContext } from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GLOBAL_CELL, type Cell, type RoutingTable, type VersionedTable } from '../src/cells/types';
import { isCellgateError, type CellgateError } from '../src/errors';
import { FailoverExecutor, type ExecuteOptions, type ExecutorEvent } from '../src/failover/executor';
import { planCellMove, planZoneDown, planZoneDrain, planZoneUp } from '../src/failover/planner';
import { createEtcdStore } from '../src/store/etcd-store';
import { createFileStore } from '../src/store/file-store';
import type { PresenceRecord, TableStore } from '../src/store/types';
import { startEtcd, type EtcdHandle } from './helpers/etcd';
import { demoTable } from './helpers/fixtures';
import { startFollower, type Follower } from './helpers/followers';

let etcd: EtcdHandle | undefined;
let prefixes = 0;

test.before(async () => {
  etcd = await startEtcd();
});

test.after.always(async () => {
  await etcd?.stop();
});

interface Env {
  /** A new store instance over the test's data, as another process would open it (closed at teardown). */
  open(): TableStore;
  /** The operator's store. */
  readonly store: TableStore;
  readonly initialVersion: number;
}

type Kind = 'file' | 'etcd';

async function makeEnv(t: ExecutionContext, kind: Kind): Promise<Env> {
  let open: () => TableStore;
  if (kind === 'file') {
    const dir = await mkdtemp(join(tmpdir(), 'cellgate-executor-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    open = () => createFileStore(join(dir, 'table.json'), { pollIntervalMs: 50 });
  } else {
    const prefix = `/executor-${process.pid}-${++prefixes}`;
    open = () => createEtcdStore({ endpoints: (etcd as EtcdHandle).endpoints, prefix });
  }
  const opened = () => {
    const s = open();
    t.teardown(() => s.close());
    return s;
  };
  const store = opened();
  const cas = await store.compareAndSwap(0, demoTable());
  if (!cas.ok) throw new Error('init failed');
  return { open: opened, store, initialVersion: cas.version };
}

/** n followers (gateways), each on its own store instance; stopped at teardown (before the stores close). */
async function startFollowers(t: ExecutionContext, env: Env, ids: readonly string[], frozen: readonly string[] = [], applyDelayMs = 0): Promise<Follower[]> {
  const started = await Promise.all(ids.map((id) => startFollower(env.open(), id, { frozen: frozen.includes(id), applyDelayMs })));
  t.teardown(() => Promise.all(started.map((f) => f.stop())).then(() => undefined));
  return started;
}

function executor(env: Env, opts: Partial<ExecuteOptions> & Pick<ExecuteOptions, 'makePlan'>, events: ExecutorEvent[] = []): FailoverExecutor {
  return new FailoverExecutor({
    store: env.store, actor: 'tester@ci', reason: 'test', convergeTimeoutMs: 10_000, freezeMs: 8_000,
    onEvent: (e) => events.push(e), ...opts,
  });
}

/** `store`, with `hook` run (and awaited) inside the first presence listing: "while the executor waits for the gateways". */
function duringFirstWait(store: TableStore, hook: () => Promise<void>): TableStore {
  let fired = false;
  const presence = {
    register: store.presence.register.bind(store.presence),
    list: async () => {
      if (!fired) {
        fired = true;
        await hook();
      }
      return store.presence.list();
    },
  };
  return new Proxy(store, {
    get(target, prop) {
      if (prop === 'presence') return presence;
      const v = Reflect.get(target, prop) as unknown;
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
}

function cellOf(table: RoutingTable, name: string): Cell {
  const c = [...table.cells, table.global].find((x) => x.name === name);
  if (!c) throw new Error(`no cell ${name}`);
  return c;
}

async function current(env: Env): Promise<VersionedTable> {
  const vt = await env.store.load();
  if (!vt) throw new Error('no table');
  return vt;
}

function written(events: readonly ExecutorEvent[]): string[] {
  return events.flatMap((e) => (e.type === 'written' ? [e.phase] : []));
}

async function notConverged(t: ExecutionContext, run: Promise<unknown>): Promise<CellgateError> {
  const err = await t.throwsAsync(run);
  t.true(isCellgateError(err, 'NOT_CONVERGED'), String(err));
  return err as CellgateError;
}

for (const kind of ['file', 'etcd'] as const) {
  test.serial(`${kind}: unplanned zone down flips in one write and converges with 3 followers; history recorded`, async (t) => {
    const env = await makeEnv(t, kind);
    const gateways = await startFollowers(t, env, ['gw-1', 'gw-2', 'gw-3']);
    const events: ExecutorEvent[] = [];
    const result = await executor(env, { makePlan: (tb) => planZoneDown(tb, 'sh-a'), reason: 'power loss in sh-a' }, events).run();
    t.false(result.cancelled);
    t.is(result.versionBefore, env.initialVersion);
    t.true(result.versionAfter > result.versionBefore);
    t.deepEqual(written(events), ['change'], 'unplanned: one write, no freeze');
    t.truthy(result.convergence);
    t.true(result.convergence?.converged);
    t.deepEqual(result.convergence?.gateways.map((g) => g.id).sort(), ['gw-1', 'gw-2', 'gw-3']);
    const after = await current(env);
    t.is(after.version, result.versionAfter);
    for (const g of gateways) {
      t.is(g.applied.version, result.versionAfter, `${g.id} on the new version when run() returns`);
      t.is(g.applied.checksum, after.checksum);
    }
    t.is(after.table.zones.find((z) => z.name === 'sh-a')?.status, 'down');
    t.is(after.table.cells.filter((c) => c.zone === 'sh-a').length, 0);
    t.is(after.table.global.zone, 'sh-b');

    const history = await env.store.listHistory();
    t.is(history.length, 1);
    const [entry] = history;
    t.is(entry.reason, 'power loss in sh-a');
    t.is(entry.actor, 'tester@ci');
    t.is(entry.action, 'zone down sh-a');
    t.is(entry.versionBefore, result.versionBefore);
    t.is(entry.versionAfter, result.versionAfter);
    t.true(entry.summary.includes('zone sh-a up->down'), entry.summary.join('; '));
    t.true(entry.summary.some((s) => /^global sh-a->sh-b \(same-city\)$/.test(s)), entry.summary.join('; '));
    t.deepEqual(entry.table, after.table, 'the table written, for rollback');
    t.false(Number.isNaN(Date.parse(entry.at)));
  });

  test.serial(`${kind}: planned cell move freezes, waits for every follower, then flips with epoch + 1`, async (t) => {
    const env = await makeEnv(t, kind);
    const gateways = await startFollowers(t, env, ['gw-1', 'gw-2', 'gw-3']);
    const before = cellOf((await current(env)).table, 'c05');
    const target = before.zone === 'sz-a' ? 'hz-a' : 'sz-a';
    const events: ExecutorEvent[] = [];
    const result = await executor(env, { makePlan: (tb) => planCellMove(tb, 'c05', target) }, events).run();
    t.deepEqual(written(events), ['freeze', 'flip']);
    t.true(result.convergence?.converged);
    for (const g of gateways) {
      const frozenAt = g.seen.findIndex((vt) => cellOf(vt.table, 'c05').state === 'frozen');
      t.true(frozenAt >= 0, `${g.id} saw the cell frozen`);
      const frozen = cellOf(g.seen[frozenAt].table, 'c05');
      t.is(frozen.zone, before.zone, 'frozen on its old zone');
      t.is(frozen.movingTo, target);
      t.is(frozen.epoch, before.epoch);
      t.true(typeof frozen.frozenUntilMs === 'number' && frozen.frozenUntilMs > Date.now() - 60_000);
      const flippedAt = g.seen.findIndex((vt) => cellOf(vt.table, 'c05').zone === target);
      t.true(flippedAt > frozenAt, `${g.id} saw the flip after the freeze`);
      const flipped = cellOf(g.seen[flippedAt].table, 'c05');
      t.deepEqual(flipped, { name: 'c05', home: before.home, zone: target, epoch: before.epoch + 1, state: 'active' });
      t.true(g.seen[flippedAt].version > g.seen[frozenAt].version);
      t.is(g.applied.version, result.versionAfter);
    }
    // The flip happened only after every follower acknowledged the frozen revision.
    const freezeVersion = events.find((e) => e.type === 'written' && e.phase === 'freeze') as Extract<ExecutorEvent, { type: 'written' }>;
    const converging = events.filter((e): e is Extract<ExecutorEvent, { type: 'converging' }> => e.type === 'converging' && e.phase === 'freeze');
    t.true(converging.some((e) => e.status.converged && e.status.version === freezeVersion.version && e.status.gateways.length === 3));
  });

  test.serial(`${kind}: a short freeze (1 s, the CLI accepts 0.5 s) still leaves time to wait for the gateways`, async (t) => {
    const env = await makeEnv(t, kind);
    // Gateways that take 50 ms to apply a table (any delay at all failed this before the fix).
    await startFollowers(t, env, ['gw-1', 'gw-2'], [], 50);
    const before = cellOf((await current(env)).table, 'c05');
    const target = before.zone === 'sz-a' ? 'hz-a' : 'sz-a';
    const events: ExecutorEvent[] = [];
    const result = await executor(env, { makePlan: (tb) => planCellMove(tb, 'c05', target), freezeMs: 1_000 }, events).run();
    t.deepEqual(written(events), ['freeze', 'flip']);
    t.true(result.convergence?.converged);
    t.is(cellOf((await current(env)).table, 'c05').zone, target);
  });

  test.serial(`${kind}: a follower that does not follow: NOT_CONVERGED naming it; a planned move's freeze is withdrawn`, async (t) => {
    const env = await makeEnv(t, kind);
    await startFollowers(t, env, ['gw-ok-1', 'gw-ok-2', 'gw-stuck'], ['gw-stuck']);
    const base = await current(env);
    const before = cellOf(base.table, 'c05');
    const target = before.zone === 'sz-a' ? 'hz-a' : 'sz-a';

    const planned: ExecutorEvent[] = [];
    const moveErr = await notConverged(t, executor(env, { makePlan: (tb) => planCellMove(tb, 'c05', target), convergeTimeoutMs: 2_500, freezeMs: 5_000 }, planned).run());
    const moveDetail = moveErr.detail as { behind: PresenceRecord[]; version: number };
    t.deepEqual(moveDetail.behind.map((g) => g.id), ['gw-stuck']);
    t.regex(moveErr.message, /gw-stuck \(on \d+\)/);
    t.regex(moveErr.message, /freeze/);
    t.deepEqual(written(planned), ['freeze', 'unfreeze'], 'the freeze is withdrawn, never flipped');
    const afterMove = await current(env);
    t.deepEqual(cellOf(afterMove.table, 'c05'), before, 'active on its old zone with its old epoch');
    t.is((await env.store.listHistory()).length, 0, 'nothing changed: nothing recorded');

    // A withdrawn drain leaves the table as it was: the zone is not left 'draining' (city traffic avoids such zones).
    const drain: ExecutorEvent[] = [];
    const drainErr = await notConverged(t, executor(env, { makePlan: (tb) => planZoneDrain(tb, 'hz-a'), convergeTimeoutMs: 2_500, freezeMs: 5_000 }, drain).run());
    t.deepEqual((drainErr.detail as { behind: PresenceRecord[] }).behind.map((g) => g.id), ['gw-stuck']);
    t.deepEqual(written(drain), ['freeze', 'unfreeze']);
    const afterDrain = await current(env);
    t.is(afterDrain.table.zones.find((z) => z.name === 'hz-a')?.status, 'up', 'the drain is withdrawn with the freeze');
    t.deepEqual(afterDrain.table.cells, afterMove.table.cells, 'every cell active where it was');
    t.deepEqual(afterDrain.table.zones, base.table.zones);

    const unplanned: ExecutorEvent[] = [];
    const downErr = await notConverged(t, executor(env, { makePlan: (tb) => planZoneDown(tb, 'sh-a'), convergeTimeoutMs: 2_500 }, unplanned).run());
    t.deepEqual((downErr.detail as { behind: PresenceRecord[] }).behind.map((g) => g.id), ['gw-stuck']);
    t.deepEqual(written(unplanned), ['change']);
    const afterDown = await current(env);
    t.is(afterDown.table.zones.find((z) => z.name === 'sh-a')?.status, 'down', 'an unplanned change stays written');
    const history = await env.store.listHistory();
    t.deepEqual(history.map((h) => h.action), ['zone down sh-a'], 'and is recorded');
  });

  test.serial(`${kind}: a second operator's change between plan and write is never lost (re-plan)`, async (t) => {
    const env = await makeEnv(t, kind);
    await startFollowers(t, env, ['gw-1']);
    const other = env.open();
    let pending: Promise<void> | null = null;
    let plans = 0;
    const confirms: boolean[] = [];
    const events: ExecutorEvent[] = [];
    const result = await executor(env, {
      makePlan: (tb) => {
        plans++;
        if (plans === 1) {
          // Another operator shrinks sh-b while this one is looking at its plan.
          pending = (async () => {
            const vt = await other.load();
            if (!vt) throw new Error('no table');
            const zones = vt.table.zones.map((z) => (z.name === 'sh-b' ? { ...z, capacity: 20 } : z));
            const cas = await other.compareAndSwap(vt.version, { ...vt.table, zones });
            if (!cas.ok) throw new Error('the other operator lost its CAS');
          })();
        }
        return planZoneDown(tb, 'sh-a');
      },
      confirm: async (_plan, replanned) => {
        confirms.push(replanned);
        await pending;
        return true;
      },
    }, events).run();
    t.is(plans, 2, 'planned again after the conflict');
    t.deepEqual(confirms, [false, true], 'the changed plan was confirmed again');
    t.true(events.some((e) => e.type === 'replan'));
    const after = await current(env);
    t.is(after.version, result.versionAfter);
    const shB = after.table.zones.find((z) => z.name === 'sh-b');
    t.is(shB?.capacity, 20, "the other operator's change is kept");
    t.is(after.table.zones.find((z) => z.name === 'sh-a')?.status, 'down', 'and ours is applied');
    t.is(after.table.cells.filter((c) => c.zone === 'sh-b').length, 20, 'the re-plan honours the new capacity');
    t.is(after.table.cells.filter((c) => c.zone === 'sh-a').length, 0);
    t.true(result.plans[0].moves.some((m) => m.to === 'hz-a'), 'the overflow went to the next tier');
    t.true(result.versionBefore > env.initialVersion, "the written plan is based on the other operator's version");
    t.deepEqual((await env.store.listHistory()).map((h) => [h.versionBefore, h.versionAfter]), [[result.versionBefore, result.versionAfter]]);
  });

  test.serial(`${kind}: a planned move cancelled by another operator during the freeze is not reported (or recorded) as done`, async (t) => {
    const env = await makeEnv(t, kind);
    await startFollowers(t, env, ['gw-1']);
    const other = env.open();
    const before = cellOf((await current(env)).table, 'c05');
    const target = before.zone === 'sz-a' ? 'hz-a' : 'sz-a';
    const events: ExecutorEvent[] = [];
    // While this operator waits for the gateways to hold c05, another one takes the target zone down.
    const store = duringFirstWait(env.store, async () => {
      const vt = await other.load();
      if (!vt) throw new Error('no table');
      const cas = await other.compareAndSwap(vt.version, planZoneDown(vt.table, target).result);
      if (!cas.ok) throw new Error('the other operator lost its CAS');
    });
    const err = await t.throwsAsync(executor(env, { store, makePlan: (tb) => planCellMove(tb, 'c05', target) }, events).run());
    t.true(isCellgateError(err, 'CONFLICT'), String(err));
    t.regex((err as Error).message, /c05/);
    t.false(written(events).includes('flip'), 'nothing left to flip: nothing written');
    const after = await current(env);
    t.deepEqual(cellOf(after.table, 'c05'), before, 'c05 stays, active, where it was');
    t.is(after.table.zones.find((z) => z.name === target)?.status, 'down');
    t.deepEqual(await env.store.listHistory(), [], 'no move recorded that did not happen');
  });

  test.serial(`${kind}: batched zone up runs planned batches until nothing remains`, async (t) => {
    const env = await makeEnv(t, kind);
    const gateways = await startFollowers(t, env, ['gw-1', 'gw-2']);
    const downed = await executor(env, { makePlan: (tb) => planZoneDown(tb, 'sh-a') }).run();
    const away = [...(await current(env)).table.cells, (await current(env)).table.global].filter((c) => c.home === 'sh-a' && c.zone !== c.home);
    t.is(away.length, 17);
    const events: ExecutorEvent[] = [];
    const result = await executor(env, { makePlan: (tb) => planZoneUp(tb, 'sh-a', { batchSize: 6 }) }, events).run();
    t.deepEqual(result.plans.map((p) => [p.moves.length, p.remaining]), [[6, 11], [6, 5], [5, 0]]);
    t.deepEqual(written(events), ['freeze', 'flip', 'freeze', 'flip', 'freeze', 'flip']);
    t.is(result.versionBefore, downed.versionAfter);
    const after = await current(env);
    t.is(result.versionAfter, after.version);
    t.true(after.table.zones.every((z) => z.status === 'up'));
    for (const c of [...after.table.cells, after.table.global]) t.is(c.zone, c.home, `${c.name} home`);
    t.is(after.table.global.epoch, demoTable().global.epoch + 2);
    t.true([...after.table.cells, after.table.global].every((c) => c.state === 'active'));
    for (const g of gateways) t.is(g.applied.version, after.version);
    const history = await env.store.listHistory();
    t.deepEqual(history.map((h) => h.action), ['zone down sh-a', 'zone up sh-a', 'zone up sh-a', 'zone up sh-a']);
    t.deepEqual(history.slice(1).map((h) => h.summary.filter((s) => s.includes('->sh-a')).length), [6, 6, 5]);
    t.true(history[1].summary.includes('zone sh-a down->up'), 'the first batch brings the zone up');
    t.true(history.slice(1).some((h) => h.summary.some((s) => s.startsWith(`${GLOBAL_CELL} `))), 'the global zone comes home too');
  });
}

test('a flip that could only land after the freeze deadline is not written: the freeze is withdrawn (NOT_CONVERGED)', async (t) => {
  const env = await makeEnv(t, 'file');
  await startFollowers(t, env, ['gw-1']);
  const cell = demoTable().cells[0]!.name;
  const from = demoTable().cells[0]!.zone;
  const to = demoTable().zones.find((z) => z.name !== from && z.status === 'up')!.name;
  // The first look at the gateways takes longer than the whole freeze.
  const slow = duringFirstWait(env.store, () => new Promise((r) => setTimeout(r, 900)));
  const ex = new FailoverExecutor({
    store: slow, actor: 'tester@ci', reason: 'test', convergeTimeoutMs: 5_000, freezeMs: 600,
    makePlan: (table) => planCellMove(table, cell, to),
  });
  const err = await t.throwsAsync(ex.run());
  t.is((err as CellgateError).code, 'CG_ERR_NOT_CONVERGED');
  t.regex(err!.message, /deadline passed before the flip/);
  const after = (await env.store.load())!.table;
  const c = cellOf(after, cell);
  t.deepEqual([c.zone, c.epoch, c.state], [from, 1, 'active'], 'the cell stays where it was, active, same epoch');
});
