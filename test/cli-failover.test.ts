// cellctl's routing changes as real processes: dry runs, the flags a change needs, zone down
// then route / history / rollback, the blast-radius guard, exit 4 naming a gateway that does
// not follow, and the same flow against a real etcd.
import test, { type ExecutionContext } from 'ava';
import { join } from 'node:path';
import { RoutingView } from '../src/cells/lookup';
import { versioned } from '../src/cells/table';
import type { RoutingTable } from '../src/cells/types';
import { createEtcdStore } from '../src/store/etcd-store';
import { createFileStore } from '../src/store/file-store';
import type { TableStore } from '../src/store/types';
import { cellctl, useCliWorld, type RunResult } from './helpers/cli';
import { demoTable } from './helpers/fixtures';
import { startFollower, type Follower } from './helpers/followers';

const world = useCliWorld(test, 'cli-failover');
let files = 0;

interface Target {
  readonly flags: string[];
  open(): TableStore;
}

function fileTarget(t: ExecutionContext): Target {
  const path = join(world.dir, `table-${++files}.json`);
  return {
    flags: ['--file', path],
    open: () => {
      const s = createFileStore(path, { pollIntervalMs: 50 });
      t.teardown(() => s.close());
      return s;
    },
  };
}

function etcdTarget(t: ExecutionContext, prefix: string): Target {
  const endpoints = world.etcd.endpoints;
  return {
    flags: ['--etcd', endpoints.join(','), '--prefix', prefix],
    open: () => {
      const s = createEtcdStore({ endpoints, prefix });
      t.teardown(() => s.close());
      return s;
    },
  };
}

async function run(t: ExecutionContext, args: string[], expected: number): Promise<RunResult> {
  const r = await cellctl(args, { timeoutMs: 60_000 });
  t.is(r.code, expected, `cellctl ${args.join(' ')}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

async function init(t: ExecutionContext, target: Target): Promise<void> {
  await run(t, ['init', '--topology', world.topologyPath, ...target.flags], 0);
}

async function follow(t: ExecutionContext, target: Target, id: string, frozen = false): Promise<Follower> {
  const f = await startFollower(target.open(), id, { frozen });
  t.teardown(() => f.stop());
  return f;
}

/** Users of the demo table whose cell lives on `zone`. */
function usersOn(zone: string, count: number): string[] {
  const view = new RoutingView(versioned(demoTable(), 1));
  const users: string[] = [];
  for (let i = 0; users.length < count; i++) {
    const r = view.routeUnit(`user-${i}`, Date.now());
    if (r.ok && r.zone.name === zone) users.push(`user-${i}`);
  }
  return users;
}

function parseLines<T>(stdout: string): T[] {
  return stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as T);
}

async function tableOf(target: Target): Promise<{ table: RoutingTable; version: number }> {
  const store = target.open();
  const vt = await store.load();
  if (!vt) throw new Error('no table');
  return vt;
}

interface HistoryLine { versionBefore: number; versionAfter: number; reason: string; action: string; actor: string }

test('zone down --dry-run prints the plan table and writes nothing', async (t) => {
  const target = fileTarget(t);
  await init(t, target);
  const before = await tableOf(target);
  const r = await run(t, ['zone', 'down', 'sh-a', '--dry-run', ...target.flags], 0);
  t.regex(r.stdout, /plan: zone down sh-a \(unplanned\)/);
  t.regex(r.stdout, /CELL\s+FROM\s+TO\s+SCOPE\s+USERS/);
  t.regex(r.stdout, /c\d\d\s+sh-a\s+sh-b\s+same-city\s+\d+\.\d%/);
  t.regex(r.stdout, /global\s+sh-a\s+sh-b\s+same-city\s+global traffic/);
  t.regex(r.stdout, /ZONE\s+STATUS\s+CELLS\s+CAPACITY\s+LOAD AFTER/);
  t.regex(r.stdout, /dry run: nothing written/);
  const after = await tableOf(target);
  t.is(after.version, before.version);
  t.deepEqual(after.table, before.table);
  const json = await run(t, ['zone', 'down', 'sh-a', '--dry-run', '--json', ...target.flags], 0);
  const doc = JSON.parse(json.stdout) as { dryRun: boolean; plan: { moves: { to: string }[] } };
  t.true(doc.dryRun);
  t.is(doc.plan.moves.length, 17);
  t.is((await tableOf(target)).version, before.version);
});

test('a change needs --reason and, off a terminal, --yes (exit 2); a bad zone name exits 2', async (t) => {
  const target = fileTarget(t);
  await init(t, target);
  const before = await tableOf(target);
  const noReason = await run(t, ['zone', 'down', 'sh-a', '--yes', ...target.flags], 2);
  t.regex(noReason.stderr, /--reason/);
  const noYes = await run(t, ['zone', 'down', 'sh-a', '--reason', 'x', ...target.flags], 2);
  t.regex(noYes.stderr, /--yes/);
  const badZone = await run(t, ['zone', 'down', 'sh-z', '--reason', 'x', '--yes', ...target.flags], 2);
  t.regex(badZone.stderr, /no zone named "sh-z"/);
  const badCell = await run(t, ['cell', 'move', 'c999', 'sh-b', '--reason', 'x', '--yes', ...target.flags], 2);
  t.regex(badCell.stderr, /no cell named "c999"/);
  await run(t, ['zone', 'down', '--reason', 'x', '--yes', ...target.flags], 2);
  await run(t, ['zone', 'down', 'sh-a', '--reason', 'x', '--yes', '--max-move-share', '2', ...target.flags], 2);
  t.is((await tableOf(target)).version, before.version, 'nothing written');
});

test('file: zone down, route, history, rollback', async (t) => {
  const target = fileTarget(t);
  await init(t, target);
  const initial = await tableOf(target);
  const down = await run(t, ['zone', 'down', 'sh-a', '--reason', 'power loss in sh-a', '--yes', '--json', '--actor', 'ops@test', ...target.flags], 0);
  const result = JSON.parse(down.stdout) as { versionBefore: number; versionAfter: number; converged: boolean; gateways: number; plans: { moves: unknown[] }[] };
  t.is(result.versionBefore, initial.version);
  t.true(result.versionAfter > initial.version);
  t.true(result.converged);
  t.is(result.plans[0].moves.length, 17);

  const users = usersOn('sh-a', 30);
  const routed = parseLines<{ user: string; zone: string; epoch: number; revision: number }>(
    (await run(t, ['route', '--json', ...users, ...target.flags], 0)).stdout);
  t.is(routed.length, users.length);
  for (const r of routed) {
    t.is(r.zone, 'sh-b', `${r.user} moved to the same-city peer`);
    t.is(r.epoch, 2);
    t.is(r.revision, result.versionAfter);
  }

  const history = await run(t, ['history', ...target.flags], 0);
  t.regex(history.stdout, /REVISION\s+AT\s+ACTOR\s+ACTION\s+REASON/);
  t.regex(history.stdout, /zone down sh-a\s+power loss in sh-a/);
  t.regex(history.stdout, /ops@test/);
  const entries = parseLines<HistoryLine>((await run(t, ['history', '--json', ...target.flags], 0)).stdout);
  t.deepEqual(entries.map((e) => [e.action.split(' ')[0], e.versionAfter]), [['init', initial.version], ['zone', result.versionAfter]]);

  const rollback = await run(t, ['rollback', String(initial.version), '--reason', 'sh-a is back', '--yes', ...target.flags], 0);
  t.regex(rollback.stdout, /done: rollback/);
  const restored = await tableOf(target);
  t.true(restored.version > result.versionAfter);
  t.deepEqual(restored.table.zones, initial.table.zones, 'zones as they were');
  for (const c of [...restored.table.cells, restored.table.global]) {
    const was = [...initial.table.cells, initial.table.global].find((x) => x.name === c.name);
    t.is(c.zone, was?.zone as string, `${c.name} back`);
    t.is(c.epoch, c.zone === 'sh-a' ? 3 : 1, `${c.name}: epochs only go up`);
  }
  const last = parseLines<HistoryLine>((await run(t, ['history', '--json', ...target.flags], 0)).stdout).at(-1);
  t.is(last?.action, `rollback ${initial.version}`);
  t.is(last?.reason, 'sh-a is back');
  await run(t, ['rollback', '999', '--reason', 'x', '--yes', ...target.flags], 2);
});

test('region down beyond --max-move-share needs --force (exit 3 without)', async (t) => {
  const target = fileTarget(t);
  await init(t, target);
  const before = await tableOf(target);
  const refused = await run(t, ['region', 'down', 'east', '--reason', 'x', '--yes', '--max-move-share', '0.2', ...target.flags], 3);
  t.regex(refused.stderr, /more than the allowed 20\.0%/);
  t.regex(refused.stderr, /--force/);
  t.is((await tableOf(target)).version, before.version, 'refused: nothing written');
  const dry = await run(t, ['region', 'down', 'east', '--dry-run', '--max-move-share', '0.2', ...target.flags], 3);
  t.regex(dry.stdout, /GUARD: moves 48 of 64 cells/);
  await run(t, ['region', 'down', 'east', '--reason', 'x', '--yes', '--force', '--max-move-share', '0.2', ...target.flags], 0);
  const after = await tableOf(target);
  t.true(after.table.cells.every((c) => c.zone === 'sz-a'));
});

test('a gateway that does not follow: exit 4, named on stderr; a planned move is withdrawn', async (t) => {
  const target = fileTarget(t);
  await init(t, target);
  await follow(t, target, 'gw-live');
  await follow(t, target, 'gw-stuck', true);
  const before = await tableOf(target);
  const cell = before.table.cells.find((c) => c.zone === 'sh-a');
  if (!cell) throw new Error('no cell on sh-a');
  const move = await run(t, ['cell', 'move', cell.name, 'hz-a', '--reason', 'rebalance', '--yes', '--timeout', '3', ...target.flags], 4);
  t.regex(move.stderr, /gw-stuck/);
  t.notRegex(move.stderr, /gw-live \(on/);
  t.regex(move.stderr, /withdrew the freeze/);
  const afterMove = (await tableOf(target)).table.cells.find((c) => c.name === cell.name);
  t.deepEqual(afterMove, cell, 'the cell is active on its old zone');

  const down = await run(t, ['zone', 'down', 'sh-a', '--reason', 'x', '--yes', '--timeout', '3', ...target.flags], 4);
  t.regex(down.stderr, /1 of 2 gateway\(s\) did not apply the change at revision \d+ in time: gw-stuck \(on \d+\)/);
  const json = await run(t, ['zone', 'down', 'sh-b', '--reason', 'x', '--yes', '--force', '--timeout', '3', '--json', ...target.flags], 4);
  const err = JSON.parse(json.stdout.trim().split('\n').at(-1) as string) as { error: string; detail: { behind: { id: string }[] } };
  t.is(err.error, 'NOT_CONVERGED');
  t.deepEqual(err.detail.behind.map((g) => g.id), ['gw-stuck']);
});

test('etcd: zone down with a live gateway, route, history, rollback', async (t) => {
  const target = etcdTarget(t, `/cli-failover-${process.pid}`);
  await init(t, target);
  const gateway = await follow(t, target, 'gw-1');
  const initial = await tableOf(target);
  const down = await run(t, ['zone', 'down', 'sh-a', '--reason', 'etcd outage drill', '--yes', '--json', ...target.flags], 0);
  const result = JSON.parse(down.stdout) as { versionAfter: number; gateways: number; converged: boolean };
  t.is(result.gateways, 1);
  t.true(result.converged);
  t.is(gateway.applied.version, result.versionAfter, 'the gateway applied it by the time cellctl returned');
  const routed = parseLines<{ zone: string }>((await run(t, ['route', '--json', ...usersOn('sh-a', 10), ...target.flags], 0)).stdout);
  t.true(routed.every((r) => r.zone === 'sh-b'));
  const history = await run(t, ['history', ...target.flags], 0);
  t.regex(history.stdout, /etcd outage drill/);
  await run(t, ['rollback', String(initial.version), '--reason', 'undo', '--yes', ...target.flags], 0);
  const restored = await tableOf(target);
  t.deepEqual(restored.table.zones, initial.table.zones);
  t.true(restored.table.cells.every((c) => c.zone === c.home));
  t.true(restored.table.cells.filter((c) => c.home === 'sh-a').every((c) => c.epoch === 3));
  await gateway.waitFor(restored.version);
});

test('zone drain, then zone up --batch: planned batches until every cell is home', async (t) => {
  const target = fileTarget(t);
  await init(t, target);
  await follow(t, target, 'gw-1');
  const drain = await run(t, ['zone', 'drain', 'sh-a', '--reason', 'maintenance', '--yes', ...target.flags], 0);
  t.regex(drain.stderr, /froze moving cells at revision \d+/);
  t.regex(drain.stderr, /flipped cells to their new zones at revision \d+/);
  t.regex(drain.stdout, /done: zone drain sh-a, revision \d+ -> \d+; 1 live gateway\(s\) applied it/);
  const drained = await tableOf(target);
  t.is(drained.table.zones.find((z) => z.name === 'sh-a')?.status, 'draining');
  t.is(drained.table.cells.filter((c) => c.zone === 'sh-a').length, 0);
  const up = await run(t, ['zone', 'up', 'sh-a', '--batch', '6', '--reason', 'maintenance over', '--yes', '--json', ...target.flags], 0);
  const result = JSON.parse(up.stdout) as { plans: { moves: unknown[]; remaining: number }[] };
  t.deepEqual(result.plans.map((p) => [p.moves.length, p.remaining]), [[6, 11], [6, 5], [5, 0]]);
  const home = await tableOf(target);
  t.true([...home.table.cells, home.table.global].every((c) => c.zone === c.home && c.state === 'active'));
  t.true(home.table.zones.every((z) => z.status === 'up'));
  await run(t, ['zone', 'up', 'sh-a', '--batch', '0', '--reason', 'x', '--yes', ...target.flags], 2);
});
