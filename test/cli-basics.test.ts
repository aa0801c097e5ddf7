// cellctl init / validate / route / status against both stores, as real processes.
import test from 'ava';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { RoutingView } from '../src/cells/lookup';
import { versioned } from '../src/cells/table';
import { tableFromTopologyText } from '../src/cells/topology';
import { cellctl, useCliWorld } from './helpers/cli';
import { demoTopologyYaml } from './helpers/fixtures';
import { MALFORMED_TOPOLOGIES } from './helpers/malformed-topologies';

const world = useCliWorld(test, 'cli');

const stores = [
  { name: 'file', flags: () => ['--file', join(world.dir, 'table.json')] },
  { name: 'etcd', flags: () => ['--etcd', world.etcd.endpoints.join(','), '--prefix', '/cli-test'] },
];

for (const store of stores) {
  test.serial(`${store.name}: init, route and status`, async (t) => {
    const init = await cellctl(['init', '--topology', world.topologyPath, ...store.flags(), '--json']);
    t.is(init.code, 0, init.stderr);
    const { version, cells } = JSON.parse(init.stdout) as { version: number; cells: number };
    t.true(version > 0);
    t.is(cells, 64);

    const again = await cellctl(['init', '--topology', world.topologyPath, ...store.flags()]);
    t.is(again.code, 3, 'a second init is refused');
    t.regex(again.stderr, /already holds a routing table/);

    // Hundreds of users through --stdin, compared with the model in this process.
    const users = Array.from({ length: 500 }, (_, i) => `user-${i}`).concat(['vip-0001']);
    const route = await cellctl(['route', '--stdin', '--json', ...store.flags()], { input: users.join('\n') + '\n' });
    t.is(route.code, 0, route.stderr);
    const lines = route.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    t.is(lines.length, users.length);
    const view = new RoutingView(versioned(tableFromTopologyText(demoTopologyYaml), version));
    for (const [i, line] of lines.entries()) {
      const expected = view.routeUnit(users[i], Date.now());
      if (!expected.ok) throw new Error('demo routes are all ok');
      t.deepEqual(line, { user: users[i], cell: expected.cell, zone: expected.zone.name, epoch: expected.epoch, revision: version });
    }
    t.is(lines.at(-1)?.cell, 'c07', 'the pinned user goes to its pinned cell');

    const text = await cellctl(['route', 'alice', 'bob', ...store.flags()]);
    t.is(text.code, 0);
    t.regex(text.stdout, /^USER\s+CELL\s+ZONE\s+EPOCH\s+REVISION/);
    t.regex(text.stdout, /alice\s+c\d\d\s+\S+\s+1\s+\d+/);

    const status = await cellctl(['status', '--json', '--cells', ...store.flags()]);
    t.is(status.code, 0, status.stderr);
    const report = JSON.parse(status.stdout) as { revision: number; zones: { name: string; cells: number; status: string }[]; cellsAwayFromHome: unknown[]; gateways: unknown[]; cells: unknown[] };
    t.is(report.revision, version);
    t.deepEqual(report.zones.map((z) => z.name), ['sh-a', 'sh-b', 'hz-a', 'sz-a']);
    t.is(report.zones.reduce((n, z) => n + z.cells, 0), 64);
    t.true(report.zones.every((z) => z.status === 'up'));
    t.deepEqual(report.cellsAwayFromHome, []);
    t.is(report.cells.length, 64);
    t.true(Array.isArray(report.gateways));

    const statusText = await cellctl(['status', ...store.flags()]);
    t.is(statusText.code, 0);
    t.regex(statusText.stdout, /ZONE\s+REGION\s+CITY\s+STATUS/);
    t.regex(statusText.stdout, /every cell is at home/);
  });
}

test('validate accepts the demo topology and refuses every malformed one with exit 3 and the key path', async (t) => {
  const ok = await cellctl(['validate', join(__dirname, '..', '..', 'config', 'demo-topology.yaml')]);
  t.is(ok.code, 0, ok.stderr);
  t.regex(ok.stdout, /valid topology "demo" \(64 cells, 8 zones/);
  t.true(MALFORMED_TOPOLOGIES.length >= 10);
  for (const [i, bad] of MALFORMED_TOPOLOGIES.entries()) {
    const path = join(world.dir, `bad-${i}.yaml`);
    await writeFile(path, bad.yaml);
    const r = await cellctl(['validate', path]);
    t.is(r.code, 3, `${bad.name}: exit 3`);
    t.true(r.stderr.includes(bad.path), `${bad.name}: names ${bad.path} in: ${r.stderr}`);
  }
});

test('usage errors exit 2 with a message', async (t) => {
  const cases: [string[], RegExp][] = [
    [['frobnicate'], /unknown command/],
    [['route', 'alice'], /no store/],
    [['route', '--file', 'x', '--bogus'], /unknown flag --bogus/],
    [['validate'], /exactly one FILE/],
    [['validate', join(world.dir, 'missing.yaml')], /cannot read/],
    [['init', '--file', join(world.dir, 'y.json')], /--topology/],
    [['route', '--file', join(world.dir, 'table.json')], /as arguments or --stdin/],
    [['route', 'a\u0001b', '--file', join(world.dir, 'table.json')], /bad user id/],
  ];
  for (const [args, message] of cases) {
    const r = await cellctl(args);
    t.is(r.code, 2, `${args.join(' ')} exits 2`);
    t.regex(r.stderr, message);
  }
  const help = await cellctl(['--help']);
  t.is(help.code, 0);
  t.regex(help.stdout, /Commands:/);
  const routeHelp = await cellctl(['route', '--help']);
  t.is(routeHelp.code, 0);
  t.regex(routeHelp.stdout, /Examples:/);
});

test('a store without a table: route exits 1 saying to run init; --json errors are JSON', async (t) => {
  const r = await cellctl(['route', 'alice', '--file', join(world.dir, 'empty.json')]);
  t.is(r.code, 1);
  t.regex(r.stderr, /cellctl init/);
  const j = await cellctl(['status', '--json', '--file', join(world.dir, 'empty.json')]);
  t.is(j.code, 1);
  t.is((JSON.parse(j.stdout) as { error: string }).error, 'NOT_INITIALIZED');
});
