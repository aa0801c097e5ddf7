// The traffic server's limits on its clients, like nginx's client_header_timeout and
// keepalive_timeout: a client must send its request head within `headersTimeoutMs` and the
// whole request within `requestTimeoutMs` (Node answers 408 and closes), an idle kept-alive
// connection is closed after `keepAliveTimeoutMs`, and at most `maxConnections` are open at
// once (more are closed as they arrive). Cut clients and dropped connections are counted.
import type { ServerOptions } from 'node:http';
import type { FastifyInstance } from 'fastify';
import type { GatewayConfig } from './config';
import { clientErrorHandler } from './client-errors';
import type { GatewayMetrics } from './metrics';

/** Node checks request deadlines on a timer (default every 30 s): check often enough to cut on time. */
export function checkingIntervalMs(config: GatewayConfig): number {
  const s = config.server;
  return Math.max(50, Math.min(1_000, Math.floor(Math.min(s.headersTimeoutMs, s.requestTimeoutMs) / 4)));
}

/** The fastify options that carry the limits into the http server it creates. */
export function serverLimits(config: GatewayConfig): { requestTimeout: number; keepAliveTimeout: number; http: ServerOptions } {
  return {
    requestTimeout: config.server.requestTimeoutMs,
    keepAliveTimeout: config.server.keepAliveTimeoutMs,
    http: { connectionsCheckingInterval: checkingIntervalMs(config) },
  };
}

type Limits = ReturnType<typeof serverLimits>;
type HttpsLimits = Omit<Limits, 'http'> & { https: ServerOptions & { handshakeTimeout: number; cert: Buffer; key: Buffer } };

/** fastify's server options: the limits, the contract's answer to unparsable requests (client-errors.ts), and `https` (which then carries the limits: fastify ignores `http` with it) when TLS is on. */
export function trafficServerOptions(
  config: GatewayConfig, tls: { readonly cert: Buffer; readonly key: Buffer } | null, metrics: GatewayMetrics,
): (Limits | HttpsLimits) & { clientErrorHandler: ReturnType<typeof clientErrorHandler> } {
  const limits = { ...serverLimits(config), clientErrorHandler: clientErrorHandler(metrics) };
  if (tls === null) return limits;
  const { http, ...rest } = limits;
  // A TLS handshake gets no longer than a request head (Node's own default is 120 s).
  return { ...rest, https: { ...http, handshakeTimeout: config.server.headersTimeoutMs, cert: tls.cert, key: tls.key } };
}

/** What fastify has no option for; call before listen(). */
export function applyServerLimits(app: FastifyInstance, config: GatewayConfig, metrics: GatewayMetrics): void {
  const server = app.server;
  server.headersTimeout = config.server.headersTimeoutMs;
  server.maxConnections = config.server.maxConnections;
  server.on('drop', () => metrics.refused('max_connections'));
}
