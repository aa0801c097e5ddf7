// The table checksum lets gateways prove they hold the same table: it must not depend on key
// order or whitespace, and must change with any change of content.
import test from 'ava';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { canonicalJson, tableChecksum } from '../src/cells/checksum';
import { parseTableJson, validateTable } from '../src/cells/table';
import { tableFromTopologyText } from '../src/cells/topology';
import type { RoutingTable } from '../src/cells/types';

const DEMO = tableFromTopologyText(readFileSync(join(__dirname, '..', '..', 'config', 'demo-topology.yaml'), 'utf8'));

type Doc = any;

/** The same value with every object's keys in reverse order. */
function reversedKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(reversedKeys);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(Object.keys(value).reverse().map((k) => [k, reversedKeys((value as Record<string, unknown>)[k])]));
}

function edited(change: (doc: Doc) => void): RoutingTable {
  const doc = structuredClone(DEMO) as Doc;
  change(doc);
  return validateTable(doc);
}

test('the checksum is sha256: and 32 hex digits', (t) => {
  t.regex(tableChecksum(DEMO), /^sha256:[0-9a-f]{32}$/);
});

test('key order and whitespace do not change the checksum', (t) => {
  const reordered = validateTable(reversedKeys(DEMO));
  t.not(JSON.stringify(reordered), JSON.stringify(DEMO), 'the serialisations really differ');
  t.is(tableChecksum(reordered), tableChecksum(DEMO));
  t.is(canonicalJson(reordered), canonicalJson(DEMO));
  t.is(tableChecksum(parseTableJson(JSON.stringify(DEMO, null, 4))), tableChecksum(DEMO));
});

test('keys holding undefined do not count', (t) => {
  t.is(tableChecksum(edited((d) => { d.cells[0].movingTo = undefined; })), tableChecksum(DEMO));
});

test('building the same topology again gives the same checksum', (t) => {
  const again = tableFromTopologyText(readFileSync(join(__dirname, '..', '..', 'config', 'demo-topology.yaml'), 'utf8'));
  t.is(tableChecksum(again), tableChecksum(DEMO));
});

test('any change of content changes the checksum', (t) => {
  const changes: Record<string, (d: Doc) => void> = {
    'an epoch': (d) => { d.cells[0].epoch += 1; },
    'a cell zone': (d) => { d.cells[0].zone = 'sh-b'; },
    'a zone status': (d) => { d.zones[3].status = 'draining'; },
    'a capacity': (d) => { d.zones[3].capacity = 99; },
    'an upstream': (d) => { d.zones[0].upstreams = ['http://127.0.0.1:7101']; },
    'a freeze': (d) => Object.assign(d.cells[1], { state: 'frozen', frozenUntilMs: 1 }),
    'an override': (d) => { d.overrides['vip-0002'] = 'c01'; },
    'a point count': (d) => { d.ring.pointCounts.c00 += 1; },
    'the global zone': (d) => { d.global.zone = 'sz-a'; },
    'the name': (d) => { d.name = 'demo2'; },
    'the order of zones': (d) => { d.zones.reverse(); },
  };
  const seen = new Set([tableChecksum(DEMO)]);
  for (const [what, change] of Object.entries(changes)) {
    const sum = tableChecksum(edited(change));
    t.false(seen.has(sum), `changing ${what} must change the checksum`);
    seen.add(sum);
  }
});

test('canonical JSON sorts keys at every depth and keeps array order', (t) => {
  t.is(canonicalJson({ b: [2, 1, { d: 1, c: null }], a: 'x' }), '{"a":"x","b":[2,1,{"c":null,"d":1}]}');
});
