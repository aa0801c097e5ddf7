// Topology file -> first routing table: refusals name the offending key, valid files build
// a table whose cell homes follow zone capacity.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Problem } from '../src/cells/check';
import { tableChecksum } from '../src/cells/checksum';
import { isLinkLocalOrMetadata } from '../src/cells/check';
import { tableServices, zoneServices } from '../src/cells/services';
import { MAX_DOCUMENT_BYTES, assignHomes, parseTopology, tableFromTopologyText } from '../src/cells/topology';
import type { RoutingTable, Zone } from '../src/cells/types';
import { isCellgateError } from '../src/errors';
import { MALFORMED_TOPOLOGIES } from './helpers/malformed-topologies';

const DEMO_TOPOLOGY = join(__dirname, '..', '..', 'config', 'demo-topology.yaml');

function zoneLine(name: string, capacity: number, extra = ''): string {
  return `  - { name: ${name}, region: east, city: shanghai, capacity: ${capacity}, upstreams: ["http://127.0.0.1:7001"]${extra} }`;
}

function homeCounts(table: RoutingTable): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const z of table.zones) counts[z.name] = 0;
  for (const c of table.cells) counts[c.home] += 1;
  return counts;
}

test('the list of malformed topologies is long enough and each has a distinct name', (t) => {
  t.true(MALFORMED_TOPOLOGIES.length >= 12);
  t.is(new Set(MALFORMED_TOPOLOGIES.map((m) => m.name)).size, MALFORMED_TOPOLOGIES.length);
});

for (const bad of MALFORMED_TOPOLOGIES) {
  test(`refused: ${bad.name} (${bad.path})`, (t) => {
    const err = t.throws(() => tableFromTopologyText(bad.yaml));
    t.true(isCellgateError(err, 'INVALID_TOPOLOGY'), String(err));
    t.is((err as { code?: string }).code, 'CG_ERR_INVALID_TOPOLOGY');
    t.true(err!.message.includes(`${bad.path}: `), `message should name ${bad.path}: ${err!.message}`);
    const paths = ((err as { detail?: Problem[] }).detail ?? []).map((p) => p.path);
    t.true(paths.includes(bad.path), `detail paths ${JSON.stringify(paths)}`);
  });
}

test('every problem of a document is reported at once', (t) => {
  const yaml = `name: two-faults\ncells: 0\nfoo: 1\nzones:\n${zoneLine('sh-a', 100)}\n`;
  const err = t.throws(() => tableFromTopologyText(yaml));
  t.regex(err!.message, /cells: /);
  t.regex(err!.message, /foo: unknown key/);
});

test('a broken YAML document names the line', (t) => {
  const err = t.throws(() => tableFromTopologyText('name: a\nname: b\ncells: 4\n'));
  t.regex(err!.message, /\(document\): .*line 2/);
});

test('the demo topology builds a valid, frozen table', (t) => {
  const table = tableFromTopologyText(readFileSync(DEMO_TOPOLOGY, 'utf8'));
  t.is(table.format, 1);
  t.is(table.name, 'demo');
  t.is(table.zones.length, 8);
  t.is(table.cells.length, 64);
  t.deepEqual(table.cells.map((c) => c.name), Array.from({ length: 64 }, (_, i) => `c${String(i).padStart(2, '0')}`));
  for (const cell of table.cells) {
    t.is(cell.zone, cell.home);
    t.is(cell.epoch, 1);
    t.is(cell.state, 'active');
    t.is(cell.frozenUntilMs, undefined);
  }
  // Eight zones of equal capacity: eight cells each.
  t.deepEqual(Object.values(homeCounts(table)), Array(8).fill(8));
  t.like(table.global, { name: 'global', home: 'sh-a', zone: 'sh-a', epoch: 1, state: 'active' });
  t.deepEqual(table.overrides, { 'vip-0001': 'c07' });
  t.true(table.zones.every((z) => z.status === 'up'));
  t.deepEqual(Object.keys(table.ring.pointCounts).sort(), table.cells.map((c) => c.name));
  t.true(Object.isFrozen(table) && Object.isFrozen(table.cells[0]) && Object.isFrozen(table.zones[0].upstreams));
});

test('building the same topology twice gives the same table', (t) => {
  const text = readFileSync(DEMO_TOPOLOGY, 'utf8');
  const a = tableFromTopologyText(text);
  const b = tableFromTopologyText(text);
  t.deepEqual(a, b);
  t.is(tableChecksum(a), tableChecksum(b));
});

test('homes are spread by capacity, interleaved; a zone of capacity 0 gets none', (t) => {
  const yaml = [
    'name: weighted', 'cells: 40', 'zones:',
    zoneLine('z1', 100), zoneLine('z2', 100), zoneLine('z3', 200), zoneLine('spare', 0),
  ].join('\n');
  const table = tableFromTopologyText(yaml);
  t.deepEqual(homeCounts(table), { z1: 10, z2: 10, z3: 20, spare: 0 });
  // Interleaved: every prefix of the cell list holds each zone's share to within one cell,
  // so a zone's cells are not one block of names.
  const share: Record<string, number> = { z1: 0.25, z2: 0.25, z3: 0.5 };
  const seen: Record<string, number> = { z1: 0, z2: 0, z3: 0 };
  table.cells.forEach((cell, i) => {
    seen[cell.home] += 1;
    for (const z of Object.keys(share)) {
      t.true(Math.abs(seen[z] - (i + 1) * share[z]) <= 1, `after ${i + 1} cells ${z} has ${seen[z]}`);
    }
  });
  t.is(table.zones.find((z) => z.name === 'spare')?.status, 'up');
});

test('assignHomes follows capacity for uneven counts', (t) => {
  const zones = [
    { name: 'a', capacity: 3 }, { name: 'b', capacity: 1 },
  ] as unknown as Zone[];
  const homes = assignHomes(Array.from({ length: 12 }, (_, i) => `x${i}`), zones);
  t.is(homes.filter((h) => h === 'a').length, 9);
  t.is(homes.filter((h) => h === 'b').length, 3);
});

test('cells may be a list of names', (t) => {
  const table = tableFromTopologyText(`name: listed\ncells: [a, b, c]\nzones:\n${zoneLine('sh-a', 1000)}\n`);
  t.deepEqual(table.cells.map((c) => c.name), ['a', 'b', 'c']);
  t.deepEqual(Object.keys(table.ring.pointCounts).sort(), ['a', 'b', 'c']);
});

test('cell names widen with the count', (t) => {
  const names = (n: number) => tableFromTopologyText(`name: w\ncells: ${n}\nzones:\n${zoneLine('sh-a', 1000)}\n`).cells.map((c) => c.name);
  t.deepEqual(names(3), ['c00', 'c01', 'c02']);
  const wide = names(101);
  t.is(wide[0], 'c000');
  t.is(wide[100], 'c100');
});

test('global defaults to the first zone; status defaults to up; an explicit status is kept', (t) => {
  const yaml = ['name: defaults', 'cells: 4', 'zones:', zoneLine('first', 10), zoneLine('second', 10, ', status: draining')].join('\n');
  const table = tableFromTopologyText(yaml);
  t.is(table.global.zone, 'first');
  t.is(table.global.home, 'first');
  t.deepEqual(table.zones.map((z) => z.status), ['up', 'draining']);
  t.deepEqual(table.overrides, {});
});

test('JSON is accepted as topology text', (t) => {
  const topo = parseTopology(JSON.stringify({
    name: 'json', cells: 2, zones: [{ name: 'z', region: 'r', city: 'c', capacity: 10, upstreams: ['https://example.test'] }],
  }));
  t.deepEqual(topo.cells, ['c00', 'c01']);
  t.is(topo.global, 'z');
});

test('link-local and cloud-metadata upstream hosts, in every spelling the URL parser accepts', (t) => {
  const host = (u: string): string => new URL(u).hostname;
  for (const bad of [
    'http://169.254.169.254', 'http://169.254.0.1:8080', 'http://0xA9FEA9FE', 'http://2852039166', 'http://169.254.43518',
    'http://[fe80::1]', 'http://[FEBF:ffff::1]', 'http://[fd00:ec2::254]', 'http://[::ffff:169.254.169.254]',
    'http://[64:ff9b::169.254.169.254]', 'http://metadata.google.internal', 'http://METADATA.google.internal.', 'http://100.100.100.200',
  ]) t.true(isLinkLocalOrMetadata(host(bad)), bad);
  for (const good of [
    'http://127.0.0.1', 'http://10.0.0.1', 'http://169.253.255.255', 'http://169.255.0.1', 'http://[::1]', 'http://[fec0::1]',
    'http://[fd00:ec2::253]', 'http://[::ffff:10.0.0.1]', 'http://zone-a.internal', 'http://100.100.100.201',
  ]) t.false(isLinkLocalOrMetadata(host(good)), good);
});

test('allowLinkLocal: true in the topology lets upstreams be link-local; the table carries the opt-in', (t) => {
  const zones = `zones:\n  - { name: a, region: r, city: c, capacity: 10, upstreams: ["http://169.254.169.254:8080"] }\n`;
  t.throws(() => tableFromTopologyText(`name: ll\ncells: 2\n${zones}`), { message: /zones\[0\]\.upstreams\[0\]: .*link-local or cloud-metadata/ });
  const table = tableFromTopologyText(`name: ll\ncells: 2\nallowLinkLocal: true\n${zones}`);
  t.is(table.allowLinkLocal, true);
  t.is(tableFromTopologyText(`name: ll\ncells: 2\n${zones.replace('169.254.169.254', '127.0.0.1')}`).allowLinkLocal, undefined);
});

test('a topology over 16 MiB is refused before it is parsed', (t) => {
  const text = `name: big\n#${'x'.repeat(MAX_DOCUMENT_BYTES)}\n`;
  const err = t.throws(() => parseTopology(text));
  t.true(isCellgateError(err, 'INVALID_TOPOLOGY'));
  t.regex(err!.message, /\(document\): the topology is \d+ bytes, over the limit of 16777216 \(16 MiB\)/);
  const multiByte = `name: big\n#${'é'.repeat(MAX_DOCUMENT_BYTES / 2)}\n`; // fewer chars than the limit, more bytes
  t.regex(t.throws(() => parseTopology(multiByte))!.message, /over the limit/);
});

test('YAML cost is bounded: aliases capped, duplicate keys found in linear time with their line', (t) => {
  const laughs = ['a: &a [x, x, x, x, x, x, x, x, x]'];
  for (const [i, name] of ['b', 'c', 'd', 'e', 'f', 'g'].entries()) laughs.push(`${name}: &${name} [${Array(9).fill(`*${'abcdefg'[i]}`).join(', ')}]`);
  t.throws(() => parseTopology(laughs.join('\n') + '\n'), { message: /\(document\): broken YAML: Excessive alias count/ });
  // 100,000 pinned users: yaml's own unique-key check compares every pair (minutes); ours is one set.
  const users = Array.from({ length: 100_000 }, (_, i) => `  user-${i}: c${String(i % 4).padStart(2, '0')}`);
  const head = 'name: many\ncells: 4\nzones:\n  - { name: a, region: r, city: c, capacity: 10, upstreams: ["http://127.0.0.1:1"] }\noverrides:\n';
  const started = Date.now();
  t.is(Object.keys(parseTopology(head + users.join('\n') + '\n').overrides).length, 100_000);
  t.true(Date.now() - started < 60_000, `took ${Date.now() - started} ms`);
  const dup = t.throws(() => parseTopology(head + users.join('\n') + '\n  user-7: c01\n'));
  t.regex(dup!.message, /\(document\): broken YAML: Map keys must be unique: "user-7" again at line 100006/);
});

test('a topology without services builds the table it always did: no services key, the same checksum', (t) => {
  const table = tableFromTopologyText(readFileSync(DEMO_TOPOLOGY, 'utf8'));
  t.true(table.zones.every((z) => !('services' in z)));
  t.deepEqual(tableServices(table), ['default']);
  // Pinned: the demo table's checksum before services existed (a change here breaks stored tables' checksums).
  t.is(tableChecksum(table), 'sha256:4d6e6b2581b3554db4ecab399447e888');
});

test('the many-services example: services per zone, empty lists allowed, default is the plain upstreams', (t) => {
  const table = tableFromTopologyText(readFileSync(join(__dirname, '..', '..', 'examples', 'many-services.yaml'), 'utf8'));
  t.deepEqual(tableServices(table), ['default', 'catalog', 'orders', 'payments']);
  const [sha, shb, , szb] = table.zones;
  t.deepEqual(zoneServices(sha!, tableServices(table)).map((s) => [s.name, s.upstreams.length, s.healthPath]), [
    ['default', 1, '/healthz'], ['catalog', 1, '/healthz'], ['orders', 2, '/healthz'], ['payments', 1, '/pay/healthz'],
  ]);
  t.deepEqual(shb!.services!.catalog!.upstreams, []);
  t.deepEqual(szb!.upstreams, []);
  t.deepEqual(zoneServices(szb!, ['catalog'])[0], { name: 'catalog', upstreams: [], healthPath: '/' }, 'a service the zone does not list has no static endpoints');
  t.true(Object.isFrozen(sha!.services!.orders!.upstreams));
});

test('absent endpoint lists become empty ones: a zone may get every endpoint from the registry', (t) => {
  const yaml = ['name: bare', 'cells: 4', 'zones:', '  - { name: a, region: r, city: c, capacity: 10 }', '  - { name: b, region: r, city: c, capacity: 10, services: { orders: {} } }'].join('\n');
  const table = tableFromTopologyText(yaml);
  t.deepEqual(table.zones[0]!.upstreams, []);
  t.deepEqual(table.zones[1]!.services, { orders: { upstreams: [] } });
});

test('every bad service is reported at once, each with its key path', (t) => {
  const yaml = ['name: bad', 'cells: 4', 'zones:',
    '  - { name: a, region: r, city: c, capacity: 10, services: { default: { upstreams: [] }, orders: { upstreams: ["http://10.0.0.1/x"] } } }',
    '  - { name: b, region: r, city: c, capacity: 10, services: { "pay ments": { upstreams: [] }, orders: { upstreams: ["http://169.254.169.254"] } } }'].join('\n');
  const err = t.throws(() => tableFromTopologyText(yaml));
  const paths = ((err as { detail?: Problem[] }).detail ?? []).map((p) => p.path);
  t.deepEqual(paths.sort(), ['zones[0].services.default', 'zones[0].services.orders.upstreams[0]', 'zones[1].services["pay ments"]', 'zones[1].services.orders.upstreams[0]'].sort());
});
