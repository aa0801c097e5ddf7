// The gateway's listeners (issue 8 items 6 and 7): the admin server binds `adminHost`, apart
// from the traffic `host`; the traffic server cuts clients that are too slow to send their
// request, closes idle kept-alive connections and caps open connections — all counted.
import { connect, type Socket } from 'node:net';
import test, { type ExecutionContext } from 'ava';
import { MemoryStore } from './helpers/memory-store';
import { startGateway, tableFor } from './helpers/router-fixture';
import { httpCall, startUpstreams, stopAll } from './helpers/upstreams';
import { metricValue, until } from './helpers/wait';

async function gateway(t: ExecutionContext, config: Record<string, unknown>) {
  const [up] = await startUpstreams('only');
  t.teardown(() => stopAll([up!]));
  return startGateway(t, new MemoryStore(tableFor([{ name: 'z1', upstreams: [up!.url] }], { cells: 4 })), { waitVersion: 1, config });
}

/** A raw client socket; `closed` resolves with everything the server sent, once it closes the connection. */
function rawSocket(t: ExecutionContext, port: number, host = '127.0.0.1'): { socket: Socket; connected: Promise<void>; closed: Promise<string> } {
  const socket = connect(port, host);
  t.teardown(() => socket.destroy());
  let acc = '';
  socket.on('data', (d) => (acc += d.toString('latin1')));
  const connected = new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const closed = new Promise<string>((resolve) => socket.once('close', () => resolve(acc)));
  socket.on('error', () => undefined);
  return { socket, connected, closed };
}

/** Resolves true when `p` settles within `ms`. */
function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    void p.then(() => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

function refusedConnection(port: number, host: string): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, host);
    s.once('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
  });
}

test('the admin server listens on adminHost (loopback by default), not on the traffic host', async (t) => {
  const g = await gateway(t, { host: '0.0.0.0' });
  t.is(g.gw.config.adminHost, '127.0.0.1');
  t.is(g.addr.admin, `http://127.0.0.1:${g.addr.adminPort}`);
  t.is((await httpCall(`${g.admin}/healthz`)).status, 200);
  // Another loopback address: the traffic port answers there (0.0.0.0), the admin port does not.
  t.is((await httpCall(`http://127.0.0.2:${g.addr.port}/x`, { headers: { 'x-user-id': 'u1' } })).status, 200);
  t.is(await refusedConnection(g.addr.adminPort, '127.0.0.2'), 'ECONNREFUSED', '/admin/table is not exposed with the traffic');

  const apart = await gateway(t, { host: '127.0.0.1', adminHost: '127.0.0.2' });
  t.is(apart.addr.admin, `http://127.0.0.2:${apart.addr.adminPort}`);
  t.is((await httpCall(`${apart.admin}/readyz`)).status, 200);
  t.is(await refusedConnection(apart.addr.adminPort, '127.0.0.1'), 'ECONNREFUSED');
});

test('a client that sends its request head too slowly is cut (408) at server.headersTimeoutMs, and counted', async (t) => {
  const g = await gateway(t, { server: { headersTimeoutMs: 300, requestTimeoutMs: 2000 } });
  const slow = rawSocket(t, g.addr.port);
  await slow.connected;
  const started = Date.now();
  slow.socket.write('GET /slow HTTP/1.1\r\nHost: gw\r\n');
  // One more header line every 100 ms: the head never ends.
  const drip = setInterval(() => slow.socket.writable && slow.socket.write('X-Drip: 1\r\n'), 100);
  t.teardown(() => clearInterval(drip));
  t.true(await within(slow.closed, 5000), 'cut');
  clearInterval(drip);
  const elapsed = Date.now() - started;
  t.regex(await slow.closed, /^HTTP\/1\.1 408 /);
  t.true((await slow.closed).endsWith('{"error":"REQUEST_TIMEOUT","message":"the client did not send its whole request before its deadline"}'), 'the contract JSON, not fastify\'s');
  t.true(elapsed >= 250 && elapsed < 3000, `cut after ${elapsed} ms`);
  t.is(metricValue((await httpCall(`${g.admin}/metrics`)).text(), 'cellgate_requests_refused_total{reason="client_timeout"}'), 1);
  t.is((await httpCall(`${g.url}/x`, { headers: { 'x-user-id': 'u1' } })).status, 200, 'other clients are served');
});

test('a client that does not finish its body within server.requestTimeoutMs is cut (408)', async (t) => {
  const g = await gateway(t, { server: { headersTimeoutMs: 300, requestTimeoutMs: 600 } });
  const slow = rawSocket(t, g.addr.port);
  await slow.connected;
  slow.socket.write('POST /slow HTTP/1.1\r\nHost: gw\r\nx-user-id: u1\r\nContent-Length: 10\r\n\r\n12345');
  t.true(await within(slow.closed, 5000), 'cut');
  t.regex(await slow.closed, /HTTP\/1\.1 408 /);
});

/** The body of a raw response, parsed. */
function jsonBodyOf(raw: string): unknown {
  return JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4));
}

test('bytes that are not HTTP get 400 BAD_REQUEST and a head over the limit 431 HEADERS_TOO_LARGE, in the contract JSON, and are counted', async (t) => {
  const g = await gateway(t, {});
  const garbage = rawSocket(t, g.addr.port);
  await garbage.connected;
  garbage.socket.write('GET /\x01 HTTP/1.1\r\n\r\n');
  t.true(await within(garbage.closed, 5000), 'closed');
  t.regex(await garbage.closed, /^HTTP\/1\.1 400 /);
  t.is((jsonBodyOf(await garbage.closed) as { error: string }).error, 'BAD_REQUEST');

  const huge = rawSocket(t, g.addr.port);
  await huge.connected;
  huge.socket.write(`GET / HTTP/1.1\r\nHost: gw\r\nx-user-id: u1\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
  t.true(await within(huge.closed, 5000), 'closed');
  t.regex(await huge.closed, /^HTTP\/1\.1 431 /);
  t.deepEqual(jsonBodyOf(await huge.closed), { error: 'HEADERS_TOO_LARGE', message: 'the request head is larger than the gateway accepts' });

  const metrics = (await httpCall(`${g.admin}/metrics`)).text();
  t.is(metricValue(metrics, 'cellgate_requests_refused_total{reason="malformed"}'), 1);
  t.is(metricValue(metrics, 'cellgate_requests_refused_total{reason="headers_too_large"}'), 1);
  t.is((await httpCall(`${g.url}/x`, { headers: { 'x-user-id': 'u1' } })).status, 200, 'other clients are served');
});

test('idle kept-alive client connections are closed after server.keepAliveTimeoutMs', async (t) => {
  const g = await gateway(t, { server: { keepAliveTimeoutMs: 200 } });
  const c = rawSocket(t, g.addr.port);
  await c.connected;
  c.socket.write('GET /k HTTP/1.1\r\nHost: gw\r\nx-user-id: u1\r\n\r\n');
  t.true(await within(c.closed, 5000), 'closed by the gateway once idle');
  t.regex(await c.closed, /^HTTP\/1\.1 200 /);
});

test('connections over server.maxConnections are closed as they arrive, and counted', async (t) => {
  const g = await gateway(t, { server: { maxConnections: 3 } });
  const held = [rawSocket(t, g.addr.port), rawSocket(t, g.addr.port), rawSocket(t, g.addr.port)];
  await Promise.all(held.map((h) => h.connected));
  const extra = rawSocket(t, g.addr.port);
  t.true(await within(extra.closed, 5000), 'the fourth connection is closed');
  t.is(await extra.closed, '', 'without an answer');
  held[0]!.socket.destroy();
  await held[0]!.closed;
  // Once one is gone there is room again (the server counts it closed a moment later).
  await until('a new connection to be served', async () => {
    try {
      return (await httpCall(`${g.url}/x`, { headers: { 'x-user-id': 'u1' }, timeoutMs: 2000 })).status === 200;
    } catch {
      return false;
    }
  });
  const m = (await httpCall(`${g.admin}/metrics`)).text();
  t.true((metricValue(m, 'cellgate_requests_refused_total{reason="max_connections"}') ?? 0) >= 1);
});
