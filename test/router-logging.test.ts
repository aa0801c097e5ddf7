// The gateway's logs against real upstreams on 127.0.0.1: pino JSON lines with level names and
// components, logLevel honoured, and the access log (accessLog: true): one line per request
// with its fields, the request id passed through when sane or generated (and seen by the
// upstream), the user id only as a keyed hash — never in clear, not even in the path.
import { createHmac } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import test, { type ExecutionContext } from 'ava';
import WebSocket from 'ws';
import { RoutingView } from '../src/cells/lookup';
import { versioned } from '../src/cells/table';
import { parseGatewayConfig } from '../src/router/config';
import { createGateway } from '../src/router/gateway';
import { cellctl } from './helpers/cli';
import { startGatewayProcess, topologyYaml } from './helpers/e2e';
import { MemoryStore } from './helpers/memory-store';
import { tableFor } from './helpers/router-fixture';
import { httpCall, startUpstreams, stopAll, type Upstream } from './helpers/upstreams';
import { until } from './helpers/wait';

type Line = Record<string, unknown>;

/** A log destination that keeps every line (pino writes one JSON line per call). */
class Lines extends Writable {
  readonly text: string[] = [];
  override _write(chunk: Buffer, _enc: string, done: () => void): void {
    this.text.push(chunk.toString());
    done();
  }
  get all(): Line[] {
    return this.text.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Line);
  }
  of(component: string): Line[] {
    return this.all.filter((l) => l.component === component);
  }
}

const KEY = 'test-access-log-key-0123456789';

async function gatewayWithLog(t: ExecutionContext, config: Record<string, unknown>) {
  const ups = await startUpstreams('up-a', 'up-b');
  t.teardown(() => stopAll(ups));
  const table = tableFor([{ name: 'zone-a', upstreams: [ups[0]!.url] }, { name: 'zone-b', upstreams: [ups[1]!.url] }], { cells: 8 });
  const store = new MemoryStore(table);
  const lines = new Lines();
  const gw = createGateway({
    config: parseGatewayConfig({ port: 0, adminPort: 0, id: 'gw-log', shutdownGraceMs: 2000, ...config }),
    store, logDestination: lines, processMetrics: false,
  });
  t.teardown(() => gw.shutdown());
  const addr = await gw.start();
  await gw.waitForVersion(1);
  return { gw, ups, url: addr.traffic, lines, store, view: new RoutingView(versioned(table, 1)) };
}

function upstreamOf(ups: readonly Upstream[], user: string): Upstream {
  const u = ups.find((x) => x.receivedFor(user).length > 0);
  if (!u) throw new Error(`no upstream received ${user}`);
  return u;
}

test('access log: one line per request with its fields; request id passed through and sent upstream; user only as a keyed hash', async (t) => {
  const { ups, url, lines, view } = await gatewayWithLog(t, {
    accessLog: true, accessLogUserKey: KEY, userId: { sources: [{ header: 'x-user-id' }, { path: '/users/:user' }] },
  });
  const user = 'alice-secret-7f3a';
  const res = await httpCall(`${url}/orders/1?uid=${user}&token=t0k3n`, { headers: { 'x-user-id': user, 'x-request-id': 'req-abc-123' } });
  t.is(res.status, 200);
  await until('the access line', () => lines.of('access').length === 1);
  const line = lines.of('access')[0]!;
  const route = view.routeUnit(user, Date.now());
  if (!route.ok) throw new Error('no route');
  const up = upstreamOf(ups, user);
  t.like(line, {
    level: 'info', requestId: 'req-abc-123', method: 'GET', path: '/orders/1', status: 200, class: 'unit',
    zone: route.zone.name, service: 'default', cell: route.cell, upstream: up.url,
  });
  t.is(line.user, createHmac('sha256', KEY).update(user).digest('hex').slice(0, 16), 'HMAC-SHA256 with the configured key');
  t.true(typeof line.durationMs === 'number' && line.durationMs > 0);
  t.true(typeof line.time === 'string' && typeof line.pid === 'number');
  t.is(up.receivedFor(user)[0]!.headers['x-request-id'], 'req-abc-123', 'the client\'s id reached the upstream');

  // Not sane (a space, a non-ASCII byte, too long): replaced by a generated id, which the upstream sees.
  for (const [i, bad] of ['has space', 'caf\u00e9', 'x'.repeat(129)].entries()) {
    const u = `bob-${i}`;
    t.is((await httpCall(`${url}/x`, { headers: { 'x-user-id': u, 'x-request-id': bad } })).status, 200);
    await until('the access line', () => lines.of('access').length === 2 + i);
    const got = lines.of('access')[1 + i]!;
    t.regex(String(got.requestId), /^[0-9a-f-]{36}$/, 'a generated UUID');
    t.is(upstreamOf(ups, u).receivedFor(u)[0]!.headers['x-request-id'], got.requestId as string);
  }
  // None sent: generated, unique per request.
  await httpCall(`${url}/y`, { headers: { 'x-user-id': 'carol' } });
  await httpCall(`${url}/y`, { headers: { 'x-user-id': 'carol' } });
  await until('two more lines', () => lines.of('access').length === 6);
  const [a, b] = lines.of('access').slice(4);
  t.not(a!.requestId, b!.requestId);
  t.is(upstreamOf(ups, 'carol').receivedFor('carol')[1]!.headers['x-request-id'], b!.requestId as string);

  // The user in the path is written as :user; a request the gateway answers itself is logged too.
  t.is((await httpCall(`${url}/users/${user}/profile`)).status, 200);
  t.is((await httpCall(`${url}/no-user`)).status, 400);
  await until('two more lines', () => lines.of('access').length === 8);
  const [viaPath, refused] = lines.of('access').slice(6);
  t.is(viaPath!.path, '/users/:user/profile');
  t.is(viaPath!.user, line.user, 'the same user, the same hash');
  t.like(refused, { status: 400, path: '/no-user', user: null, upstream: null, cell: null, zone: 'none' });
  t.regex(String(refused!.requestId), /^[0-9a-f-]{36}$/);

  const all = lines.text.join('');
  t.false(all.includes(user), 'the user id is never written in clear');
  t.false(all.includes('t0k3n'), 'nor the query string');
});

test('a per-process key when none is configured: hashes differ between gateways, never the raw id', async (t) => {
  const one = await gatewayWithLog(t, { accessLog: true });
  const two = await gatewayWithLog(t, { accessLog: true });
  await httpCall(`${one.url}/x`, { headers: { 'x-user-id': 'dave' } });
  await httpCall(`${two.url}/x`, { headers: { 'x-user-id': 'dave' } });
  await until('both lines', () => one.lines.of('access').length === 1 && two.lines.of('access').length === 1);
  const [h1, h2] = [one.lines.of('access')[0]!.user, two.lines.of('access')[0]!.user];
  t.regex(String(h1), /^[0-9a-f]{16}$/);
  t.not(h1, h2);
  t.false(one.lines.text.join('').includes('dave'));
});

test('access log off (the default): no access lines, the request id left as the client sent it', async (t) => {
  const { ups, url, lines, gw } = await gatewayWithLog(t, {});
  await httpCall(`${url}/x`, { headers: { 'x-user-id': 'erin', 'x-request-id': 'has space' } });
  await httpCall(`${url}/x`, { headers: { 'x-user-id': 'erin' } });
  await gw.shutdown();
  t.is(lines.of('access').length, 0);
  const got = upstreamOf(ups, 'erin').receivedFor('erin');
  t.is(got[0]!.headers['x-request-id'], 'has space');
  t.is(got[1]!.headers['x-request-id'], undefined, 'none generated');
  t.true(lines.of('lifecycle').some((l) => l.event === 'gateway.stopped'), 'the log was flushed at shutdown');
});

test('logLevel: component lines with level names; below the level nothing is written; the access log does not depend on it', async (t) => {
  const info = await gatewayWithLog(t, {});
  await until('table.applied', () => info.lines.of('table').some((l) => l.event === 'table.applied'));
  t.like(info.lines.of('table').find((l) => l.event === 'table.applied'), { level: 'info', version: 1 });
  t.true(info.lines.of('lifecycle').some((l) => l.event === 'gateway.listening' && l.level === 'info'));
  t.true(info.lines.of('presence').some((l) => l.event === 'presence.registered'));

  const warn = await gatewayWithLog(t, { logLevel: 'warn', accessLog: true });
  warn.store.setReachable(false);
  await until('store.connection at warn', () => warn.lines.of('store').some((l) => l.event === 'store.connection' && l.connected === false));
  t.is(warn.lines.of('store').find((l) => l.connected === false)!.level, 'warn');
  await httpCall(`${warn.url}/x`, { headers: { 'x-user-id': 'frank' } });
  await until('the access line', () => warn.lines.of('access').length === 1);
  await warn.gw.shutdown();
  t.deepEqual(warn.lines.all.filter((l) => l.level === 'info' && l.component !== 'access'), [], 'no info line at warn');
});

test('a WebSocket: its request id reaches the upstream handshake, one access line with status 101', async (t) => {
  const { url, lines } = await gatewayWithLog(t, { accessLog: true });
  const ws = new WebSocket(`${url.replace('http:', 'ws:')}/live`, { headers: { 'x-user-id': 'gina', 'x-request-id': 'ws-req-1' } });
  t.teardown(() => ws.terminate());
  const hello = await new Promise<{ headers: Record<string, string> }>((resolve, reject) => {
    ws.once('message', (data) => resolve(JSON.parse(String(data)) as { headers: Record<string, string> }));
    ws.once('error', reject);
  });
  t.is(hello.headers['x-request-id'], 'ws-req-1');
  ws.close();
  await until('the access line', () => lines.of('access').length === 1);
  t.like(lines.of('access')[0], { requestId: 'ws-req-1', status: 101, path: '/live' });
  t.false(lines.text.join('').includes('gina'));
});

test('cellgate serve: access lines on stderr (buffered, written within a second on a quiet gateway, and at shutdown)', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'cellgate-accesslog-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const ups = await startUpstreams('up-a');
  t.teardown(() => stopAll(ups));
  const topology = join(dir, 'topology.yaml');
  await writeFile(topology, topologyYaml([{ name: 'zone-a', region: 'east', city: 'sh', url: ups[0]!.url }], 4));
  const tablePath = join(dir, 'table.json');
  t.is((await cellctl(['init', '--topology', topology, '--file', tablePath, '--yes'])).code, 0);
  const config = join(dir, 'gw.yaml');
  await writeFile(config, 'port: 0\nadminPort: 0\naccessLog: true\n');
  const gw = await startGatewayProcess(['--config', config, '--store', `file:${tablePath}`], 'gw-access');
  t.teardown(async () => { await gw.stop(); });
  const accessLines = () => gw.stderr().split('\n').filter((l) => l.includes('"component":"access"')).map((l) => JSON.parse(l) as Line);
  await until('served', async () => (await httpCall(`${gw.traffic}/one`, { headers: { 'x-user-id': 'hank' } }).catch(() => null))?.status === 200);
  await until('the first line, flushed by the timer', () => accessLines().some((l) => l.path === '/one'), 10_000);
  t.is((await httpCall(`${gw.traffic}/last`, { headers: { 'x-user-id': 'hank', 'x-request-id': 'last-one' } })).status, 200);
  t.is(await gw.stop(), 0);
  t.like(accessLines().find((l) => l.path === '/last'), { requestId: 'last-one', status: 200, level: 'info' }, 'written at shutdown');
  t.false(gw.stderr().includes('hank'));
});
