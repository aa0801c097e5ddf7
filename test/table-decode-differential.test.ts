// Differential checks of the cheap decode path (issue 15) against the plain definitions, over
// many random versions of a table: seeded random edits (valid and invalid), documents with
// shuffled key order, decoded one after the other as a watch decodes them. For every version:
//  - the decoder accepts exactly what validateTable accepts, and refuses with the same message;
//  - what it accepts is deep-equal to validateTable's table and deep-frozen;
//  - every checksum (the decoder's, tableChecksum, a TableChecksummer's) is the SHA-256 of the
//    canonical text as first defined: keys sorted at every depth, no spaces, undefined skipped
//    (referenceCanonical below, written independently of src/cells/checksum.ts);
//  - the routing view built from the previous one routes every cell as a fresh view does.
// A failure prints the seed and the step, so it can be replayed.
import test from 'ava';
import { createHash } from 'node:crypto';
import { tableChecksum, TableChecksummer } from '../src/cells/checksum';
import { RoutingView } from '../src/cells/lookup';
import { validateTable } from '../src/cells/table';
import { TableDecoder } from '../src/cells/table-decoder';
import type { RoutingTable, VersionedTable } from '../src/cells/types';
import { decodeTableValue, encodeTableValue } from '../src/store/table-encoding';
import { demoTable } from './helpers/fixtures';
import { prng } from './helpers/prng';

type Doc = any;

/** The canonical text by its definition: recursive, nothing remembered. */
function referenceCanonical(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(referenceCanonical).join(',')}]`;
  const obj = value as Record<string, unknown>;
  const members = Object.keys(obj).sort().filter((k) => obj[k] !== undefined).map((k) => `${JSON.stringify(k)}:${referenceCanonical(obj[k])}`);
  return `{${members.join(',')}}`;
}

function referenceChecksum(value: unknown): string {
  return 'sha256:' + createHash('sha256').update(referenceCanonical(value)).digest('hex').slice(0, 32);
}

interface Pick {
  int(n: number): number;
  of<T>(list: readonly T[]): T;
  chance(p: number): boolean;
}

function picker(random: () => number): Pick {
  return {
    int: (n) => Math.floor(random() * n),
    of: (list) => list[Math.floor(random() * list.length)]!,
    chance: (p) => random() < p,
  };
}

const maxEpoch = (d: Doc): number => Math.max(0, ...d.cells.map((c: Doc) => (typeof c.epoch === 'number' ? c.epoch : 0)), typeof d.global?.epoch === 'number' ? d.global.epoch : 0);

/** Edits that keep a document valid (most of the time: they do not check what they break). */
const VALID_EDITS: ((d: Doc, r: Pick) => void)[] = [
  (d, r) => {
    const c = r.of(d.cells) as Doc;
    c.zone = (r.of(d.zones) as Doc).name;
    c.epoch += 1;
    d.epochHighWater = Math.max(d.epochHighWater ?? 0, c.epoch);
  },
  (d, r) => {
    // A zone down: its cells move, as the planner moves them.
    const down = r.of(d.zones) as Doc;
    down.status = 'down';
    const others = d.zones.filter((z: Doc) => z !== down);
    for (const c of d.cells) if (c.zone === down.name) Object.assign(c, { zone: (r.of(others) as Doc).name, epoch: c.epoch + 1 });
    d.epochHighWater = Math.max(d.epochHighWater ?? 0, maxEpoch(d));
  },
  (d, r) => { (r.of(d.zones) as Doc).status = r.of(['up', 'draining', 'down']); },
  (d, r) => Object.assign(r.of(d.cells) as Doc, { state: 'frozen', frozenUntilMs: 1_000 + r.int(1e9), movingTo: (r.of(d.zones) as Doc).name }),
  (d, r) => {
    const c = r.of(d.cells) as Doc;
    c.state = 'active';
    delete c.frozenUntilMs;
    delete c.movingTo;
  },
  (d, r) => { (r.of(d.zones) as Doc).capacity = r.int(500); },
  (d, r) => { (r.of(d.zones) as Doc).upstreams = Array.from({ length: r.int(3) }, (_, i) => `http://127.0.0.1:${8000 + r.int(50) * 3 + i}`); },
  (d, r) => { (r.of(d.zones) as Doc).services = { orders: { upstreams: [`http://10.0.0.${1 + r.int(9)}:80`], ...(r.chance(0.5) ? { healthPath: '/ok' } : {}) } }; },
  (d, r) => { delete (r.of(d.zones) as Doc).services; },
  (d, r) => { (r.of(d.zones) as Doc).healthPath = r.of(['/healthz', '/', '/status/ok']); },
  (d, r) => Object.assign(d.global, { zone: (r.of(d.zones) as Doc).name, epoch: d.global.epoch + 1 }),
  (d, r) => { d.name = `demo-${r.int(5)}`; },
  (d, r) => { d.overrides[`user-${r.int(20)}`] = (r.of(d.cells) as Doc).name; },
  (d) => { d.overrides = {}; },
  (d, r) => {
    const [i, j] = [r.int(d.cells.length), r.int(d.cells.length)];
    [d.cells[i], d.cells[j]] = [d.cells[j], d.cells[i]];
  },
  (d, r) => {
    const name = `n${r.int(1000)}`;
    if (d.cells.some((c: Doc) => c.name === name)) return;
    d.cells.push({ ...(r.of(d.cells) as Doc), name });
    d.ring.pointCounts[name] = 1 + r.int(40);
  },
  (d, r) => {
    if (d.cells.length < 3) return;
    const [gone] = d.cells.splice(r.int(d.cells.length), 1);
    delete d.ring.pointCounts[gone.name];
    for (const [user, cell] of Object.entries(d.overrides)) if (cell === gone.name) delete d.overrides[user];
  },
  (d, r) => { d.ring.pointCounts[(r.of(d.cells) as Doc).name] = 1 + r.int(40); },
  (d, r) => { d.epochHighWater = maxEpoch(d) + r.int(3); },
  (d, r) => { d.allowLinkLocal = r.chance(0.5); },
  (d) => { delete d.allowLinkLocal; },
];

/** Edits that make a document invalid (or try to). */
const INVALID_EDITS: ((d: Doc, r: Pick) => void)[] = [
  (d, r) => { (r.of(d.cells) as Doc).colour = 'red'; },
  (d, r) => { (r.of(d.zones) as Doc).colour = 'red'; },
  (d) => { d.extra = 1; },
  (d, r) => { (r.of(d.cells) as Doc).zone = 'nowhere'; },
  (d, r) => { (r.of(d.cells) as Doc).home = 'nowhere'; },
  (d, r) => { (r.of(d.cells) as Doc).epoch = r.of([-1, 1.5, '3', null, { n: 1 }, [1]]); },
  (d, r) => { (r.of(d.cells) as Doc).state = r.of(['bogus', 1, null]); },
  (d, r) => { const c = r.of(d.cells) as Doc; c.state = 'frozen'; delete c.frozenUntilMs; },
  (d, r) => Object.assign(r.of(d.cells) as Doc, { state: 'active', frozenUntilMs: 5 }),
  (d, r) => { (r.of(d.cells) as Doc).movingTo = 'nowhere'; },
  (d, r) => { (r.of(d.zones) as Doc).upstreams = [r.of(['not a url', 'ftp://x', 'http://169.254.169.254', 'http://a/b', 'http://u:p@h', 'http://h?q'])]; },
  (d, r) => { const z = r.of(d.zones) as Doc; z.upstreams = [z.upstreams[0] ?? 'http://127.0.0.1:1', z.upstreams[0] ?? 'http://127.0.0.1:1']; },
  (d, r) => { (r.of(d.zones) as Doc).status = 'sideways'; },
  (d, r) => { (r.of(d.zones) as Doc).capacity = r.of([-1, Infinity, 'x']); },
  (d, r) => { (r.of(d.zones) as Doc).name = 'renamed'; },
  (d, r) => { (r.of(d.cells) as Doc).name = (r.of(d.cells) as Doc).name; },
  (d, r) => { d.cells[r.int(d.cells.length)] = r.of([null, [], 'c00', 7]); },
  (d, r) => { delete d.ring.pointCounts[(r.of(d.cells) as Doc).name]; },
  (d, r) => { d.ring.pointCounts[(r.of(d.cells) as Doc).name] = r.of([0, 1.5, 'x']); },
  (d) => { d.ring.range = 12; },
  (d) => { d.epochHighWater = 0; d.cells[0].epoch = maxEpoch(d) + 1; },
  (d) => { d.zones = []; },
  (d) => { d.cells = []; },
  (d) => { d.name = ''; },
  (d, r) => { d.overrides[`user-${r.int(5)}`] = 'no-such-cell'; },
  (d) => { d.global.name = 'c00'; },
  (d, r) => { (r.of(d.zones) as Doc).elastic = true; },
  (d, r) => { (r.of(d.zones) as Doc).services = { default: { upstreams: [] } }; },
  (d) => { d.allowLinkLocal = 'yes'; },
  (d, r) => { d.cells.push({ ...(r.of(d.cells) as Doc) }); },
];

/** The same value with every object's keys in a random order (JSON text as another writer might order it). */
function shuffledKeys(value: unknown, r: Pick): unknown {
  if (Array.isArray(value)) return value.map((v) => shuffledKeys(v, r));
  if (value === null || typeof value !== 'object') return value;
  const keys = Object.keys(value);
  for (let i = keys.length - 1; i > 0; i--) {
    const j = r.int(i + 1);
    [keys[i], keys[j]] = [keys[j]!, keys[i]!];
  }
  return Object.fromEntries(keys.map((k) => [k, shuffledKeys((value as Record<string, unknown>)[k], r)]));
}

function deeplyFrozen(value: unknown): boolean {
  if (value === null || typeof value !== 'object') return true;
  return Object.isFrozen(value) && Object.values(value).every(deeplyFrozen);
}

function verdict(run: () => VersionedTable | RoutingTable): { ok: true; table: RoutingTable; checksum?: string } | { ok: false; message: string } {
  try {
    const out = run();
    return 'version' in out ? { ok: true, table: out.table, checksum: out.checksum } : { ok: true, table: out };
  } catch (err) {
    return { ok: false, message: (err as Error).message };
  }
}

const SEEDS = 40;
const STEPS = 30;

test('random versions: the decoder accepts, refuses, copies and checksums exactly as the plain definitions do', (t) => {
  let accepted = 0;
  let refused = 0;
  let incremental = 0;
  for (let seed = 1; seed <= SEEDS; seed++) {
    const r = picker(prng(seed));
    const taking = new TableDecoder();
    const copying = new TableDecoder();
    const checksummer = new TableChecksummer();
    let good: Doc = JSON.parse(JSON.stringify(demoTable()));
    let view: RoutingView | null = null;
    for (let step = 0; step < STEPS; step++) {
      const at = `seed ${seed} step ${step}`;
      const doc: Doc = JSON.parse(JSON.stringify(good));
      for (let e = 1 + r.int(3); e > 0; e--) r.of(VALID_EDITS)(doc, r);
      if (r.chance(0.3)) r.of(INVALID_EDITS)(doc, r);
      const text = JSON.stringify(r.chance(0.3) ? shuffledKeys(doc, r) : doc);
      const full = verdict(() => validateTable(JSON.parse(text)));
      const taken = verdict(() => taking.decode(JSON.parse(text), step + 1, 'take'));
      const copied = verdict(() => copying.decode(JSON.parse(text), step + 1));
      if (!full.ok) {
        refused += 1;
        t.false(taken.ok, `${at}: refused by validateTable, accepted by the decoder`);
        t.false(copied.ok, `${at}: refused by validateTable, accepted by the decoder (copy)`);
        if (!taken.ok && !copied.ok) {
          t.is(taken.message, full.message, at);
          t.is(copied.message, full.message, at);
        }
        continue;
      }
      accepted += 1;
      if (taking.stats.incremental) incremental += 1;
      if (!taken.ok || !copied.ok) {
        t.fail(`${at}: accepted by validateTable, refused by the decoder: ${!taken.ok ? taken.message : ''} ${!copied.ok ? copied.message : ''}`);
        continue;
      }
      const expected = referenceChecksum(full.table);
      t.deepEqual(taken.table, full.table, at);
      t.deepEqual(copied.table, full.table, at);
      t.true(deeplyFrozen(taken.table) && deeplyFrozen(copied.table), `${at}: deep-frozen`);
      t.is(taken.checksum, expected, `${at}: the decoder's checksum`);
      t.is(copied.checksum, expected, `${at}: the decoder's checksum (copy)`);
      t.is(tableChecksum(full.table), expected, `${at}: tableChecksum`);
      t.is(tableChecksum(taken.table), expected, `${at}: tableChecksum of the decoded table`);
      t.is(checksummer.checksum(full.table), expected, `${at}: a checksummer fed unrelated copies`);
      const vt = { table: taken.table, version: step + 1, checksum: expected };
      view = new RoutingView(vt, view);
      const fresh = new RoutingView(vt);
      for (const c of taken.table.cells) t.deepEqual(view.routeCell(c.name, 0), fresh.routeCell(c.name, 0), `${at}: route of ${c.name}`);
      t.is(view.cellOfUser('user-7'), fresh.cellOfUser('user-7'), `${at}: the ring`);
      good = JSON.parse(text);
    }
  }
  t.log(`${accepted} versions accepted (${incremental} decoded incrementally), ${refused} refused`);
  t.true(accepted > SEEDS * STEPS * 0.5 && refused > SEEDS * 2 && incremental > accepted * 0.5, 'the random versions exercise both verdicts and the shortcut');
});

test('a TableChecksummer never reuses the text of an object that can still change', (t) => {
  const checksummer = new TableChecksummer();
  const table = JSON.parse(JSON.stringify(demoTable())) as Doc; // nothing frozen
  t.is(checksummer.checksum(table), referenceChecksum(table));
  table.cells[3].epoch += 1;
  table.zones[1].status = 'down';
  table.ring.pointCounts[table.cells[0].name] += 1;
  table.overrides['user-1'] = table.cells[1].name;
  t.is(checksummer.checksum(table), referenceChecksum(table), 'the same (mutable) table, changed in place');
  // Frozen at the top only: its cells' contents can still change.
  const shallow = Object.freeze({ ...table, cells: Object.freeze([...table.cells]) });
  t.is(checksummer.checksum(shallow), referenceChecksum(shallow));
  table.cells[5].zone = table.zones[0].name;
  t.is(checksummer.checksum(Object.freeze({ ...shallow })), referenceChecksum(shallow), 'a cell changed in place under a frozen list');
});

test('canonical text: odd values are written as the definition writes them', (t) => {
  const checksummer = new TableChecksummer();
  const odd = [
    { a: undefined, b: null, c: NaN, d: -0, e: Infinity, f: 'é\u2028"\\', g: true, '10': 1, '9': 2, '': 3 },
    { fn: () => 1, n: 1 },
    { toJSON: 'not a function', x: 1 },
    Object.assign(Object.create(null), { z: 1, a: 2 }),
    { date: new Date(0), boxed: Object('ab'), nested: { list: [undefined, () => 1, { y: 1, x: [] }] } },
  ];
  for (const value of odd) {
    const table = { cells: [value, { ...value }], zones: [value], global: value } as unknown as RoutingTable;
    t.is(tableChecksum(deepFrozenCopy(table)), referenceChecksum(table));
    t.is(checksummer.checksum(table), referenceChecksum(table));
  }
});

function deepFrozenCopy<T>(value: T): T {
  if (value === null || typeof value !== 'object' || value instanceof Date || typeof value === 'function') return value;
  if (Array.isArray(value)) return Object.freeze(value.map(deepFrozenCopy)) as T;
  const copy = Object.create(Object.getPrototypeOf(value)) as Record<string, unknown>;
  for (const k of Object.keys(value)) copy[k] = deepFrozenCopy((value as Record<string, unknown>)[k]);
  return Object.freeze(copy) as T;
}

test('a stored value decodes to what the plain path gives, and the watch does not keep the parsed document mutable', (t) => {
  const base = demoTable();
  const decoder = new TableDecoder();
  const first = decodeTableValue(encodeTableValue(base, 'deflate'), 'test', 1, decoder);
  const moved = JSON.parse(JSON.stringify(base)) as Doc;
  moved.cells[2].zone = moved.zones[3].name;
  moved.cells[2].epoch += 1;
  moved.epochHighWater = Math.max(moved.epochHighWater ?? 0, moved.cells[2].epoch);
  const second = decodeTableValue(encodeTableValue(moved, 'json'), 'test', 2, decoder);
  t.true(decoder.stats.incremental);
  t.deepEqual(first.table, validateTable(JSON.parse(JSON.stringify(base))));
  t.deepEqual(second.table, validateTable(moved));
  t.is(second.checksum, referenceChecksum(moved));
  t.true(deeplyFrozen(second.table));
  const err = t.throws(() => decodeTableValue(Buffer.from('{"format":1}'), 'test', 3, decoder));
  t.regex(err?.message ?? '', /test version 3: invalid routing table/);
});
