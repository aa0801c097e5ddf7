// The admin server, on its own port (never the traffic port): liveness, readiness (ready
// once a table is loaded and until shutdown begins), Prometheus metrics, the applied table,
// and an explanation of where a user goes.
import fastify, { type FastifyInstance } from 'fastify';
import type { RoutingView } from '../cells/lookup';
import type { Registry } from 'prom-client';
import { sendError } from './error-reply';
import type { TableSource } from './table-follower';
import { BadUserId, compileUserIdExtractor, sendBadUserId } from './user-id';

export interface AdminDeps {
  readonly id: string;
  readonly zone: string | null;
  readonly registry: Registry;
  view(): RoutingView | null;
  tableInfo(): { source: TableSource; receivedAtMs: number } | null;
  /** False once shutdown has begun: load balancers should stop sending traffic. */
  accepting(): boolean;
  /** The gateway's clock (freeze deadlines are compared with it). */
  now(): number;
}

export function buildAdminServer(deps: AdminDeps): FastifyInstance {
  const app = fastify({ logger: false, return503OnClosing: true, requestIdHeader: false });
  // The same validation as on the traffic port: /admin/route?user= takes exactly what a client could send.
  const userFromQuery = compileUserIdExtractor([{ query: 'user' }]);

  app.get('/healthz', async () => ({ status: 'ok', id: deps.id }));

  app.get('/readyz', async (_request, reply) => {
    const view = deps.view();
    if (!view) return sendError(reply, 'NO_ROUTING_TABLE');
    if (!deps.accepting()) {
      reply.code(503).header('retry-after', '1');
      return { status: 'shutting down', id: deps.id, version: view.version };
    }
    return { status: 'ready', id: deps.id, version: view.version, checksum: view.checksum };
  });

  app.get('/metrics', async (_request, reply) => {
    const text = await deps.registry.metrics();
    reply.header('content-type', deps.registry.contentType);
    return text;
  });

  app.get('/admin/table', async (_request, reply) => {
    const view = deps.view();
    const info = deps.tableInfo();
    if (!view || !info) return sendError(reply, 'NO_ROUTING_TABLE');
    return {
      version: view.version,
      checksum: view.checksum,
      source: info.source,
      receivedAt: new Date(info.receivedAtMs).toISOString(),
      table: view.table,
    };
  });

  app.get('/admin/route', async (request, reply) => {
    const user = userFromQuery(request.raw.url as string, request.raw.headers);
    if (user === null) return sendError(reply, 'NO_USER_ID');
    if (user instanceof BadUserId) return sendBadUserId(reply, user);
    const view = deps.view();
    if (!view) return sendError(reply, 'NO_ROUTING_TABLE');
    const r = view.explainUser(user, deps.now());
    const base = { user, revision: view.version, cell: r.cell, pinned: r.pinned, why: r.why };
    if (!r.ok) return { ...base, ok: false, error: r.error };
    return { ...base, ok: true, zone: r.zone.name, epoch: r.epoch, frozenUntil: r.frozenUntilMs === null ? null : new Date(r.frozenUntilMs).toISOString() };
  });

  app.setNotFoundHandler((_request, reply) => sendError(reply, 'NOT_FOUND'));
  app.setErrorHandler((_err, _request, reply) => sendError(reply, 'INTERNAL_ERROR'));
  return app;
}
