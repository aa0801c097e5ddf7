// What the gateway makes of an upstream failure, in one place: reply-from surfaces
// undici/net errors in its own wrappers (a refused connection as a 500 carrying the raw
// error and the upstream's address); here each becomes a contract error, a metric kind and
// an effect on the endpoint's health. Also the retry policy handed to reply-from.
//
// Only failures that happened after a connection to the endpoint was attempted count against
// its health (Envoy's outlier detection counts connect failures and responses only): an error
// the gateway or undici raised about the request itself (an argument undici refuses, the
// client's body ending early, the agent closing at shutdown) is never the endpoint's fault,
// and neither is an error nobody recognises — so no client can eject a healthy endpoint.
import type { ErrorName } from '../errors';
import type { Outcome } from './endpoints';
import type { UpstreamErrorKind } from './metrics';

export interface UpstreamFailure {
  readonly error: Extract<ErrorName, 'UPSTREAM_UNAVAILABLE' | 'UPSTREAM_TIMEOUT' | 'BAD_REQUEST'>;
  readonly kind: UpstreamErrorKind;
  /** What it does to the endpoint's health; null = nothing (not the endpoint's doing). */
  readonly health: Exclude<Outcome, 'success'> | null;
  /** Nothing reached the endpoint: the request may safely go to another endpoint. */
  readonly notSent: boolean;
}

const REFUSED: UpstreamFailure = { error: 'UPSTREAM_UNAVAILABLE', kind: 'refused', health: 'refused', notSent: true };
const UNREACHABLE: UpstreamFailure = { error: 'UPSTREAM_UNAVAILABLE', kind: 'unavailable', health: 'refused', notSent: true };
const RESET: UpstreamFailure = { error: 'UPSTREAM_UNAVAILABLE', kind: 'reset', health: 'failure', notSent: false };
const TIMEOUT: UpstreamFailure = { error: 'UPSTREAM_TIMEOUT', kind: 'timeout', health: 'failure', notSent: false };
const CONNECT_TIMEOUT: UpstreamFailure = { error: 'UPSTREAM_TIMEOUT', kind: 'connect_timeout', health: 'failure', notSent: true };
const TLS: UpstreamFailure = { error: 'UPSTREAM_UNAVAILABLE', kind: 'unavailable', health: 'failure', notSent: true };
/** The upstream answered something that is not valid HTTP (parser errors, bad status, wrong length). */
const PROTOCOL: UpstreamFailure = { error: 'UPSTREAM_UNAVAILABLE', kind: 'other', health: 'failure', notSent: false };
/** The request as the client sent it cannot be forwarded (undici refuses it, its body broke off). */
const LOCAL_REQUEST: UpstreamFailure = { error: 'BAD_REQUEST', kind: 'local', health: null, notSent: false };
/** The gateway's own client is closing (shutdown). */
const LOCAL: UpstreamFailure = { error: 'UPSTREAM_UNAVAILABLE', kind: 'local', health: null, notSent: false };
/** Unrecognised: answered 502, but never held against the endpoint. */
const OTHER: UpstreamFailure = { error: 'UPSTREAM_UNAVAILABLE', kind: 'other', health: null, notSent: false };

const BY_CODE: Readonly<Record<string, UpstreamFailure>> = {
  ECONNREFUSED: REFUSED,
  ENOTFOUND: UNREACHABLE,
  EAI_AGAIN: UNREACHABLE,
  EHOSTUNREACH: UNREACHABLE,
  ENETUNREACH: UNREACHABLE,
  EADDRNOTAVAIL: UNREACHABLE,
  ECONNRESET: RESET,
  EPIPE: RESET,
  UND_ERR_SOCKET: RESET,
  UND_ERR_HEADERS_TIMEOUT: TIMEOUT,
  UND_ERR_BODY_TIMEOUT: TIMEOUT,
  FST_REPLY_FROM_GATEWAY_TIMEOUT: TIMEOUT,
  FST_REPLY_FROM_HTTP_REQUEST_TIMEOUT: TIMEOUT,
  ETIMEDOUT: CONNECT_TIMEOUT,
  UND_ERR_CONNECT_TIMEOUT: CONNECT_TIMEOUT,
  EPROTO: TLS,
  UND_ERR_RES_CONTENT_LENGTH_MISMATCH: PROTOCOL,
  UND_ERR_RES_EXCEEDED_MAX_SIZE: PROTOCOL,
  FST_REPLY_FROM_BAD_GATEWAY: PROTOCOL,
  UND_ERR_INVALID_ARG: LOCAL_REQUEST,
  UND_ERR_NOT_SUPPORTED: LOCAL_REQUEST,
  UND_ERR_REQ_CONTENT_LENGTH_MISMATCH: LOCAL_REQUEST,
  ERR_STREAM_PREMATURE_CLOSE: LOCAL_REQUEST,
  ERR_INVALID_ARG_TYPE: LOCAL_REQUEST,
  ERR_INVALID_ARG_VALUE: LOCAL_REQUEST,
  ERR_HTTP_INVALID_HEADER_VALUE: LOCAL_REQUEST,
  ERR_INVALID_CHAR: LOCAL_REQUEST,
  UND_ERR_ABORTED: LOCAL,
  UND_ERR_CLOSED: LOCAL,
  UND_ERR_DESTROYED: LOCAL,
};

function byCode(code: string): UpstreamFailure | undefined {
  const known = BY_CODE[code];
  if (known) return known;
  if (code.startsWith('HPE_')) return PROTOCOL;
  // Certificate and handshake failures: a connection was made and the endpoint failed it.
  if (code.startsWith('ERR_TLS_') || code.startsWith('ERR_SSL_') || code.includes('CERT')) return TLS;
  return undefined;
}

/** Classifies the error reply-from hands to `onError` (its wrapper, with the cause inside). */
export function classifyUpstreamError(err: unknown): UpstreamFailure {
  // The innermost known code wins: reply-from's wrapper codes are less precise than causes.
  let e: unknown = err;
  let found: UpstreamFailure | undefined;
  for (let depth = 0; e && typeof e === 'object' && depth < 4; depth++) {
    const code = (e as { code?: unknown }).code;
    const f = typeof code === 'string' ? byCode(code) : undefined;
    if (f) found = f;
    // Happy-eyeballs connects fail with an AggregateError whose parts carry the codes.
    const parts = (e as { errors?: unknown }).errors;
    if (Array.isArray(parts) && parts.length > 0) e = parts[0];
    else e = (e as { cause?: unknown }).cause;
  }
  return found ?? OTHER;
}

/** Methods that change nothing on the server, so sending them twice is harmless (RFC 9110 9.2.1). */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE']);

/** A request that may be sent again: a safe method without a body. */
export function isRetryable(method: string, headers: Record<string, unknown>): boolean {
  if (!SAFE_METHODS.has(method)) return false;
  const length = headers['content-length'];
  return (length === undefined || length === '0' || length === 0) && headers['transfer-encoding'] === undefined;
}

interface RetryContext {
  readonly err?: { code?: string } | null;
  readonly req: { method: string; headers: Record<string, unknown> };
  readonly res?: { statusCode: number; headers: Record<string, unknown>; stream?: { resume(): unknown } } | null;
  readonly attempt: number;
}

/** Longest Retry-After (seconds) of an upstream 503 the gateway will wait out itself. */
const MAX_503_WAIT_S = 1;

/**
 * reply-from's `retryDelay`. Its defaults retry a 503 to a GET up to 10 times
 * (`maxRetriesOn503: 0` is read as 10) and, with `retriesCount`, socket hang-ups of any
 * method; for a router that must not duplicate a POST, this policy retries only requests
 * that are safe to repeat, once:
 *  - a hang-up (the upstream closed a kept-alive connection as we reused it) → again at once;
 *  - a 503 with no Retry-After or one of at most 1 s → again after that delay.
 * Refused connections are not retried here (same endpoint): the gateway moves them to the
 * next endpoint of the zone instead (see proxy.ts).
 */
export function retryDelay({ err, req, res, attempt }: RetryContext): number | null {
  if (attempt >= 1 || !isRetryable(req.method, req.headers)) return null;
  if (err) return err.code === 'UND_ERR_SOCKET' || err.code === 'ECONNRESET' ? 1 : null;
  if (!res || res.statusCode !== 503) return null;
  const after = res.headers['retry-after'];
  const seconds = after === undefined ? 0.01 : Number(after);
  if (!Number.isFinite(seconds) || seconds < 0 || seconds > MAX_503_WAIT_S) return null;
  // The 503's body is never read: drain it so its connection returns to the pool.
  res.stream?.resume();
  return Math.max(1, Math.round(seconds * 1000));
}
