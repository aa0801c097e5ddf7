// The upstream side of proxied WebSockets.
import type { ClientRequest } from 'node:http';
import type WebSocket from 'ws';

/**
 * http-proxy closes the client's WebSocket with the upstream socket's error message as the
 * close reason ("connect ECONNREFUSED 10.1.2.3:8080"): an internal address on the wire.
 * This ws `finishRequest` hook makes the upstream socket emit a fixed error instead.
 */
export function hideUpstreamWsErrors(req: ClientRequest, target: WebSocket): void {
  const emit = target.emit;
  target.emit = function (this: WebSocket, event: string | symbol, ...args: unknown[]): boolean {
    return event === 'error' ? emit.call(this, 'error', new Error('upstream unavailable')) : emit.call(this, event, ...args);
  };
  req.end();
}
