// `cellgate serve --workers N`: N gateway processes (node:cluster workers) share the traffic
// port; the primary serves, on the admin port, one /metrics summed over the workers
// (prom-client's AggregatorRegistry.aggregate: each metric merged by its `aggregator`, see
// metrics.ts), so one scrape target sees the whole gateway. Worker i (0-based) keeps its
// own admin server (readiness, /admin/table, its own /metrics) on the admin port + 1 + i, or
// on an ephemeral port of its own when the admin port is 0.
//
// Workers answer with prom-client's own worker-side listener; the primary side is ours,
// speaking the same messages, because prom-client's clusterMetrics() keeps a scrape's
// partial answers forever when a worker never answers (stopped, or exited mid-scrape).
// Here every gather ends by its deadline or when a worker it waits for exits, and is then
// forgotten. A scrape fails (500) rather than answering a partial sum: a sum that silently
// lost a worker's counters would look like a counter reset. Workers still starting (not yet
// listening, e.g. the replacement of one that crashed) are not asked: they have counted nothing.
import cluster, { type Worker } from 'node:cluster';
import type { AddressInfo } from 'node:net';
import fastify from 'fastify';
import { AggregatorRegistry, Registry } from 'prom-client';
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

/** prom-client's cluster messages (lib/cluster.js), answered in each worker by shareMetricsWithPrimary. */
const PROMETHEUS_CONTENT_TYPE = Registry.PROMETHEUS_CONTENT_TYPE;
const GET_METRICS_REQ = 'prom-client:getMetricsReq';
const GET_METRICS_RES = 'prom-client:getMetricsRes';
/** As prom-client: well under Prometheus' default 10 s scrape timeout. */
const GATHER_TIMEOUT_MS = 5000;

interface MetricsReply {
  readonly type?: unknown;
  readonly requestId?: unknown;
  readonly metrics?: unknown;
  readonly error?: unknown;
}

interface Gather {
  readonly waiting: Set<number>;
  readonly responses: unknown[];
  readonly timer: NodeJS.Timeout;
  readonly done: (err: Error | null) => void;
}

/** The primary's side: asks every connected worker for its registry's JSON and sums the answers. */
class WorkerMetricsGatherer {
  private nextId = 0;
  private inflight: Promise<string> | null = null;
  private readonly gathers = new Map<number, Gather>();
  /**
   * Workers that have listened: they answer metrics requests (the answering listener is set up
   * before the gateway listens), and only they can have counted anything. A worker still
   * starting would drop the request and fail the scrape.
   */
  private readonly serving = new Set<number>();
  private readonly onListening = (worker: Worker) => this.serving.add(worker.id);
  private readonly onMessage = (worker: Worker, message: MetricsReply) => this.answered(worker, message);
  private readonly onExit = (worker: Worker) => {
    this.serving.delete(worker.id);
    for (const [id, g] of this.gathers) if (g.waiting.has(worker.id)) this.finish(id, new Error(`worker ${worker.id} exited before answering`));
  };

  constructor() {
    cluster.on('listening', this.onListening);
    cluster.on('message', this.onMessage);
    cluster.on('exit', this.onExit);
  }

  /** Workers serving traffic now. */
  servingWorkers(): Worker[] {
    return Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined && w.isConnected() && this.serving.has(w.id));
  }

  /**
   * The serving workers' metrics summed, in Prometheus text; '' when none serves yet.
   * Single flight: scrapes that arrive while a gather is under way share its answer, so at
   * most one request per worker is ever outstanding, however often /metrics is hit.
   */
  gather(): Promise<string> {
    return (this.inflight ??= this.gatherOnce().finally(() => { this.inflight = null; }));
  }

  private gatherOnce(): Promise<string> {
    const workers = this.servingWorkers();
    if (workers.length === 0) return Promise.resolve('');
    const id = this.nextId++;
    return new Promise<string>((resolve, reject) => {
      const responses: unknown[] = [];
      const gather: Gather = {
        waiting: new Set(workers.map((w) => w.id)),
        responses,
        timer: setTimeout(() => this.finish(id, new Error(`workers ${[...gather.waiting].join(', ')} did not answer within ${GATHER_TIMEOUT_MS} ms`)), GATHER_TIMEOUT_MS),
        done: (err) => {
          if (err) return reject(err);
          AggregatorRegistry.aggregate(responses as object[]).metrics().then(resolve, reject);
        },
      };
      this.gathers.set(id, gather);
      for (const w of workers) w.send({ type: GET_METRICS_REQ, requestId: id }, (err: Error | null) => { if (err) this.finish(id, err); });
    });
  }

  close(): void {
    cluster.off('listening', this.onListening);
    cluster.off('message', this.onMessage);
    cluster.off('exit', this.onExit);
    for (const id of [...this.gathers.keys()]) this.finish(id, new Error('shutting down'));
  }

  private answered(worker: Worker, message: MetricsReply): void {
    if (message?.type !== GET_METRICS_RES || typeof message.requestId !== 'number') return;
    const g = this.gathers.get(message.requestId);
    if (!g || !g.waiting.has(worker.id)) return;
    if (message.error !== undefined || !Array.isArray(message.metrics)) return this.finish(message.requestId, new Error(`worker ${worker.id}: ${String(message.error)}`));
    g.responses.push(...(message.metrics as unknown[]));
    g.waiting.delete(worker.id);
    if (g.waiting.size === 0) this.finish(message.requestId, null);
  }

  private finish(id: number, err: Error | null): void {
    const g = this.gathers.get(id);
    if (!g) return;
    this.gathers.delete(id);
    clearTimeout(g.timer);
    g.done(err);
  }
}

/** In the primary: /metrics summed over the live workers, /healthz; listens before any worker is forked. */
export async function startClusterMetricsServer(options: { host: string; port: number }): Promise<ClusterMetricsServer> {
  const gatherer = new WorkerMetricsGatherer();
  const app = fastify({ logger: false, return503OnClosing: true, requestIdHeader: false });

  app.get('/healthz', async () => ({ status: 'ok', role: 'primary', workers: gatherer.servingWorkers().length }));
  app.get('/metrics', async (_request, reply) => {
    let text: string;
    try {
      text = await gatherer.gather();
    } catch {
      return sendError(reply, 'INTERNAL_ERROR');
    }
    reply.header('content-type', PROMETHEUS_CONTENT_TYPE);
    return text;
  });
  app.setNotFoundHandler((_request, reply) => sendError(reply, 'NOT_FOUND'));
  app.setErrorHandler((_err, _request, reply) => sendError(reply, 'INTERNAL_ERROR'));

  try {
    await app.listen({ host: options.host, port: options.port });
  } catch (err) {
    gatherer.close();
    throw err;
  }
  const port = (app.server.address() as AddressInfo).port;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  return {
    admin: `http://${host}:${port}`,
    close: async () => {
      gatherer.close();
      await app.close();
    },
  };
}
