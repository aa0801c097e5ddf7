// Active zone probes (src/router/probes.ts): real upstreams, a real gateway over a MemoryStore.
// The gateway publishes per-zone health in its presence record, once per change (not per probe).
import test from 'ava';
import type { RoutingTable } from '../src/cells/types';
import { validateTable } from '../src/cells/table';
import { decodePresence } from '../src/store/presence-record';
import type { PresenceRecord } from '../src/store/types';
import { MemoryStore } from './helpers/memory-store';
import { startGateway, tableFor } from './helpers/router-fixture';
import { startUpstreams, stopAll } from './helpers/upstreams';
import { metricValue, until } from './helpers/wait';

function withHealthPath(table: RoutingTable, zone: string, healthPath: string): RoutingTable {
  const copy = structuredClone(table) as unknown as { zones: { name: string; healthPath?: string }[] };
  copy.zones.find((z) => z.name === zone)!.healthPath = healthPath;
  return copy as unknown as RoutingTable;
}

test('probes: a zone whose endpoints fail (refused, 5xx) turns unhealthy; published once per change, not per probe', async (t) => {
  const [a1, a2, b1] = await startUpstreams('a1', 'a2', 'b1');
  t.teardown(() => stopAll([a1!, a2!, b1!]));
  let bFails = false;
  b1!.probeBehave = (req, res) => {
    if (req.url !== '/hz' || !bFails) return false;
    res.writeHead(503).end();
    return true;
  };
  const table = withHealthPath(tableFor([{ name: 'a', upstreams: [a1!.url, a2!.url] }, { name: 'b', upstreams: [b1!.url] }]), 'b', '/hz');
  const store = new MemoryStore();
  await store.compareAndSwap(0, table);
  const { gw, admin } = await startGateway(t, store, { config: { probe: { intervalMs: 100, timeoutMs: 500 } }, waitVersion: 1 });
  const id = gw.config.id;
  const health = (): PresenceRecord['zoneHealth'] => store.presence.records.get(id)?.zoneHealth;

  await until('both zones published healthy', () => health()?.a?.endpointsUp === 2 && health()?.b?.healthy === true && health()?.a?.lastOk != null);
  t.true(b1!.probes.some((r) => r.url === '/hz' && r.method === 'GET'), 'zone b is probed on its healthPath');
  t.true(a1!.probes.some((r) => r.url === '/'), 'zone a on the default /');
  // Probes go on (several per endpoint), but the record is not rewritten while nothing changes.
  const writes = store.presence.writes.length;
  const probesBefore = b1!.probes.length;
  await until('several more probes of b', () => b1!.probes.length >= probesBefore + 5);
  t.is(store.presence.writes.length, writes, 'no presence write while zone health is unchanged');

  await a1!.stop();
  await until('zone a: one endpoint up of two', () => health()?.a?.endpointsUp === 1);
  t.true(health()!.a!.healthy);
  await a2!.stop();
  await until('zone a unhealthy', () => health()?.a?.healthy === false);
  t.is(health()!.a!.endpointsUp, 0);
  t.is(health()!.a!.endpointsTotal, 2);
  t.truthy(health()!.a!.failingSince);
  t.true(health()!.b!.healthy, 'the other zone stays healthy');

  bFails = true;
  await until('zone b unhealthy on 503', () => health()?.b?.healthy === false);
  const metrics = await (await fetch(`${admin}/metrics`)).text();
  t.true((metricValue(metrics, 'cellgate_probes_total{zone="b",service="default",result="failed"}') ?? 0) >= 1);
  t.is(metricValue(metrics, 'cellgate_probe_zone_healthy{zone="a"}'), 0);
  bFails = false;
  await until('zone b healthy again', () => health()?.b?.healthy === true);
  t.is(health()!.b!.failingSince, null);
  t.true(decodePresence(store.presence.records.get(id), id).ok, 'the published record validates');
});

test('presence validation: zoneHealth is optional, and a bad one makes the record malformed', (t) => {
  const base = { id: 'g', zone: 'a', appliedVersion: 1, checksum: 'x', inFlight: 0, startedAt: 't', updatedAt: 't', pid: 1, host: 'h' };
  t.true(decodePresence(base, 'g').ok);
  const good = { healthy: false, failingSince: '2026-01-01T00:00:00.000Z', lastOk: null, endpointsUp: 0, endpointsTotal: 2 };
  t.true(decodePresence({ ...base, zoneHealth: { a: good } }, 'g').ok);
  for (const bad of [[], { a: { ...good, healthy: 'no' } }, { a: { ...good, endpointsUp: 3 } }, { a: { ...good, failingSince: 'yesterday' } }, { a: null }]) {
    const d = decodePresence({ ...base, zoneHealth: bad }, 'g');
    t.false(d.ok, JSON.stringify(bad));
    if (!d.ok) t.regex(d.malformed.problem, /zoneHealth/);
  }
});

test('healthPath: optional on a zone, an absolute path; anything else refused with its path', (t) => {
  const table = tableFor([{ name: 'a', upstreams: ['http://127.0.0.1:1'] }]);
  t.notThrows(() => validateTable(withHealthPath(table, 'a', '/healthz')));
  for (const bad of ['healthz', '/a b', '/x?y=1', 7]) {
    const err = t.throws(() => validateTable(withHealthPath(table, 'a', bad as string)));
    t.regex(err!.message, /zones\[0\]\.healthPath/);
  }
});

test('probes carry the gateway id as a header even when the id is not ASCII (percent-encoded UTF-8)', async (t) => {
  const [a1] = await startUpstreams('a1');
  t.teardown(() => stopAll([a1!]));
  const store = new MemoryStore();
  await store.compareAndSwap(0, tableFor([{ name: 'a', upstreams: [a1!.url] }]));
  await startGateway(t, store, { config: { id: 'gw-用户 1%', probe: { intervalMs: 100, timeoutMs: 500 } }, waitVersion: 1 });
  await until('a probe of zone a', () => a1!.probes.some((r) => r.headers['x-cellgate-probe'] !== undefined));
  const probe = a1!.probes.find((r) => r.headers['x-cellgate-probe'] !== undefined)!;
  t.is(probe.headers['x-cellgate-probe'], 'gw-%E7%94%A8%E6%88%B7%201%25');
  t.is(probe.headers['user-agent'], 'cellgate-probe');
  t.is(probe.method, 'GET');
});

test('a probe the endpoint stops answering fails at its deadline (a new connection for the next one); answered again, the zone recovers', async (t) => {
  const [a1] = await startUpstreams('a1');
  t.teardown(() => stopAll([a1!]));
  let hang = false;
  const hungSockets = new Set<unknown>();
  a1!.probeBehave = (req) => {
    if (!hang) return false;
    hungSockets.add(req.socket); // never answered: only the prober's deadline ends it
    return true;
  };
  const store = new MemoryStore();
  await store.compareAndSwap(0, tableFor([{ name: 'a', upstreams: [a1!.url] }]));
  const { gw, admin } = await startGateway(t, store, { config: { probe: { intervalMs: 100, timeoutMs: 300 } }, waitVersion: 1 });
  const health = (): PresenceRecord['zoneHealth'] => store.presence.records.get(gw.config.id)?.zoneHealth;
  await until('zone a healthy', () => health()?.a?.healthy === true);
  hang = true;
  await until('zone a unhealthy: its probe timed out', () => health()?.a?.healthy === false);
  const metrics = await (await fetch(`${admin}/metrics`)).text();
  t.true((metricValue(metrics, 'cellgate_probes_total{zone="a",service="default",result="failed"}') ?? 0) >= 1);
  await until('a second hung probe, on a connection of its own (the timed-out one was closed)', () => hungSockets.size >= 2);
  t.true([...hungSockets].some((s) => (s as { destroyed: boolean }).destroyed), 'the prober closed a timed-out probe\'s connection');
  hang = false;
  await until('zone a healthy again', () => health()?.a?.healthy === true);
});

test('probes are spread over the interval, not sent in one burst; each endpoint is still probed every interval', async (t) => {
  const names = Array.from({ length: 10 }, (_, i) => `a${i}`);
  const ups = await startUpstreams(...names);
  t.teardown(() => stopAll(ups));
  const store = new MemoryStore();
  await store.compareAndSwap(0, tableFor([{ name: 'a', upstreams: ups.map((u) => u.url) }]));
  const intervalMs = 1_000;
  await startGateway(t, store, { config: { probe: { intervalMs, timeoutMs: 500 } }, waitVersion: 1 });
  // The first probe of each is sent at once (no wait for evidence); from the second on, each has its slot.
  await until('three probes of every endpoint', () => ups.every((u) => u.probes.length >= 3), 20_000);
  const second = ups.map((u) => u.probes[1]!.at);
  const spreadMs = Math.max(...second) - Math.min(...second);
  t.true(spreadMs >= intervalMs / 4, `second probes of 10 endpoints spread over ${spreadMs} ms`);
  for (const u of ups) {
    const gap = u.probes[2]!.at - u.probes[1]!.at;
    t.true(gap >= intervalMs / 2 && gap < 3 * intervalMs, `${u.name}: ${gap} ms between two probes`);
  }
});

test('one probe per origin and health path answers for every service listing it; metrics count it for each', async (t) => {
  const [shared, own] = await startUpstreams('shared', 'own');
  t.teardown(() => stopAll([shared!, own!]));
  const base = tableFor([{ name: 'a', upstreams: [shared!.url] }]);
  const copy = structuredClone(base) as unknown as { zones: { services?: Record<string, { upstreams: string[]; healthPath?: string }> }[] };
  copy.zones[0]!.services = { orders: { upstreams: [shared!.url, own!.url] }, payments: { upstreams: [shared!.url], healthPath: '/pay' } };
  const store = new MemoryStore();
  await store.compareAndSwap(0, copy as unknown as RoutingTable);
  const { admin } = await startGateway(t, store, { config: { probe: { intervalMs: 100, timeoutMs: 500 } }, waitVersion: 1 });
  await until('several probes of the shared origin', () => shared!.probes.filter((p) => p.url === '/').length >= 12);
  const metrics = await (await fetch(`${admin}/metrics`)).text();
  const count = (service: string): number => metricValue(metrics, `cellgate_probes_total{zone="a",service="${service}",result="ok"}`) ?? 0;
  const sentToRoot = shared!.probes.filter((p) => p.url === '/').length;
  // default and orders list the same origin with the same path: one probe counted for both.
  // (Probes sent twice, once per service, would count half of those received for default.)
  t.true(count('default') >= sentToRoot - 2 && count('default') <= sentToRoot, `default ${count('default')}, probes of / ${sentToRoot}`);
  t.true(count('orders') > count('default'), 'orders counts the shared probes and its own endpoint\'s');
  t.true(shared!.probes.some((p) => p.url === '/pay'), 'another health path is a probe of its own');
});
