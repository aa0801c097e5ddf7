// The Node ceiling of the gateway benchmark: raw node:http in front of one static upstream
// through an undici Pool (128 connections, no pipelining), no framework, no routing. It
// forwards method, path, headers (hop-by-hop ones dropped) and body, and streams the answer.
//   node dist/bench/raw-proxy.js --upstream http://127.0.0.1:PORT[,http://…]
// Several upstreams (bench/endpoint-spread.ts) get a Pool each and the requests in turn.
// Prints {"event":"listening","port":N} on stdout once listening on 127.0.0.1 (a free port).
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection', 'te', 'trailer', 'host']);

function forwardable(headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const name of Object.keys(headers)) {
    const value = headers[name];
    if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
  }
  return out;
}

function main(): void {
  const i = process.argv.indexOf('--upstream');
  const upstreams = i >= 0 ? process.argv[i + 1]?.split(',') : undefined;
  if (!upstreams) throw new Error('usage: raw-proxy --upstream http://HOST:PORT[,http://…]');
  // keepAliveTimeout: as the gateway's (upstream.keepAliveTimeoutMs), so idle pools keep their connections.
  const pools = upstreams.map((u) => new Pool(u, { connections: 128, pipelining: 1, keepAliveTimeout: 60_000, keepAliveMaxTimeout: 60_000 }));
  let turn = 0;
  const server = createServer((req, res) => {
    const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
    const pool = pools[turn++ % pools.length]!;
    pool.request({
      method: req.method as 'GET', path: req.url as string, headers: forwardable(req.headers), body: hasBody ? req : null,
    }).then(({ statusCode, headers, body }) => {
      res.writeHead(statusCode, forwardable(headers));
      body.pipe(res);
    }, () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1', () => {
    process.stdout.write(`${JSON.stringify({ event: 'listening', port: (server.address() as AddressInfo).port })}\n`);
  });
  process.on('SIGTERM', () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
    for (const pool of pools) void pool.close();
  });
}

main();
