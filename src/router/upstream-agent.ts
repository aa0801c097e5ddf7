// The gateway's own undici agent for plain requests, so that it can end an upstream exchange
// at any point: waiting for the response headers (a long poll) or mid-body. reply-from calls
// `dispatcher.request(opts, cb)` with no abort signal and destroys the upstream stream only
// once headers have arrived; without this, a request the gateway has given up on (freeze grace
// over, its own deadline passed, client gone) kept running at its upstream to its natural end.
//
// The link: the request headers the gateway hands reply-from carry its UpstreamCall under a
// symbol key (reply-from copies headers with Object.assign, which keeps own symbols; undici
// reads header names with Object.keys, so nothing of it is sent). The agent finds it in
// request() and passes it as the request's abort `signal`: an abort errors the request and
// destroys its connection, so the upstream sees its connection closed at once. An abort asked
// for before undici starts the request ends it when undici starts it, so nothing is sent.
// WebSockets go through @fastify/http-proxy's `ws` client, not this agent.
import { Agent, type Dispatcher } from 'undici';

/** Why the gateway ended an upstream exchange. */
export type UpstreamAbortReason = 'grace_cut' | 'deadline' | 'client_gone';

/** The error an aborted upstream request fails with (internal: clients never see it). */
export class UpstreamAbortedError extends Error {
  readonly reason: UpstreamAbortReason;
  constructor(reason: UpstreamAbortReason) {
    super(`upstream request aborted by the gateway (${reason})`);
    this.name = 'UpstreamAbortedError';
    this.reason = reason;
  }
}

type AbortListener = () => void;

/**
 * The upstream side of one exchange (every send of it: a failover re-send or retry is linked
 * to the same call). It is also the request's abort `signal`: undici takes an EventEmitter-like
 * signal (`aborted`, `reason`, on/once/removeListener of 'abort'), so no AbortController, no
 * EventTarget and no handler wrapper is made per request.
 */
export class UpstreamCall {
  private abortError: UpstreamAbortedError | null = null;
  /** undici's listeners of the sends in flight (normally one; none once they are over). */
  private listeners: AbortListener[] | null = null;

  /** Why the gateway aborted it; null while it has not. */
  get abortedBy(): UpstreamAbortReason | null {
    return this.abortError === null ? null : this.abortError.reason;
  }

  /** Ends the upstream exchange now (or as soon as undici starts it). Only the first reason counts. */
  abort(reason: UpstreamAbortReason): void {
    if (this.abortError !== null) return;
    this.abortError = new UpstreamAbortedError(reason);
    const listeners = this.listeners;
    this.listeners = null;
    if (listeners) for (const listener of listeners) listener();
  }

  // The signal undici reads. Before a send starts, an abort ends it when undici starts it
  // (RequestHandler.onConnect); waiting for headers it aborts the request and destroys the
  // connection; once the body streams it destroys the body (and with it the connection).
  get aborted(): boolean {
    return this.abortError !== null;
  }

  get reason(): UpstreamAbortedError | undefined {
    return this.abortError ?? undefined;
  }

  on(_event: 'abort', listener: AbortListener): this {
    (this.listeners ??= []).push(listener);
    return this;
  }

  once(event: 'abort', listener: AbortListener): this {
    return this.on(event, listener); // abort() runs each listener once and forgets them all
  }

  removeListener(_event: 'abort', listener: AbortListener): this {
    const l = this.listeners;
    if (l === null) return this;
    const i = l.indexOf(listener);
    if (i >= 0) l.splice(i, 1);
    return this;
  }
}

/** Where the agent finds the UpstreamCall on a request's headers. */
export const kUpstreamCall = Symbol('cellgate.upstreamCall');

/** Puts `call` on `headers` (an object reply-from passes on to the dispatcher). */
export function linkUpstreamCall<H extends object>(headers: H, call: UpstreamCall): H {
  (headers as { [kUpstreamCall]?: UpstreamCall })[kUpstreamCall] = call;
  return headers;
}

/**
 * undici's Agent, giving each request that carries an UpstreamCall that call as its `signal`
 * (a documented request option). Cheaper than an interceptor: compose() wraps every handler
 * twice (legacy to new API and back) and the interceptor wrapped it once more.
 */
class UpstreamAgent extends Agent {
  override request(opts: Dispatcher.RequestOptions, callback?: unknown): never {
    const call = (opts.headers as { [kUpstreamCall]?: unknown } | null | undefined)?.[kUpstreamCall];
    // reply-from builds a fresh options object per send: setting the signal on it is safe.
    if (call instanceof UpstreamCall) (opts as { signal?: unknown }).signal = call;
    return (super.request as (o: unknown, cb?: unknown) => never)(opts, callback);
  }
}

export interface UpstreamAgentOptions {
  readonly connectionsPerEndpoint: number;
  readonly requestTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly keepAliveTimeoutMs: number;
}

/** What reply-from built from its `undici` options before, with every linked request abortable. */
export function createUpstreamAgent(o: UpstreamAgentOptions): Dispatcher {
  return new UpstreamAgent({
    connections: o.connectionsPerEndpoint,
    pipelining: 1,
    // undici's default keeps an idle connection 4 s: with traffic spread over many endpoints
    // each one sees a request less often than that, and a pause of 4 s closed them all (undici
    // then also drops the origin's pool): with 500 endpoints, one reconnect per endpoint after
    // every lull (bench registry-load).
    // nginx keeps upstream connections 60 s, Envoy 1 h. An upstream's Keep-Alive: timeout=N hint
    // shortens it (less undici's 2 s threshold): a server that closes sooner says so; a longer
    // hint is capped at ours.
    keepAliveTimeout: o.keepAliveTimeoutMs,
    keepAliveMaxTimeout: o.keepAliveTimeoutMs,
    headersTimeout: o.requestTimeoutMs,
    bodyTimeout: o.requestTimeoutMs,
    // reply-from turns TLS verification off by default; a router must not.
    connect: { timeout: o.connectTimeoutMs, rejectUnauthorized: true },
  });
}
