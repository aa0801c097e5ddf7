// The failover executor against both stores (file, and a real etcd): unplanned flips,
// the freeze protocol of planned moves, convergence of followers (and naming the ones that
// do not follow), conflicts with a second operator, history, and batched failback.
import test, { type ExecutionContext } from 'ava';
import { Etcd3 } from 'etcd3';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GLOBAL_CELL, type Cell, type RoutingTable, type VersionedTable } from '../src/cells/types';
import { isCellgateError, type CellgateError } from '../src/errors';
import { FailoverExecutor, type ExecuteOptions, type ExecutorEvent } from '../src/failover/executor';
import { rebuiltBase } from '../src/failover/epochs';
import { planCellMove, planRestore, planZoneDown, planZoneDrain, planZoneUp } from '../src/failover/planner';
import { staleMoves } from '../src/cli/commands/status';
import { writeFileAtomic } from '../src/store/file-io';
import { createEtcdStore } from '../src/store/etcd-store';
import { createFileStore } from '../src/store/file-store';
import type { HistoryEntry, PresenceRecord, TableStore } from '../src/store/types';
import { startEtcd, type EtcdHandle } from './helpers/etcd';
import { demoTable } from './helpers/fixtures';
import { startFollower, type Follower } from './helpers/followers';
import { MemoryStore } from './helpers/memory-store';

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
  /** Writes `doc` as the table document around validation and CAS (a hand edit, a corruption). */
  writeRaw(doc: unknown): Promise<void>;
  /** The operator's store. */
  readonly store: TableStore;
  readonly initialVersion: number;
}

type Kind = 'file' | 'etcd';

async function makeEnv(t: ExecutionContext, kind: Kind): Promise<Env> {
  let open: () => TableStore;
  let writeRaw: (doc: unknown) => Promise<void>;
  if (kind === 'file') {
    const dir = await mkdtemp(join(tmpdir(), 'cellgate-executor-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    const path = join(dir, 'table.json');
    open = () => createFileStore(path, { pollIntervalMs: 50 });
    writeRaw = async (doc) => {
      const { version } = JSON.parse(await readFile(path, 'utf8')) as { version: number };
      await writeFileAtomic(path, JSON.stringify({ version: version + 1, table: doc }));
    };
  } else {
    const prefix = `/executor-${process.pid}-${++prefixes}`;
    const endpoints = (etcd as EtcdHandle).endpoints;
    open = () => createEtcdStore({ endpoints, prefix });
    writeRaw = async (doc) => {
      const admin = new Etcd3({ hosts: endpoints.map((e) => `http://${e}`) });
      try {
        await admin.put(`${prefix}/table`).value(JSON.stringify(doc));
      } finally {
        admin.close();
      }
    };
  }
  const opened = () => {
    const s = open();
    t.teardown(() => s.close());
    return s;
  };
  const store = opened();
  const cas = await store.compareAndSwap(0, demoTable());
  if (!cas.ok) throw new Error('init failed');
  return { open: opened, writeRaw, store, initialVersion: cas.version };
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

/** `store`, with `hook` run (and awaited) before the first presence watch starts: "while the executor waits for the gateways". */
/** Runs `hook` right after the first compare-and-swap succeeds (the freeze): while the executor waits for its acknowledgement. */
function afterFirstWrite(store: TableStore, hook: () => Promise<void>): TableStore {
  let fired = false;
  return new Proxy(store, {
    get(target, prop) {
      if (prop === 'compareAndSwap') {
        return async (...args: Parameters<TableStore['compareAndSwap']>) => {
          const result = await target.compareAndSwap(...args);
          if (result.ok && !fired) {
            fired = true;
            await hook();
          }
          return result;
        };
      }
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

/** The history after the test's initial table: one entry per write. */
async function changes(env: Env): Promise<HistoryEntry[]> {
  return (await env.store.listHistory()).filter((h) => h.versionAfter > env.initialVersion);
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

    const history = await changes(env);
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
    // One presence watch for both waits, opened before the freeze is written (its full read
    // is not paid again while the gateways apply the flip).
    const watches: number[] = [];
    const presence = env.store.presence;
    const store = new Proxy(env.store, {
      get(target, prop) {
        if (prop === 'presence') {
          return new Proxy(presence, {
            get(p, k) {
              if (k === 'watch') return (ev: Parameters<typeof presence.watch>[0]) => { watches.push(events.length); return p.watch(ev); };
              const v = Reflect.get(p, k) as unknown;
              return typeof v === 'function' ? v.bind(p) : v;
            },
          });
        }
        const v = Reflect.get(target, prop) as unknown;
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
    const result = await executor(env, { store, makePlan: (tb) => planCellMove(tb, 'c05', target) }, events).run();
    t.deepEqual(written(events), ['freeze', 'flip']);
    t.true(result.convergence?.converged);
    t.is(watches.length, 1, 'one presence watch for the freeze and the flip');
    t.false(events.slice(0, watches[0]).some((e) => e.type === 'written'), 'opened before the first write');
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
    const recorded = await changes(env);
    t.deepEqual(recorded.map((h) => h.summary[0]?.split(':')[0]), ['planned move, phase 1', 'planned move withdrawn'], 'the freeze and its withdrawal are recorded, no move');

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
    const history = await changes(env);
    t.deepEqual(history.map((h) => h.action), ['cell move c05 ' + target, 'cell move c05 ' + target, 'zone drain hz-a', 'zone drain hz-a', 'zone down sh-a'], 'and is recorded');
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
    const ours = (await changes(env)).filter((h) => h.actor === 'tester@ci');
    t.deepEqual(ours.map((h) => [h.versionBefore, h.versionAfter]), [[result.versionBefore, result.versionAfter]]);
  });

  test.serial(`${kind}: a planned move cancelled by another operator during the freeze is not reported (or recorded) as done`, async (t) => {
    const env = await makeEnv(t, kind);
    await startFollowers(t, env, ['gw-1']);
    const other = env.open();
    const before = cellOf((await current(env)).table, 'c05');
    const target = before.zone === 'sz-a' ? 'hz-a' : 'sz-a';
    const events: ExecutorEvent[] = [];
    // While this operator waits for the gateways to hold c05, another one takes the target zone down.
    const store = afterFirstWrite(env.store, async () => {
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
    const ours = (await changes(env)).filter((h) => h.actor === 'tester@ci');
    t.deepEqual(ours.map((h) => h.summary[0]?.split(':')[0]), ['planned move, phase 1'], 'the freeze is recorded, no move that did not happen');
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
    const history = await changes(env);
    t.deepEqual(history.map((h) => h.action), ['zone down sh-a', ...Array<string>(6).fill('zone up sh-a')]);
    const flips = history.filter((h) => h.summary[0] === 'planned move, phase 2: flip');
    t.deepEqual(flips.map((h) => h.summary.filter((s) => s.includes('->sh-a')).length), [6, 6, 5]);
    t.true(history[1].summary.includes('zone sh-a down->up'), 'the first batch (its freeze) brings the zone up');
    t.true(flips.some((h) => h.summary.some((s) => s.startsWith(`${GLOBAL_CELL} `))), 'the global zone comes home too');
    for (let i = 1; i < history.length; i++) t.is(history[i]!.versionBefore, history[i - 1]!.versionAfter, 'no version without history');
  });
}

/** Fails the test when any (cell, epoch) pair was ever given two zones, across every version in the history. */
function assertEpochsNeverReused(t: ExecutionContext, tables: readonly RoutingTable[]): void {
  const zoneOf = new Map<string, string>();
  let reused = 0;
  for (const table of tables) {
    for (const c of [...table.cells, table.global]) {
      const key = `${c.name}@${c.epoch}`;
      const seen = zoneOf.get(key);
      if (seen !== undefined && seen !== c.zone) {
        reused++;
        t.fail(`${c.name} epoch ${c.epoch} was issued for ${seen} and for ${c.zone}`);
      }
      zoneOf.set(key, c.zone);
    }
  }
  t.is(reused, 0);
}

for (const kind of ['file', 'etcd'] as const) {
  test.serial(`${kind}: a crash right after a write leaves no version without history; a repairing rollback never reuses an epoch`, async (t) => {
    const env = await makeEnv(t, kind);
    await startFollowers(t, env, ['gw-1']);
    const before = cellOf((await current(env)).table, 'c05');
    const target = before.zone === 'sz-a' ? 'hz-a' : 'sz-a';
    // The process "dies" right after the flip is written: where the old code had not yet written history.
    const crash = await t.throwsAsync(executor(env, {
      makePlan: (tb) => planCellMove(tb, 'c05', target),
      onEvent: (e) => {
        if (e.type === 'written' && e.phase === 'flip') throw new Error('simulated crash after the flip');
      },
    }).run());
    t.regex(crash?.message ?? '', /simulated crash/);
    const flipped = await current(env);
    t.deepEqual([cellOf(flipped.table, 'c05').zone, cellOf(flipped.table, 'c05').epoch], [target, before.epoch + 1]);
    let history = await env.store.listHistory();
    t.is(history.at(-1)?.versionAfter, flipped.version, 'the flip that "crashed" has its history entry');
    for (let i = 1; i < history.length; i++) t.is(history[i]!.versionBefore, history[i - 1]!.versionAfter, `no version without history (entry ${i})`);

    // More changes, then the document is corrupted, then a rollback repairs it.
    await executor(env, { makePlan: (tb) => planZoneDown(tb, 'sh-a') }).run();
    await env.writeRaw({ ...structuredClone(demoTable()), cells: 'corrupted' });
    const rebuilt = await rebuiltBase(env.store);
    t.truthy(rebuilt, 'an invalid document is rebuilt from the history');
    const initial = history[0]!;
    await executor(env, {
      makePlan: (tb) => planRestore(tb, initial.table, initial.versionAfter),
      loadBase: async () => (await rebuiltBase(env.store)) ?? current(env),
      alwaysWrite: true,
    }).run();
    const restored = await current(env);
    t.is(cellOf(restored.table, 'c05').zone, before.zone, 'c05 back where it started');
    t.true(cellOf(restored.table, 'c05').epoch > before.epoch + 2, 'with an epoch above every one issued before');
    // And the cell moves again afterwards.
    await executor(env, { makePlan: (tb) => planCellMove(tb, 'c05', target) }).run();
    history = await env.store.listHistory();
    t.true(history.length >= 6);
    assertEpochsNeverReused(t, [...history.map((h) => h.table), (await current(env)).table]);
    const final = await current(env);
    t.true((final.table.epochHighWater ?? 0) >= Math.max(...[...final.table.cells, final.table.global].map((c) => c.epoch)));
  });
}

test('a rollback over a table written around cellctl with lower epochs raises every cell above the epochs issued', async (t) => {
  const env = await makeEnv(t, 'file');
  await executor(env, { makePlan: (tb) => planZoneDown(tb, 'sh-a') }).run();
  // Someone puts the original table back by hand (epochs 1 again, though 2 was issued for sh-a's cells elsewhere).
  const downed = await current(env);
  t.true((await env.store.compareAndSwap(downed.version, demoTable())).ok);
  const rebuilt = await rebuiltBase(env.store);
  t.truthy(rebuilt, 'a table behind the issued epochs is rebuilt');
  t.true([...rebuilt!.table.cells, rebuilt!.table.global].every((c) => c.epoch === 3));
  await executor(env, {
    makePlan: (tb) => planRestore(tb, downed.table, downed.version),
    loadBase: async () => (await rebuiltBase(env.store)) ?? current(env),
    alwaysWrite: true,
  }).run();
  const after = await current(env);
  t.true(after.table.cells.filter((c) => c.home === 'sh-a').every((c) => c.zone !== 'sh-a' && c.epoch === 4), 'moved again, at a fresh epoch');
  t.is(await rebuiltBase(env.store), null, 'nothing left to rebuild');
  assertEpochsNeverReused(t, [...(await env.store.listHistory()).map((h) => h.table), after.table]);
});

test('a move left frozen by a dead cellctl is flagged by status and cleaned by the next change', async (t) => {
  const env = await makeEnv(t, 'file');
  await startFollowers(t, env, ['gw-1']);
  const startMs = Date.now();
  let nowMs = startMs;
  const clock = () => nowMs;
  const dieAfterFreeze = (e: ExecutorEvent) => {
    if (e.type === 'written' && e.phase === 'freeze') throw new Error('cellctl killed after the freeze');
  };
  await t.throwsAsync(executor(env, { now: clock, freezeMs: 8_000, makePlan: (tb) => planZoneDrain(tb, 'hz-a'), onEvent: dieAfterFreeze }).run());
  const frozen = await current(env);
  t.is(frozen.table.zones.find((z) => z.name === 'hz-a')?.status, 'draining');
  t.deepEqual(staleMoves(frozen.table, nowMs), [], 'not stale while the freeze lasts');
  nowMs = startMs + 8_000 + 40_000; // the injected clock: 40 s past the deadline
  const stale = staleMoves(frozen.table, nowMs);
  t.is(stale.length, 1);
  t.is(stale[0]!.message, 'freeze expired 40 s ago, drain of hz-a not finished: re-run `cellctl zone drain hz-a` or `zone up hz-a`');
  // The next change that touches them: zone up hz-a (a failback with nothing away) clears the freeze and the drain.
  await executor(env, { now: clock, makePlan: (tb) => planZoneUp(tb, 'hz-a', { nowMs }) }).run();
  const cleaned = await current(env);
  t.is(cleaned.table.zones.find((z) => z.name === 'hz-a')?.status, 'up');
  t.true([...cleaned.table.cells, cleaned.table.global].every((c) => c.state === 'active'), 'no frozen cell left');
  t.deepEqual(cleaned.table.cells.map((c) => [c.name, c.zone, c.epoch]), demoTable().cells.map((c) => [c.name, c.zone, c.epoch]), 'every cell where it was, same epoch');
  t.deepEqual(staleMoves(cleaned.table, nowMs), []);

  // A stale freeze of one cell is cleaned by any later change, here a move of another cell.
  const c05 = cellOf(cleaned.table, 'c05');
  const to = c05.zone === 'sz-a' ? 'hz-a' : 'sz-a';
  await t.throwsAsync(executor(env, { now: clock, freezeMs: 8_000, makePlan: (tb) => planCellMove(tb, 'c05', to), onEvent: dieAfterFreeze }).run());
  nowMs += 20_000;
  t.regex(staleMoves((await current(env)).table, nowMs)[0]?.message ?? '', /^freeze of c05 \(\S+ -> \S+\) expired 12 s ago/);
  const c06 = cellOf(cleaned.table, 'c06');
  await executor(env, { now: clock, makePlan: (tb) => planCellMove(tb, 'c06', c06.zone === 'sz-a' ? 'hz-a' : 'sz-a', { nowMs }) }).run();
  const after = await current(env);
  t.deepEqual(cellOf(after.table, 'c05'), c05, 'c05 active where it was, same epoch');
  t.deepEqual(staleMoves(after.table, nowMs), []);
});

test('a flip that could only land after the freeze deadline is not written: the freeze is withdrawn (NOT_CONVERGED)', async (t) => {
  const env = await makeEnv(t, 'file');
  await startFollowers(t, env, ['gw-1']);
  const cell = demoTable().cells[0]!.name;
  const from = demoTable().cells[0]!.zone;
  const to = demoTable().zones.find((z) => z.name !== from && z.status === 'up')!.name;
  // The injected clock jumps past the whole freeze once the gateways hold the cell.
  let skewMs = 0;
  const ex = new FailoverExecutor({
    store: env.store, actor: 'tester@ci', reason: 'test', convergeTimeoutMs: 5_000, freezeMs: 600,
    now: () => Date.now() + skewMs,
    makePlan: (table) => planCellMove(table, cell, to),
    onEvent: (e) => {
      if (e.type === 'converging' && e.phase === 'freeze' && e.status.converged) skewMs = 10_000;
    },
  });
  const err = await t.throwsAsync(ex.run());
  t.is((err as CellgateError).code, 'CG_ERR_NOT_CONVERGED');
  t.regex(err!.message, /deadline passed before the flip/);
  const after = (await env.store.load())!.table;
  const c = cellOf(after, cell);
  t.deepEqual([c.zone, c.epoch, c.state], [from, 1, 'active'], 'the cell stays where it was, active, same epoch');
});

test('a freeze whose acknowledgement cannot be observed is not flipped: NOT_CONVERGED, saying what was (not) seen', async (t) => {
  const store = new MemoryStore(demoTable());
  t.teardown(() => store.close());
  const cell = demoTable().cells[0]!;
  const to = demoTable().zones.find((z) => z.name !== cell.zone)!.name;
  const events: ExecutorEvent[] = [];
  const ex = new FailoverExecutor({
    store, actor: 'tester@ci', reason: 'test', convergeTimeoutMs: 1_000, freezeMs: 4_000,
    makePlan: (table) => planCellMove(table, cell.name, to),
    onEvent: (e) => {
      events.push(e);
      // The store goes away right after the freeze is written: no presence can be read.
      if (e.type === 'written' && e.phase === 'freeze') store.setReachable(false);
    },
  });
  const err = await t.throwsAsync(ex.run());
  t.is((err as CellgateError).code, 'CG_ERR_NOT_CONVERGED');
  t.regex(err!.message, /could not read the gateways' presence/);
  t.regex(err!.message, /resume the old zone at its deadline/);
  t.deepEqual(written(events), ['freeze'], 'never flipped');
  store.setReachable(true);
  const c = cellOf((await store.load())!.table, cell.name);
  t.deepEqual([c.zone, c.state], [cell.zone, 'frozen'], 'still on its old zone; the deadline ends the freeze');
});
