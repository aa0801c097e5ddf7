// What a client whose request Node could not even parse gets back: the contract's JSON
// error, not fastify's own `{"error":"Bad Request","statusCode":400}`. Node raises these
// before any route runs (a head too slow or too large, bytes that are not HTTP), so they
// are answered on the socket, as fastify's default handler does, and the connection closed.
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { ErrorName } from '../errors';
import { errorSpec } from '../errors';
import { errorBody } from './error-reply';
import type { GatewayMetrics, RefusalReason } from './metrics';

interface ClientFault {
  readonly error: ErrorName;
  readonly reason: RefusalReason;
}

/** Node's error code → the contract's error and the refusal it is counted as. */
function faultOf(code: string | undefined): ClientFault {
  switch (code) {
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return { error: 'REQUEST_TIMEOUT', reason: 'client_timeout' };
    case 'HPE_HEADER_OVERFLOW':
      return { error: 'HEADERS_TOO_LARGE', reason: 'headers_too_large' };
    default:
      return { error: 'BAD_REQUEST', reason: 'malformed' };
  }
}

/** One fixed response per error, made once: nothing from the request is echoed. */
function rawResponse(error: ErrorName): string {
  const status = errorSpec(error).status;
  const body = errorBody(error);
  return `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\n`
    + `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
}

/** fastify's `clientErrorHandler` for the traffic server. */
export function clientErrorHandler(metrics: GatewayMetrics): (err: NodeJS.ErrnoException, socket: Socket) => void {
  return (err, socket) => {
    // A reset connection has nobody left to answer.
    if (err.code === 'ECONNRESET' || socket.destroyed) return;
    const fault = faultOf(err.code);
    metrics.refused(fault.reason);
    // As Node's own handler: no answer over a response whose head is already on the wire.
    const inFlight = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (socket.writable && !inFlight?.headersSent) socket.write(rawResponse(fault.error));
    // Close once what was written is flushed.
    socket.destroySoon();
  };
}
