// Hostile and odd clients against real upstream servers on 127.0.0.1 (issue 8 item 1):
// hop-by-hop headers and `Expect` never reach an upstream and never count against its health,
// a curl-style `Expect: 100-continue` upload arrives intact, a bogus `Upgrade` handshake is
// refused by the gateway itself.
import { createHash, randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { connect } from 'node:net';
import test from 'ava';
import { MemoryStore } from './helpers/memory-store';
import { startGateway, tableFor } from './helpers/router-fixture';
import { httpCall, startUpstreams, stopAll, type UpstreamAnswer } from './helpers/upstreams';
import { metricValue } from './helpers/wait';

/** One request written byte for byte on a fresh socket (no client library second-guesses the headers). */
function rawCall(port: number, head: string, body: Buffer = Buffer.alloc(0)): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let acc = Buffer.alloc(0);
    const timer = setTimeout(() => socket.destroy(new Error('no answer within 10 s')), 10_000);
    const finish = (r: { status: number; body: string }) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(r);
    };
    socket.on('data', (d: Buffer) => {
      acc = Buffer.concat([acc, d]);
      let text = acc.toString('latin1');
      // Skip interim answers (100 Continue).
      while (/^HTTP\/1\.1 1\d\d [^\r]*\r\n\r\n/.test(text)) text = text.slice(text.indexOf('\r\n\r\n') + 4);
      const end = text.indexOf('\r\n\r\n');
      if (end < 0) return;
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(text.slice(0, end))?.[1] ?? 0);
      const rest = text.slice(end + 4);
      if (Buffer.byteLength(rest, 'latin1') >= length) finish({ status: Number(text.slice(9, 12)), body: Buffer.from(rest.slice(0, length), 'latin1').toString('utf8') });
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.write(`${head}\r\n\r\n`, 'latin1');
    if (body.length) socket.write(body);
  });
}

const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'expect', 'http2-settings'];

async function oneEndpoint(t: import('ava').ExecutionContext) {
  const [up] = await startUpstreams('only');
  t.teardown(() => stopAll([up!]));
  const store = new MemoryStore(tableFor([{ name: 'z1', upstreams: [up!.url] }], { cells: 4 }));
  // One counted failure would eject the only endpoint: any leak shows at once.
  const g = await startGateway(t, store, { waitVersion: 1, config: { upstream: { ejectAfterFailures: 1, ejectBaseMs: 60_000, ejectMaxMs: 60_000 } } });
  return { ...g, up: up! };
}

/** A POST with `Expect: 100-continue` that sends its body only once told to continue (as curl and Node do). */
function expectingUpload(url: string, path: string, headers: Record<string, string>, body: Buffer): Promise<{ status: number; text: string; sawContinue: boolean }> {
  const m = /^http:\/\/([^:]+):(\d+)$/.exec(url)!;
  return new Promise((resolve, reject) => {
    let sawContinue = false;
    const req = request({
      host: m[1], port: Number(m[2]), path, method: 'POST', agent: false,
      headers: { ...headers, expect: '100-continue', 'content-length': String(body.length) },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8'), sawContinue }));
    });
    req.on('continue', () => {
      sawContinue = true;
      req.end(body);
    });
    req.on('error', reject);
    req.flushHeaders();
  });
}

test('odd hop-by-hop headers and Expect never reach the upstream and never eject its endpoint', async (t) => {
  const { url, admin, up, addr } = await oneEndpoint(t);
  const cases: Array<Record<string, string>> = [
    { upgrade: 'foo' },
    { 'keep-alive': 'x' },
    { expect: '100-continue' },
    { connection: 'x-foo', 'x-foo': 'must not pass' },
    { connection: 'keep-alive, X-Foo , x-bar', 'x-foo': '1', 'x-bar': '2', 'keep-alive': 'timeout=5' },
    { te: 'trailers', trailer: 'x-checksum', 'proxy-connection': 'keep-alive' },
    { 'http2-settings': 'AAMAAABkAAQAAP__', upgrade: 'h2c', 'keep-alive': 'x', expect: '100-continue' },
  ];
  const body = randomBytes(10_000);
  const sha = createHash('sha256').update(body).digest('hex');
  for (let round = 0; round < 3; round++) {
    for (const headers of cases) {
      const lines = Object.entries(headers).map(([k, v]) => `${k}: ${v}`);
      const get = await rawCall(addr.port, ['GET /odd HTTP/1.1', 'host: gw', 'x-user-id: mallory', ...lines].join('\r\n'));
      t.is(get.status, 200, `GET ${JSON.stringify(headers)}: ${get.body}`);
      const post = await rawCall(addr.port, ['POST /odd HTTP/1.1', 'host: gw', 'x-user-id: mallory', `content-length: ${body.length}`, ...lines].join('\r\n'), body);
      t.is(post.status, 200, `POST ${JSON.stringify(headers)}: ${post.body}`);
      t.is((JSON.parse(post.body) as UpstreamAnswer).bodySha256, sha, 'the body arrives intact');
    }
  }
  t.is(up.received.length, cases.length * 6);
  for (const r of up.received) {
    for (const name of HOP_BY_HOP) {
      // The gateway's own client speaks keep-alive to the upstream; nothing of the client's passes.
      if (name === 'connection') t.not(r.headers.connection, 'x-foo');
      else t.is(r.headers[name], undefined, `${name} reached the upstream`);
    }
    t.is(r.headers['x-foo'], undefined, 'a header named in Connection is dropped');
    t.is(r.headers['x-bar'], undefined);
    t.is(r.headers['x-user-id'], 'mallory');
    t.truthy(r.headers['x-cell-id'], 'the routing headers are still stamped');
  }
  const metrics = (await httpCall(`${admin}/metrics`)).text();
  t.is(metricValue(metrics, 'cellgate_upstream_ejected_endpoints{zone="z1",service="default"}'), 0, 'never ejected');
  t.regex(metrics, /cellgate_upstream_errors_total\{/, 'the error series exist (at 0)');
  t.notRegex(metrics, /cellgate_upstream_errors_total\{[^}]*\} [1-9]/, 'no upstream error at all');
  t.is((await httpCall(`${url}/after`, { headers: { 'x-user-id': 'alice' } })).status, 200, 'legitimate traffic still served');
});

test('a curl-style upload of 2 MB with Expect: 100-continue arrives intact', async (t) => {
  const { url, up } = await oneEndpoint(t);
  const body = randomBytes(2 * 1024 * 1024);
  const sha = createHash('sha256').update(body).digest('hex');
  // Like curl above 1 MB: send the head, wait for `100 Continue`, then the body.
  const result = await expectingUpload(url, '/upload', { 'x-user-id': 'carol', 'content-type': 'application/octet-stream' }, body);
  t.true(result.sawContinue, 'the gateway answered 100 Continue itself');
  t.is(result.status, 200, result.text);
  const got = JSON.parse(result.text) as UpstreamAnswer;
  t.is(got.bodyBytes, body.length);
  t.is(got.bodySha256, sha);
  t.is(got.headers.expect, undefined);
  t.is(up.received.length, 1);
});

test('a request refused before its body is needed is answered without 100 Continue: the body is never uploaded', async (t) => {
  const { url, up } = await oneEndpoint(t);
  const res = await expectingUpload(url, '/no-user', { 'content-type': 'application/octet-stream' }, Buffer.alloc(1024 * 1024));
  t.is(res.status, 400);
  t.is(JSON.parse(res.text).error, 'NO_USER_ID');
  t.false(res.sawContinue, 'the client was never asked for its body');
  const ok = await expectingUpload(url, '/with-user', { 'x-user-id': 'carol' }, Buffer.alloc(1000, 1));
  t.true(ok.sawContinue);
  t.is(ok.status, 200);
  t.is(up.received.length, 1);
});

test('a bogus Upgrade handshake is refused by the gateway, never sent upstream, never held against the endpoint', async (t) => {
  const { addr, admin, up, url } = await oneEndpoint(t);
  const reply = await new Promise<string>((resolve, reject) => {
    const socket = connect(addr.port, '127.0.0.1');
    let acc = '';
    socket.on('data', (d) => (acc += d.toString('latin1')));
    socket.on('close', () => resolve(acc));
    socket.on('error', reject);
    socket.write('GET /ws HTTP/1.1\r\nHost: x\r\nx-user-id: mallory\r\nConnection: Upgrade\r\nUpgrade: foo\r\n\r\n');
  });
  t.regex(reply, /^HTTP\/1\.1 400 /);
  t.is(up.received.length, 0);
  const metrics = (await httpCall(`${admin}/metrics`)).text();
  t.is(metricValue(metrics, 'cellgate_upstream_ejected_endpoints{zone="z1",service="default"}'), 0);
  t.is((await httpCall(`${url}/after`, { headers: { 'x-user-id': 'alice' } })).status, 200);
});

test("the upstream's hop-by-hop response headers are not passed to the client", async (t) => {
  const { url, up } = await oneEndpoint(t);
  up.behave = (_req, res) => {
    res.writeHead(200, { connection: 'keep-alive, x-internal', 'keep-alive': 'timeout=1', 'x-internal': 'secret', 'x-kept': 'yes', 'content-length': '2' });
    res.end('ok');
    return true;
  };
  const res = await httpCall(`${url}/r`, { headers: { 'x-user-id': 'alice' } });
  t.is(res.status, 200);
  t.is(res.text(), 'ok');
  t.is(res.headers['x-internal'], undefined);
  t.not(res.headers['keep-alive'], 'timeout=1', "the upstream's keep-alive is not the client's");
  t.is(res.headers['x-kept'], 'yes');
});

test('a chunked upload is streamed on intact (Transfer-Encoding is the connection\'s, not forwarded as sent)', async (t) => {
  const { addr, up } = await oneEndpoint(t);
  const parts = [randomBytes(1000), randomBytes(70_000), randomBytes(5)];
  const whole = Buffer.concat(parts);
  const framed = Buffer.concat([...parts.flatMap((p) => [Buffer.from(`${p.length.toString(16)}\r\n`), p, Buffer.from('\r\n')]), Buffer.from('0\r\n\r\n')]);
  const res = await rawCall(addr.port, ['POST /chunked HTTP/1.1', 'host: gw', 'x-user-id: carol', 'transfer-encoding: chunked', 'te: trailers'].join('\r\n'), framed);
  t.is(res.status, 200, res.body);
  const got = JSON.parse(res.body) as UpstreamAnswer;
  t.is(got.bodyBytes, whole.length);
  t.is(got.bodySha256, createHash('sha256').update(whole).digest('hex'));
  t.is(up.received[0]!.headers.te, undefined);
});

test('a client whose body stalls past the deadline gets 408 REQUEST_TIMEOUT and never counts against the endpoint', async (t) => {
  const [up] = await startUpstreams('only');
  t.teardown(() => stopAll([up!]));
  const store = new MemoryStore(tableFor([{ name: 'z1', upstreams: [up!.url] }], { cells: 4 }));
  // One counted failure would eject the only endpoint.
  const { url, admin, addr } = await startGateway(t, store, {
    waitVersion: 1, config: { upstream: { requestTimeoutMs: 600, ejectAfterFailures: 1, ejectBaseMs: 60_000, ejectMaxMs: 60_000 } },
  });
  const stalled = [
    // A body that stops half-way, and one that never comes after `Expect: 100-continue`.
    rawCall(addr.port, ['POST /upload HTTP/1.1', 'host: gw', 'x-user-id: mallory', 'content-length: 100'].join('\r\n'), Buffer.from('x'.repeat(10))),
    rawCall(addr.port, ['POST /upload HTTP/1.1', 'host: gw', 'x-user-id: mallory', 'content-length: 100', 'expect: 100-continue'].join('\r\n')),
    rawCall(addr.port, ['POST /upload HTTP/1.1', 'host: gw', 'x-user-id: eve', 'content-length: 100'].join('\r\n'), Buffer.from('y')),
  ];
  for (const r of await Promise.all(stalled)) {
    t.is(r.status, 408, r.body);
    t.is((JSON.parse(r.body) as { error: string }).error, 'REQUEST_TIMEOUT');
  }
  const metrics = (await httpCall(`${admin}/metrics`)).text();
  t.is(metricValue(metrics, 'cellgate_upstream_ejected_endpoints{zone="z1",service="default"}'), 0, 'never ejected');
  t.is(metricValue(metrics, 'cellgate_upstream_errors_total{zone="z1",service="default",kind="timeout"}'), 0, 'not an upstream timeout');
  t.true((metricValue(metrics, 'cellgate_requests_refused_total{reason="client_timeout"}') ?? 0) >= 3);
  t.is((await httpCall(`${url}/after`, { headers: { 'x-user-id': 'alice' } })).status, 200, 'legitimate traffic still served');
});

test('the upstream gets exactly the user id the request was routed by: once, never removed through Connection', async (t) => {
  const { up, addr } = await oneEndpoint(t);
  const twice = await rawCall(addr.port, ['GET /twice HTTP/1.1', 'host: gw', 'x-user-id: alice', 'x-user-id: alice'].join('\r\n'));
  t.is(twice.status, 200, twice.body);
  const named = await rawCall(addr.port, ['GET /named HTTP/1.1', 'host: gw', 'x-user-id: alice', 'connection: x-user-id'].join('\r\n'));
  t.is(named.status, 200, named.body);
  const wire = Buffer.from('用户', 'utf8').toString('latin1');
  const utf8 = await rawCall(addr.port, ['GET /utf8 HTTP/1.1', 'host: gw', `x-user-id: ${wire}`].join('\r\n'));
  t.is(utf8.status, 200, utf8.body);
  const byPath = (path: string) => up.received.find((r) => r.url === path)!;
  t.is(byPath('/twice').headers['x-user-id'], 'alice');
  t.is(byPath('/named').headers['x-user-id'], 'alice');
  t.is(byPath('/utf8').headers['x-user-id'], wire, 'the same bytes as sent');
});

test('every method Node parses is proxied (WebDAV, PURGE, QUERY…), with its body; TRACE and CONNECT are not', async (t) => {
  const { url, up } = await oneEndpoint(t);
  for (const method of ['PROPFIND', 'MKCOL', 'PURGE', 'REPORT', 'QUERY']) {
    const res = await httpCall(`${url}/dav/x`, { method, headers: { 'x-user-id': 'alice', 'content-type': 'application/xml' }, body: Buffer.from('<propfind/>') });
    t.is(res.status, 200, `${method}: ${res.text()}`);
    const got = up.received.find((r) => r.method === method);
    t.truthy(got, `${method} reached the upstream`);
    t.is(got?.bodyBytes, 11, `${method} carried its body`);
  }
  const trace = await httpCall(`${url}/x`, { method: 'TRACE', headers: { 'x-user-id': 'alice' } });
  t.is(trace.status, 404);
  t.false(up.received.some((r) => r.method === 'TRACE'));
});

test('two Host headers are 400 BAD_REQUEST, never proxied (the gateway and the upstream could each believe a different one)', async (t) => {
  const { up, addr } = await oneEndpoint(t);
  const port = addr.port;
  const two = await rawCall(port, 'GET /x HTTP/1.1\r\nHost: a.example\r\nhost: b.example\r\nx-user-id: u1\r\nConnection: close\r\n\r\n');
  t.is(two.status, 400);
  t.is((JSON.parse(two.body) as { error: string }).error, 'BAD_REQUEST');
  t.is(up.received.length, 0);
  const one = await rawCall(port, 'GET /x HTTP/1.1\r\nHost: a.example\r\nx-user-id: u1\r\nConnection: close\r\n\r\n');
  t.is(one.status, 200);
});
