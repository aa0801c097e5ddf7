// Open WebSockets per cell. A WebSocket is a long-lived conversation with one zone; when its
// cell freezes, or a newly applied table gives the cell another zone or epoch (a planned
// flip, or an unplanned `zone down`), the gateway ends it with close code 1012 ("service
// restart", RFC 6455 §7.4.1 / IANA registry) so that the client reconnects — its reconnect
// is held by the buffer while the cell is frozen and then goes to the cell's new zone. The
// upstream side is ended at once, so nothing the client still sends reaches the old zone.
//
// WebSockets are never in-flight requests: they do not hold up a freeze acknowledgement.
// Counters: opened = closedByGateway.freeze + closedByGateway.moved + ended + size.
import WebSocket from 'ws';
import type { RoutingView } from '../cells/lookup';
import { endUpstream } from './ws-upstream';

/** What an upstream socket was opened for. */
export interface WsRoute {
  readonly cell: string;
  readonly zone: string;
  readonly epoch: number;
}

export const WS_CLOSE_REASONS = ['freeze', 'moved'] as const;
export type WsCloseReason = (typeof WS_CLOSE_REASONS)[number];

/** RFC 6455 close code "service restart": the client should reconnect. */
export const CLOSE_SERVICE_RESTART = 1012;

const CLOSE_TEXT: Record<WsCloseReason, string> = { freeze: 'cell moving', moved: 'cell moved' };

interface Entry {
  readonly route: WsRoute;
  readonly target: WebSocket;
  source: WebSocket | null;
}

export class WebSocketRegistry {
  private readonly byCell = new Map<string, Set<Entry>>();
  private readonly byTarget = new Map<WebSocket, Entry>();
  opened = 0;
  /** Ended by either peer, or by the gateway's shutdown. */
  ended = 0;
  readonly closedByGateway: Record<WsCloseReason, number> = { freeze: 0, moved: 0 };

  /** `onClosed` is told of every socket the gateway ends (metrics). */
  constructor(private readonly onClosed: (reason: WsCloseReason) => void = () => undefined) {}

  get size(): number {
    return this.byTarget.size;
  }

  /** Open WebSockets of `cell` (connecting ones included). */
  count(cell: string): number {
    return this.byCell.get(cell)?.size ?? 0;
  }

  /** http-proxy is opening `target` (the upstream socket) for a client of `route.cell`. */
  open(route: WsRoute, target: WebSocket): void {
    const entry: Entry = { route, target, source: null };
    let set = this.byCell.get(route.cell);
    if (!set) this.byCell.set(route.cell, (set = new Set()));
    set.add(entry);
    this.byTarget.set(target, entry);
    this.opened += 1;
    target.once('close', () => {
      if (this.remove(entry)) this.ended += 1;
    });
  }

  /** The upstream socket is open and linked to the client's `source`. */
  connected(source: WebSocket, target: WebSocket): void {
    const entry = this.byTarget.get(target);
    if (!entry) return;
    entry.source = source;
    // The client left while the upstream was connecting: http-proxy does not end a
    // connecting upstream, so it would stay open with no one on the other side.
    if (source.readyState !== WebSocket.OPEN) target.terminate();
  }

  /**
   * Ends (1012) every WebSocket whose cell `view` freezes, or gives another zone or epoch.
   * Returns how many were closed.
   */
  closeMoved(view: RoutingView, nowMs: number): number {
    let closed = 0;
    for (const [cellName, set] of [...this.byCell]) {
      const cell = cellName === view.table.global.name ? view.table.global : view.cell(cellName);
      const frozen = cell !== undefined && cell.state === 'frozen' && (cell.frozenUntilMs ?? 0) > nowMs;
      for (const entry of [...set]) {
        const moved = cell === undefined || cell.zone !== entry.route.zone || cell.epoch !== entry.route.epoch;
        if (!moved && !frozen) continue;
        this.close(entry, moved ? 'moved' : 'freeze');
        closed += 1;
      }
    }
    return closed;
  }

  /** Shutdown: ends every upstream socket now (their clients are gone or being cut); resolves once all have closed. */
  terminateAll(): Promise<void> {
    const targets = [...this.byTarget.keys()];
    const closed = targets.map((t) => (t.readyState === WebSocket.CLOSED ? Promise.resolve() : new Promise<void>((r) => t.once('close', () => r()))));
    for (const t of targets) t.terminate();
    return Promise.all(closed).then(() => undefined);
  }

  private close(entry: Entry, reason: WsCloseReason): void {
    if (!this.remove(entry)) return;
    this.closedByGateway[reason] += 1;
    this.onClosed(reason);
    const text = CLOSE_TEXT[reason];
    // The client first (so its socket is CLOSING before the upstream's close event reaches
    // http-proxy, which would otherwise pass on an abnormal-closure code), then the upstream.
    if (entry.source && entry.source.readyState === WebSocket.OPEN) entry.source.close(CLOSE_SERVICE_RESTART, text);
    endUpstream(entry.target, CLOSE_SERVICE_RESTART, text);
  }

  private remove(entry: Entry): boolean {
    if (!this.byTarget.delete(entry.target)) return false;
    const set = this.byCell.get(entry.route.cell);
    set?.delete(entry);
    if (set && set.size === 0) this.byCell.delete(entry.route.cell);
    return true;
  }
}
