// The benchmarks' upstream: a minimal node:http server answering every request with a small
// fixed JSON body (keep-alive), so that what is measured is the proxy in front of it.
//   node dist/bench/upstream-server.js [--echo-zone]
// Prints {"event":"listening","port":N} on stdout once listening on 127.0.0.1 (a free port).
// --echo-zone: the body names the zone the gateway routed the request to (its x-cell-zone
// header), so the failover bench can tell which zone served each request.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

const FIXED_BODY = Buffer.from('{"ok":true,"service":"bench-upstream"}');
const echoZone = process.argv.includes('--echo-zone');

const server = createServer((req, res) => {
  // Drain any request body before answering: the connection stays reusable.
  req.resume();
  req.once('end', () => {
    const body = echoZone ? Buffer.from(`{"ok":true,"zone":${JSON.stringify(String(req.headers['x-cell-zone'] ?? ''))}}`) : FIXED_BODY;
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
    res.end(body);
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ event: 'listening', port: (server.address() as AddressInfo).port })}\n`);
});
process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
