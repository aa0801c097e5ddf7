// cellctl's routing changes as real processes: dry runs, the flags a change needs, zone down
// then route / history / rollback, the blast-radius guard, exit 4 naming a gateway that does
// not follow, and the same flow against a real etcd.
import test, { type ExecutionContext } from 'ava';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
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
  // gw-stuck never acknowledges, so the wait lasts the whole --timeout: long enough for
  // gw-live to follow on a loaded CI machine.
  const move = await run(t, ['cell', 'move', cell.name, 'hz-a', '--reason', 'rebalance', '--yes', '--timeout', '5', ...target.flags], 4);
  t.regex(move.stderr, /gw-stuck/);
  const verdict = move.stderr.split('\n').find((l) => l.startsWith('cellctl:')) ?? '';
  t.regex(verdict, /gw-stuck \(on \d+\)/);
  t.notRegex(verdict, /gw-live/, 'the gateway that followed is not blamed');
  t.regex(move.stderr, /withdrew the freeze/);
  const afterMove = (await tableOf(target)).table.cells.find((c) => c.name === cell.name);
  t.deepEqual(afterMove, cell, 'the cell is active on its old zone');

  const down = await run(t, ['zone', 'down', 'sh-a', '--reason', 'x', '--yes', '--timeout', '5', ...target.flags], 4);
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

test('a malformed presence record: exit 4 naming the gateway, and status shows it as malformed', async (t) => {
  const target = fileTarget(t);
  await init(t, target);
  await follow(t, target, 'gw-live');
  // A live record (fresh heartbeat file) without appliedVersion: it proves nothing.
  const path = target.flags[1]!;
  const now = new Date().toISOString();
  await mkdir(`${path}.gateways`, { recursive: true });
  await writeFile(join(`${path}.gateways`, 'gw-broken.json'), JSON.stringify({ ttlSeconds: 60, record: { id: 'gw-broken', zone: null, checksum: 'x', inFlight: 0, startedAt: now, updatedAt: now, pid: 1, host: 'h' } }));
  // The wait lasts the whole --timeout (gw-broken never converges): long enough for gw-live
  // to follow on a loaded CI machine.
  const down = await run(t, ['zone', 'down', 'sh-a', '--reason', 'x', '--yes', '--timeout', '5', ...target.flags], 4);
  const verdict = down.stderr.split('\n').find((l) => l.startsWith('cellctl:')) ?? '';
  t.regex(verdict, /gw-broken \(malformed presence record: appliedVersion missing/);
  t.notRegex(verdict, /gw-live/);
  const json = await run(t, ['zone', 'down', 'sh-b', '--reason', 'x', '--yes', '--force', '--timeout', '2', '--json', ...target.flags], 4);
  const err = JSON.parse(json.stdout.trim().split('\n').at(-1) as string) as { error: string; detail: { malformed: { id: string }[] } };
  t.is(err.error, 'NOT_CONVERGED');
  t.deepEqual(err.detail.malformed.map((m) => m.id), ['gw-broken']);
  const status = await run(t, ['status', ...target.flags], 0);
  t.regex(status.stdout, /2 live gateway\(s\).*1 with a malformed record/);
  t.regex(status.stdout, /gw-broken .*MALFORMED: appliedVersion missing/);
});

test('a change reports the convergence it observed, never a constant', async (t) => {
  const target = fileTarget(t);
  await init(t, target);
  const none = await run(t, ['zone', 'down', 'sh-a', '--reason', 'x', '--yes', '--json', ...target.flags], 0);
  t.like(JSON.parse(none.stdout), { gateways: 0, converged: true, gatewaysOnRevision: [] });
  await follow(t, target, 'gw-1');
  const one = await run(t, ['zone', 'down', 'hz-a', '--reason', 'x', '--yes', '--json', ...target.flags], 0);
  t.like(JSON.parse(one.stdout), { gateways: 1, converged: true, gatewaysOnRevision: ['gw-1'] });
  const nothing = await run(t, ['zone', 'down', 'hz-a', '--reason', 'x', '--yes', '--json', ...target.flags], 0);
  t.like(JSON.parse(nothing.stdout), { gateways: null, converged: null }, 'nothing written, nothing waited for, nothing claimed');
  const text = await run(t, ['zone', 'down', 'sz-a', '--reason', 'x', '--yes', '--force', ...target.flags], 0);
  t.regex(text.stdout, /1 live gateway\(s\) applied it/);
});

for (const kind of ['file', 'etcd'] as const) {
  test(`${kind}: init over a wiped store, and init --force, issue epochs above every epoch issued before`, async (t) => {
    const target = kind === 'file' ? fileTarget(t) : etcdTarget(t, `/cli-wiped-${process.pid}`);
    await init(t, target);
    await run(t, ['zone', 'down', 'sh-a', '--reason', 'x', '--yes', ...target.flags], 0);
    await run(t, ['zone', 'up', 'sh-a', '--reason', 'x', '--yes', ...target.flags], 0);
    const used = (await tableOf(target)).table;
    const highest = Math.max(...[...used.cells, used.global].map((c) => c.epoch));
    t.is(highest, 3);
    // The table is wiped (its history stays), then the store is initialised again.
    if (kind === 'file') await rm(target.flags[1]!);
    else await (async () => {
      const admin = new Etcd3({ hosts: world.etcd.endpoints.map((e) => `http://${e}`) });
      try { await admin.delete().key(`${target.flags[3]}/table`); } finally { admin.close(); }
    })();
    await init(t, target);
    const reborn = await tableOf(target);
    t.true([...reborn.table.cells, reborn.table.global].every((c) => c.epoch === highest + 1), 'every cell above the old epochs');
    t.is(reborn.table.epochHighWater, highest + 1);
    // Refused without --force, replaced with it, still above.
    const again = await run(t, ['init', '--topology', world.topologyPath, ...target.flags], 3);
    t.regex(again.stderr, /--force replaces it/);
    await run(t, ['init', '--topology', world.topologyPath, '--force', ...target.flags], 0);
    const forced = await tableOf(target);
    t.true([...forced.table.cells, forced.table.global].every((c) => c.epoch === highest + 2));
    // Across every version written, no (cell, epoch) pair ever named two zones.
    const store = target.open();
    const zoneOf = new Map<string, string>();
    for (const h of await store.listHistory()) {
      for (const c of [...h.table.cells, h.table.global]) {
        const key = `${c.name}@${c.epoch}`;
        if (zoneOf.has(key)) t.is(zoneOf.get(key), c.zone, key);
        zoneOf.set(key, c.zone);
      }
    }
    t.true(zoneOf.size > 64 * 3);
  });
}

test('status flags a drain left half-done by a killed cellctl; the next change that touches it cleans it', async (t) => {
  const target = fileTarget(t);
  await init(t, target);
  // What a cellctl killed after the freeze of `zone drain hz-a` leaves behind, 40 s after the deadline.
  const store = target.open();
  const vt = await tableOf(target);
  const deadline = Date.now() - 40_000;
  const left = {
    ...vt.table,
    zones: vt.table.zones.map((z) => (z.name === 'hz-a' ? { ...z, status: 'draining' as const } : z)),
    cells: vt.table.cells.map((c) => (c.zone === 'hz-a' ? { ...c, state: 'frozen' as const, frozenUntilMs: deadline, movingTo: 'sh-a' } : c)),
  };
  t.true((await store.compareAndSwap(vt.version, left)).ok);
  const status = await run(t, ['status', ...target.flags], 0);
  t.regex(status.stdout, /STALE: freeze expired 4\d s ago, drain of hz-a not finished: re-run `cellctl zone drain hz-a` or `zone up hz-a`/);
  const json = JSON.parse((await run(t, ['status', '--json', ...target.flags], 0)).stdout) as { staleMoves: { kind: string; zone: string; cells: string[] }[] };
  t.deepEqual(json.staleMoves.map((m) => [m.kind, m.zone, m.cells.length]), [['drain', 'hz-a', 16]]);
  await run(t, ['zone', 'up', 'hz-a', '--reason', 'abandon the drain', '--yes', ...target.flags], 0);
  const cleaned = await tableOf(target);
  t.is(cleaned.table.zones.find((z) => z.name === 'hz-a')?.status, 'up');
  t.true(cleaned.table.cells.every((c) => c.state === 'active'));
  t.deepEqual(cleaned.table.cells.map((c) => [c.zone, c.epoch]), vt.table.cells.map((c) => [c.zone, c.epoch]), 'every cell where it was');
  const after = await run(t, ['status', ...target.flags], 0);
  t.notRegex(after.stdout, /STALE/);
});
