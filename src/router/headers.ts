// The headers the gateway adds upstream, and the client-sent copies it strips so that no
// client can pose as the gateway: an upstream that fences on x-cell-* (fencing.ts) must be
// able to trust them. Client-sent x-forwarded-* are kept (and appended to) only with
// `trustProxy`, i.e. when another proxy the operator runs stands in front of the gateway.
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';

export const CELL_HEADERS = ['x-cell-id', 'x-cell-zone', 'x-cell-epoch', 'x-routing-revision'] as const;
export const FORWARDED_HEADERS = ['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-forwarded-port', 'forwarded', 'x-real-ip'] as const;

/** What the gateway says about a routed request. */
export interface RoutingStamp {
  readonly cell: string | null;
  readonly zone: string;
  readonly epoch: string;
  readonly revision: string;
}

export interface ClientFacts {
  readonly remoteAddress: string | undefined;
  readonly encrypted: boolean;
  readonly host: string | undefined;
}

/** Rewrites `headers` (already a copy of the client's) in place and returns it. */
export function stampRequestHeaders(headers: IncomingHttpHeaders | OutgoingHttpHeaders, stamp: RoutingStamp, client: ClientFacts, trustProxy: boolean): typeof headers {
  // `delete` of an absent key is cheap and keeps the object's shape stable enough here.
  for (const name of CELL_HEADERS) if (headers[name] !== undefined) delete headers[name];
  const priorFor = trustProxy ? headers['x-forwarded-for'] : undefined;
  const priorProto = trustProxy ? headers['x-forwarded-proto'] : undefined;
  const priorHost = trustProxy ? headers['x-forwarded-host'] : undefined;
  if (!trustProxy) for (const name of FORWARDED_HEADERS) if (headers[name] !== undefined) delete headers[name];

  // `city` traffic belongs to no cell: it carries the zone and revision only.
  if (stamp.cell !== null) {
    headers['x-cell-id'] = stamp.cell;
    headers['x-cell-epoch'] = stamp.epoch;
  }
  headers['x-cell-zone'] = stamp.zone;
  headers['x-routing-revision'] = stamp.revision;

  const ip = client.remoteAddress ?? '';
  headers['x-forwarded-for'] = priorFor ? `${String(priorFor)}, ${ip}` : ip;
  headers['x-forwarded-proto'] = priorProto ? String(priorProto) : client.encrypted ? 'https' : 'http';
  const host = priorHost ?? client.host;
  if (host !== undefined) headers['x-forwarded-host'] = String(host);
  else delete headers['x-forwarded-host'];
  return headers;
}

/**
 * Hop-by-hop headers (RFC 9110 §7.6.1, plus the pre-standard Proxy-Connection and Keep-Alive,
 * and HTTP/2's upgrade token): they describe one connection and are never forwarded. `expect`
 * is answered by the gateway itself (expect-continue.ts), so the upstream gets the whole body
 * without waiting; undici refuses several of these outright.
 */
export const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'http2-settings', 'expect',
]);

/** Lower-cased names listed in Connection header values (`Connection: close, X-Foo` → ['close', 'x-foo']). */
export function connectionTokens(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  const out: string[] = [];
  for (const part of Array.isArray(value) ? value : [value]) {
    for (const token of part.split(',')) {
      const name = token.trim().toLowerCase();
      if (name !== '') out.push(name);
    }
  }
  return out;
}

/**
 * Deletes from `headers` (in place) every hop-by-hop header and every header the client's
 * `Connection` named. `connection` is the client's original value: reply-from drops the
 * `connection` header from its copy before the rewrite hooks see it.
 */
export function stripHopByHop(headers: IncomingHttpHeaders | OutgoingHttpHeaders, connection: string | string[] | undefined): void {
  for (const name of HOP_BY_HOP) if (headers[name] !== undefined) delete headers[name];
  for (const name of connectionTokens(connection)) {
    // Never let a client remove what the gateway itself must send (Host is set by the client library).
    if (name !== 'host' && headers[name] !== undefined) delete headers[name];
  }
}

/**
 * The client's headers an upstream may get, copied in one pass into a fresh object: what a
 * copy, stripHopByHop() and Host = `host` leave, made without `delete` (which turns the object
 * into a slow dictionary for everything after it: the stamps, undici's header checks and its
 * serialisation). The routing stamp (stampRequestHeaders) is still to be applied.
 */
export function forwardableRequestHeaders(incoming: IncomingHttpHeaders, host: string): IncomingHttpHeaders {
  const connection = incoming.connection;
  const named = connection === undefined ? null : connectionTokens(connection);
  const out: IncomingHttpHeaders = {};
  let hostSet = false;
  for (const name in incoming) {
    if (name === 'host') {
      out.host = host;
      hostSet = true;
    } else if (!HOP_BY_HOP.has(name) && (named === null || !named.includes(name))) {
      out[name] = incoming[name];
    }
  }
  if (!hostSet) out.host = host;
  return out;
}

/** An upstream response's headers without its hop-by-hop ones (the client's connection is the gateway's). */
export function stripResponseHopByHop(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const connection = headers.connection;
  if (connection === undefined && headers['keep-alive'] === undefined && headers['proxy-connection'] === undefined
    && headers.trailer === undefined && headers.upgrade === undefined && headers.te === undefined) return headers;
  const out = { ...headers };
  stripHopByHop(out, connection);
  return out;
}

/** Headers of a WebSocket handshake the ws client must make itself, never copy. */
const WS_OWN_HEADERS = new Set([
  'host', 'connection', 'upgrade', 'sec-websocket-key', 'sec-websocket-version', 'sec-websocket-extensions',
  'sec-websocket-protocol', 'content-length', 'transfer-encoding', 'keep-alive', 'te', 'trailer', 'proxy-connection',
]);

/** The client's handshake headers worth passing on to the upstream WebSocket (cookies, auth, user id...). */
export function wsForwardableHeaders(incoming: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(incoming)) {
    if (value !== undefined && !WS_OWN_HEADERS.has(name)) out[name] = value;
  }
  return out;
}

/**
 * More than one Host header: the request names two servers, and the gateway and the upstream
 * could each believe a different one (Node keeps the first). RFC 9112 §3.2 says answer 400, as
 * nginx does ("client sent duplicate host header").
 */
export function hasDuplicateHost(rawHeaders: readonly string[]): boolean {
  let seen = false;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    if (name.length !== 4 || name.toLowerCase() !== 'host') continue;
    if (seen) return true;
    seen = true;
  }
  return false;
}
