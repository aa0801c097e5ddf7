// A named service whose endpoints all come from the registry (issues 14.1 and 14.2 together):
// 502 until an instance registers, then its requests reach the registered instances only.
import test from 'ava';
import type { RoutingTable } from '../src/cells/types';
import { MemoryStore } from './helpers/memory-store';
import { startGateway, tableFor } from './helpers/router-fixture';
import { httpCall, startUpstreams, stopAll, type UpstreamAnswer } from './helpers/upstreams';
import { waitFor } from './store-contract';

test('a registered instance of a named service with an empty static list gets that service\'s requests', async (t) => {
  const [web, o1, o2] = await startUpstreams('web', 'o1', 'o2');
  t.teardown(() => stopAll([web!, o1!, o2!]));
  const base = tableFor([{ name: 'za', upstreams: [web!.url] }], { cells: 4 });
  const table = { ...base, zones: base.zones.map((z) => ({ ...z, services: { orders: { upstreams: [] } } })) } as RoutingTable;
  const store = new MemoryStore(table);
  const g = await startGateway(t, store, { waitVersion: 1, config: { routes: [{ prefix: '/', class: 'unit' }, { prefix: '/orders/', class: 'unit', service: 'orders' }] } });
  const before = await httpCall(`${g.url}/orders/x`, { headers: { 'x-user-id': 'u1' } });
  t.is(before.status, 502, 'no endpoint of orders yet');
  t.is(before.json<{ error: string }>().error, 'UPSTREAM_UNAVAILABLE');
  const r1 = await store.registry.register({ zone: 'za', service: 'orders', id: 'o1', url: o1!.url });
  await store.registry.register({ zone: 'za', service: 'orders', id: 'o2', url: o2!.url });
  await waitFor('orders in view', () => g.gw.view()?.zone('za')?.services?.orders?.upstreams.length === 2);
  const seen = new Set<string>();
  for (let i = 0; i < 6; i++) seen.add((await httpCall(`${g.url}/orders/x`, { headers: { 'x-user-id': 'u1' } })).json<UpstreamAnswer>().upstream);
  t.deepEqual([...seen].sort(), ['o1', 'o2']);
  t.is((await httpCall(`${g.url}/web`, { headers: { 'x-user-id': 'u1' } })).json<UpstreamAnswer>().upstream, 'web');
  // o1 dies: safe requests retried on o2.
  await o1!.stop();
  for (let i = 0; i < 4; i++) t.is((await httpCall(`${g.url}/orders/x`, { headers: { 'x-user-id': 'u1' } })).status, 200);
  await r1.close();
  await waitFor('o1 gone', () => g.gw.view()?.zone('za')?.services?.orders?.upstreams.length === 1);
  const m = (await httpCall(`${g.admin}/metrics`)).text();
  t.regex(m, /cellgate_registry_endpoints\{zone="za",service="orders"\} 1/);
});
