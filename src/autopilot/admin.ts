// The autopilot's admin port: /healthz (the process runs), /readyz (its watches are up: it
// could lead), /metrics (Prometheus), /status (its current view as JSON). Loopback by default.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AutopilotRunner } from './runner';

export async function startAutopilotAdmin(runner: AutopilotRunner, port: number, host: string): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const send = (status: number, body: string, type = 'application/json') => {
      res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
      res.end(body);
    };
    if (req.method !== 'GET') return send(405, JSON.stringify({ error: 'METHOD_NOT_ALLOWED', message: 'only GET' }));
    const path = (req.url ?? '/').split('?')[0];
    switch (path) {
      case '/healthz':
        return send(200, JSON.stringify({ ok: true }));
      case '/readyz':
        return send(runner.ready ? 200 : 503, JSON.stringify({ ready: runner.ready, leader: runner.isLeader }));
      case '/status':
        return send(200, JSON.stringify(runner.status(), null, 2));
      case '/metrics':
        runner.registry.metrics().then((text) => send(200, text, runner.registry.contentType), () => send(500, JSON.stringify({ error: 'INTERNAL', message: 'metrics failed' })));
        return;
      default:
        return send(404, JSON.stringify({ error: 'NOT_FOUND', message: `no route ${path}` }));
    }
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${addr.port}`,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
