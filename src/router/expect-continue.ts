// `Expect: 100-continue`, answered by the gateway itself the way nginx does: `100 Continue`
// goes to the client only once the gateway is about to read the body (the request is sent
// to its upstream, or held with its body kept). A request refused before that (413, 503,
// a 4xx) is answered without it, so the client never uploads a body nobody will read — and
// Node closes that connection after the answer, since the unsent body would follow.
import type { IncomingMessage, Server, ServerResponse } from 'node:http';

const kContinued = Symbol('cellgate.continued');

/** Makes `server` hand requests expecting 100-continue to its normal handler without answering 100. */
export function deferContinue(server: Server): void {
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => server.emit('request', req, res));
}

/** Sends `100 Continue` if the client waits for it (once; never after the final answer began). */
export function sendContinue(req: IncomingMessage, res: ServerResponse): void {
  const r = res as ServerResponse & { [kContinued]?: true };
  if (r[kContinued] || res.headersSent || req.headers.expect === undefined || !/100-continue/i.test(req.headers.expect)) return;
  // Never to an HTTP/1.0 client (RFC 9110 §10.1.1); Node hands those to 'request' without asking.
  if (req.httpVersionMajor !== 1 || req.httpVersionMinor < 1) return;
  r[kContinued] = true;
  res.writeContinue();
}
