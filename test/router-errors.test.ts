// Every error of the request path per the contract: status, JSON {error, message}, Retry-After
// on 503s, and never an internal address or a stack trace. Plus the retry policy: a POST is
// never sent twice; a safe GET is retried once.
import test, { type ExecutionContext } from 'ava';
import type { Gateway } from '../src/router/gateway';
import { MemoryStore } from './helpers/memory-store';
import { setZoneStatus, startGateway, tableFor } from './helpers/router-fixture';
import { freePort } from './helpers/ports';
import { httpCall, startUpstreams, type HttpResult, type Upstream } from './helpers/upstreams';

function assertContractError(t: ExecutionContext, res: HttpResult, status: number, error: string, secrets: readonly string[] = []): void {
  t.is(res.status, status, `${error}: ${res.text()}`);
  t.regex(String(res.headers['content-type']), /^application\/json/);
  const body = res.json();
  t.deepEqual(Object.keys(body).sort(), ['error', 'message']);
  t.is(body.error, error);
  t.is(typeof body.message, 'string');
  const text = res.text();
  t.false(text.includes('127.0.0.1'), 'no internal address');
  t.false(/\bat \S+ \(/.test(text), 'no stack trace');
  for (const s of secrets) t.false(text.includes(s), `does not leak ${s}`);
  if (status === 503) t.is(res.headers['retry-after'], '1');
}

async function oneZone(t: ExecutionContext, config: Record<string, unknown> = {}): Promise<{ url: string; up: Upstream; store: MemoryStore; gw: Gateway }> {
  const [up] = await startUpstreams('only');
  t.teardown(() => up!.stop());
  const store = new MemoryStore(tableFor([{ name: 'z1', upstreams: [up!.url] }, { name: 'z2', upstreams: [up!.url.replace('127.0.0.1', 'localhost')] }], { cells: 4 }));
  const g = await startGateway(t, store, { config, waitVersion: 1 });
  return { url: g.url, up: up!, store, gw: g.gw };
}

test('400 NO_USER_ID and BAD_USER_ID', async (t) => {
  const { url, up } = await oneZone(t, { userId: { sources: [{ header: 'x-user-id' }, { query: 'user' }] } });
  assertContractError(t, await httpCall(`${url}/a`), 400, 'NO_USER_ID');
  assertContractError(t, await httpCall(`${url}/a`, { headers: { 'x-user-id': '' } }), 400, 'NO_USER_ID');
  assertContractError(t, await httpCall(`${url}/a`, { headers: { 'x-user-id': 'u'.repeat(257) } }), 400, 'BAD_USER_ID');
  assertContractError(t, await httpCall(`${url}/a`, { headers: { 'x-user-id': 'tab\there' } }), 400, 'BAD_USER_ID');
  assertContractError(t, await httpCall(`${url}/a?user=bad%01id`), 400, 'BAD_USER_ID');
  assertContractError(t, await httpCall(`${url}/a?user=%E0%A4%A`), 400, 'BAD_USER_ID');
  const ok = await httpCall(`${url}/a`, { headers: { 'x-user-id': 'u'.repeat(256) } });
  t.is(ok.status, 200, '256 characters are fine');
  t.is(up.received.length, 1, 'refused requests never reach an upstream');
});

test('503 NO_ROUTING_TABLE before any table, with Retry-After; readyz says not ready', async (t) => {
  const store = new MemoryStore();
  const g = await startGateway(t, store);
  assertContractError(t, await httpCall(`${g.url}/a`, { headers: { 'x-user-id': 'u1' } }), 503, 'NO_ROUTING_TABLE');
  const ready = await httpCall(`${g.admin}/readyz`);
  t.is(ready.status, 503);
  t.is(ready.json().error, 'NO_ROUTING_TABLE');
  t.is((await httpCall(`${g.admin}/healthz`)).status, 200);
});

test('503 ZONE_DOWN for a cell whose zone is down', async (t) => {
  const { url, store, gw } = await oneZone(t);
  const table = setZoneStatus(setZoneStatus((await store.load())!.table, 'z1', 'down'), 'z2', 'down');
  await gw.waitForVersion(store.publish(table).version);
  assertContractError(t, await httpCall(`${url}/a`, { headers: { 'x-user-id': 'u1' } }), 503, 'ZONE_DOWN');
});

test('502 UPSTREAM_UNAVAILABLE when the zone has no live endpoint, without leaking its address', async (t) => {
  const dead = await freePort();
  const store = new MemoryStore(tableFor([{ name: 'z1', upstreams: [`http://127.0.0.1:${dead}`] }], { cells: 2 }));
  const g = await startGateway(t, store, { waitVersion: 1 });
  assertContractError(t, await httpCall(`${g.url}/a`, { headers: { 'x-user-id': 'u1' } }), 502, 'UPSTREAM_UNAVAILABLE', [String(dead), 'ECONNREFUSED']);
  // The endpoint is now ejected: the next request is refused without trying it.
  assertContractError(t, await httpCall(`${g.url}/b`, { method: 'POST', headers: { 'x-user-id': 'u1' }, body: 'x' }), 502, 'UPSTREAM_UNAVAILABLE', [String(dead)]);
  const metrics = (await httpCall(`${g.admin}/metrics`)).text();
  t.regex(metrics, /cellgate_upstream_errors_total\{zone="z1",service="default",kind="refused"\} 1/);
  t.regex(metrics, /cellgate_upstream_ejected_endpoints\{zone="z1",service="default"\} 1/);
});

test('504 UPSTREAM_TIMEOUT when the upstream does not answer in time', async (t) => {
  const { url, up } = await oneZone(t, { upstream: { requestTimeoutMs: 300 } });
  up.behave = () => true; // never answers
  const started = Date.now();
  assertContractError(t, await httpCall(`${url}/slow`, { method: 'POST', headers: { 'x-user-id': 'u1' }, body: 'x' }), 504, 'UPSTREAM_TIMEOUT', [String(up.port)]);
  t.true(Date.now() - started < 5000);
  t.is(up.received.length, 1, 'a timed-out POST is not sent again');
});

test('502 when the upstream hangs up; a POST is never retried, a GET is retried once', async (t) => {
  const { url, up } = await oneZone(t);
  up.behave = (req) => {
    req.socket.destroy();
    return true;
  };
  assertContractError(t, await httpCall(`${url}/p`, { method: 'POST', headers: { 'x-user-id': 'u1' }, body: 'once' }), 502, 'UPSTREAM_UNAVAILABLE', [String(up.port)]);
  t.is(up.received.length, 1, 'POST sent once');
  up.received.length = 0;
  up.behave = (req, _res, _r, attempt) => {
    if (attempt === 1) {
      req.socket.destroy();
      return true;
    }
    return false;
  };
  const res = await httpCall(`${url}/g`, { headers: { 'x-user-id': 'u1' } });
  t.is(res.status, 200, 'the GET succeeded on its retry');
  t.is(up.received.length, 2);
});

test("an upstream's 503 is passed on to a POST, retried once for a GET", async (t) => {
  const { url, up } = await oneZone(t);
  // Every first attempt of a path gets a 503, the next attempt an answer.
  let answered503 = 0;
  const seen = new Set<string>();
  up.behave = (req, res) => {
    if (!seen.has(req.url as string)) {
      seen.add(req.url as string);
      answered503 += 1;
      res.writeHead(503, { 'content-type': 'text/plain' });
      res.end('busy');
      return true;
    }
    return false;
  };
  const post = await httpCall(`${url}/p`, { method: 'POST', headers: { 'x-user-id': 'u1' }, body: 'x' });
  t.is(post.status, 503);
  t.is(post.text(), 'busy', "the upstream's own answer");
  t.is(up.received.length, 1, 'no retry of a POST');
  const get = await httpCall(`${url}/g`, { headers: { 'x-user-id': 'u1' } });
  t.is(get.status, 200);
  t.is(up.received.length, 3, 'the GET was sent twice');
  t.is(answered503, 2);
  up.behave = (_req, res) => {
    res.writeHead(503);
    res.end();
    return true;
  };
  up.received.length = 0;
  const always = await httpCall(`${url}/g`, { headers: { 'x-user-id': 'u1' } });
  t.is(always.status, 503);
  t.is(up.received.length, 2, 'at most one retry (reply-from would make up to 10)');
});

test('404 NOT_FOUND outside every route prefix; 400 BAD_REQUEST for a path escaping upward', async (t) => {
  const { url, up } = await oneZone(t, { routes: [{ prefix: '/api', class: 'unit' }] });
  assertContractError(t, await httpCall(`${url}/other`, { headers: { 'x-user-id': 'u1' } }), 404, 'NOT_FOUND');
  assertContractError(t, await httpCall(`${url}/api/%2e%2e/secret`, { headers: { 'x-user-id': 'u1' } }), 400, 'BAD_REQUEST');
  assertContractError(t, await httpCall(`${url}/api/x`, { method: 'TRACE', headers: { 'x-user-id': 'u1' } }), 404, 'NOT_FOUND');
  t.is(up.received.length, 0);
});
