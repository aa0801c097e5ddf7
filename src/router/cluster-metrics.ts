// `cellgate serve --workers N`: N gateway processes (node:cluster workers) share the traffic
// port; the primary serves, on the admin port, one /metrics summed over the workers
// (prom-client's AggregatorRegistry: each metric merged by its `aggregator`, see
// metrics.ts), so one scrape target sees the whole gateway. Worker i (0-based) keeps its
// own admin server (readiness, /admin/table, its own /metrics) on the admin port + 1 + i, or
// on an ephemeral port of its own when the admin port is 0.
//
// A scrape fails (500) rather than answering a partial sum when a worker does not answer
// within prom-client's 5 s: a sum that silently lost a worker's counters would look like a
// counter reset. Workers being replaced after a crash are simply not asked.
import cluster from 'node:cluster';
import type { AddressInfo } from 'node:net';
import fastify from 'fastify';
import { AggregatorRegistry, type Registry } from 'prom-client';
import { cgError } from '../errors';
import { sendError } from './error-reply';

/** The admin port of worker `index` (0-based): the primary's admin port + 1 + index; 0 stays 0 (each its own ephemeral port). */
export function workerAdminPort(adminPort: number, index: number): number {
  return adminPort === 0 ? 0 : adminPort + 1 + index;
}

/** Refuses a port layout where a worker's admin port would be out of range or on the traffic port. */
export function checkWorkerPorts(config: { readonly port: number; readonly adminPort: number }, workers: number): void {
  if (config.adminPort === 0) return;
  const last = workerAdminPort(config.adminPort, workers - 1);
  if (last > 65535) throw cgError('USAGE', `with --workers ${workers} the workers' admin ports run up to ${last} (admin port + 1 … + ${workers}): choose an admin port at most ${65535 - workers}`);
  if (config.port > config.adminPort && config.port <= last) {
    throw cgError('USAGE', `the traffic port ${config.port} is one of the workers' admin ports (${config.adminPort + 1}-${last}, admin port + 1 … + ${workers})`);
  }
}

/** In a worker: answer the primary's metrics requests with this gateway's registry. */
export function shareMetricsWithPrimary(registry: Registry): void {
  AggregatorRegistry.setRegistries([registry]);
  // Constructing one installs prom-client's worker-side listener for the primary's requests.
  new AggregatorRegistry();
}

export interface ClusterMetricsServer {
  readonly admin: string;
  close(): Promise<void>;
}

/** In the primary: /metrics summed over the live workers, /healthz; listens before any worker is forked. */
export async function startClusterMetricsServer(options: { host: string; port: number }): Promise<ClusterMetricsServer> {
  const aggregator = new AggregatorRegistry();
  const app = fastify({ logger: false, return503OnClosing: true, requestIdHeader: false });
  const liveWorkers = () => Object.values(cluster.workers ?? {}).filter((w) => w?.isConnected()).length;

  app.get('/healthz', async () => ({ status: 'ok', role: 'primary', workers: liveWorkers() }));
  app.get('/metrics', async (_request, reply) => {
    let text: string;
    try {
      text = await aggregator.clusterMetrics();
    } catch {
      return sendError(reply, 'INTERNAL_ERROR');
    }
    reply.header('content-type', aggregator.contentType);
    return text;
  });
  app.setNotFoundHandler((_request, reply) => sendError(reply, 'NOT_FOUND'));
  app.setErrorHandler((_err, _request, reply) => sendError(reply, 'INTERNAL_ERROR'));

  await app.listen({ host: options.host, port: options.port });
  const port = (app.server.address() as AddressInfo).port;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  return { admin: `http://${host}:${port}`, close: () => app.close() };
}
