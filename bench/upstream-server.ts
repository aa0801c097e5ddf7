// The benchmarks' upstream: a minimal node:http server answering every request with a small
// fixed JSON body (keep-alive), so that what is measured is the proxy in front of it.
//   node dist/bench/upstream-server.js [--echo-zone] [--listen 127.A.B.C:PORT,…]
// Prints {"event":"listening","port":N} on stdout once listening on 127.0.0.1 (a free port),
// or with --listen on every loopback address:port given (bench/multi-upstream.ts).
// --echo-zone: the body names the zone the gateway routed the request to (its x-cell-zone
// header), so the failover bench can tell which zone served each request.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

const FIXED_BODY = Buffer.from('{"ok":true,"service":"bench-upstream"}');
const echoZone = process.argv.includes('--echo-zone');

const listenArg = process.argv.indexOf('--listen');
const listens = listenArg >= 0 ? (process.argv[listenArg + 1] ?? '').split(',') : [];

const handler = (req: IncomingMessage, res: ServerResponse) => {
  // Drain any request body before answering: the connection stays reusable.
  req.resume();
  req.once('end', () => {
    const body = echoZone ? Buffer.from(`{"ok":true,"zone":${JSON.stringify(String(req.headers['x-cell-zone'] ?? ''))}}`) : FIXED_BODY;
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
    res.end(body);
  });
};

function serve(): Server {
  const server = createServer(handler);
  server.keepAliveTimeout = 60_000;
  return server;
}

const servers: Server[] = [];
if (listens.length === 0) {
  const server = serve();
  servers.push(server);
  server.listen(0, '127.0.0.1', () => {
    process.stdout.write(`${JSON.stringify({ event: 'listening', port: (server.address() as AddressInfo).port })}\n`);
  });
} else {
  let pending = listens.length;
  for (const l of listens) {
    const [host, port] = l.split(':');
    if (!host?.startsWith('127.')) throw new Error(`--listen ${l}: loopback addresses only`);
    const server = serve();
    servers.push(server);
    server.listen(Number(port), host, () => {
      if (--pending === 0) process.stdout.write(`${JSON.stringify({ event: 'listening', port: Number(port), listens: listens.length })}\n`);
    });
  }
}
process.on('SIGTERM', () => {
  let open = servers.length;
  for (const server of servers) {
    server.close(() => { if (--open === 0) process.exit(0); });
    server.closeAllConnections();
  }
});
