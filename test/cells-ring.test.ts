// The user -> cell ring: identical in every process that holds the same table, balanced,
// and stable when cells are added or removed.
import test from 'ava';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { RoutingView } from '../src/cells/lookup';
import { CellRing, ringKey, ringLayoutKey } from '../src/cells/ring';
import { RING_RANGE, ringShares } from '../src/cells/ring-layout';
import { validateTable, versioned } from '../src/cells/table';
import { tableChecksum } from '../src/cells/checksum';
import { tableFromTopologyText } from '../src/cells/topology';
import type { RoutingTable } from '../src/cells/types';
import type { RingChildOutput } from './helpers/ring-child';

const run = promisify(execFile);
const DEMO_TOPOLOGY_PATH = join(__dirname, '..', '..', 'config', 'demo-topology.yaml');
const DEMO = tableFromTopologyText(readFileSync(DEMO_TOPOLOGY_PATH, 'utf8'));
const RING_CHILD = join(__dirname, 'helpers', 'ring-child.js');

const SEQUENTIAL_IDS = Array.from({ length: 200_000 }, (_, i) => String(i));
const RANDOM_IDS = Array.from({ length: 200_000 }, () => randomBytes(8).toString('hex'));

type Doc = any;

/** The table grown by one cell, as an operator's "add cell" would: existing layout kept, the new cell at pointsPerCell. */
function withAddedCell(table: RoutingTable, name: string): RoutingTable {
  const doc = structuredClone(table) as Doc;
  doc.cells.push({ name, home: table.zones[0].name, zone: table.zones[0].name, epoch: 1, state: 'active' });
  doc.ring.pointCounts[name] = table.ring.pointsPerCell;
  return validateTable(doc);
}

function withoutCell(table: RoutingTable, name: string): RoutingTable {
  const doc = structuredClone(table) as Doc;
  doc.cells = doc.cells.filter((c: { name: string }) => c.name !== name);
  delete doc.ring.pointCounts[name];
  return validateTable(doc);
}

function counts(ring: CellRing, ids: readonly string[]): Map<string, number> {
  const n = new Map<string, number>(ring.cells.map((c) => [c, 0]));
  for (const id of ids) n.set(ring.cellOf(id), (n.get(ring.cellOf(id)) ?? 0) + 1);
  return n;
}

test('two separate processes map users exactly as this one does', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'cellgate-ring-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const users = [
    ...Array.from({ length: 2000 }, (_, i) => String(i)),
    ...Array.from({ length: 2000 }, () => randomBytes(8).toString('hex')),
    ...Array.from({ length: 999 }, (_, i) => `用户-${i}-ü`),
    'vip-0001', // pinned in the table, but the ring itself does not know overrides
  ];
  t.is(users.length, 5000);
  const tablePath = join(dir, 'table.json');
  const usersPath = join(dir, 'users.txt');
  await writeFile(tablePath, JSON.stringify(DEMO));
  await writeFile(usersPath, users.map((u) => `${u}\n`).join(''));

  const outputs = await Promise.all([0, 1].map(async () => {
    const { stdout } = await run(process.execPath, [RING_CHILD, tablePath, usersPath, DEMO_TOPOLOGY_PATH], { timeout: 60_000 });
    return JSON.parse(stdout) as RingChildOutput;
  }));
  const ring = CellRing.build(DEMO);
  const mine = users.map((u) => ring.cellOf(u));
  t.not(outputs[0].pid, outputs[1].pid);
  for (const out of outputs) {
    t.is(out.checksum, tableChecksum(DEMO));
    t.deepEqual(out.cells, mine);
    t.is(out.fromTopology?.checksum, tableChecksum(DEMO));
    t.deepEqual(out.fromTopology?.cells, mine);
  }
  t.true(new Set(mine).size > 60, 'the users spread over the cells');
});

function balanceOf(ring: CellRing, ids: readonly string[]): { max: number; min: number } {
  const n = [...counts(ring, ids).values()];
  const mean = ids.length / ring.cells.length;
  return { max: Math.max(...n) / mean, min: Math.min(...n) / mean };
}

test('64 cells: sequential and random ids are balanced within 10 %', (t) => {
  const ring = CellRing.build(DEMO);
  t.is(ring.cells.length, 64);
  const sequential = balanceOf(ring, SEQUENTIAL_IDS);
  const random = balanceOf(ring, RANDOM_IDS);
  t.log(`sequential ids: max/mean ${sequential.max.toFixed(4)}, min/mean ${sequential.min.toFixed(4)}`);
  t.log(`random ids:     max/mean ${random.max.toFixed(4)}, min/mean ${random.min.toFixed(4)}`);
  t.true(sequential.max <= 1.10);
  t.true(random.max <= 1.10);
  t.true(sequential.min >= 0.90);
  t.true(random.min >= 0.90);
});

test('the balanced layout gives every cell its share of the ring within 5 %', (t) => {
  const cells = DEMO.cells.map((c) => c.name).sort();
  const shares = ringShares(cells, cells.map((c) => DEMO.ring.pointCounts[c]));
  const total = shares.reduce((a, b) => a + b, 0);
  t.true(Math.abs(total - 1) < 1e-9, `shares add up to ${total}`);
  const ratios = shares.map((s) => s * cells.length);
  t.log(`ring share / fair share: ${Math.min(...ratios).toFixed(4)} … ${Math.max(...ratios).toFixed(4)}`);
  for (const r of ratios) t.true(Math.abs(r - 1) <= 0.05, `share ratio ${r}`);
});

test('adding a cell moves about 1/(N+1) of users, all of them to the new cell', (t) => {
  const before = CellRing.build(DEMO);
  const grown = withAddedCell(DEMO, 'c64');
  t.is(grown.cells.length, 65);
  const after = CellRing.build(grown);
  let moved = 0;
  for (const id of [...SEQUENTIAL_IDS, ...RANDOM_IDS]) {
    const a = before.cellOf(id);
    const b = after.cellOf(id);
    if (a === b) continue;
    moved += 1;
    if (b !== 'c64') t.fail(`user ${id} moved between existing cells ${a} -> ${b}`);
  }
  const share = moved / (SEQUENTIAL_IDS.length + RANDOM_IDS.length);
  t.log(`moved share ${(share * 100).toFixed(3)} % (ideal ${(100 / 65).toFixed(3)} %, bar ${(125 / 65).toFixed(3)} %)`);
  t.true(moved > 0);
  t.true(share <= 1.25 / 65);
});

test('removing a cell moves only that cell\'s users', (t) => {
  const before = CellRing.build(DEMO);
  const after = CellRing.build(withoutCell(DEMO, 'c10'));
  let moved = 0;
  for (const id of RANDOM_IDS) {
    const a = before.cellOf(id);
    const b = after.cellOf(id);
    if (b === 'c10') t.fail(`user ${id} still on the removed cell`);
    if (a !== b) {
      moved += 1;
      if (a !== 'c10') t.fail(`user ${id} moved from ${a} to ${b} although ${a} stays`);
    }
  }
  t.is(moved, RANDOM_IDS.filter((id) => before.cellOf(id) === 'c10').length);
  t.true(moved > 0);
});

test('building the ring twice from the same table gives the same mapping', (t) => {
  const a = CellRing.build(DEMO);
  const b = CellRing.build(structuredClone(DEMO) as RoutingTable);
  t.not(a, b);
  t.deepEqual(RANDOM_IDS.slice(0, 20_000).map((u) => a.cellOf(u)), RANDOM_IDS.slice(0, 20_000).map((u) => b.cellOf(u)));
});

test('the ring does not depend on the order of cells in the table', (t) => {
  const doc = structuredClone(DEMO) as Doc;
  doc.cells.reverse();
  const a = CellRing.build(DEMO);
  const b = CellRing.build(validateTable(doc));
  t.deepEqual(SEQUENTIAL_IDS.slice(0, 20_000).map((u) => a.cellOf(u)), SEQUENTIAL_IDS.slice(0, 20_000).map((u) => b.cellOf(u)));
});

test('tables that differ only in zones share one ring; a different layout gets its own', (t) => {
  const downed = structuredClone(DEMO) as Doc;
  downed.zones[1].status = 'down';
  downed.cells[3].zone = 'sz-a';
  downed.cells[3].epoch = 2;
  const other = validateTable(downed);
  t.is(ringLayoutKey(DEMO), ringLayoutKey(other));
  const ringOf = (v: RoutingView) => (v as unknown as { cellRing: CellRing }).cellRing;
  const v1 = new RoutingView(versioned(DEMO, 1));
  t.true(ringOf(v1) instanceof CellRing, 'the view holds its ring where this test looks');
  const v2 = new RoutingView(versioned(other, 2));
  t.is(ringOf(v1), ringOf(v2));
  const grown = withAddedCell(DEMO, 'c64');
  t.not(ringLayoutKey(grown), ringLayoutKey(DEMO));
  t.not(ringOf(new RoutingView(versioned(grown, 3))), ringOf(v1));
});

test('ring keys are six 4-bit characters', (t) => {
  for (const id of ['', '0', 'user-1', '用户', 'x'.repeat(256)]) {
    const key = ringKey(id);
    t.is(key.length, 6);
    for (let i = 0; i < 6; i++) t.true(key.charCodeAt(i) < 16);
  }
  t.is(RING_RANGE, 2 ** 29);
});
