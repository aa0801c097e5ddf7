// Zones with several endpoints: round robin, passive health (ejection with exponential,
// capped back-off, recovery), failover of a refused safe request, and 502 when none is left.
import test from 'ava';
import type { Zone } from '../src/cells/types';
import { parseGatewayConfig } from '../src/router/config';
import { EndpointHealth, type Ejection } from '../src/router/endpoints';
import { classifyUpstreamError } from '../src/router/upstream-policy';
import { ManualClock } from './helpers/manual-clock';
import { MemoryStore } from './helpers/memory-store';
import { startGateway, tableFor } from './helpers/router-fixture';
import { httpCall, startUpstreams, stopAll, type UpstreamAnswer } from './helpers/upstreams';

/** An error as reply-from hands it to onError: its own wrapper with undici's error as the cause. */
function wrapped(code: string): Error {
  const cause = Object.assign(new Error(code), { code });
  return Object.assign(new Error('wrapper', { cause }), { code: 'FST_REPLY_FROM_INTERNAL_SERVER_ERROR' });
}

test('only failures after a connection was attempted count against an endpoint; errors raised locally never do', (t) => {
  const health = (code: string) => classifyUpstreamError(wrapped(code)).health;
  for (const code of ['ECONNREFUSED', 'ECONNRESET', 'UND_ERR_SOCKET', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT', 'HPE_INVALID_CONSTANT', 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH', 'CERT_HAS_EXPIRED']) {
    t.not(health(code), null, `${code} is the endpoint's doing`);
  }
  for (const code of ['UND_ERR_INVALID_ARG', 'UND_ERR_NOT_SUPPORTED', 'UND_ERR_ABORTED', 'UND_ERR_CLOSED', 'UND_ERR_DESTROYED', 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH', 'ERR_STREAM_PREMATURE_CLOSE', 'SOMETHING_NEW']) {
    t.is(health(code), null, `${code} is not the endpoint's doing`);
  }
  t.is(classifyUpstreamError(wrapped('UND_ERR_INVALID_ARG')).error, 'BAD_REQUEST', 'a request that cannot be forwarded as sent');
  t.is(classifyUpstreamError(wrapped('UND_ERR_INVALID_ARG')).kind, 'local');
  t.is(classifyUpstreamError(new Error('no code')).health, null);
  t.is(classifyUpstreamError(wrapped('ECONNREFUSED')).health, 'refused');
});

test('EndpointHealth: refused ejects at once, failures after N in a row, back-off doubles up to the cap, success resets', (t) => {
  let now = 1_000_000;
  const upstream = parseGatewayConfig({ upstream: { ejectAfterFailures: 3, ejectBaseMs: 1000, ejectMaxMs: 5000 } }).upstream;
  const told: Ejection[] = [];
  const health = new EndpointHealth(upstream, () => now, (e) => told.push(e));
  const zone: Zone = { name: 'z', region: 'r', city: 'c', capacity: 1, status: 'up', upstreams: ['http://10.0.0.1:80', 'http://10.0.0.2:80/base'] };
  const pools = health.poolsFor({ zones: [zone] } as never);
  const pool = pools.get('z')!.get('default')!;
  const [a, b] = pool.endpoints;
  t.is(b!.origin, 'http://10.0.0.2', 'endpoints are origins (default port and path dropped)');
  t.deepEqual([pool.pick(now), pool.pick(now), pool.pick(now)].map((e) => e?.origin), [a!.origin, b!.origin, a!.origin], 'round robin');

  const ejections: number[] = [];
  for (let i = 0; i < 5; i++) {
    health.record(a!, 'refused');
    ejections.push(a!.ejectedUntilMs - now);
    t.false(a!.isAvailable(now));
    t.is(pool.pick(now), b, 'only the healthy endpoint is picked');
    health.record(a!, 'refused'); // a failure of a request already in flight: no longer ejection
    t.is(a!.ejectedUntilMs - now, ejections[i]);
    now = a!.ejectedUntilMs;
    t.true(a!.isAvailable(now), 'retried once the back-off has passed');
  }
  t.deepEqual(ejections, [1000, 2000, 4000, 5000, 5000]);
  t.deepEqual(told.map((e) => [e.origin, e.why, e.ejections, e.forMs]), [1000, 2000, 4000, 5000, 5000].map((ms, i) => ['http://10.0.0.1', 'refused', i + 1, ms]),
    'every ejection is told (the gateway logs upstream.ejected), the in-flight failures are not');
  health.record(a!, 'success');
  health.record(a!, 'refused');
  t.is(a!.ejectedUntilMs - now, 1000, 'a success resets the back-off');
  now = a!.ejectedUntilMs;

  health.record(a!, 'failure');
  health.record(a!, 'failure');
  t.true(a!.isAvailable(now), 'two failures in a row are tolerated');
  health.record(a!, 'success');
  health.record(a!, 'failure');
  health.record(a!, 'failure');
  t.true(a!.isAvailable(now), 'a success in between restarts the count');
  health.record(a!, 'failure');
  t.false(a!.isAvailable(now), 'the third consecutive failure ejects');
  t.like(told.at(-1), { why: 'failure', failures: 3 });

  health.record(b!, 'refused');
  t.is(pool.pick(now), null, 'none left');
  const again = health.poolsFor({ zones: [zone] } as never).get('z')!.get('default')!;
  t.is(again.endpoints[0], a, 'health survives a new table');
});

test('a dead endpoint is ejected (safe requests fail over to its peer) and gets traffic again after the back-off', async (t) => {
  const [a, b] = await startUpstreams('a', 'b');
  t.teardown(() => stopAll([a!, b!]));
  const store = new MemoryStore(tableFor([{ name: 'z1', upstreams: [a!.url, b!.url] }], { cells: 4 }));
  // Ejection time is read from the injected clock: the back-off passes when the test says so.
  const clock = new ManualClock(Date.now());
  const g = await startGateway(t, store, { waitVersion: 1, clock, config: { upstream: { ejectBaseMs: 400, ejectMaxMs: 400 } } });
  const hit = async () => (await httpCall(`${g.url}/x`, { headers: { 'x-user-id': 'u1' } }));

  const first = await Promise.all([hit(), hit(), hit(), hit()]);
  t.deepEqual(first.map((r) => r.status), [200, 200, 200, 200]);
  t.true(a!.received.length >= 1 && b!.received.length >= 1, 'both endpoints serve');

  await a!.stop();
  const bBefore = b!.received.length;
  for (let i = 0; i < 6; i++) {
    const r = await hit();
    t.is(r.status, 200, 'a refused GET is retried on the next endpoint of the zone');
    t.is(r.json<UpstreamAnswer>().upstream, 'b');
  }
  t.is(b!.received.length - bBefore, 6);
  const metrics = (await httpCall(`${g.admin}/metrics`)).text();
  t.regex(metrics, /cellgate_upstream_errors_total\{zone="z1",service="default",kind="refused"\} 1\n/, 'the dead endpoint was tried once, then ejected');
  t.regex(metrics, /cellgate_upstream_ejected_endpoints\{zone="z1",service="default"\} 1/);

  await a!.restart();
  clock.advance(399);
  const still = await Promise.all([hit(), hit()]);
  t.true(still.every((r) => r.json<UpstreamAnswer>().upstream === 'b'), 'still ejected just before the back-off ends');
  clock.advance(1);
  const after = await Promise.all([hit(), hit(), hit(), hit()]);
  t.true(after.every((r) => r.status === 200));
  t.true(after.some((r) => r.json<UpstreamAnswer>().upstream === 'a'), 'the recovered endpoint gets traffic again');
  const metrics2 = (await httpCall(`${g.admin}/metrics`)).text();
  t.regex(metrics2, /cellgate_upstream_ejected_endpoints\{zone="z1",service="default"\} 0/);
});

test('an endpoint that keeps answering 503 is ejected after ejectAfterFailures; none left is 502', async (t) => {
  const [a, b] = await startUpstreams('a', 'b');
  t.teardown(() => stopAll([a!, b!]));
  a!.behave = (_req, res) => {
    res.writeHead(503);
    res.end();
    return true;
  };
  const store = new MemoryStore(tableFor([{ name: 'z1', upstreams: [a!.url, b!.url] }], { cells: 4 }));
  const g = await startGateway(t, store, { waitVersion: 1, config: { upstream: { ejectAfterFailures: 2, ejectBaseMs: 60_000, ejectMaxMs: 60_000 } } });
  const post = () => httpCall(`${g.url}/x`, { method: 'POST', headers: { 'x-user-id': 'u1' }, body: 'x' });
  const statuses: number[] = [];
  for (let i = 0; i < 8; i++) statuses.push((await post()).status);
  t.is(a!.received.length, 2, 'two 503s in a row, then ejected');
  t.is(statuses.filter((s) => s === 503).length, 2);
  t.is(statuses.filter((s) => s === 200).length, 6);

  await b!.stop();
  const gone = await post();
  t.is(gone.status, 502, 'b refused: no endpoint left');
  t.is(gone.json().error, 'UPSTREAM_UNAVAILABLE');
  const none = await post();
  t.is(none.status, 502);
  t.is(a!.received.length, 2, 'ejected endpoints are not tried while ejected');
});

test('a request never sent (connection refused) goes to the next endpoint whatever its method when it has no body; a POST with a body does not', async (t) => {
  const [a, b] = await startUpstreams('a', 'b');
  t.teardown(() => stopAll([a!, b!]));
  // Ejection lasts the whole test: each round starts with `a` available again (reset below).
  const store = new MemoryStore(tableFor([{ name: 'z1', upstreams: [a!.url, b!.url] }], { cells: 4 }));
  const clock = new ManualClock(Date.now());
  const g = await startGateway(t, store, { waitVersion: 1, clock, config: { upstream: { ejectBaseMs: 1000, ejectMaxMs: 1000 } } });
  await a!.stop();
  const send = (method: string, body?: string) => httpCall(`${g.url}/x`, { method, headers: { 'x-user-id': 'u1' }, ...(body === undefined ? {} : { body }) });
  // Round robin: within two requests one meets the dead endpoint; bodiless ones all reach b.
  for (const method of ['POST', 'DELETE', 'PATCH', 'POST']) {
    clock.advance(1_000); // a is tried again
    const answers = [await send(method), await send(method)];
    t.deepEqual(answers.map((r) => r.status), [200, 200], `${method} without a body`);
    t.true(answers.every((r) => r.json<UpstreamAnswer>().upstream === 'b'));
  }
  const metrics = (await httpCall(`${g.admin}/metrics`)).text();
  t.regex(metrics, /cellgate_upstream_errors_total\{zone="z1",service="default",kind="refused"\} 4\n/, 'the dead endpoint was met once per round');
  // With a body there is nothing to replay from: one 502, then a is ejected.
  clock.advance(1_000);
  const withBody = [await send('POST', 'x'), await send('POST', 'x')];
  t.deepEqual(withBody.map((r) => r.status).sort(), [200, 502]);
});
