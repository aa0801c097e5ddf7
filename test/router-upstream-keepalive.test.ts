// The gateway's upstream agent keeps idle connections `upstream.keepAliveTimeoutMs` (nginx's
// upstream keepalive_timeout), not undici's 4 s: with traffic spread over many endpoints each
// sees a request less often than that, and every lull used to close (and later reopen) them
// all. An upstream's shorter Keep-Alive hint still wins. A raw TCP server answers, so that
// the test sees every connection and decides on the hint.
import { once } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import test from 'ava';
import type { Dispatcher } from 'undici';
import { DEFAULT_CONFIG } from '../src/router/config';
import { createUpstreamAgent } from '../src/router/upstream-agent';

interface Upstream { readonly origin: string; readonly server: Server; opened: number; closed: number }

/** Answers each request on a connection with 200 "ok" (and `hint` as a Keep-Alive header, if any); counts connections. */
async function upstream(hint: string | null): Promise<Upstream> {
  const u: Upstream = { origin: '', server: createServer(), opened: 0, closed: 0 };
  u.server.on('connection', (socket: Socket) => {
    u.opened += 1;
    socket.on('close', () => (u.closed += 1));
    let buffered = '';
    socket.on('data', (chunk) => {
      buffered += chunk.toString('latin1');
      while (buffered.includes('\r\n\r\n')) {
        buffered = buffered.slice(buffered.indexOf('\r\n\r\n') + 4);
        socket.write(`HTTP/1.1 200 OK\r\nconnection: keep-alive\r\n${hint ? `keep-alive: ${hint}\r\n` : ''}content-length: 2\r\n\r\nok`);
      }
    });
  });
  u.server.listen(0, '127.0.0.1');
  await once(u.server, 'listening');
  return Object.assign(u, { origin: `http://127.0.0.1:${(u.server.address() as AddressInfo).port}` });
}

function agent(keepAliveTimeoutMs: number): Dispatcher {
  return createUpstreamAgent({ ...DEFAULT_CONFIG.upstream, keepAliveTimeoutMs });
}

async function get(d: Dispatcher, origin: string): Promise<string> {
  const r = await d.request({ origin, path: '/', method: 'GET' });
  return r.body.text();
}

async function until(cond: () => boolean, what: string, deadlineMs = 10_000): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('the default keeps an idle upstream connection 60 s, like nginx', (t) => {
  t.is(DEFAULT_CONFIG.upstream.keepAliveTimeoutMs, 60_000);
});

test('an idle connection outlives undici\'s 4 s default and serves the next request', async (t) => {
  const u = await upstream(null);
  const d = agent(60_000);
  t.teardown(async () => { await d.destroy(); u.server.close(); });
  t.is(await get(d, u.origin), 'ok');
  // A measuring window (longer than undici's own default), not a synchronisation.
  await new Promise((r) => setTimeout(r, 4_500));
  t.is(await get(d, u.origin), 'ok');
  t.is(u.opened, 1, 'the second request reused the first connection');
  t.is(u.closed, 0);
});

test('keepAliveTimeoutMs closes an idle connection after it', async (t) => {
  const u = await upstream(null);
  const d = agent(200);
  t.teardown(async () => { await d.destroy(); u.server.close(); });
  t.is(await get(d, u.origin), 'ok');
  await until(() => u.closed === 1, 'the gateway to close its idle connection');
  t.is(u.opened, 1);
});

test('an upstream\'s shorter Keep-Alive hint wins over the configured timeout', async (t) => {
  const u = await upstream('timeout=3'); // undici keeps it 3 s less its 2 s threshold
  const d = agent(60_000);
  t.teardown(async () => { await d.destroy(); u.server.close(); });
  t.is(await get(d, u.origin), 'ok');
  await until(() => u.closed === 1, 'the gateway to close the connection after the upstream\'s hint');
});
