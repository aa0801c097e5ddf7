// Open WebSockets per cell. A WebSocket is a long-lived conversation with one zone; when its
// cell freezes, or a newly applied table gives the cell another zone or epoch (a planned
// flip, or an unplanned `zone down`), the gateway ends it with close code 1012 ("service
// restart", RFC 6455 §7.4.1 / IANA registry) so that the client reconnects — its reconnect
// is held by the buffer while the cell is frozen and then goes to the cell's new zone. The
// upstream side is ended at once, so nothing the client still sends reaches the old zone.
//
// A WebSocket of a `city` route (no cell) is kept under its zone and closed the same way
// when that zone is no longer `up` (city routes only go to up zones). At shutdown every
// WebSocket is closed with 1001 ("going away"), so clients reconnect to another gateway.
//
// WebSockets are never in-flight requests: they do not hold up a freeze acknowledgement.
// Counters: opened = closedByGateway.freeze + .moved + .shutdown + ended + size.
import WebSocket from 'ws';
import type { RoutingView } from '../cells/lookup';
import { endUpstream } from './ws-upstream';

/** What an upstream socket was opened for. */
export interface WsRoute {
  /** null: a city route, which names no cell. */
  readonly cell: string | null;
  readonly zone: string;
  readonly epoch: number;
}

export const WS_CLOSE_REASONS = ['freeze', 'moved', 'shutdown'] as const;
export type WsCloseReason = (typeof WS_CLOSE_REASONS)[number];

/** RFC 6455 close codes: "service restart" (reconnect, here) and "going away" (reconnect elsewhere). */
export const CLOSE_SERVICE_RESTART = 1012;
export const CLOSE_GOING_AWAY = 1001;

const CLOSE: Record<WsCloseReason, { code: number; text: string }> = {
  freeze: { code: CLOSE_SERVICE_RESTART, text: 'cell moving' },
  moved: { code: CLOSE_SERVICE_RESTART, text: 'cell moved' },
  shutdown: { code: CLOSE_GOING_AWAY, text: 'gateway shutting down' },
};

/** Where an entry is kept: its cell, or (city routes) its zone. Cell names have no spaces. */
function keyOf(route: WsRoute): string {
  return route.cell ?? `city ${route.zone}`;
}

interface Entry {
  readonly route: WsRoute;
  readonly target: WebSocket;
  source: WebSocket | null;
}

export class WebSocketRegistry {
  private readonly byKey = new Map<string, Set<Entry>>();
  private readonly byTarget = new Map<WebSocket, Entry>();
  opened = 0;
  /** Ended by either peer (or cut at the very end of shutdown). */
  ended = 0;
  readonly closedByGateway: Record<WsCloseReason, number> = { freeze: 0, moved: 0, shutdown: 0 };

  /** `onClosed` is told of every socket the gateway ends (metrics). */
  constructor(private readonly onClosed: (reason: WsCloseReason) => void = () => undefined) {}

  get size(): number {
    return this.byTarget.size;
  }

  /** Ends every WebSocket with 1001 (shutdown begins: clients should reconnect to another gateway). */
  closeAll(): number {
    const entries = [...this.byTarget.values()];
    for (const e of entries) this.close(e, 'shutdown');
    return entries.length;
  }

  /** http-proxy is opening `target` (the upstream socket) for a client of `route.cell`. */
  open(route: WsRoute, target: WebSocket): void {
    const entry: Entry = { route, target, source: null };
    let set = this.byKey.get(keyOf(route));
    if (!set) this.byKey.set(keyOf(route), (set = new Set()));
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
   * Ends (1012) every WebSocket whose cell `view` freezes, gives another zone or epoch, or
   * leaves on a zone that is down (city routes: whose zone is no longer up). Returns how many.
   */
  closeMoved(view: RoutingView, nowMs: number): number {
    let closed = 0;
    for (const set of [...this.byKey.values()]) {
      for (const entry of [...set]) {
        const reason = this.closeReason(view, nowMs, entry.route);
        if (reason === null) continue;
        this.close(entry, reason);
        closed += 1;
      }
    }
    return closed;
  }

  private closeReason(view: RoutingView, nowMs: number, route: WsRoute): WsCloseReason | null {
    if (route.cell === null) return view.zone(route.zone)?.status === 'up' ? null : 'moved';
    const cell = route.cell === view.table.global.name ? view.table.global : view.cell(route.cell);
    if (cell === undefined || cell.zone !== route.zone || cell.epoch !== route.epoch) return 'moved';
    if (view.zone(cell.zone)?.status === 'down') return 'moved';
    if (cell.state === 'frozen' && (cell.frozenUntilMs ?? 0) > nowMs) return 'freeze';
    return null;
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
    const { code, text } = CLOSE[reason];
    // The client first (so its socket is CLOSING before the upstream's close event reaches
    // http-proxy, which would otherwise pass on an abnormal-closure code), then the upstream.
    if (entry.source && entry.source.readyState === WebSocket.OPEN) entry.source.close(code, text);
    endUpstream(entry.target, code, text);
  }

  private remove(entry: Entry): boolean {
    if (!this.byTarget.delete(entry.target)) return false;
    const key = keyOf(entry.route);
    const set = this.byKey.get(key);
    set?.delete(entry);
    if (set && set.size === 0) this.byKey.delete(key);
    return true;
  }
}
