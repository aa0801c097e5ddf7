// Services end to end (issue 14 items 1 and 2 together): a real etcd, a `cellgate serve`
// gateway process with a route per service, static endpoints for the default service and
// `cellgate register` sidecars for `orders` in each zone. Every user's request to a service
// reaches that service's instance in the zone of the user's cell (prefix stripped where the
// route says so); after `cellctl zone down`, the moved users reach the peer zone's instance
// of the same service.
import test from 'ava';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cellctl } from './helpers/cli';
import { send, startGatewayProcess } from './helpers/e2e';
import { startEtcd } from './helpers/etcd';
import { startRegistrar } from './helpers/registrar';
import { startUpstreams, stopAll } from './helpers/upstreams';

const USERS = Array.from({ length: 16 }, (_, i) => `user-${i}`);

let dir: string;
test.before(async () => { dir = await mkdtemp(join(tmpdir(), 'cellgate-e2e-services-')); });
test.after.always(async () => { if (dir) await rm(dir, { recursive: true, force: true }); });

async function until(check: () => Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('a route per service reaches that service in the zone of the user\'s cell; registered instances serve it; zone down moves it', async (t) => {
  const etcd = await startEtcd();
  t.teardown(() => etcd.stop());
  const ups = await startUpstreams('web-za', 'web-zb', 'orders-za', 'orders-zb');
  t.teardown(() => stopAll(ups));
  const [webA, webB, ordersA, ordersB] = ups;
  const endpoints = etcd.endpoints.join(',');
  const prefix = '/services-e2e';

  // `orders` has no static endpoints: each zone's instance registers itself.
  const topology = join(dir, 'topology.yaml');
  await writeFile(topology, [
    'name: services-e2e', 'cells: 8', 'zones:',
    `  - { name: za, region: r1, city: c1, capacity: 100, upstreams: ["${webA!.url}"], services: { orders: { upstreams: [] } } }`,
    `  - { name: zb, region: r1, city: c1, capacity: 100, upstreams: ["${webB!.url}"], services: { orders: { upstreams: [] } } }`, '',
  ].join('\n'));
  const init = await cellctl(['init', '--topology', topology, '--etcd', endpoints, '--prefix', prefix]);
  t.is(init.code, 0, init.stderr);
  const config = join(dir, 'gateway.yaml');
  await writeFile(config, 'routes:\n  - { prefix: /, class: unit }\n  - { prefix: /orders/, class: unit, service: orders, stripPrefix: true }\n');

  const sidecars = [['za', ordersA!], ['zb', ordersB!]].map(([zone, up]) => startRegistrar([
    '--store', `etcd:${endpoints}`, '--prefix', prefix, '--zone', zone as string, '--service', 'orders',
    '--url', (up as typeof ordersA)!.url, '--id', `orders-${zone as string}`, '--ttl', '2',
  ]));
  t.teardown(() => sidecars.forEach((s) => s.kill()));
  await Promise.all(sidecars.map((s) => s.registered()));

  const gw = await startGatewayProcess(['--store', `etcd:${endpoints}`, '--prefix', prefix, '--config', config, '--port', '0', '--admin-port', '0'], 'gw-services');
  t.teardown(() => gw.kill());
  const registered = (zone: string) => async () => {
    const text = String((await send(gw.admin, '/metrics')).json.raw ?? '');
    return text.split('\n').some((l) => l === `cellgate_registry_endpoints{zone="${zone}",service="orders"} 1`);
  };
  await until(async () => (await registered('za')()) && (await registered('zb')()), 'both orders instances in the gateway');

  /** The zone each user's cell is in now, as cellctl says. */
  async function zonesOfUsers(): Promise<Map<string, string>> {
    const r = await cellctl(['route', ...USERS, '--etcd', endpoints, '--prefix', prefix, '--json']);
    t.is(r.code, 0, r.stderr);
    return new Map(r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { user: string; zone: string }).map((x) => [x.user, x.zone]));
  }

  async function checkEveryUser(zoneOf: Map<string, string>): Promise<void> {
    for (const user of USERS) {
      const zone = zoneOf.get(user)!;
      const order = await send(gw.traffic, '/orders/42?x=1', { headers: { 'x-user-id': user } });
      t.is(order.status, 200, `${user}: ${JSON.stringify(order.json)}`);
      t.is(order.json.upstream, `orders-${zone}`, `${user}'s orders go to ${zone}`);
      t.is(order.json.url, '/42?x=1', 'the route strips /orders');
      // The prefix `/orders/` covers what is under it, not `/orders` itself: the default route's.
      const bare = await send(gw.traffic, '/orders', { headers: { 'x-user-id': user } });
      t.deepEqual([bare.json.upstream, bare.json.url], [`web-${zone}`, '/orders']);
      const web = await send(gw.traffic, '/home', { headers: { 'x-user-id': user } });
      t.is(web.json.upstream, `web-${zone}`, `${user}'s default service is in ${zone}`);
      t.is(web.json.url, '/home');
    }
  }

  const before = await zonesOfUsers();
  t.deepEqual([...new Set(before.values())].sort(), ['za', 'zb'], 'the users are spread over both zones');
  await checkEveryUser(before);

  const down = await cellctl(['zone', 'down', 'za', '--reason', 'e2e', '--yes', '--etcd', endpoints, '--prefix', prefix]);
  t.is(down.code, 0, down.stderr);
  const after = await zonesOfUsers();
  t.deepEqual([...new Set(after.values())], ['zb']);
  await until(async () => (await send(gw.traffic, '/orders/1', { headers: { 'x-user-id': [...before].find(([, z]) => z === 'za')![0] } })).json.upstream === 'orders-zb', 'the gateway to follow the zone down');
  await checkEveryUser(after);
  t.true(ordersA!.received.length > 0 && ordersB!.received.length > 0);
});
