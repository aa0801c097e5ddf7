// The upstream side of proxied WebSockets: @fastify/http-proxy opens one upstream socket per
// client socket (handleConnection: rewriteRequestHeaders, then `new WebSocket`, whose
// `finishRequest` runs synchronously inside the constructor, then `wsHooks.onConnect` once
// the upstream is open). These hooks pair the upstream socket with the route it was opened
// for and hand both sockets to the WebSocket registry.
import type { ClientRequest } from 'node:http';
import type WebSocket from 'ws';
import type { WebSocketRegistry, WsRoute } from './websocket-registry';

const kCloseInstead = Symbol('cellgate.closeInstead');
type Marked = WebSocket & { [kCloseInstead]?: { code: number; reason: string } };

/**
 * http-proxy closes the client's WebSocket with the upstream socket's error message as the
 * close reason ("connect ECONNREFUSED 10.1.2.3:8080"): an internal address on the wire.
 * This ws `finishRequest` hook makes the upstream socket emit a fixed error instead, or —
 * when the gateway itself ended a socket still in its handshake (`endUpstream`) — a close
 * with the gateway's code, which http-proxy passes on to the client.
 */
export function hideUpstreamWsErrors(req: ClientRequest, target: WebSocket): void {
  const emit = target.emit;
  target.emit = function (this: Marked, event: string | symbol, ...args: unknown[]): boolean {
    if (event !== 'error') return emit.call(this, event, ...args);
    const instead = this[kCloseInstead];
    return instead ? emit.call(this, 'close', instead.code, instead.reason) : emit.call(this, 'error', new Error('upstream unavailable'));
  };
  req.end();
}

/**
 * Ends an upstream socket at once (no close handshake: its zone may be gone). A socket still
 * connecting makes http-proxy close the client with `code`/`reason` rather than 1011.
 */
export function endUpstream(target: WebSocket, code: number, reason: string): void {
  (target as Marked)[kCloseInstead] = { code, reason };
  target.terminate();
}

/** The hooks that feed the registry; `expect(route)` is called right before http-proxy opens the upstream. */
export class UpstreamWebSockets {
  private pending: WsRoute | null = null;

  constructor(private readonly registry: WebSocketRegistry) {}

  /** The route of the upstream socket http-proxy is about to open. */
  expect(route: WsRoute): void {
    this.pending = route;
  }

  readonly finishRequest = (req: ClientRequest, target: WebSocket): void => {
    const route = this.pending;
    this.pending = null;
    if (route) this.registry.open(route, target);
    hideUpstreamWsErrors(req, target);
  };

  readonly onConnect = (_context: unknown, source: WebSocket, target: WebSocket): void => {
    this.registry.connected(source, target);
  };
}
