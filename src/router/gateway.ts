// createGateway: the edge gateway as a library (what `cellgate serve` runs). It wires the
// pieces — table follower, routing state, endpoint health, hold buffer, traffic and admin
// servers, presence, metrics — and owns their lifecycle: start() listens, shutdown()
// stops accepting, deregisters, drains (bounded by shutdownGraceMs) and resolves only when
// every server, socket, watch and timer it started is gone.
import type { AddressInfo, Socket } from 'node:net';
import type { Registry } from 'prom-client';
import { RoutingView } from '../cells/lookup';
import type { VersionedTable } from '../cells/types';
import type { TableStore } from '../store/types';
import { buildAdminServer } from './admin';
import { type Clock, systemClock } from './clock';
import type { GatewayConfig } from './config';
import { EndpointHealth } from './endpoints';
import { HoldBuffer, type HoldCounters } from './hold-buffer';
import { GatewayMetrics } from './metrics';
import { PresencePublisher } from './presence';
import { buildTrafficServer, type RoutingState } from './proxy';
import { TableFollower, type TableSource } from './table-follower';

export type GatewayLog = (event: string, fields?: Record<string, unknown>) => void;

export interface GatewayOptions {
  readonly config: GatewayConfig;
  readonly store: TableStore;
  /** Injected time for the hold buffer and endpoint ejection (tests); the system clock otherwise. */
  readonly clock?: Clock;
  /** Control-plane events (tables applied/rejected, store connectivity); never called per request. */
  readonly log?: GatewayLog;
  /** prom-client's process/runtime metrics in the registry (default true). */
  readonly processMetrics?: boolean;
  readonly presenceTtlSeconds?: number;
}

export interface GatewayAddresses {
  /** e.g. http://127.0.0.1:8080 */
  readonly traffic: string;
  readonly admin: string;
  readonly port: number;
  readonly adminPort: number;
}

export interface Gateway {
  readonly config: GatewayConfig;
  readonly registry: Registry;
  start(): Promise<GatewayAddresses>;
  /** Idempotent; every call returns the same promise. */
  shutdown(): Promise<void>;
  /** The routing view in use (null until a table is loaded). */
  view(): RoutingView | null;
  /** Resolves with the view once a table of at least `version` is applied. */
  waitForVersion(version: number, timeoutMs?: number): Promise<RoutingView>;
  bufferCounters(): HoldCounters & { readonly size: number };
  inFlight(): number;
}

const stderrLog: GatewayLog = (event, fields) => {
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), event, ...fields })}\n`);
};

export function createGateway(options: GatewayOptions): Gateway {
  const { config, store } = options;
  const clock = options.clock ?? systemClock;
  const log = options.log ?? stderrLog;
  const routing: { current: RoutingState | null } = { current: null };
  let tableInfo: { source: TableSource; receivedAtMs: number } | null = null;
  // Fail-static bookkeeping: while the store is connected the applied table is current;
  // otherwise it is as old as the last moment it was known to be (connection lost, snapshot saved).
  let storeConnected = false;
  let tableConfirmedAtMs = 0;
  const load = { inFlight: 0, upstreamByCell: new Map<string, number>() };
  let accepting = true;
  const health = new EndpointHealth(config.upstream, () => clock.now());
  const buffer = new HoldBuffer({ windowMs: config.buffer.windowMs, maxRequests: config.buffer.maxRequests, maxTotalBytes: config.buffer.maxTotalBytes, clock });
  const waiters = new Set<{ version: number; resolve: (v: RoutingView) => void; reject: (err: Error) => void }>();

  const metrics = new GatewayMetrics({
    inFlight: () => load.inFlight,
    buffered: () => buffer.size,
    view: () => routing.current?.view ?? null,
    tableAgeSeconds: () => {
      if (!tableInfo) return null;
      if (storeConnected && tableInfo.source === 'store') return 0;
      return Math.max(0, (Date.now() - tableConfirmedAtMs) / 1000);
    },
    ejectedByZone: () => {
      const out = new Map<string, number>();
      const now = clock.now();
      for (const [zone, pool] of routing.current?.pools ?? []) out.set(zone, pool.endpoints.filter((e) => !e.isAvailable(now)).length);
      return out;
    },
  }, options.processMetrics ?? true);
  metrics.controlPlaneConnected.set(0);

  const presence = new PresencePublisher({
    store: store.presence,
    facts: { id: config.id, zone: config.zone, startedAt: new Date().toISOString() },
    inFlight: () => load.inFlight,
    log,
    ttlSeconds: options.presenceTtlSeconds,
  });

  let ackTimer: NodeJS.Timeout | null = null;

  /**
   * Publishes `vt` as applied once no request of a cell it freezes is still with an upstream
   * (new ones are held already): cellctl flips a frozen cell only after every gateway has
   * acknowledged, so a request still running at the old zone must finish first. Bounded by the
   * earliest freeze deadline; a newer table supersedes the wait.
   */
  function acknowledgeWhenDrained(vt: VersionedTable, view: RoutingView): void {
    if (ackTimer) clearTimeout(ackTimer);
    ackTimer = null;
    const now = clock.now();
    const frozen = [...vt.table.cells, vt.table.global].filter((c) => c.state === 'frozen' && (c.frozenUntilMs ?? 0) > now);
    const deadlineMs = Math.min(...frozen.map((c) => c.frozenUntilMs as number));
    const check = () => {
      ackTimer = null;
      if (routing.current?.view !== view) return;
      const busy = frozen.some((c) => (load.upstreamByCell.get(c.name) ?? 0) > 0);
      if (!busy || clock.now() >= deadlineMs) return presence.tableApplied(vt.version, vt.checksum);
      ackTimer = setTimeout(check, 2);
      ackTimer.unref();
    };
    check();
  }

  function apply(vt: VersionedTable, source: TableSource, receivedAtMs: number): void {
    const view = new RoutingView(vt);
    const pools = health.poolsFor(vt.table);
    routing.current = { view, pools, revision: String(vt.version) };
    tableInfo = { source, receivedAtMs };
    tableConfirmedAtMs = receivedAtMs;
    metrics.tableVersion.set(vt.version);
    if (source === 'store') metrics.tableUpdates.inc({ result: 'accepted' });
    acknowledgeWhenDrained(vt, view);
    // Held requests of cells this table unfroze go now (to the cell's new zone).
    buffer.reroute();
    for (const w of [...waiters]) {
      if (vt.version >= w.version) {
        waiters.delete(w);
        w.resolve(view);
      }
    }
    log('table.applied', { version: vt.version, checksum: vt.checksum, source });
  }

  const follower = new TableFollower(store, config.snapshotPath, {
    apply,
    rejected(version, reason) {
      metrics.tableUpdates.inc({ result: 'rejected' });
      log('table.rejected', { version, reason });
    },
    connection(connected) {
      if (storeConnected !== connected && tableInfo?.source === 'store') tableConfirmedAtMs = Date.now();
      storeConnected = connected;
      metrics.controlPlaneConnected.set(connected ? 1 : 0);
      log('store.connection', { connected, store: store.description });
    },
    log,
  });

  const traffic = buildTrafficServer({ config, routing, buffer, health, metrics, clock, load });
  // Every client socket, upgraded WebSockets included (the HTTP server forgets those, and a
  // WebSocket peer that ignores the close handshake would hold shutdown for ws's 30 s).
  const clientSockets = new Set<Socket>();
  traffic.server.on('connection', (socket: Socket) => {
    clientSockets.add(socket);
    socket.once('close', () => clientSockets.delete(socket));
  });
  const admin = buildAdminServer({
    id: config.id,
    zone: config.zone,
    registry: metrics.registry,
    view: () => routing.current?.view ?? null,
    tableInfo: () => tableInfo,
    accepting: () => accepting,
  });

  let started: Promise<GatewayAddresses> | null = null;
  let stopping: Promise<void> | null = null;

  async function start(): Promise<GatewayAddresses> {
    await follower.start();
    presence.start();
    try {
      await traffic.listen({ port: config.port, host: config.host });
      await admin.listen({ port: config.adminPort, host: config.adminHost });
    } catch (err) {
      await shutdown().catch(() => undefined);
      throw err;
    }
    const port = (traffic.server.address() as AddressInfo).port;
    const adminPort = (admin.server.address() as AddressInfo).port;
    const hostOf = (h: string) => (h.includes(':') ? `[${h}]` : h);
    log('gateway.listening', { id: config.id, port, adminPort, host: config.host, adminHost: config.adminHost });
    return { traffic: `http://${hostOf(config.host)}:${port}`, admin: `http://${hostOf(config.adminHost)}:${adminPort}`, port, adminPort };
  }

  async function drainTraffic(): Promise<void> {
    let graceTimer: NodeJS.Timeout | null = null;
    let cutTimer: NodeJS.Timeout | null = null;
    const graceElapsed = new Promise<void>((resolve) => {
      graceTimer = setTimeout(() => {
        // Out of time: held requests are answered 504, then every connection is cut.
        buffer.shutdown();
        cutTimer = setTimeout(() => {
          traffic.server.closeAllConnections();
          for (const socket of clientSockets) socket.destroy();
        }, 100);
        resolve();
      }, config.shutdownGraceMs);
    });
    try {
      // Deregister first so `cellctl` stops waiting for this gateway; a store that hangs
      // must not hold shutdown beyond the grace period.
      await Promise.race([presence.close().catch((err: Error) => log('presence.close_failed', { error: err.message })), graceElapsed]);
      await traffic.close();
    } finally {
      if (graceTimer) clearTimeout(graceTimer);
      if (cutTimer) clearTimeout(cutTimer);
    }
  }

  function shutdown(): Promise<void> {
    if (stopping) return stopping;
    accepting = false;
    stopping = (async () => {
      log('gateway.shutdown', { id: config.id, inFlight: load.inFlight });
      await drainTraffic();
      buffer.shutdown();
      // Keep following the table until the traffic is drained: held requests may still be released.
      await follower.close();
      if (ackTimer) clearTimeout(ackTimer);
      ackTimer = null;
      await presence.close().catch(() => undefined);
      await admin.close();
      for (const w of waiters) w.reject(new Error(`gateway ${config.id} shut down before table version ${w.version}`));
      waiters.clear();
      log('gateway.stopped', { id: config.id });
    })();
    return stopping;
  }

  function waitForVersion(version: number, timeoutMs = 10_000): Promise<RoutingView> {
    const cur = routing.current;
    if (cur && cur.view.version >= version) return Promise.resolve(cur.view);
    return new Promise((resolve, reject) => {
      const waiter = {
        version,
        resolve: (v: RoutingView) => {
          clearTimeout(timer);
          resolve(v);
        },
        reject: (err: Error) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      const timer = setTimeout(() => {
        waiters.delete(waiter);
        reject(new Error(`gateway ${config.id}: table version ${version} not applied within ${timeoutMs} ms`));
      }, timeoutMs);
      waiters.add(waiter);
    });
  }

  return {
    config,
    registry: metrics.registry,
    start: () => (started ??= start()),
    shutdown,
    view: () => routing.current?.view ?? null,
    waitForVersion,
    bufferCounters: () => ({ ...buffer.counters, evicted: { ...buffer.counters.evicted }, size: buffer.size }),
    inFlight: () => load.inFlight,
  };
}
