// Routing-table documents as the stores hold them: a bad one is refused with the path of
// every bad key (and never applied); a good one comes back deep-frozen.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tableChecksum } from '../src/cells/checksum';
import { parseTableJson, validateTable, versioned } from '../src/cells/table';
import { tableFromTopologyText } from '../src/cells/topology';
import type { RoutingTable } from '../src/cells/types';
import { isCellgateError } from '../src/errors';

const DEMO = tableFromTopologyText(readFileSync(join(__dirname, '..', '..', 'config', 'demo-topology.yaml'), 'utf8'));

// The tests edit plain JSON copies of the demo table.
type Doc = any;

function edited(change: (doc: Doc) => void): Doc {
  const doc = structuredClone(DEMO) as Doc;
  change(doc);
  return doc;
}

const REFUSED: readonly { name: string; change: (doc: Doc) => void; path: string }[] = [
  { name: 'unknown top-level key', change: (d) => { d.extra = 1; }, path: 'extra' },
  { name: 'unknown cell key', change: (d) => { d.cells[3].colour = 'red'; }, path: 'cells[3].colour' },
  { name: 'unknown zone key', change: (d) => { d.zones[2].weight = 3; }, path: 'zones[2].weight' },
  { name: 'cell on a missing zone', change: (d) => { d.cells[0].zone = 'nowhere'; }, path: 'cells[0].zone' },
  { name: 'cell homed on a missing zone', change: (d) => { d.cells[1].home = 'nowhere'; }, path: 'cells[1].home' },
  { name: 'frozen cell without frozenUntilMs', change: (d) => { d.cells[2].state = 'frozen'; }, path: 'cells[2].frozenUntilMs' },
  { name: 'active cell with frozenUntilMs', change: (d) => { d.cells[2].frozenUntilMs = 5; }, path: 'cells[2].frozenUntilMs' },
  { name: 'unknown cell state', change: (d) => { d.cells[4].state = 'melting'; }, path: 'cells[4].state' },
  { name: 'negative epoch', change: (d) => { d.cells[0].epoch = -1; }, path: 'cells[0].epoch' },
  { name: 'fractional epoch', change: (d) => { d.cells[0].epoch = 1.5; }, path: 'cells[0].epoch' },
  { name: 'movingTo a missing zone', change: (d) => { d.cells[5].movingTo = 'nowhere'; }, path: 'cells[5].movingTo' },
  { name: 'duplicate cell name', change: (d) => { d.cells[1].name = 'c00'; }, path: 'cells[1].name' },
  { name: 'cell named global', change: (d) => { d.cells.push({ ...d.cells[0], name: 'global' }); d.ring.pointCounts.global = 16; }, path: 'cells' },
  { name: 'no cells', change: (d) => { d.cells = []; d.ring.pointCounts = {}; d.overrides = {}; }, path: 'cells' },
  { name: 'duplicate zone name', change: (d) => { d.zones[1].name = 'sh-a'; }, path: 'zones[1].name' },
  { name: 'zone without status', change: (d) => { delete d.zones[0].status; }, path: 'zones[0].status' },
  { name: 'zone with a non-http upstream', change: (d) => { d.zones[0].upstreams = ['tcp://1.2.3.4']; }, path: 'zones[0].upstreams[0]' },
  { name: 'zone without an upstreams list', change: (d) => { delete d.zones[0].upstreams; }, path: 'zones[0].upstreams' },
  { name: 'service without an upstreams list', change: (d) => { d.zones[2].services = { orders: {} }; }, path: 'zones[2].services.orders.upstreams' },
  { name: 'service named default', change: (d) => { d.zones[2].services = { default: { upstreams: [] } }; }, path: 'zones[2].services.default' },
  { name: 'bad service name', change: (d) => { d.zones[2].services = { '-orders': { upstreams: [] } }; }, path: 'zones[2].services["-orders"]' },
  { name: 'service upstream with a path', change: (d) => { d.zones[2].services = { orders: { upstreams: ['http://10.0.0.1:80/orders'] } }; }, path: 'zones[2].services.orders.upstreams[0]' },
  { name: 'metadata service upstream', change: (d) => { d.zones[2].services = { orders: { upstreams: ['http://10.0.0.1:80', 'http://169.254.169.254'] } }; }, path: 'zones[2].services.orders.upstreams[1]' },
  { name: 'duplicate service upstream', change: (d) => { d.zones[2].services = { orders: { upstreams: ['http://10.0.0.1:80', 'http://10.0.0.1:80'] } }; }, path: 'zones[2].services.orders.upstreams[1]' },
  { name: 'bad ring.pointCounts value', change: (d) => { d.ring.pointCounts.c05 = 0; }, path: 'ring.pointCounts.c05' },
  { name: 'cell missing from ring.pointCounts', change: (d) => { delete d.ring.pointCounts.c05; }, path: 'ring.pointCounts.c05' },
  { name: 'ring.pointCounts for an unknown cell', change: (d) => { d.ring.pointCounts.zz = 16; }, path: 'ring.pointCounts.zz' },
  { name: 'ring.pointCounts not a map', change: (d) => { d.ring.pointCounts = [1, 2]; }, path: 'ring.pointCounts' },
  { name: 'wrong ring.range', change: (d) => { d.ring.range = 100003; }, path: 'ring.range' },
  { name: 'bad ring.pointsPerCell', change: (d) => { d.ring.pointsPerCell = 0; }, path: 'ring.pointsPerCell' },
  { name: 'override to a missing cell', change: (d) => { d.overrides['vip-0001'] = 'c99'; }, path: 'overrides["vip-0001"]' },
  { name: 'override key too long', change: (d) => { d.overrides['u'.repeat(300)] = 'c01'; }, path: `overrides.${'u'.repeat(300)}` },
  { name: 'global with another name', change: (d) => { d.global.name = 'gzone'; }, path: 'global.name' },
  { name: 'global on a missing zone', change: (d) => { d.global.zone = 'nowhere'; }, path: 'global.zone' },
  { name: 'format 2', change: (d) => { d.format = 2; }, path: 'format' },
  { name: 'missing name', change: (d) => { delete d.name; }, path: 'name' },
  { name: 'upstream URL with a path', change: (d) => { d.zones[1].upstreams = ['http://10.0.0.1:80/base']; }, path: 'zones[1].upstreams[0]' },
  { name: 'upstream URL with a query', change: (d) => { d.zones[1].upstreams = ['http://10.0.0.1:80/?x=1']; }, path: 'zones[1].upstreams[0]' },
  { name: 'upstream URL with userinfo', change: (d) => { d.zones[1].upstreams = ['http://u@10.0.0.1:80']; }, path: 'zones[1].upstreams[0]' },
  { name: 'metadata upstream', change: (d) => { d.zones[2].upstreams = ['http://169.254.169.254']; }, path: 'zones[2].upstreams[0]' },
  { name: 'AWS IPv6 metadata upstream', change: (d) => { d.zones[2].upstreams = ['http://[fd00:ec2::254]']; }, path: 'zones[2].upstreams[0]' },
  { name: 'allowLinkLocal not a boolean', change: (d) => { d.allowLinkLocal = 'yes'; }, path: 'allowLinkLocal' },
  { name: 'infinite capacity', change: (d) => { d.zones[0].capacity = Infinity; }, path: 'zones[0].capacity' },
];

for (const bad of REFUSED) {
  test(`refused: ${bad.name} (${bad.path})`, (t) => {
    const err = t.throws(() => validateTable(edited(bad.change)));
    t.true(isCellgateError(err, 'INVALID_TABLE'), String(err));
    t.is((err as { code?: string }).code, 'CG_ERR_INVALID_TABLE');
    t.true(err!.message.includes(`${bad.path}: `), `message should name ${bad.path}: ${err!.message}`);
  });
}

test('a document that is not an object is refused at the root', (t) => {
  for (const doc of [null, [], 'table', 42]) {
    const err = t.throws(() => validateTable(doc));
    t.true(isCellgateError(err, 'INVALID_TABLE'));
    t.regex(err!.message, /\(root\): must be an object/);
  }
});

test('a valid document comes back as an equal, deep-frozen copy', (t) => {
  const doc = edited(() => undefined);
  const table = validateTable(doc);
  t.deepEqual(table, DEMO);
  t.not(table as unknown, doc);
  const frozen = [table, table.ring, table.ring.pointCounts, table.zones, table.zones[0], table.zones[0].upstreams,
    table.cells, table.cells[0], table.global, table.overrides];
  for (const part of frozen) t.true(Object.isFrozen(part));
  t.throws(() => { (table.cells[0] as { epoch: number }).epoch = 9; }, { instanceOf: TypeError });
  t.throws(() => { (table.zones as unknown as unknown[]).push({}); }, { instanceOf: TypeError });
  // The copy does not follow later edits of the input.
  doc.cells[0].epoch = 42;
  t.is(table.cells[0].epoch, 1);
});

test('a frozen cell with a deadline and a target zone is valid', (t) => {
  const table = validateTable(edited((d) => {
    Object.assign(d.cells[2], { state: 'frozen', frozenUntilMs: 1_700_000_000_000, movingTo: 'sz-a' });
  }));
  t.like(table.cells[2], { state: 'frozen', frozenUntilMs: 1_700_000_000_000, movingTo: 'sz-a' });
});

test('parseTableJson refuses text that is not JSON', (t) => {
  for (const text of ['', '{', 'name: demo', '{"format":1,}']) {
    const err = t.throws(() => parseTableJson(text));
    t.true(isCellgateError(err, 'INVALID_TABLE'));
    t.regex(err!.message, /not JSON/);
  }
});

test('parseTableJson validates what it parses', (t) => {
  t.deepEqual(parseTableJson(JSON.stringify(DEMO, null, 2)), DEMO);
  const err = t.throws(() => parseTableJson(JSON.stringify(edited((d) => { d.cells[0].zone = 'x'; }))));
  t.regex(err!.message, /cells\[0\]\.zone: /);
});

test('versioned() pairs a table with its version and checksum', (t) => {
  const vt = versioned(DEMO as RoutingTable, 7);
  t.is(vt.version, 7);
  t.is(vt.table, DEMO);
  t.is(vt.checksum, tableChecksum(DEMO));
  t.true(Object.isFrozen(vt));
});

test('link-local upstreams are accepted only when the table opts in, and the opt-in is part of the checksum', (t) => {
  const doc = edited((d) => { d.zones[2].upstreams = ['http://169.254.10.20:8080', 'http://[fe80::1]:80']; d.allowLinkLocal = true; });
  const table = validateTable(doc);
  t.is(table.allowLinkLocal, true);
  t.deepEqual(table.zones[2]!.upstreams, ['http://169.254.10.20:8080', 'http://[fe80::1]:80']);
  const plain = validateTable(edited((d) => { d.allowLinkLocal = false; }));
  t.not(tableChecksum(plain), tableChecksum(DEMO), 'an explicit flag is part of the document');
  t.is(tableChecksum(validateTable(structuredClone(DEMO))), tableChecksum(DEMO), 'absent by default: existing tables keep their checksum');
  const err = t.throws(() => validateTable(edited((d) => { d.zones[2].upstreams = ['http://169.254.10.20:8080']; })));
  t.regex(err!.message, /zones\[2\]\.upstreams\[0\]: "http:\/\/169\.254\.10\.20:8080" is a link-local or cloud-metadata address/);
  const path = t.throws(() => validateTable(edited((d) => { d.allowLinkLocal = true; d.zones[2].upstreams = ['http://h:1/base']; })));
  t.regex(path!.message, /without a path \(got "\/base"\)/, 'the opt-in allows addresses, not paths');
});

test('capacity .inf is reported as Infinity, not null', (t) => {
  const err = t.throws(() => validateTable(edited((d) => { d.zones[0].capacity = Infinity; })));
  t.regex(err!.message, /zones\[0\]\.capacity: must be a finite number >= 0, got Infinity/);
});
