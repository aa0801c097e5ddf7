// A demo zone server: what stands behind the gateway in `cellgate demo`, the tests and the
// chaos harness. It fences with the same table (src/fencing) and answers every request with
// JSON saying who answered and what it saw:
//   {zone, cell, epoch, owned, method, path, user, bodyBytes}
// WebSockets: on connection it sends one JSON hello `{hello: true, zone, cell, epoch, owned,
// user}`, then echoes every message back unchanged.
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import fastify, { type FastifyInstance } from 'fastify';
import { WebSocketServer } from 'ws';
import type { TableStore } from '../store/types';
import { type Ownership, fencingErrorBody, fencingPlugin, requestUserId } from '../fencing';

export interface DemoZoneOptions {
  readonly zone: string;
  readonly store: TableStore;
  readonly host?: string;
  readonly port?: number;
  /** Refuse requests this zone does not own (default true); false answers them with owned=false. */
  readonly enforce?: boolean;
}

export interface DemoZone {
  readonly zone: string;
  readonly url: string;
  readonly port: number;
  readonly app: FastifyInstance;
  close(): Promise<void>;
}

function ownedFlag(o: Ownership | null): boolean | null {
  if (!o) return null;
  switch (o.kind) {
    case 'owned':
      return true;
    case 'notOwned':
      return false;
    case 'unfenced':
    case 'unknown':
      return null;
    default: {
      const never: never = o;
      throw new Error(`unknown ownership ${JSON.stringify(never)}`);
    }
  }
}

function firstHeader(v: string | string[] | undefined): string | null {
  return typeof v === 'string' ? v : Array.isArray(v) ? (v[0] ?? null) : null;
}

export async function startDemoZone(options: DemoZoneOptions): Promise<DemoZone> {
  const { zone, store } = options;
  const enforce = options.enforce ?? true;
  const app = fastify({ logger: false });
  await app.register(fencingPlugin, { store, zone, enforce });

  // Count the body's bytes without keeping it.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, payload, done) => {
    let bytes = 0;
    payload.on('data', (c: Buffer) => (bytes += c.length));
    payload.once('end', () => done(null, bytes));
    payload.once('error', (err) => done(err, undefined));
  });

  app.route({
    method: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'],
    url: '/*',
    handler: async (request) => {
      const o = request.cellOwnership;
      return {
        zone,
        cell: firstHeader(request.headers['x-cell-id']),
        epoch: o && (o.kind === 'owned' || o.kind === 'notOwned') ? o.epoch : null,
        owned: ownedFlag(o),
        method: request.method,
        path: (request.raw.url as string).split('?')[0],
        user: requestUserId(request.headers),
        bodyBytes: typeof request.body === 'number' ? request.body : 0,
      };
    },
  });

  const wss = new WebSocketServer({ noServer: true });
  app.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const verdict = app.cellgateFencing.check(zone, req.headers);
    if (enforce && (verdict.kind === 'notOwned' || verdict.kind === 'unknown')) {
      const name = verdict.kind === 'notOwned' ? 'NOT_CELL_OWNER' : 'NO_ROUTING_TABLE';
      const body = fencingErrorBody(name);
      const status = name === 'NOT_CELL_OWNER' ? '421 Misdirected Request' : '503 Service Unavailable';
      socket.end(`HTTP/1.1 ${status}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.send(JSON.stringify({
        hello: true, zone,
        cell: firstHeader(req.headers['x-cell-id']),
        epoch: verdict.kind === 'owned' || verdict.kind === 'notOwned' ? verdict.epoch : null,
        owned: ownedFlag(verdict),
        user: requestUserId(req.headers),
      }));
      ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    });
  });
  app.addHook('preClose', (done) => {
    for (const client of wss.clients) client.terminate();
    wss.close(() => done());
  });

  await app.listen({ port: options.port ?? 0, host: options.host ?? '127.0.0.1' });
  const port = (app.server.address() as AddressInfo).port;
  const host = options.host ?? '127.0.0.1';
  return { zone, url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`, port, app, close: () => app.close() };
}
