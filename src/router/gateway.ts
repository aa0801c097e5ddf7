// createGateway: the edge gateway as a library (what `cellgate serve` runs). It only wires
// the parts, each in its own file:
//   routing-state.ts — table → view → pools, swapped whole; waitForVersion;
//   freeze-ack.ts, cell-requests.ts, websocket-registry.ts — the freeze acknowledgement:
//     per-cell in-flight requests (grace, then cut) and WebSockets (closed 1012 on a move);
//   lifecycle.ts — start, close (drain, bounded by shutdownGraceMs) and destroy;
//   table-follower.ts, registry-follower.ts (the endpoint registry, merged by registry-merge.ts), presence.ts, hold-buffer.ts, endpoints.ts, proxy.ts, admin.ts;
//   log.ts — pino, one child logger per component; access-log.ts; tls.ts — the traffic port's certificate.
import type { Registry } from 'prom-client';
import type { RoutingView } from '../cells/lookup';
import type { VersionedTable } from '../cells/types';
import type { PresenceStore, RegistryDigest, TableStore } from '../store/types';
import { AccessLog } from './access-log';
import { buildAdminServer } from './admin';
import { CellRequests } from './cell-requests';
import { type Clock, systemClock } from '../clock';
import type { GatewayConfig } from './config';
import { EndpointHealth } from './endpoints';
import { FreezeAcknowledger } from './freeze-ack';
import { HoldBuffer, type HoldCounters } from './hold-buffer';
import { GatewayLifecycle, type GatewayAddresses } from './lifecycle';
import { type Component, type DestinationStream, type GatewayLog, createLogSink, eventLog } from './log';
import { GatewayMetrics } from './metrics';
import { MoveMetrics } from './move-metrics';
import { PresencePublisher } from './presence';
import { ZoneProber } from './probes';
import { buildTrafficServer } from './proxy';
import { RouteServiceCheck } from './route-services';
import { RegistryFollower } from './registry-follower';
import { RegistryMetrics } from './registry-metrics';
import { RoutingStateHolder } from './routing-state';
import { TableFollower, type TableSource } from './table-follower';
import { TrafficTls } from './tls';
import { WebSocketRegistry, type WsCloseReason } from './websocket-registry';
import { UpstreamWebSockets } from './ws-upstream';

export type { GatewayAddresses } from './lifecycle';
export type { GatewayLog } from './log';

export interface GatewayOptions {
  readonly config: GatewayConfig;
  readonly store: TableStore;
  /** Injected time for every timed part of the gateway (tests); the system clock otherwise. */
  readonly clock?: Clock;
  /** Where the JSON log lines go (tests); stderr, asynchronously, otherwise. */
  readonly logDestination?: DestinationStream;
  /** Control-plane events go here instead of the log (the demo, tests); the access log is unaffected. */
  readonly log?: GatewayLog;
  /** prom-client's process/runtime metrics in the registry (default true). */
  readonly processMetrics?: boolean;
  readonly presenceTtlSeconds?: number;
  /** Where the gateway registers its presence (default store.presence; `serve` passes a RelayedPresence with relays configured). */
  readonly presence?: PresenceStore;
  /** Called after each endpoint registry snapshot is applied to routing (tests, the registry benchmark). */
  readonly onRegistryApplied?: (digest: RegistryDigest) => void;
}

/** What the gateway knows about moves, for tests and diagnostics. */
export interface MoveCounters {
  /** Plain requests with an upstream right now (cell routes). */
  readonly withUpstream: number;
  readonly openWebSockets: number;
  readonly webSocketsClosed: Readonly<Record<WsCloseReason, number>>;
  /** Requests cut when a freeze grace ended, by whether their response had started. */
  readonly cut: { readonly awaiting_response: number; readonly mid_response: number };
  /** Whether a freeze acknowledgement is waiting for requests to finish. */
  readonly ackPending: boolean;
}

export interface Gateway {
  readonly config: GatewayConfig;
  readonly registry: Registry;
  start(): Promise<GatewayAddresses>;
  /** Graceful stop (drain bounded by shutdownGraceMs). Idempotent; every call returns the same promise. */
  shutdown(): Promise<void>;
  /** Stop at once: held requests answered 504, every connection cut; resolves when all is gone. */
  destroy(): Promise<void>;
  /** Reads tls.cert and tls.key again and serves them to new connections (SIGHUP); the old ones stay on failure. */
  reloadTls(): Promise<void>;
  /** The routing view in use (null until a table is loaded). */
  view(): RoutingView | null;
  /** Resolves with the view once a table of at least `version` is applied. */
  waitForVersion(version: number, timeoutMs?: number): Promise<RoutingView>;
  bufferCounters(): HoldCounters & { readonly size: number };
  /** Plain requests being served (held ones included, WebSockets not). */
  inFlight(): number;
  moveCounters(): MoveCounters;
}

export function createGateway(options: GatewayOptions): Gateway {
  const { config, store } = options;
  const clock = options.clock ?? systemClock;
  const logSink = createLogSink(config.logLevel, options.logDestination, config.accessLog);
  const logger = logSink.logger;
  const logOf = (component: Component): GatewayLog => options.log ?? eventLog(logger.child({ component }));
  const log = {
    table: logOf('table'), store: logOf('store'), presence: logOf('presence'), lifecycle: logOf('lifecycle'), freeze: logOf('freeze'), upstream: logOf('upstream'),
  };
  // The access log is its own switch: written at info whatever logLevel says.
  const accessLog = config.accessLog ? new AccessLog(logger.child({ component: 'access' }, { level: 'info' }), config) : null;
  const tls = config.tls ? new TrafficTls(config.tls, logger.child({ component: 'tls' })) : null;
  const health = new EndpointHealth(config.upstream, () => clock.now(), (ejection) => log.upstream('upstream.ejected', { ...ejection }));
  const routing = new RoutingStateHolder(health, clock);
  const buffer = new HoldBuffer({ windowMs: config.buffer.windowMs, maxRequests: config.buffer.maxRequests, maxTotalBytes: config.buffer.maxTotalBytes, clock });
  const load = { inFlight: 0, requests: new CellRequests() };
  const cut = { awaiting_response: 0, mid_response: 0 };

  const metrics = new GatewayMetrics({
    inFlight: () => load.inFlight,
    buffered: () => buffer.size,
    view: () => routing.view,
    tableAgeSeconds: () => routing.tableAgeSeconds(),
    now: () => clock.now(),
    pools: () => routing.current?.pools ?? null,
  }, options.processMetrics ?? true);
  metrics.controlPlaneConnected.set(0);
  const moveMetrics = new MoveMetrics(metrics.registry, { openWebSockets: () => websockets.size, inflightWithUpstream: () => load.requests.size });
  const websockets = new WebSocketRegistry((reason) => moveMetrics.webSocketClosed(reason));

  const presence = new PresencePublisher({
    store: options.presence ?? store.presence,
    facts: { id: config.id, zone: config.zone, startedAt: new Date(clock.now()).toISOString() },
    inFlight: () => load.inFlight,
    log: log.presence,
    ttlSeconds: options.presenceTtlSeconds,
    clock,
  });
  const prober = new ZoneProber({
    intervalMs: config.probe.intervalMs, timeoutMs: config.probe.timeoutMs, clock, registry: metrics.registry, gatewayId: config.id,
    pools: () => routing.current?.pools ?? null,
    onChange: (report) => presence.zoneHealthChanged(report),
  });
  const freezeAck = new FreezeAcknowledger({
    clock,
    requests: load.requests,
    inflightGraceMs: config.freeze.inflightGraceMs,
    publish: (version, checksum) => presence.tableApplied(version, checksum),
    onCut: (counts) => {
      cut.awaiting_response += counts.awaiting_response;
      cut.mid_response += counts.mid_response;
      moveMetrics.requestsCut(counts);
      log.freeze('freeze.requests_cut', counts);
    },
  });

  const routeServices = new RouteServiceCheck(config.routes, metrics.routeServicesMissing, log.table);

  function apply(vt: VersionedTable, source: TableSource, receivedAtMs: number): void {
    routeServices.check(vt, routing.current !== null);
    const view = routing.swap(vt, source, receivedAtMs);
    registryFollower.tableApplied(vt.table); // over the registry's bound, this table's zones go first
    metrics.tableVersion.set(vt.version);
    if (source === 'store') metrics.tableUpdates.inc({ result: 'accepted' });
    const closed = websockets.closeMoved(view, clock.now());
    freezeAck.tableApplied(vt);
    // Held requests of cells this table unfroze go now (to the cell's new zone).
    buffer.reroute();
    log.table('table.applied', { version: vt.version, checksum: vt.checksum, source, ...(closed > 0 ? { webSocketsClosed: closed } : {}) });
  }

  // The endpoint registry: merged into routing as it changes; never a table change.
  const registryMetrics = new RegistryMetrics(metrics.registry, () => routing.lastMerge);
  const registryFollower = new RegistryFollower(store.registry, {
    apply: (snapshot) => routing.registryChanged(snapshot),
    applied: (snapshot, merge, digest) => {
      registryMetrics.applied(snapshot.refusedCount, merge);
      presence.registryApplied(digest);
      options.onRegistryApplied?.(digest);
    },
    log: log.store,
  });

  const tableFollower = new TableFollower(store, typeof config.snapshotPath === 'string' ? config.snapshotPath : null, {
    apply,
    rejected(version, reason) {
      metrics.tableUpdates.inc({ result: 'rejected' });
      log.table('table.rejected', { version, reason });
    },
    connection(connected) {
      routing.connection(connected);
      metrics.controlPlaneConnected.set(connected ? 1 : 0);
      log.store('store.connection', { connected, store: store.description });
    },
    log: log.table,
  }, () => clock.now());

  const traffic = buildTrafficServer({
    config, routing, buffer, health, metrics, clock, load, websockets: new UpstreamWebSockets(websockets),
    accessLog, logger: logger.child({ component: 'proxy' }), https: tls?.initial() ?? null,
  });
  const admin = buildAdminServer({
    id: config.id,
    zone: config.zone,
    registry: metrics.registry,
    view: () => routing.view,
    tableInfo: () => routing.tableInfo,
    accepting: () => lifecycle.isAccepting,
    now: () => clock.now(),
  });
  const follower = {
    start: () => tableFollower.start().then(() => registryFollower.start()),
    close: () => Promise.all([tableFollower.close(), registryFollower.close()]).then(() => undefined),
  };
  const lifecycle: GatewayLifecycle = new GatewayLifecycle({
    config, clock, log: log.lifecycle, traffic, admin, follower, presence,
    closeWebSockets: () => void websockets.closeAll(),
    releaseHeld: () => buffer.shutdown(),
    stopRest: async () => {
      prober.close();
      freezeAck.cancel();
      load.requests.clearWaiters();
      routing.rejectWaiters((version) => new Error(`gateway ${config.id} shut down before table version ${version}`));
      await websockets.terminateAll();
    },
    inFlight: () => load.inFlight,
  });

  // One stop, one promise (shutdown and destroy return the lifecycle's), then the log is flushed.
  const flushed = new WeakMap<Promise<void>, Promise<void>>();
  const thenFlush = (stop: Promise<void>): Promise<void> => {
    let p = flushed.get(stop);
    if (!p) flushed.set(stop, (p = stop.finally(() => logSink.close())));
    return p;
  };

  return {
    config,
    registry: metrics.registry,
    start: () => lifecycle.start().then((addresses) => (prober.start(), addresses)),
    shutdown: () => thenFlush(lifecycle.close()),
    destroy: () => thenFlush(lifecycle.destroy()),
    reloadTls: () => (tls ? tls.reload(traffic.server) : Promise.reject(new Error('tls is not configured'))),
    view: () => routing.view,
    waitForVersion: (version, timeoutMs = 10_000) => routing.waitForVersion(version, timeoutMs, config.id),
    bufferCounters: () => ({ ...buffer.counters, evicted: { ...buffer.counters.evicted }, size: buffer.size }),
    inFlight: () => load.inFlight,
    moveCounters: () => ({
      withUpstream: load.requests.size,
      openWebSockets: websockets.size,
      webSocketsClosed: { ...websockets.closedByGateway },
      cut: { ...cut },
      ackPending: freezeAck.waiting,
    }),
  };
}
