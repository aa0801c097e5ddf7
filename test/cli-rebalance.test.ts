// cellctl zone add / zone remove / rebalance as real processes against a real etcd, with a
// follower standing in for a gateway (so planned moves wait for an acknowledgement): zone
// add then rebalance gives the new zone its capacity share; onto and off an elastic zone
// returns every cell home; refusals exit 3 (or 2 for usage) and write nothing.
import test, { type ExecutionContext } from 'ava';
import type { RoutingTable } from '../src/cells/types';
import { createEtcdStore } from '../src/store/etcd-store';
import type { TableStore } from '../src/store/types';
import { cellctl, useCliWorld, type RunResult } from './helpers/cli';
import { startFollower } from './helpers/followers';

const world = useCliWorld(test, 'cli-rebalance');
let prefixes = 0;

interface Target {
  readonly flags: string[];
  readonly store: TableStore;
}

async function target(t: ExecutionContext): Promise<Target> {
  const prefix = `/cli-rebalance-${++prefixes}`;
  const endpoints = world.etcd.endpoints;
  const store = createEtcdStore({ endpoints, prefix });
  t.teardown(() => store.close());
  const flags = ['--etcd', endpoints.join(','), '--prefix', prefix];
  await run(t, ['init', '--topology', world.topologyPath, ...flags], 0);
  const gw = await startFollower(store, `gw-${prefixes}`);
  t.teardown(() => gw.stop());
  return { flags, store };
}

async function run(t: ExecutionContext, args: string[], expected: number): Promise<RunResult> {
  const r = await cellctl(args, { timeoutMs: 90_000 });
  t.is(r.code, expected, `cellctl ${args.join(' ')}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

async function table(target: Target): Promise<{ table: RoutingTable; version: number }> {
  const vt = await target.store.load();
  if (!vt) throw new Error('no table');
  return vt;
}

function perZone(t: RoutingTable, key: 'home' | 'zone'): Record<string, number> {
  return Object.fromEntries(t.zones.map((z) => [z.name, t.cells.filter((c) => c[key] === z.name).length]));
}

const change = (reason: string) => ['--reason', reason, '--yes'];

test('zone add then rebalance: the new zone gets its capacity share of homes, in planned batches, with history', async (t) => {
  const tg = await target(t);
  await run(t, ['zone', 'add', 'sh-c', '--region', 'east', '--city', 'shanghai', '--capacity', '100', '--upstream', 'http://127.0.0.1:7010', ...change('new hall'), ...tg.flags], 0);
  const added = await table(tg);
  t.like(added.table.zones.at(-1), { name: 'sh-c', status: 'up', capacity: 100, upstreams: ['http://127.0.0.1:7010'] });
  t.is(perZone(added.table, 'zone')['sh-c'], 0);
  const dry = await run(t, ['rebalance', '--batch', '5', '--dry-run', ...tg.flags], 0);
  t.regex(dry.stdout, /batch 1 of 3:/);
  t.regex(dry.stdout, /batch 3 of 3, planned on the result of the batches before:/);
  t.regex(dry.stdout, /12 cell move\(s\) in 3 batch\(es\) \(dry run: nothing written\)/);
  t.is((await table(tg)).version, added.version, 'a dry run writes nothing');
  const r = await run(t, ['rebalance', '--batch', '5', '--json', ...change('spread onto sh-c'), ...tg.flags], 0);
  const out = JSON.parse(r.stdout) as { plans: { moves: unknown[]; kind: string }[] };
  t.deepEqual(out.plans.map((p) => p.moves.length), [5, 5, 2]);
  t.true(out.plans.every((p) => p.kind === 'planned'));
  const after = (await table(tg)).table;
  // 64 cells over 5 zones of capacity 100: 13, 13, 13, 13, 12 (largest remainder).
  t.deepEqual(perZone(after, 'home'), { 'sh-a': 13, 'sh-b': 13, 'hz-a': 13, 'sz-a': 13, 'sh-c': 12 });
  t.deepEqual(perZone(after, 'zone'), perZone(after, 'home'));
  t.true(after.cells.every((c) => c.state === 'active'));
  const history = (await tg.store.listHistory()).map((h) => h.action);
  t.true(history.includes('zone add sh-c'));
  // Each batch is a freeze and a flip.
  t.is(history.filter((a) => a === 'rebalance').length, 6);
  // Nothing more to do: a second run changes nothing.
  const again = await run(t, ['rebalance', ...change('again'), ...tg.flags], 0);
  t.regex(again.stdout, /nothing to change/);
});

test('onto-elastic 0.25 then off-elastic returns every cell home; then the elastic zone can be removed', async (t) => {
  const tg = await target(t);
  await run(t, ['zone', 'add', 'pk-a', '--region', 'east', '--city', 'shanghai', '--capacity', '40', '--elastic', '--upstream', 'http://127.0.0.1:7011', ...change('peak'), ...tg.flags], 0);
  const before = (await table(tg)).table;
  t.true(before.zones.find((z) => z.name === 'pk-a')?.elastic);
  await run(t, ['rebalance', '--onto-elastic', '0.25', ...change('festival'), ...tg.flags], 0);
  const peak = (await table(tg)).table;
  t.is(perZone(peak, 'zone')['pk-a'], 16, 'a quarter of 64 cells');
  t.deepEqual(perZone(peak, 'home'), perZone(before, 'home'), 'homes stay');
  // cellctl status marks the elastic zone and says its cells are lent, not away after a failure.
  const status = await run(t, ['status', ...tg.flags], 0);
  t.regex(status.stdout, /^pk-a +east +shanghai +up +40 +16 +0 +elastic$/m);
  t.regex(status.stdout, /^sh-a +.* +up +100 +\d+ +16$/m, 'a regular zone is not marked');
  t.regex(status.stdout, /^16 cell\(s\) lent to elastic zones \(rebalance --off-elastic returns them\):$/m);
  t.notRegex(status.stdout, /away from home/);
  t.regex(status.stdout, /^CELL +HOME +ELASTIC ZONE +EPOCH$/m);
  const statusJson = JSON.parse((await run(t, ['status', '--json', ...tg.flags], 0)).stdout) as {
    zones: { name: string; elastic: boolean }[]; cellsAwayFromHome: { zone: string; lentToElastic: boolean }[];
  };
  t.deepEqual(statusJson.zones.filter((z) => z.elastic).map((z) => z.name), ['pk-a']);
  t.is(statusJson.cellsAwayFromHome.length, 16);
  t.true(statusJson.cellsAwayFromHome.every((c) => c.zone === 'pk-a' && c.lentToElastic));
  // A zone that serves cells cannot be removed.
  const busy = await run(t, ['zone', 'remove', 'pk-a', ...change('too early'), ...tg.flags], 3);
  t.regex(busy.stderr, /zone pk-a cannot be removed: 16 cell\(s\) are served by it/);
  await run(t, ['rebalance', '--off-elastic', '--batch', '6', ...change('peak over'), ...tg.flags], 0);
  const home = (await table(tg)).table;
  t.true(home.cells.every((c) => c.zone === c.home && c.state === 'active'));
  t.is(perZone(home, 'zone')['pk-a'], 0);
  await run(t, ['zone', 'remove', 'pk-a', ...change('peak over'), ...tg.flags], 0);
  t.false((await table(tg)).table.zones.some((z) => z.name === 'pk-a'));
});

test('an interrupted rebalance leaves a consistent table, and running it again finishes what is left', async (t) => {
  const tg = await target(t);
  await run(t, ['zone', 'add', 'sh-c', '--region', 'east', '--city', 'shanghai', '--capacity', '100', '--upstream', 'http://127.0.0.1:7010', ...change('new hall'), ...tg.flags], 0);
  // A second gateway that never acknowledges: the first batch's freeze is withdrawn (exit 4).
  const stuck = await startFollower(tg.store, 'gw-stuck', { frozen: true });
  t.teardown(() => stuck.stop());
  const before = (await table(tg)).table;
  const interrupted = await run(t, ['rebalance', '--batch', '5', '--freeze-ms', '2000', '--timeout', '1', ...change('interrupted'), ...tg.flags], 4);
  t.regex(interrupted.stderr, /gw-stuck/);
  const half = (await table(tg)).table;
  t.true(half.cells.every((c) => c.state === 'active' && c.zone === c.home), 'no cell left frozen or away from home');
  t.deepEqual(perZone(half, 'home'), perZone(before, 'home'), 'the withdrawn batch moved no home');
  await stuck.stop();
  await run(t, ['rebalance', '--batch', '5', ...change('resumed'), ...tg.flags], 0);
  t.deepEqual(perZone((await table(tg)).table, 'home'), { 'sh-a': 13, 'sh-b': 13, 'hz-a': 13, 'sz-a': 13, 'sh-c': 12 });
});

test('refusals: remove a zone with cells or the global zone, add a duplicate or an invalid zone (exit 3); bad SHARE or flags (exit 2); nothing written', async (t) => {
  const tg = await target(t);
  const { version } = await table(tg);
  const withCells = await run(t, ['zone', 'remove', 'hz-a', ...change('x'), ...tg.flags], 3);
  t.regex(withCells.stderr, /16 cell\(s\) have it as home/);
  const global = await run(t, ['zone', 'remove', 'sh-a', ...change('x'), ...tg.flags], 3);
  t.regex(global.stderr, /global zone/);
  const dup = await run(t, ['zone', 'add', 'sh-a', '--region', 'east', '--city', 'shanghai', '--capacity', '1', '--upstream', 'http://127.0.0.1:1', ...change('x'), ...tg.flags], 3);
  t.regex(dup.stderr, /zone "sh-a" already exists/);
  const invalid = await run(t, ['zone', 'add', 'bad', '--region', 'east', '--city', 'shanghai', '--capacity', 'lots', '--upstream', 'ftp://h', ...change('x'), ...tg.flags], 3);
  t.regex(invalid.stderr, /zones\.bad\.capacity: must be a finite number/);
  t.regex(invalid.stderr, /zones\.bad\.upstreams\[0\]/);
  for (const share of ['0', '1.5', 'abc', '-0.2']) {
    const bad = await run(t, ['rebalance', `--onto-elastic=${share}`, ...change('x'), ...tg.flags], 2);
    t.regex(bad.stderr, /--onto-elastic SHARE must be a number in \(0, 1\]/);
  }
  await run(t, ['rebalance', '--onto-elastic', '0.2', '--off-elastic', ...change('x'), ...tg.flags], 2);
  await run(t, ['rebalance', '--batch', '0', ...change('x'), ...tg.flags], 2);
  await run(t, ['zone', 'add', 'x', '--city', 'c', ...change('x'), ...tg.flags], 2);
  await run(t, ['zone', 'add', 'x', '--region', 'r', '--city', 'c', '--capacity', '1', '--service', 'orders', ...change('x'), ...tg.flags], 2);
  // No elastic zone: onto-elastic is refused.
  const none = await run(t, ['rebalance', '--onto-elastic', '0.25', ...change('x'), ...tg.flags], 3);
  t.regex(none.stderr, /no elastic zone is up/);
  t.is((await table(tg)).version, version, 'nothing was written');
});

test('zone add --service with a name that is also an Object property ("constructor", "toString") adds that service', async (t) => {
  const tg = await target(t);
  await run(t, ['zone', 'add', 'zz', '--region', 'east', '--city', 'shanghai', '--capacity', '1', '--upstream', 'http://127.0.0.1:1',
    '--service', 'constructor=http://127.0.0.1:2', '--service', 'toString=http://127.0.0.1:3', '--service', 'toString=http://127.0.0.1:4', ...change('x'), ...tg.flags], 0);
  const zz = (await table(tg)).table.zones.find((z) => z.name === 'zz');
  t.deepEqual(zz?.services, { constructor: { upstreams: ['http://127.0.0.1:2'] }, toString: { upstreams: ['http://127.0.0.1:3', 'http://127.0.0.1:4'] } });
});

test('zone remove is refused (exit 3) while a live gateway runs in that zone; once it is gone the zone is removed', async (t) => {
  const tg = await target(t);
  await run(t, ['zone', 'add', 'zz', '--region', 'east', '--city', 'shanghai', '--capacity', '1', '--upstream', 'http://127.0.0.1:1', ...change('x'), ...tg.flags], 0);
  const { version } = await table(tg);
  const now = new Date().toISOString();
  const gw = await tg.store.presence.register({ id: 'gw-in-zz', zone: 'zz', appliedVersion: version, checksum: 'x', inFlight: 0, startedAt: now, updatedAt: now, pid: 1, host: 'h' }, 30);
  let closed = false;
  t.teardown(() => (closed ? undefined : gw.close()));
  const refused = await run(t, ['zone', 'remove', 'zz', ...change('x'), ...tg.flags], 3);
  t.regex(refused.stderr, /1 live gateway\(s\) run in it \(--zone zz\): gw-in-zz/);
  t.is((await table(tg)).version, version, 'nothing was written');
  await gw.close();
  closed = true;
  await run(t, ['zone', 'remove', 'zz', ...change('x'), ...tg.flags], 0);
  t.false((await table(tg)).table.zones.some((z) => z.name === 'zz'));
});
