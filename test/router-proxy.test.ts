// The gateway's request path against real upstream servers on 127.0.0.1: routing, headers,
// bodies, query strings, streaming, route classes and user-id sources.
import { createHash, randomBytes } from 'node:crypto';
import test from 'ava';
import { RoutingView } from '../src/cells/lookup';
import { versioned } from '../src/cells/table';
import { MemoryStore } from './helpers/memory-store';
import { startGateway, tableFor, users } from './helpers/router-fixture';
import { httpCall, startUpstreams, stopAll, type UpstreamAnswer } from './helpers/upstreams';

async function threeZones(t: import('ava').ExecutionContext, config: Record<string, unknown> = {}) {
  const ups = await startUpstreams('up-a', 'up-b', 'up-c');
  t.teardown(() => stopAll(ups));
  const table = tableFor([
    { name: 'zone-a', city: 'sh', upstreams: [ups[0]!.url] },
    { name: 'zone-b', city: 'sh', upstreams: [ups[1]!.url] },
    { name: 'zone-c', city: 'hz', upstreams: [ups[2]!.url] },
  ], { cells: 24, global: 'zone-c', overrides: { 'vip-1': 'c03' } });
  const store = new MemoryStore(table);
  const g = await startGateway(t, store, { config, waitVersion: 1 });
  const upstreamOfZone = new Map([['zone-a', 'up-a'], ['zone-b', 'up-b'], ['zone-c', 'up-c']]);
  return { ...g, ups, table, upstreamOfZone };
}

async function inBatches<T>(items: readonly T[], size: number, fn: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(fn));
}

test('routes hundreds of users exactly as RoutingView.routeUnit, with the routing headers', async (t) => {
  const { url, table, upstreamOfZone } = await threeZones(t);
  const view = new RoutingView(versioned(table, 1));
  const all = [...users(300), 'vip-1'];
  const zonesSeen = new Set<string>();
  await inBatches(all, 25, async (user) => {
    const route = view.routeUnit(user, Date.now());
    if (!route.ok) throw new Error(`no route for ${user}`);
    const res = await httpCall(`${url}/orders/42?user=${encodeURIComponent(user)}`, { headers: { 'x-user-id': user } });
    t.is(res.status, 200, user);
    const got = res.json<UpstreamAnswer>();
    t.is(got.upstream, upstreamOfZone.get(route.zone.name) as string, user);
    t.is(got.headers['x-cell-id'], route.cell ?? undefined);
    t.is(got.headers['x-cell-zone'], route.zone.name);
    t.is(got.headers['x-cell-epoch'], String(route.epoch));
    t.is(got.headers['x-routing-revision'], '1');
    t.is(got.url, `/orders/42?user=${encodeURIComponent(user)}`);
    zonesSeen.add(route.zone.name);
  });
  t.is(zonesSeen.size, 3, 'the users spread over every zone');
  const vip = await httpCall(`${url}/x`, { headers: { 'x-user-id': 'vip-1' } });
  t.is(vip.json<UpstreamAnswer>().headers['x-cell-id'], 'c03', 'pinned override');
});

test('client-sent routing and forwarding headers are stripped and replaced', async (t) => {
  const { url } = await threeZones(t);
  const res = await httpCall(`${url}/spoof`, {
    headers: {
      'x-user-id': 'alice',
      'x-cell-id': 'c99', 'x-cell-zone': 'evil', 'x-cell-epoch': '999', 'x-routing-revision': '12345',
      'x-forwarded-for': '6.6.6.6', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'evil.example', forwarded: 'for=6.6.6.6', 'x-real-ip': '6.6.6.6',
      host: 'shop.example',
    },
  });
  t.is(res.status, 200);
  const h = res.json<UpstreamAnswer>().headers;
  t.not(h['x-cell-id'], 'c99');
  t.regex(String(h['x-cell-id']), /^c\d\d$/);
  t.not(h['x-cell-zone'], 'evil');
  t.not(h['x-cell-epoch'], '999');
  t.is(h['x-routing-revision'], '1');
  t.is(h['x-forwarded-for'], '127.0.0.1');
  t.is(h['x-forwarded-proto'], 'http');
  t.is(h['x-forwarded-host'], 'shop.example');
  t.is(h.forwarded, undefined);
  t.is(h['x-real-ip'], undefined);
  t.is(h['x-user-id'], 'alice', 'the user id itself is passed on');
});

test('trustProxy appends to an incoming x-forwarded-for and keeps proto/host', async (t) => {
  const { url } = await threeZones(t, { trustProxy: true });
  const res = await httpCall(`${url}/p`, { headers: { 'x-user-id': 'bob', 'x-forwarded-for': '10.1.2.3', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'front.example', 'x-cell-id': 'c99' } });
  const h = res.json<UpstreamAnswer>().headers;
  t.is(h['x-forwarded-for'], '10.1.2.3, 127.0.0.1');
  t.is(h['x-forwarded-proto'], 'https');
  t.is(h['x-forwarded-host'], 'front.example');
  t.not(h['x-cell-id'], 'c99', 'routing headers are never trusted, proxy or not');
});

test('a 300 KB POST body, methods and query strings pass through intact', async (t) => {
  const { url } = await threeZones(t);
  const body = randomBytes(300 * 1024);
  const sha = createHash('sha256').update(body).digest('hex');
  for (const contentType of ['application/octet-stream', 'application/json', undefined]) {
    const headers: Record<string, string> = { 'x-user-id': 'carol' };
    if (contentType) headers['content-type'] = contentType;
    const res = await httpCall(`${url}/upload?a=1&b=two&a=3&empty=&enc=%2F%20x`, { method: 'POST', headers, body });
    t.is(res.status, 200, String(contentType));
    const got = res.json<UpstreamAnswer>();
    t.is(got.method, 'POST');
    t.is(got.bodyBytes, body.length);
    t.is(got.bodySha256, sha);
    t.is(got.url, '/upload?a=1&b=two&a=3&empty=&enc=%2F%20x');
  }
  for (const method of ['PUT', 'PATCH', 'DELETE', 'GET', 'HEAD', 'OPTIONS']) {
    const res = await httpCall(`${url}/m`, { method, headers: { 'x-user-id': 'carol', 'content-type': 'text/plain' }, body: ['GET', 'HEAD'].includes(method) ? undefined : 'abc' });
    t.is(res.status, 200, method);
    if (method !== 'HEAD') t.is(res.json<UpstreamAnswer>().method, method);
  }
});

test('a streaming response reaches the client before the upstream has finished', async (t) => {
  const { url, ups } = await threeZones(t);
  let finish: (() => void) | null = null;
  for (const u of ups) {
    u.behave = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first-chunk\n');
      finish = () => res.end('last-chunk\n');
      return true;
    };
  }
  const { request } = await import('node:http');
  const text = await new Promise<string>((resolve, reject) => {
    const req = request(`${url}/stream`, { headers: { 'x-user-id': 'dave' }, agent: false }, (res) => {
      let acc = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        acc += c;
        if (acc === 'first-chunk\n') finish?.(); // only possible if the first chunk arrived alone
      });
      res.on('end', () => resolve(acc));
    });
    req.on('error', reject);
    req.end();
  });
  t.is(text, 'first-chunk\nlast-chunk\n');
});

test('route classes by longest path prefix: global and city traffic', async (t) => {
  const { url, ups } = await threeZones(t, {
    zone: 'zone-b',
    routes: [{ prefix: '/', class: 'unit' }, { prefix: '/static', class: 'global' }, { prefix: '/static/near', class: 'city' }, { prefix: '/api/city/', class: 'city' }],
  });
  const global = await httpCall(`${url}/static/logo.png`);
  t.is(global.status, 200, 'global traffic needs no user id');
  t.is(global.json<UpstreamAnswer>().upstream, 'up-c');
  t.is(global.json<UpstreamAnswer>().headers['x-cell-id'], 'global');
  const city = await httpCall(`${url}/static/near/x`);
  t.is(city.json<UpstreamAnswer>().upstream, 'up-b', "the gateway's own zone");
  t.is(city.json<UpstreamAnswer>().headers['x-cell-id'], undefined, 'city traffic belongs to no cell');
  t.is(city.json<UpstreamAnswer>().headers['x-cell-zone'], 'zone-b');
  const notPrefix = await httpCall(`${url}/staticx`);
  t.is(notPrefix.status, 400, '/staticx is not under /static: a unit route without a user');
  t.is(ups[1]!.received.length, 1);
  // Spelling the path with escapes of plain letters picks no other route: /%73tatic is /static.
  const escaped = await httpCall(`${url}/%73t%61tic/logo.png?q=%73`);
  t.is(escaped.json<UpstreamAnswer>().upstream, 'up-c', 'the global route, as the upstream will read the path');
  t.is(escaped.json<UpstreamAnswer>().url, '/static/logo.png?q=%73', 'sent on decoded in the path only');
  const reserved = await httpCall(`${url}/static%2Fnear/x`);
  t.is(reserved.status, 400, 'an escaped / stays an escape: one segment "static%2Fnear", under no /static rule (a unit route without a user)');
});

test('user id sources: header, cookie, query, path; those present must agree', async (t) => {
  const { url, table } = await threeZones(t, {
    userId: { sources: [{ header: 'X-Account' }, { cookie: 'uid' }, { query: 'u' }, { path: '/users/:user' }] },
  });
  const view = new RoutingView(versioned(table, 1));
  const cellOf = (u: string) => view.cellOfUser(u);
  const cases: Array<[string, Record<string, string>, string]> = [
    ['/x', { 'x-account': 'hdr-user' }, 'hdr-user'],
    ['/x', { cookie: 'a=1; uid=cookie%20user; b=2' }, 'cookie user'],
    ['/x?v=1&u=query+user', {}, 'query user'],
    ['/users/path-user/orders', {}, 'path-user'],
    ['/users/same?u=same', { 'x-account': 'same' }, 'same'],
  ];
  for (const [path, headers, user] of cases) {
    const res = await httpCall(`${url}${path}`, { headers });
    t.is(res.status, 200, path);
    t.is(res.json<UpstreamAnswer>().headers['x-cell-id'], cellOf(user), `${path} -> ${user}`);
  }
  // Different ids are refused, never routed by whichever source comes first (test/router-user-id.test.ts).
  const conflict = await httpCall(`${url}/users/path-user?u=q`, { headers: { 'x-account': 'hdr-user' } });
  t.is(conflict.status, 400);
  t.is(conflict.json<{ error: string }>().error, 'BAD_USER_ID');
});
