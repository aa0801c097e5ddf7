// createGateway: the edge gateway as a library (what `cellgate serve` runs). It only wires
// the parts, each in its own file:
//   routing-state.ts — table → view → pools, swapped whole; waitForVersion;
//   freeze-ack.ts, cell-requests.ts, websocket-registry.ts — the freeze acknowledgement:
//     per-cell in-flight requests (grace, then cut) and WebSockets (closed 1012 on a move);
//   lifecycle.ts — start, close (drain, bounded by shutdownGraceMs) and destroy;
//   table-follower.ts, presence.ts, hold-buffer.ts, endpoints.ts, proxy.ts, admin.ts.
import type { Registry } from 'prom-client';
import type { RoutingView } from '../cells/lookup';
import type { VersionedTable } from '../cells/types';
import type { TableStore } from '../store/types';
import { buildAdminServer } from './admin';
import { CellRequests } from './cell-requests';
import { type Clock, systemClock } from './clock';
import type { GatewayConfig } from './config';
import { EndpointHealth } from './endpoints';
import { FreezeAcknowledger } from './freeze-ack';
import { HoldBuffer, type HoldCounters } from './hold-buffer';
import { GatewayLifecycle, type GatewayAddresses } from './lifecycle';
import { GatewayMetrics } from './metrics';
import { MoveMetrics } from './move-metrics';
import { PresencePublisher } from './presence';
import { buildTrafficServer } from './proxy';
import { RoutingStateHolder } from './routing-state';
import { TableFollower, type TableSource } from './table-follower';
import { WebSocketRegistry, type WsCloseReason } from './websocket-registry';
import { UpstreamWebSockets } from './ws-upstream';

export type { GatewayAddresses } from './lifecycle';

export type GatewayLog = (event: string, fields?: Record<string, unknown>) => void;

export interface GatewayOptions {
  readonly config: GatewayConfig;
  readonly store: TableStore;
  /** Injected time for every timed part of the gateway (tests); the system clock otherwise. */
  readonly clock?: Clock;
  /** Control-plane events (tables applied/rejected, store connectivity); never called per request. */
  readonly log?: GatewayLog;
  /** prom-client's process/runtime metrics in the registry (default true). */
  readonly processMetrics?: boolean;
  readonly presenceTtlSeconds?: number;
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
  const log = options.log ?? stderrLog(clock);
  const health = new EndpointHealth(config.upstream, () => clock.now());
  const routing = new RoutingStateHolder(health, clock);
  const buffer = new HoldBuffer({ windowMs: config.buffer.windowMs, maxRequests: config.buffer.maxRequests, clock });
  const load = { inFlight: 0, requests: new CellRequests() };
  const cut = { awaiting_response: 0, mid_response: 0 };

  const metrics = new GatewayMetrics({
    inFlight: () => load.inFlight,
    buffered: () => buffer.size,
    view: () => routing.view,
    tableAgeSeconds: () => routing.tableAgeSeconds(),
    now: () => clock.now(),
    ejectedByZone: () => {
      const out = new Map<string, number>();
      const now = clock.now();
      for (const [zone, pool] of routing.current?.pools ?? []) out.set(zone, pool.endpoints.filter((e) => !e.isAvailable(now)).length);
      return out;
    },
  }, options.processMetrics ?? true);
  metrics.controlPlaneConnected.set(0);
  const moveMetrics = new MoveMetrics(metrics.registry, { openWebSockets: () => websockets.size, inflightWithUpstream: () => load.requests.size });
  const websockets = new WebSocketRegistry((reason) => moveMetrics.webSocketClosed(reason));

  const presence = new PresencePublisher({
    store: store.presence,
    facts: { id: config.id, zone: config.zone, startedAt: new Date(clock.now()).toISOString() },
    inFlight: () => load.inFlight,
    log,
    ttlSeconds: options.presenceTtlSeconds,
    clock,
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
      log('freeze.requests_cut', counts);
    },
  });

  function apply(vt: VersionedTable, source: TableSource, receivedAtMs: number): void {
    const view = routing.swap(vt, source, receivedAtMs);
    metrics.tableVersion.set(vt.version);
    if (source === 'store') metrics.tableUpdates.inc({ result: 'accepted' });
    const closed = websockets.closeMoved(view, clock.now());
    freezeAck.tableApplied(vt);
    // Held requests of cells this table unfroze go now (to the cell's new zone).
    buffer.reroute();
    log('table.applied', { version: vt.version, checksum: vt.checksum, source, ...(closed > 0 ? { webSocketsClosed: closed } : {}) });
  }

  const follower = new TableFollower(store, typeof config.snapshotPath === 'string' ? config.snapshotPath : null, {
    apply,
    rejected(version, reason) {
      metrics.tableUpdates.inc({ result: 'rejected' });
      log('table.rejected', { version, reason });
    },
    connection(connected) {
      routing.connection(connected);
      metrics.controlPlaneConnected.set(connected ? 1 : 0);
      log('store.connection', { connected, store: store.description });
    },
    log,
  }, () => clock.now());

  const traffic = buildTrafficServer({ config, routing, buffer, health, metrics, clock, load, websockets: new UpstreamWebSockets(websockets) });
  const admin = buildAdminServer({
    id: config.id,
    zone: config.zone,
    registry: metrics.registry,
    view: () => routing.view,
    tableInfo: () => routing.tableInfo,
    accepting: () => lifecycle.isAccepting,
    now: () => clock.now(),
  });
  const lifecycle: GatewayLifecycle = new GatewayLifecycle({
    config, clock, log, traffic, admin, follower, presence,
    closeWebSockets: () => void websockets.closeAll(),
    releaseHeld: () => buffer.shutdown(),
    stopRest: async () => {
      freezeAck.cancel();
      load.requests.clearWaiters();
      routing.rejectWaiters((version) => new Error(`gateway ${config.id} shut down before table version ${version}`));
      await websockets.terminateAll();
    },
    inFlight: () => load.inFlight,
  });

  return {
    config,
    registry: metrics.registry,
    start: () => lifecycle.start(),
    shutdown: () => lifecycle.close(),
    destroy: () => lifecycle.destroy(),
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

function stderrLog(clock: Clock): GatewayLog {
  return (event, fields) => {
    process.stderr.write(`${JSON.stringify({ time: new Date(clock.now()).toISOString(), event, ...fields })}\n`);
  };
}
