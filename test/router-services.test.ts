// Services per zone, end to end: real upstream servers on 127.0.0.1 (one per service per
// zone, each answering who it is), a real gateway over a MemoryStore. A route names a service;
// the request reaches that service in the zone that owns the user's cell.
import test, { type ExecutionContext } from 'ava';
import WebSocket from 'ws';
import type { RoutingTable, ServiceEndpoints } from '../src/cells/types';
import { parseGatewayConfig } from '../src/router/config';
import { createGateway, type Gateway } from '../src/router/gateway';
import { MemoryStore } from './helpers/memory-store';
import { freezeCell, moveCell, startGateway, tableFor, users } from './helpers/router-fixture';
import { type Upstream, httpCall, startUpstreams, stopAll } from './helpers/upstreams';
import { metricValue, until } from './helpers/wait';

const ROUTES = [
  { prefix: '/', class: 'unit' },
  { prefix: '/orders/', class: 'unit', service: 'orders' },
  { prefix: '/pay', class: 'unit', service: 'payments', stripPrefix: true },
  { prefix: '/g/', class: 'global', service: 'orders' },
];

type Services = Record<string, Record<string, ServiceEndpoints>>;

/** `table` with each zone's services replaced by `services[zone]`. */
function withServices(table: RoutingTable, services: Services): RoutingTable {
  const copy = structuredClone(table) as unknown as { zones: { name: string; services?: Record<string, ServiceEndpoints> }[] };
  for (const z of copy.zones) {
    if (services[z.name]) z.services = services[z.name];
    else delete z.services;
  }
  return copy as unknown as RoutingTable;
}

interface Estate {
  readonly ups: Record<string, Upstream>;
  readonly table: RoutingTable;
}

/** Two zones × (default, orders, payments), one upstream server each, named zone-service. */
async function estate(t: ExecutionContext, opts: { zbPayments?: boolean } = {}): Promise<Estate> {
  const names = ['za-web', 'za-orders', 'za-payments', 'zb-web', 'zb-orders', 'zb-payments'];
  const list = await startUpstreams(...names);
  t.teardown(() => stopAll(list));
  const ups = Object.fromEntries(list.map((u) => [u.name, u]));
  const base = tableFor([{ name: 'za', upstreams: [ups['za-web']!.url] }, { name: 'zb', upstreams: [ups['zb-web']!.url] }], { cells: 16 });
  const table = withServices(base, {
    za: { orders: { upstreams: [ups['za-orders']!.url] }, payments: { upstreams: [ups['za-payments']!.url], healthPath: '/pay-health' } },
    zb: { orders: { upstreams: [ups['zb-orders']!.url] }, payments: { upstreams: opts.zbPayments === false ? [] : [ups['zb-payments']!.url] } },
  });
  return { ups, table };
}

/** One user whose cell is in each zone. */
function userPerZone(gw: Gateway): Record<string, string> {
  const out: Record<string, string> = {};
  for (const u of users(200)) {
    const r = gw.view()!.routeUnit(u, 0);
    if (r.ok && out[r.zone.name] === undefined) out[r.zone.name] = u;
  }
  return out;
}

interface Who {
  upstream: string;
  url: string;
  headers: Record<string, string>;
}

async function who(base: string, path: string, user: string): Promise<Who> {
  const res = await httpCall(`${base}${path}`, { headers: { 'x-user-id': user } });
  if (res.status !== 200) throw new Error(`${path} for ${user}: ${res.status} ${res.text()}`);
  return res.json<Who>();
}

test('a route per service reaches that service in the zone of the user\'s cell; stripPrefix; global; probes and metrics per service', async (t) => {
  const { ups, table } = await estate(t);
  const { gw, url, admin } = await startGateway(t, new MemoryStore(table), { config: { routes: ROUTES, probe: { intervalMs: 100, timeoutMs: 1000 } }, waitVersion: 1 });
  const byZone = userPerZone(gw);
  t.deepEqual(Object.keys(byZone).sort(), ['za', 'zb']);
  for (const zone of ['za', 'zb']) {
    const user = byZone[zone]!;
    const web = await who(url, '/hello', user);
    t.is(web.upstream, `${zone}-web`, 'no service: the zone\'s plain upstreams (default)');
    const orders = await who(url, '/orders/42?x=1', user);
    t.is(orders.upstream, `${zone}-orders`);
    t.is(orders.url, '/orders/42?x=1', 'the path is kept without stripPrefix');
    t.is(orders.headers['x-cell-zone'], zone, 'fencing headers per service');
    t.is(orders.headers['x-cell-id'], gw.view()!.cellOfUser(user));
    const pay = await who(url, '/pay/charge?amount=3', user);
    t.deepEqual([pay.upstream, pay.url], [`${zone}-payments`, '/charge?amount=3'], 'stripPrefix: the prefix is not sent');
    t.is((await who(url, '/pay', user)).url, '/', 'at least /');
    t.is((await who(url, '/pay?q', user)).url, '/?q');
  }
  t.is((await who(url, '/g/x', byZone.zb!)).upstream, 'za-orders', 'global class: the service in the global zone');
  t.is(ups['zb-web']!.received.length, 1, 'nothing else reached zb\'s default service');

  await until('payments probed on its own healthPath', () => ups['za-payments']!.probes.some((p) => p.url === '/pay-health'));
  t.true(ups['za-web']!.probes.some((p) => p.url === '/'), 'the default service on the zone\'s (here /)');
  await until('probe counts per service', async () => {
    const m = await (await fetch(`${admin}/metrics`)).text();
    return (metricValue(m, 'cellgate_probes_total{zone="zb",service="payments",result="ok"}') ?? 0) >= 1;
  });
  const m = await (await fetch(`${admin}/metrics`)).text();
  t.is(metricValue(m, `cellgate_requests_total{zone="za",service="orders",class="unit",status="200"}`), 1);
  t.is(metricValue(m, `cellgate_requests_total{zone="za",service="orders",class="global",status="200"}`), 1);
  t.is(metricValue(m, `cellgate_requests_total{zone="zb",service="payments",class="unit",status="200"}`), 3);
  t.is(metricValue(m, 'cellgate_upstream_endpoints{zone="zb",service="payments"}'), 1);
  t.is(metricValue(m, 'cellgate_upstream_errors_total{zone="za",service="payments",kind="refused"}'), 0, 'every service has every kind from the start');
  t.is(metricValue(m, 'cellgate_upstream_pending_requests{zone="zb",service="orders"}'), 0);
  t.is(metricValue(m, 'cellgate_route_services_missing'), 0);
  t.truthy(metricValue(m, 'cellgate_request_duration_seconds_count{zone="za",service="payments"}'));
  const services = new Set([...m.matchAll(/service="([^"]*)"/g)].map((x) => x[1]));
  t.deepEqual([...services].sort(), ['default', 'orders', 'payments'], 'the service label takes only the table\'s and the routes\' services');
});

test('a WebSocket goes to its route\'s service in the user\'s zone, prefix stripped', async (t) => {
  const { table } = await estate(t);
  const { gw, url } = await startGateway(t, new MemoryStore(table), { config: { routes: ROUTES }, waitVersion: 1 });
  const user = userPerZone(gw).zb!;
  const hello = await new Promise<Who>((resolve, reject) => {
    const ws = new WebSocket(`${url.replace('http', 'ws')}/pay/stream?s=1`, { headers: { 'x-user-id': user } });
    t.teardown(() => ws.terminate());
    ws.once('message', (data) => resolve(JSON.parse(data.toString()) as Who));
    ws.once('error', reject);
  });
  t.is(hello.upstream, 'zb-payments');
  t.is(hello.url, '/stream?s=1');
  t.is(hello.headers['x-cell-zone'], 'zb');
});

test('stripPrefix never sends a path that starts "//" or "/\\" (another host to a URL parser): one slash, over HTTP and WebSocket', async (t) => {
  const { table } = await estate(t);
  const { gw, url } = await startGateway(t, new MemoryStore(table), { config: { routes: ROUTES }, waitVersion: 1 });
  const user = userPerZone(gw).zb!;
  for (const path of ['/pay//evil.example/x', '/pay/\\evil.example/x', '/pay/\\/evil.example/x']) {
    const got = await who(url, path, user);
    t.deepEqual([got.upstream, got.url], ['zb-payments', '/evil.example/x'], path);
  }
  const hello = await new Promise<Who>((resolve, reject) => {
    const ws = new WebSocket(`${url.replace('http', 'ws')}/pay//evil.example/stream`, { headers: { 'x-user-id': user } });
    t.teardown(() => ws.terminate());
    ws.once('message', (data) => resolve(JSON.parse(data.toString()) as Who));
    ws.once('unexpected-response', (_req, res) => reject(new Error(`WebSocket refused: ${res.statusCode}`)));
    ws.once('error', reject);
  });
  t.deepEqual([hello.upstream, hello.url], ['zb-payments', '/evil.example/stream']);
});

test('a zone without endpoints for a service answers 502 UPSTREAM_UNAVAILABLE naming the zone and the service', async (t) => {
  const { table } = await estate(t, { zbPayments: false });
  const { gw, url } = await startGateway(t, new MemoryStore(table), { config: { routes: ROUTES }, waitVersion: 1 });
  const byZone = userPerZone(gw);
  const res = await httpCall(`${url}/pay/x`, { headers: { 'x-user-id': byZone.zb! } });
  t.is(res.status, 502);
  t.deepEqual(res.json(), { error: 'UPSTREAM_UNAVAILABLE', message: 'zone zb has no endpoint of service payments' });
  t.is((await who(url, '/pay/x', byZone.za!)).upstream, 'za-payments', 'the same service in the other zone serves');
  t.is((await who(url, '/orders/x', byZone.zb!)).upstream, 'zb-orders', 'and the zone\'s other services too');
});

test('one service\'s endpoint ejected leaves the zone\'s other services alone', async (t) => {
  const { ups, table } = await estate(t);
  // An ejection that outlasts the test however slow the machine (the default first one is 1 s).
  const upstream = { ejectBaseMs: 600_000, ejectMaxMs: 600_000 };
  const { gw, url, admin } = await startGateway(t, new MemoryStore(table), { config: { routes: ROUTES, upstream }, waitVersion: 1 });
  const user = userPerZone(gw).za!;
  await ups['za-orders']!.stop();
  const res = await httpCall(`${url}/orders/1`, { headers: { 'x-user-id': user } });
  t.is(res.status, 502);
  t.is(res.json<{ message: string }>().message, 'no endpoint of service orders in zone za is available');
  t.false(res.text().includes(String(ups['za-orders']!.port)), 'no upstream address in the answer');
  const again = await httpCall(`${url}/orders/2`, { headers: { 'x-user-id': user } });
  t.is(again.json<{ message: string }>().message, 'no endpoint of service orders in zone za is available', 'ejected: not tried again');
  const m = await (await fetch(`${admin}/metrics`)).text();
  t.is(metricValue(m, 'cellgate_upstream_ejected_endpoints{zone="za",service="orders"}'), 1);
  t.is(metricValue(m, 'cellgate_upstream_errors_total{zone="za",service="orders",kind="refused"}'), 1);
  t.is(metricValue(m, 'cellgate_upstream_ejected_endpoints{zone="za",service="default"}'), 0);
  t.is(metricValue(m, 'cellgate_upstream_ejected_endpoints{zone="za",service="payments"}'), 0);
  t.is((await who(url, '/hello', user)).upstream, 'za-web', 'the zone\'s default service still serves');
  t.is((await who(url, '/pay/x', user)).upstream, 'za-payments', 'and its payments');
});

test('a route to a service no zone offers: refused with the first table (key path), then only warned about; the 502 names zone and service', async (t) => {
  const { table } = await estate(t);
  const routes = [...ROUTES, { prefix: '/inv/', class: 'unit', service: 'inventory' }];
  const store = new MemoryStore(table);
  const events: { event: string; fields?: Record<string, unknown> }[] = [];
  const config = parseGatewayConfig({ port: 0, adminPort: 0, id: 'gw-services', routes });
  const gw = createGateway({ config, store, log: (event, fields) => void events.push({ event, fields }), processMetrics: false });
  t.teardown(() => gw.shutdown());
  const addr = await gw.start();
  await until('the first table refused', () => events.some((e) => e.event === 'table.rejected'));
  const rejected = events.find((e) => e.event === 'table.rejected')!;
  t.regex(String(rejected.fields?.reason), /invalid gateway configuration for table version 1: routes\[4\]\.service: no zone of the routing table offers service "inventory"/);
  t.is(gw.view(), null, 'no table: the gateway does not route with a configuration that does not fit');
  t.is((await httpCall(`${addr.traffic}/hello`, { headers: { 'x-user-id': 'u1' } })).status, 503);
  t.is((await fetch(`${addr.admin}/readyz`)).status, 503);

  const zbInventory = withServices(table, {
    za: table.zones[0]!.services as Record<string, ServiceEndpoints>,
    zb: { ...(table.zones[1]!.services as Record<string, ServiceEndpoints>), inventory: { upstreams: [] } },
  });
  await store.compareAndSwap(1, zbInventory);
  await gw.waitForVersion(2);
  t.is((await httpCall(`${addr.traffic}/hello`, { headers: { 'x-user-id': 'u1' } })).status, 200, 'a table that fits is applied');

  await store.compareAndSwap(2, table);
  await gw.waitForVersion(3);
  t.is(gw.view()!.version, 3, 'once routing, a table is never refused for a missing service');
  const warned = events.find((e) => e.event === 'table.route_services_missing');
  t.like(warned?.fields, { version: 3 });
  t.deepEqual((warned!.fields!.problems as { path: string }[]).map((p) => p.path), ['routes[4].service']);
  const m = await (await fetch(`${addr.admin}/metrics`)).text();
  t.is(metricValue(m, 'cellgate_route_services_missing'), 1);
  const user = userPerZone(gw).za!;
  const res = await httpCall(`${addr.traffic}/inv/1`, { headers: { 'x-user-id': user } });
  t.is(res.status, 502);
  t.deepEqual(res.json(), { error: 'UPSTREAM_UNAVAILABLE', message: 'zone za has no endpoint of service inventory' });
});

test('a cell that moves takes every service of its users with it, with the new epoch on each', async (t) => {
  const { table } = await estate(t);
  const store = new MemoryStore(table);
  const { gw, url } = await startGateway(t, store, { config: { routes: ROUTES }, waitVersion: 1 });
  const user = userPerZone(gw).za!;
  const cell = gw.view()!.cellOfUser(user);
  const before = await who(url, '/orders/1', user);
  t.deepEqual([before.upstream, before.headers['x-cell-epoch']], ['za-orders', '1']);
  await store.compareAndSwap(1, moveCell(table, cell, 'zb'));
  await gw.waitForVersion(2);
  for (const [path, upstream] of [['/orders/1', 'zb-orders'], ['/pay/1', 'zb-payments'], ['/hello', 'zb-web']] as const) {
    const after = await who(url, path, user);
    t.deepEqual([after.upstream, after.headers['x-cell-zone'], after.headers['x-cell-epoch']], [upstream, 'zb', '2'], path);
  }
});

test('a request held for a frozen cell goes, once released, to its service in the cell\'s new zone (prefix stripped, body intact)', async (t) => {
  const { ups, table } = await estate(t);
  const store = new MemoryStore(table);
  const { gw, url } = await startGateway(t, store, { config: { routes: ROUTES }, waitVersion: 1 });
  const user = userPerZone(gw).za!;
  const cell = gw.view()!.cellOfUser(user);
  const frozen = freezeCell(table, cell, Date.now() + 60_000, 'zb');
  await store.compareAndSwap(1, frozen);
  await gw.waitForVersion(2);
  const answer = httpCall(`${url}/pay/charge`, { method: 'POST', headers: { 'x-user-id': user }, body: 'amount=3' });
  await until('the request held', () => gw.bufferCounters().size === 1);
  await store.compareAndSwap(2, moveCell(frozen, cell, 'zb'));
  const res = await answer;
  t.is(res.status, 200);
  const got = res.json<Who & { bodyBytes: number }>();
  t.deepEqual([got.upstream, got.url, got.bodyBytes], ['zb-payments', '/charge', 8]);
  t.is(ups['za-payments']!.received.length, 0, 'the old zone never saw it');
});
