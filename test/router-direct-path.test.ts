// The direct path (direct-proxy.ts, issue 13): requests without a body and with a plain path
// are sent with undici's dispatch() and written straight to the client. Against real
// upstreams on 127.0.0.1: it gives upstream and client exactly what reply-from's path gives
// them, keeps backpressure on a slow client, and answers an upstream that fails before the
// first body byte with the contract's error.
import { createHash, randomBytes } from 'node:crypto';
import { request } from 'node:http';
import test from 'ava';
import { isPlainPath } from '../src/router/direct-proxy';
import { MemoryStore } from './helpers/memory-store';
import { startGateway, tableFor } from './helpers/router-fixture';
import { httpCall, startUpstreams, stopAll, type Behave } from './helpers/upstreams';
import { until } from './helpers/wait';

async function oneEndpoint(t: import('ava').ExecutionContext, config: Record<string, unknown> = {}) {
  const [up] = await startUpstreams('only');
  t.teardown(() => stopAll([up!]));
  const store = new MemoryStore(tableFor([{ name: 'z1', upstreams: [up!.url] }], { cells: 4 }));
  const g = await startGateway(t, store, { waitVersion: 1, config });
  return { ...g, up: up! };
}

test('isPlainPath: only paths URL parsing and the traversal check leave as they are', (t) => {
  for (const p of ['/', '/api/items', '/api/items.json', '/a/b-c_d~e', '/u/alice%40example.com', "/a:b@c!$&'()*+,;=", '/v1.2/x', '/a/'])
    t.true(isPlainPath(p), p);
  for (const p of ['//evil', '/a/../b', '/a/./b', '/.well-known/x', '/a..b', '/a/%2e%2e/b', '/a/%2E', '/a b', '/a\\b', '/ü', '/a#b', '/a"b', '/a{b}', 'a/b', ''])
    t.false(isPlainPath(p), p);
});

/** The upstream's answer, made of what a proxy must clean up. */
const oddAnswer: Behave = (_req, res) => {
  res.setHeader('set-cookie', ['a=1', 'b=2']);
  res.setHeader('x-dup', ['one', 'two']);
  res.setHeader('connection', 'keep-alive, x-internal');
  res.setHeader('keep-alive', 'timeout=5');
  res.setHeader('x-internal', 'secret');
  res.setHeader('x-kept', 'yes');
  res.setHeader('content-type', 'text/plain');
  res.setHeader('content-length', '5');
  res.end('hello');
  return true;
};

test("both paths give the upstream the same request headers and the client the same answer", async (t) => {
  const { url, up } = await oneEndpoint(t);
  up.behave = oddAnswer;
  const headers = { 'x-user-id': 'alice', connection: 'close, x-gone', 'x-gone': '1', 'x-cell-id': 'forged', 'x-forwarded-for': '6.6.6.6', 'x-app': 'kept' };
  // "/r/.x" is not a plain path: it goes through reply-from; "/r/x" goes direct.
  const viaReplyFrom = await httpCall(`${url}/r/.x?q=1`, { headers });
  const direct = await httpCall(`${url}/r/x?q=1`, { headers });
  t.is(up.received.length, 2);
  const [a, b] = up.received;
  t.is(a!.url, '/r/.x?q=1');
  t.is(b!.url, '/r/x?q=1');
  t.deepEqual(b!.headers, a!.headers);
  t.is(b!.headers['x-gone'], undefined);
  t.is(b!.headers['x-app'], 'kept');
  t.is(b!.headers.host, `127.0.0.1:${up.port}`);
  t.not(b!.headers['x-cell-id'], 'forged');
  t.is(direct.status, viaReplyFrom.status);
  t.is(direct.text(), 'hello');
  const without = (h: Record<string, unknown>) => Object.fromEntries(Object.entries(h).filter(([k]) => k !== 'date'));
  t.deepEqual(without(direct.headers), without(viaReplyFrom.headers));
  t.is(direct.headers['x-internal'], undefined);
  t.deepEqual(direct.headers['set-cookie'], ['a=1', 'b=2']);
  t.is(direct.headers['x-kept'], 'yes');
});

test('a 204 and a HEAD answer: the same through both paths', async (t) => {
  const { url, up } = await oneEndpoint(t);
  up.behave = (req, res) => {
    if (req.url?.includes('204')) {
      res.writeHead(204, { 'content-type': 'text/plain', 'x-a': '1' });
      res.end();
    } else {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '11' });
      res.end(req.method === 'HEAD' ? undefined : 'hello world');
    }
    return true;
  };
  const h = { 'x-user-id': 'alice' };
  const without = (r: { headers: Record<string, unknown> }) => Object.fromEntries(Object.entries(r.headers).filter(([k]) => k !== 'date'));
  for (const [method, path] of [['GET', '204'], ['HEAD', 'h']] as const) {
    const viaReplyFrom = await httpCall(`${url}/r/.${path}`, { method, headers: h });
    const direct = await httpCall(`${url}/r/${path}`, { method, headers: h });
    t.is(direct.status, viaReplyFrom.status, method);
    t.is(direct.body.length, 0, method);
    t.deepEqual(without(direct), without(viaReplyFrom), method);
  }
});

test('a body whole in one piece, a declared length in two pieces, a chunked one: the same bytes and headers through both paths', async (t) => {
  const { url, up } = await oneEndpoint(t);
  up.behave = (req, res) => {
    // The pieces go out 20 ms apart so that the gateway reads them as separate chunks.
    const later = (fn: () => void) => setTimeout(fn, 20);
    if (req.url?.endsWith('one')) {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '5' });
      res.end('hello');
    } else if (req.url?.endsWith('pieces')) {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '10' });
      res.write('hello');
      later(() => res.end('world'));
    } else {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('chunk-1 ');
      later(() => res.end('chunk-2'));
    }
    return true;
  };
  const h = { 'x-user-id': 'alice' };
  const without = (r: { headers: Record<string, unknown> }) => Object.fromEntries(Object.entries(r.headers).filter(([k]) => k !== 'date'));
  for (const [path, body] of [['one', 'hello'], ['pieces', 'helloworld'], ['chunked', 'chunk-1 chunk-2']] as const) {
    const viaReplyFrom = await httpCall(`${url}/r/.${path}`, { headers: h });
    const direct = await httpCall(`${url}/r/${path}`, { headers: h });
    t.is(direct.status, 200, path);
    t.is(direct.text(), body, path);
    t.is(viaReplyFrom.text(), body, path);
    t.deepEqual(without(direct), without(viaReplyFrom), path);
  }
});

test('a 64 MB download to a client that stops reading: the upstream is held back, the body arrives intact, the slot is given back', async (t) => {
  const { url, up } = await oneEndpoint(t, { upstream: { connectionsPerEndpoint: 1 } });
  // More than the kernel buffers of both hops can hold, so only backpressure can hold the upstream back.
  const block = randomBytes(64 * 1024);
  const blob = Buffer.concat(Array.from({ length: 1024 }, () => block));
  let upstreamDone = false;
  /** Bytes the upstream's socket has taken (it writes a block at a time, on 'drain'). */
  let taken = 0;
  up.behave = (req, res) => {
    if (req.url !== '/big') return false;
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(blob.length) });
    const next = (): void => {
      while (taken < blob.length) {
        const ok = res.write(blob.subarray(taken, taken + block.length));
        taken += block.length;
        if (!ok) return void res.once('drain', next);
      }
      res.end(() => { upstreamDone = true; });
    };
    next();
    return true;
  };
  const m = /^http:\/\/([^:]+):(\d+)$/.exec(url)!;
  const client = await new Promise<import('node:http').IncomingMessage>((resolve, reject) => {
    const req = request({ host: m[1], port: Number(m[2]), path: '/big', headers: { 'x-user-id': 'alice' }, agent: false }, resolve);
    req.on('error', reject);
    req.end();
  });
  client.pause();
  // The upstream stops getting 'drain' once the gateway stops reading (if it finishes instead, backpressure failed).
  let last = -1;
  let still = 0;
  await until('the upstream to finish or stall', () => {
    if (upstreamDone) return true;
    still = taken === last ? still + 1 : 0;
    last = taken;
    return still >= 5;
  }, 20_000, 50);
  t.false(upstreamDone, 'the upstream could not finish while the client read nothing');
  const hash = createHash('sha256');
  let bytes = 0;
  client.on('data', (c: Buffer) => {
    hash.update(c);
    bytes += c.length;
  });
  await new Promise<void>((resolve, reject) => {
    client.on('end', resolve);
    client.on('error', reject);
    client.resume();
  });
  t.is(client.statusCode, 200);
  t.is(bytes, blob.length);
  t.is(hash.digest('hex'), createHash('sha256').update(blob).digest('hex'));
  // One connection per endpoint: a second request gets it only if the first gave its slot back.
  t.is((await httpCall(`${url}/after`, { headers: { 'x-user-id': 'alice' }, timeoutMs: 5000 })).status, 200);
});

test('an upstream that fails after its headers: 502 before the first body byte, a cut connection after', async (t) => {
  const { url, up } = await oneEndpoint(t, { upstream: { ejectAfterFailures: 100 } });
  up.behave = (req, res) => {
    if (req.url !== '/early' && req.url !== '/mid') return false;
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '100' });
    if (req.url === '/mid') res.write('partial');
    // Headers (and maybe some body) out, then the connection dies.
    res.flushHeaders();
    setImmediate(() => res.socket?.destroy());
    return true;
  };
  const early = await httpCall(`${url}/early`, { method: 'POST', headers: { 'x-user-id': 'alice' } });
  t.is(early.status, 502);
  t.is(early.json().error, 'UPSTREAM_UNAVAILABLE');
  const mid = await httpCall(`${url}/mid`, { headers: { 'x-user-id': 'alice' } }).then(
    (r) => ({ ok: true as const, bytes: r.body.length }),
    (err: Error) => ({ ok: false as const, message: err.message }),
  );
  t.false(mid.ok && mid.bytes === 100, 'the client never gets a complete-looking answer');
  t.is((await httpCall(`${url}/after`, { headers: { 'x-user-id': 'alice' } })).status, 200, 'its slots were given back');
});
