// The gateway's lifecycle, after undici's close/destroy: start() follows the table, registers
// and listens; close() stops accepting, lets in-flight requests finish (bounded by
// shutdownGraceMs: then held requests are answered 504 and every connection is cut), then
// deregisters, and resolves only when every server, socket, watch and timer it started is gone; destroy()
// is close() without the grace. Both are idempotent and share one stop.
import type { AddressInfo, Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Clock, TimerHandle } from '../clock';
import type { GatewayConfig } from './config';

export interface GatewayAddresses {
  /** e.g. http://127.0.0.1:8080 */
  readonly traffic: string;
  readonly admin: string;
  readonly port: number;
  readonly adminPort: number;
}

/** What the lifecycle starts and stops; each part's own close is idempotent. */
export interface LifecycleParts {
  readonly config: GatewayConfig;
  readonly clock: Clock;
  readonly log: (event: string, fields?: Record<string, unknown>) => void;
  readonly traffic: FastifyInstance;
  readonly admin: FastifyInstance;
  readonly follower: { start(): Promise<void>; close(): Promise<void> };
  readonly presence: { start(): void; close(): Promise<void> };
  /** Shutdown begins: ends open WebSockets (1001) so their clients reconnect elsewhere now. */
  readonly closeWebSockets: () => void;
  /** Answers every held request (504) and stops the buffer's timer. */
  readonly releaseHeld: () => void;
  /** Everything else to stop once traffic is drained (acknowledgement timers, version waiters, upstream WebSockets). */
  readonly stopRest: () => Promise<void>;
  readonly inFlight: () => number;
}

/** Time between answering held requests and cutting connections: lets the 504s be written. */
const CUT_AFTER_MS = 100;

export class GatewayLifecycle {
  private readonly p: LifecycleParts;
  /** Every client socket, upgraded WebSockets included (the HTTP server forgets those). */
  private readonly clientSockets = new Set<Socket>();
  private started: Promise<GatewayAddresses> | null = null;
  private stopping: Promise<void> | null = null;
  private graceMs: number;
  private accepting = true;

  constructor(parts: LifecycleParts) {
    this.p = parts;
    this.graceMs = parts.config.shutdownGraceMs;
    parts.traffic.server.on('connection', (socket: Socket) => {
      this.clientSockets.add(socket);
      socket.once('close', () => this.clientSockets.delete(socket));
    });
  }

  /** False once close() or destroy() began (readiness). */
  get isAccepting(): boolean {
    return this.accepting;
  }

  start(): Promise<GatewayAddresses> {
    return (this.started ??= this.listen());
  }

  /** Graceful: in-flight requests get up to shutdownGraceMs. */
  close(): Promise<void> {
    return (this.stopping ??= this.stop());
  }

  /** At once: held requests answered 504, every connection cut, then the same clean stop as close(). */
  destroy(): Promise<void> {
    this.graceMs = 0;
    if (this.stopping) {
      // A graceful close is under way: end its grace now.
      this.p.releaseHeld();
      this.cutConnections();
    }
    return this.close();
  }

  private cutConnections(): void {
    this.p.traffic.server.closeAllConnections();
    for (const socket of this.clientSockets) socket.destroy();
  }

  private async listen(): Promise<GatewayAddresses> {
    const { config, traffic, admin } = this.p;
    await this.p.follower.start();
    this.p.presence.start();
    try {
      await traffic.listen({ port: config.port, host: config.host });
      // exclusive: in a --workers worker the admin port is this process's own, never shared through the primary.
      await admin.listen({ port: config.adminPort, host: config.adminHost, exclusive: true });
    } catch (err) {
      await this.close().catch(() => undefined);
      throw err;
    }
    const port = (traffic.server.address() as AddressInfo).port;
    const adminPort = (admin.server.address() as AddressInfo).port;
    const hostOf = (h: string) => (h.includes(':') ? `[${h}]` : h);
    this.p.log('gateway.listening', { id: config.id, port, adminPort, host: config.host, adminHost: config.adminHost });
    return { traffic: `${config.tls ? 'https' : 'http'}://${hostOf(config.host)}:${port}`, admin: `http://${hostOf(config.adminHost)}:${adminPort}`, port, adminPort };
  }

  private async stop(): Promise<void> {
    this.accepting = false;
    const { config, log } = this.p;
    log('gateway.shutdown', { id: config.id, inFlight: this.p.inFlight() });
    this.p.closeWebSockets();
    await this.drainTraffic();
    this.p.releaseHeld();
    // Keep following the table until the traffic is drained: held requests may still be released.
    await this.p.follower.close();
    await this.p.stopRest();
    await this.p.presence.close().catch(() => undefined);
    await this.p.admin.close();
    log('gateway.stopped', { id: config.id });
  }

  private async drainTraffic(): Promise<void> {
    const { clock, traffic, presence, log } = this.p;
    let graceTimer: TimerHandle | null = null;
    let cutTimer: TimerHandle | null = null;
    const graceElapsed = new Promise<void>((resolve) => {
      graceTimer = clock.setTimer(() => {
        graceTimer = null;
        // Out of time: held requests are answered 504, then every connection is cut.
        this.p.releaseHeld();
        cutTimer = clock.setTimer(() => {
          cutTimer = null;
          this.cutConnections();
        }, this.graceMs === 0 ? 0 : CUT_AFTER_MS);
        resolve();
      }, this.graceMs);
    });
    try {
      // The presence record stays until the traffic is drained: while this gateway still serves
      // requests it follows the table and acknowledges freezes, so cellctl must keep counting it
      // (deregistering first let a freeze converge while a request ran at the old zone).
      await traffic.close(); // bounded: when the grace ends every connection is cut
      // A store that hangs must not hold shutdown beyond the grace period.
      await Promise.race([presence.close().catch((err: Error) => log('presence.close_failed', { error: err.message })), graceElapsed]);
    } finally {
      if (graceTimer) clock.clearTimer(graceTimer);
      if (cutTimer) clock.clearTimer(cutTimer);
    }
  }
}
