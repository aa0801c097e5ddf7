// The presence relay (issue 15) against a real etcd, over real HTTP on 127.0.0.1: records land
// under gateways-relayed/ on the relay's lease, many per transaction, 204 only once committed,
// a heartbeat writes nothing, unrefreshed records expire, and the contract's JSON errors.
import test, { type ExecutionContext } from 'ava';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Etcd3 } from 'etcd3';
import { startPresenceRelay, type PresenceRelay, type PresenceRelayOptions } from '../src/relay';
import type { PresenceRecord } from '../src/store/types';
import { startEtcd, type EtcdHandle } from './helpers/etcd';
import { relayRequest } from './helpers/relay-http';
import { until } from './helpers/wait';

let etcd: EtcdHandle;
let client: Etcd3;
test.before(async () => {
  etcd = await startEtcd();
  client = new Etcd3({ hosts: etcd.endpoints.map((e) => `http://${e}`) });
});
test.after.always(async () => {
  client?.close();
  await etcd?.stop();
});

const freshPrefix = () => `/relay-${randomBytes(4).toString('hex')}`;

async function relay(t: ExecutionContext, prefix: string, opts: Partial<PresenceRelayOptions> = {}, endpoints = etcd.endpoints): Promise<PresenceRelay> {
  const r = await startPresenceRelay({ etcd: { endpoints, prefix }, id: 'relay-t', host: '127.0.0.1', port: 0, ...opts });
  t.teardown(() => r.close());
  return r;
}

function record(id: string, appliedVersion = 1): PresenceRecord {
  return { id, zone: 'sh-a', appliedVersion, checksum: `c${appliedVersion}`, inFlight: 0, startedAt: '2026-11-30T00:00:00.000Z', updatedAt: '2026-11-30T00:00:00.000Z', pid: 7, host: 'gw-host' };
}

const path = (id: string) => `/v1/gateways/${encodeURIComponent(id)}`;
const put = (r: PresenceRelay, rec: PresenceRecord, ttlSeconds = 10, headers: Record<string, string> = {}) =>
  relayRequest(r.url, 'PUT', path(rec.id), JSON.stringify({ record: rec, ttlSeconds }), headers);
const keyOf = (prefix: string, id: string) => `${prefix}/gateways-relayed/${encodeURIComponent(id)}`;

async function stored(prefix: string, id: string) {
  const res = await client.get(keyOf(prefix, id)).exec();
  return res.kvs[0] ?? null;
}

const absent = async (prefix: string, id: string) => (await stored(prefix, id)) === null;

test('a PUT is answered 204 once committed: the record plus the relay field, on the relay\'s lease; the same record again writes nothing', async (t) => {
  const p = freshPrefix();
  const r = await relay(t, p, { ttlSeconds: 7 });
  const rec = record('gw/1 é');
  const first = await put(r, rec);
  t.is(first.status, 204);
  const kv = await stored(p, rec.id); // read right after the 204: it must be there already
  t.truthy(kv, 'committed before the 204');
  t.deepEqual(JSON.parse(kv!.value.toString()), { ...rec, relay: 'relay-t' });
  t.not(kv!.lease, '0');
  const ttl = await client.leaseClient.leaseTimeToLive({ ID: kv!.lease, keys: true });
  t.is(Number(ttl.grantedTTL), 7, 'the relay\'s own lease (--ttl)');
  t.deepEqual(ttl.keys.map((k) => k.toString()), [keyOf(p, rec.id)]);

  const txns = r.stats.txns;
  const heartbeat = await put(r, rec);
  t.is(heartbeat.status, 204);
  t.is((await stored(p, rec.id))!.mod_revision, kv!.mod_revision, 'a heartbeat is not written');
  t.is(r.stats.txns, txns);

  const newer = await put(r, record(rec.id, 2));
  t.is(newer.status, 204);
  const kv2 = await stored(p, rec.id);
  t.is(JSON.parse(kv2!.value.toString()).appliedVersion, 2);
  t.not(kv2!.mod_revision, kv!.mod_revision);
  t.is(r.gateways, 1);
  const health = await relayRequest(r.url, 'GET', '/healthz');
  t.deepEqual({ status: health.status, json: health.json }, { status: 200, json: { ok: true, gateways: 1 } });
});

test('100 concurrent PUTs of different gateways are committed in a few transactions', async (t) => {
  const p = freshPrefix();
  const r = await relay(t, p);
  const ids = Array.from({ length: 100 }, (_, i) => `gw-${i}`);
  const answers = await Promise.all(ids.map((id) => put(r, record(id))));
  t.deepEqual(answers.map((a) => a.status), ids.map(() => 204));
  const res = await client.getAll().prefix(`${p}/gateways-relayed/`).exec();
  t.is(res.kvs.length, 100);
  const revisions = new Set(res.kvs.map((kv) => kv.mod_revision));
  t.log(`${revisions.size} transactions for 100 concurrent PUTs`);
  t.true(revisions.size <= 30, `${revisions.size} distinct revisions (transactions) for 100 records`);
  t.is(r.stats.txns, revisions.size);
  t.is(r.stats.ops, 100);
  t.is(new Set(res.kvs.map((kv) => kv.lease)).size, 1, 'all on the relay\'s lease');
});

test('a record not refreshed within its ttlSeconds is deleted and forgotten; a refreshed one stays', async (t) => {
  const p = freshPrefix();
  const r = await relay(t, p);
  t.is((await put(r, record('gw-gone'), 1)).status, 204);
  t.is((await put(r, record('gw-stays'), 3)).status, 204);
  const refresh = setInterval(() => void put(r, record('gw-stays'), 3).catch(() => undefined), 500);
  t.teardown(() => clearInterval(refresh));
  await until('the unrefreshed record to be deleted', async () => (await stored(p, 'gw-gone')) === null, 30_000);
  await until('the relay to forget it', () => r.gateways === 1, 10_000);
  t.truthy(await stored(p, 'gw-stays'));
  clearInterval(refresh);
});

test('DELETE removes the key (204), and is 204 for a gateway the relay does not hold', async (t) => {
  const p = freshPrefix();
  const r = await relay(t, p);
  t.is((await put(r, record('gw-d'))).status, 204);
  t.truthy(await stored(p, 'gw-d'));
  const del = await relayRequest(r.url, 'DELETE', path('gw-d'));
  t.is(del.status, 204);
  t.true(await absent(p, 'gw-d'), 'deleted before the 204');
  t.is(r.gateways, 0);
  t.is((await relayRequest(r.url, 'DELETE', path('never-seen'))).status, 204);
});

test('a deletion leaves alone a key another relay has written since', async (t) => {
  const p = freshPrefix();
  const a = await relay(t, p, { id: 'relay-a' });
  const b = await relay(t, p, { id: 'relay-b' });
  t.is((await put(a, record('gw-moved'))).status, 204);
  t.is((await put(b, record('gw-moved'))).status, 204);
  t.is((await relayRequest(a.url, 'DELETE', path('gw-moved'))).status, 204);
  const kv = await stored(p, 'gw-moved');
  t.truthy(kv);
  t.is(JSON.parse(kv!.value.toString()).relay, 'relay-b');
});

test('bad requests get the contract\'s JSON errors', async (t) => {
  const p = freshPrefix();
  const r = await relay(t, p);
  const send = (method: string, pathname: string, body?: string | Buffer) => relayRequest(r.url, method, pathname, body);
  const cases: [string, Promise<{ status: number; json: unknown }>, number, string][] = [
    ['not JSON', send('PUT', path('gw-1'), '{nope'), 400, 'BAD_REQUEST'],
    ['no ttlSeconds', send('PUT', path('gw-1'), JSON.stringify({ record: record('gw-1') })), 400, 'BAD_REQUEST'],
    ['ttlSeconds 0', send('PUT', path('gw-1'), JSON.stringify({ record: record('gw-1'), ttlSeconds: 0 })), 400, 'BAD_REQUEST'],
    ['id mismatch', send('PUT', path('gw-1'), JSON.stringify({ record: record('gw-2'), ttlSeconds: 5 })), 400, 'BAD_REQUEST'],
    ['bad record', send('PUT', path('gw-1'), JSON.stringify({ record: { ...record('gw-1'), appliedVersion: -1 }, ttlSeconds: 5 })), 400, 'BAD_REQUEST'],
    ['bad encoding', send('PUT', '/v1/gateways/%E0%A4%A', JSON.stringify({ record: record('gw-1'), ttlSeconds: 5 })), 400, 'BAD_REQUEST'],
    ['oversized', send('PUT', path('gw-1'), Buffer.alloc(70 * 1024, 'x')), 413, 'BODY_TOO_LARGE'],
    ['unknown route', send('GET', '/v1/nothing'), 404, 'NOT_FOUND'],
  ];
  for (const [what, pending, status, error] of cases) {
    const res = await pending;
    t.is(res.status, status, what);
    t.is((res.json as { error: string }).error, error, what);
    t.is(typeof (res.json as { message: unknown }).message, 'string', what);
  }
  const all = await client.getAll().prefix(`${p}/`).keys();
  t.deepEqual(all, [], 'nothing was written');
});

test('with a token: missing or wrong is 401 UNAUTHORIZED, the right one passes', async (t) => {
  const p = freshPrefix();
  const r = await relay(t, p, { token: 's3cret-token' });
  const missing = await put(r, record('gw-1'));
  t.is(missing.status, 401);
  t.is((missing.json as { error: string }).error, 'UNAUTHORIZED');
  const wrong = await put(r, record('gw-1'), 10, { authorization: 'Bearer s3cret-tokem' });
  t.is(wrong.status, 401);
  t.is((await relayRequest(r.url, 'DELETE', path('gw-1'), undefined, { authorization: 'Bearer x' })).status, 401);
  t.true(await absent(p, 'gw-1'));
  t.is((await put(r, record('gw-1'), 10, { authorization: 'Bearer s3cret-tokem'.replace('m', 'n') })).status, 204);
  t.truthy(await stored(p, 'gw-1'));
});

test('a full relay answers 503 RELAY_FULL to a new gateway and keeps serving the ones it holds', async (t) => {
  const p = freshPrefix();
  const r = await relay(t, p, { maxGateways: 2 });
  t.is((await put(r, record('gw-1'))).status, 204);
  t.is((await put(r, record('gw-2'))).status, 204);
  const full = await put(r, record('gw-3'));
  t.is(full.status, 503);
  t.is((full.json as { error: string }).error, 'RELAY_FULL');
  t.is(full.headers['retry-after'], '1');
  t.true(await absent(p, 'gw-3'));
  t.is((await put(r, record('gw-1', 2))).status, 204);
});

test('stopping the relay revokes its lease: its keys are gone, the gateways\' own records untouched', async (t) => {
  const p = freshPrefix();
  await client.put(`${p}/gateways/gw-direct`).value(JSON.stringify(record('gw-direct')));
  const r = await startPresenceRelay({ etcd: { endpoints: etcd.endpoints, prefix: p }, id: 'relay-s', host: '127.0.0.1', port: 0 });
  t.teardown(() => r.close());
  for (const id of ['gw-1', 'gw-2', 'gw-3']) t.is((await put(r, record(id))).status, 204);
  t.is((await client.getAll().prefix(`${p}/gateways-relayed/`).keys()).length, 3);
  await r.close();
  t.deepEqual(await client.getAll().prefix(`${p}/gateways-relayed/`).keys(), []);
  t.deepEqual(await client.getAll().prefix(`${p}/gateways/`).keys(), [`${p}/gateways/gw-direct`]);
});

test('a lease lost while the relay lives: a new one is granted and every record put again', async (t) => {
  const p = freshPrefix();
  const r = await relay(t, p, { ttlSeconds: 3 });
  for (const id of ['gw-1', 'gw-2']) t.is((await put(r, record(id))).status, 204);
  const before = (await stored(p, 'gw-1'))!.lease;
  await client.leaseClient.leaseRevoke({ ID: before });
  await until('both records back on a new lease', async () => {
    const kvs = (await client.getAll().prefix(`${p}/gateways-relayed/`).exec()).kvs;
    return kvs.length === 2 && kvs.every((kv) => kv.lease !== before && kv.lease !== '0');
  }, 20_000);
  t.pass();
});

test('etcd away: a PUT is answered 503 STORE_UNAVAILABLE within the deadline; /healthz follows the lease; back, it recovers', async (t) => {
  const own = await startEtcd();
  t.teardown(() => own.stop());
  const p = freshPrefix();
  const r = await relay(t, p, { ttlSeconds: 2 }, own.endpoints);
  t.is((await put(r, record('gw-1'))).status, 204);
  await own.kill();
  const t0 = performance.now();
  const res = await put(r, record('gw-1', 2));
  const waited = performance.now() - t0;
  t.is(res.status, 503);
  t.is((res.json as { error: string }).error, 'STORE_UNAVAILABLE');
  t.true(waited < 9_000, `answered after ${Math.round(waited)} ms (deadline 5 s; the rest is room for a loaded machine)`);
  await until('/healthz 503 once the lease is lost', async () => (await relayRequest(r.url, 'GET', '/healthz')).status === 503, 20_000);
  await own.restart();
  await until('the relay to hold a lease again', async () => (await relayRequest(r.url, 'GET', '/healthz')).status === 200, 30_000);
  const again = await put(r, record('gw-1', 3));
  t.is(again.status, 204);
  const c = new Etcd3({ hosts: own.endpoints.map((e) => `http://${e}`) });
  t.teardown(() => c.close());
  const kv = (await c.get(keyOf(p, 'gw-1')).exec()).kvs[0];
  t.is(JSON.parse(kv!.value.toString()).appliedVersion, 3);
});
