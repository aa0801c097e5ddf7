// The endpoint registry in the gateway: the pure merge (table + registry → effective table,
// same version and checksum), and a gateway over the memory store routing to registered
// instances as they come and go, without any table change.
import test from 'ava';
import { versioned } from '../src/cells/table';
import { DEFAULT_SERVICE, type VersionedTable } from '../src/cells/types';
import { MAX_REGISTERED_ENDPOINTS, registrySnapshotOf } from '../src/store/endpoint-record';
import { decodePresence } from '../src/store/presence-record';
import type { RegisteredEndpoint, RegistrySnapshot } from '../src/store/types';
import { MAX_SERVICES_PER_ZONE, RegistryMerger } from '../src/router/registry-merge';
import { ManualClock } from './helpers/manual-clock';
import { MemoryStore } from './helpers/memory-store';
import { startGateway, tableFor } from './helpers/router-fixture';
import { httpCall, startUpstreams, stopAll, type UpstreamAnswer } from './helpers/upstreams';
import { waitFor } from './store-contract';

function ep(zone: string, service: string, id: string, url: string): RegisteredEndpoint {
  return { zone, service, id, url, weight: 1, registeredAt: '2026-11-29T00:00:00.000Z' };
}

function snap(...endpoints: RegisteredEndpoint[]): RegistrySnapshot {
  return registrySnapshotOf(endpoints.map((endpoint) => ({ ok: true as const, endpoint })), 7);
}

function table(): VersionedTable {
  const t = tableFor([{ name: 'z1', upstreams: ['http://10.0.0.1:80'] }, { name: 'z2', upstreams: ['http://10.0.0.2:80'] }], { cells: 4 });
  return versioned(t, 5);
}

test('merge: registered endpoints join their zone and service after the static ones, de-duplicated; version and checksum stay the stored ones', (t) => {
  const vt = table();
  const m = new RegistryMerger().merge(vt, snap(
    ep('z1', DEFAULT_SERVICE, 'a', 'http://10.0.1.1:80'),
    ep('z1', DEFAULT_SERVICE, 'dup', 'http://10.0.0.1:80'),
    ep('z1', DEFAULT_SERVICE, 'dup-slash', 'http://10.0.0.1/'),
    ep('z1', DEFAULT_SERVICE, 'a-again', 'http://10.0.1.1'),
    ep('z1', 'orders', 'o1', 'http://10.0.1.2:80'),
    ep('z1', 'orders', 'o2', 'http://10.0.1.3:80'),
  ));
  t.is(m.effective.version, 5);
  t.is(m.effective.checksum, vt.checksum);
  const z1 = m.effective.table.zones.find((z) => z.name === 'z1')!;
  t.deepEqual(z1.upstreams, ['http://10.0.0.1:80', 'http://10.0.1.1:80']);
  t.deepEqual(z1.services?.orders?.upstreams, ['http://10.0.1.2:80', 'http://10.0.1.3:80']);
  t.is(m.effective.table.zones.find((z) => z.name === 'z2'), vt.table.zones.find((z) => z.name === 'z2'), 'an untouched zone is the stored object');
  t.deepEqual([...m.applied.get('z1')!], [[DEFAULT_SERVICE, 4], ['orders', 2]]);
  t.deepEqual(m.ignored, { unknown_zone: 0, url_refused: 0, too_many_services: 0 });
  t.is(new RegistryMerger().merge(vt, snap()).effective, vt, 'an empty registry is the stored table itself');
});

test('merge: unknown zones, link-local URLs (unless the table allows them) and services over the bound are ignored and counted', (t) => {
  const vt = table();
  const many = Array.from({ length: MAX_SERVICES_PER_ZONE + 2 }, (_, i) => ep('z2', `s${String(i).padStart(3, '0')}`, 'x', `http://10.2.${Math.floor(i / 250)}.${i % 250}:80`));
  const m = new RegistryMerger().merge(vt, snap(ep('nowhere', DEFAULT_SERVICE, 'a', 'http://10.0.1.1:80'), ep('z1', DEFAULT_SERVICE, 'meta', 'http://169.254.169.254'), ...many));
  t.deepEqual(m.ignored, { unknown_zone: 1, url_refused: 1, too_many_services: 2 });
  t.deepEqual(m.effective.table.zones.find((z) => z.name === 'z1')!.upstreams, ['http://10.0.0.1:80']);
  const allowed = versioned({ ...vt.table, allowLinkLocal: true }, 6);
  const m2 = new RegistryMerger().merge(allowed, snap(ep('z1', DEFAULT_SERVICE, 'meta', 'http://169.254.169.254')));
  t.deepEqual(m2.effective.table.zones.find((z) => z.name === 'z1')!.upstreams, ['http://10.0.0.1:80', 'http://169.254.169.254']);
});

test('merge: a zone whose registrations did not change keeps its effective object (its pools and routes are reused)', (t) => {
  const vt = table();
  const merger = new RegistryMerger();
  const first = merger.merge(vt, snap(ep('z1', 'orders', 'o1', 'http://10.0.1.2:80'), ep('z2', 'orders', 'o1', 'http://10.0.2.2:80')));
  const second = merger.merge(vt, snap(ep('z1', 'orders', 'o1', 'http://10.0.1.2:80'), ep('z2', 'orders', 'o2', 'http://10.0.2.3:80')));
  t.is(second.effective.table.zones[0], first.effective.table.zones[0], 'z1 unchanged: same object');
  t.not(second.effective.table.zones[1], first.effective.table.zones[1], 'z2 changed: a new object');
  t.deepEqual(second.effective.table.zones[1]!.services?.orders?.upstreams, ['http://10.0.2.3:80']);
});

test('a gateway routes to registered instances as they come and go; the table version never moves; presence and metrics say what it applied', async (t) => {
  const [a, b, c] = await startUpstreams('a', 'b', 'c');
  t.teardown(() => stopAll([a!, b!, c!]));
  const store = new MemoryStore(tableFor([{ name: 'z1', upstreams: [a!.url] }], { cells: 4 }));
  const g = await startGateway(t, store, { waitVersion: 1 });
  const hit = async () => (await httpCall(`${g.url}/x`, { headers: { 'x-user-id': 'u1' } })).json<UpstreamAnswer>().upstream;

  const rb = await store.registry.register({ zone: 'z1', service: DEFAULT_SERVICE, id: 'b', url: b!.url });
  await store.registry.register({ zone: 'z1', service: DEFAULT_SERVICE, id: 'same-as-static', url: a!.url });
  await store.registry.register({ zone: 'elsewhere', service: DEFAULT_SERVICE, id: 'c', url: c!.url });
  await waitFor('b in the pool', () => g.gw.view()?.zone('z1')?.upstreams.includes(b!.url) === true);
  const seen = new Set<string>();
  for (let i = 0; i < 6; i++) seen.add(await hit());
  t.deepEqual([...seen].sort(), ['a', 'b'], 'static and registered endpoints share the traffic; the duplicate is one endpoint');
  t.is(c!.received.length, 0, 'an endpoint of a zone not in the table gets nothing');
  t.is(g.gw.view()?.version, 1, 'registration is not a table change');
  t.is(g.gw.view()?.zone('z1')?.upstreams.length, 2);

  const metrics = (await httpCall(`${g.admin}/metrics`)).text();
  t.regex(metrics, /cellgate_registry_endpoints\{zone="z1",service="default"\} 2\n/);
  t.regex(metrics, /cellgate_registry_records_refused_total\{reason="unknown_zone"\} 1\n/);
  t.regex(metrics, /cellgate_routing_table_version 1\n/);
  await waitFor('the registry digest in presence', () => store.presence.records.get(g.gw.config.id)?.registry?.count === 3);
  t.is(store.presence.records.get(g.gw.config.id)?.appliedVersion, 1);

  await rb.close();
  await waitFor('b gone', () => g.gw.view()?.zone('z1')?.upstreams.includes(b!.url) === false);
  const before = b!.received.length;
  for (let i = 0; i < 4; i++) t.is(await hit(), 'a');
  t.is(b!.received.length, before, 'a withdrawn endpoint gets no more requests');

  // A malformed record is refused and counted, and routing carries on with the rest.
  store.registry.putRaw('z1/default/junk', 'not json');
  const deadline = Date.now() + 5_000;
  let text = '';
  while (!/reason="invalid"\} 1\n/.test(text) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
    text = (await httpCall(`${g.admin}/metrics`)).text();
  }
  t.regex(text, /cellgate_registry_records_refused_total\{reason="invalid"\} 1\n/);
  t.is(await hit(), 'a');
});

test('a presence record with a malformed registry digest is malformed, never trusted', (t) => {
  const now = new Date().toISOString();
  const base = { id: 'gw', zone: null, appliedVersion: 1, checksum: 'x', inFlight: 0, startedAt: now, updatedAt: now, pid: 1, host: 'h' };
  t.true(decodePresence({ ...base, registry: { count: 2, version: 7, checksum: 'sha256:ab' } }, 'gw').ok);
  for (const registry of [null, { count: -1, version: 0, checksum: 'c' }, { count: 1, version: 0 }, { count: 1, version: 0, checksum: 'x'.repeat(200) }]) {
    const d = decodePresence({ ...base, registry }, 'gw');
    t.false(d.ok, JSON.stringify(registry));
    if (!d.ok) t.regex(d.malformed.problem, /registry/);
  }
});

test('churn does not turn into presence writes: the registry digest is published at most every 5 s, the newest one', async (t) => {
  const [a] = await startUpstreams('a');
  t.teardown(() => stopAll([a!]));
  const store = new MemoryStore(tableFor([{ name: 'z1', upstreams: [a!.url] }], { cells: 4 }));
  const clock = new ManualClock(Date.now());
  const g = await startGateway(t, store, { waitVersion: 1, clock });
  const id = g.gw.config.id;
  await waitFor('the first digest', () => store.presence.records.get(id)?.registry !== undefined);
  const digests = () => store.presence.writes.filter((w) => w.id === id && w.registry).map((w) => w.registry!.count);
  const before = digests().length;
  for (let i = 0; i < 6; i++) {
    await store.registry.register({ zone: 'z1', service: DEFAULT_SERVICE, id: `i${i}`, url: `http://127.0.0.1:${20000 + i}` });
    await waitFor(`i${i} routed`, () => g.gw.view()?.zone('z1')?.upstreams.length === i + 2);
  }
  t.is(digests().length, before, 'six changes inside the interval: no presence write yet');
  clock.advance(5_000);
  await waitFor('the newest digest published', () => store.presence.records.get(id)?.registry?.count === 6);
  // Other presence writes (zone health from the probes the advance ran) carry the newest digest too;
  // no intermediate churn state was ever published.
  t.deepEqual([...new Set(digests().slice(before))], [6], 'only the newest registry is published');
});

test('over the registry bound, records of zones the gateway does not have never push out those it routes to; a table that adds a zone ranks them again', async (t) => {
  const [a, b, c] = await startUpstreams('a', 'b', 'c');
  t.teardown(() => stopAll([a!, b!, c!]));
  const base = tableFor([{ name: 'z1', upstreams: [a!.url] }], { cells: 4 });
  const store = new MemoryStore(base);
  // A flood under a zone no table has ("aaa" sorts before every real one), filling the bound.
  const doc = JSON.stringify({ url: 'http://10.9.9.9:80', weight: 1, registeredAt: new Date().toISOString() });
  for (let i = 0; i < MAX_REGISTERED_ENDPOINTS; i++) store.registry.putRaw(`aaa/default/x${String(i).padStart(5, '0')}`, doc);
  store.registry.putRaw('zz/default/c', JSON.stringify({ url: c!.url, weight: 1, registeredAt: new Date().toISOString() }));
  await store.registry.register({ zone: 'z1', service: DEFAULT_SERVICE, id: 'b', url: b!.url });
  const g = await startGateway(t, store, { waitVersion: 1 });
  await waitFor('b in z1', () => g.gw.view()?.zone('z1')?.upstreams.includes(b!.url) === true, 10_000);
  const metrics = async () => (await httpCall(`${g.admin}/metrics`)).text();
  // 10,002 records: b first, then 9,999 of the flood by key; the two left over (one of the flood, and
  // zz's: a zone this gateway does not have yet) are counted.
  t.regex(await metrics(), /cellgate_registry_records_refused_total\{reason="invalid"\} 2\n/);
  t.regex(await metrics(), /cellgate_registry_records_refused_total\{reason="unknown_zone"\} 9999\n/);

  // A table that adds zone zz: its record now goes before the flood's.
  const withZz = { ...base, zones: [...base.zones, { ...base.zones[0]!, name: 'zz', city: 'zz', upstreams: [] }] };
  store.publish(withZz);
  await waitFor('zz\'s registered endpoint routed', () => g.gw.view()?.zone('zz')?.upstreams.includes(c!.url) === true, 10_000);
  t.true(g.gw.view()?.zone('z1')?.upstreams.includes(b!.url));
});
