// The gateway's own undici agent for plain requests, so that it can end an upstream exchange
// at any point: waiting for the response headers (a long poll) or mid-body. reply-from calls
// `dispatcher.request(opts, cb)` with no abort signal and destroys the upstream stream only
// once headers have arrived; without this, a request the gateway has given up on (freeze grace
// over, its own deadline passed, client gone) kept running at its upstream to its natural end.
//
// The link: the request headers the gateway hands reply-from carry its UpstreamCall under a
// symbol key (reply-from copies headers with Object.assign, which keeps own symbols; undici
// reads header names with Object.keys, so nothing of it is sent). An interceptor finds it at
// dispatch and, when undici starts the request on a connection (onRequestStart), gives it the
// request's controller: controller.abort() errors the request and destroys its connection, so
// the upstream sees its connection closed at once. An abort asked for before that happens when
// undici starts the request (as undici's own abort signal does), so nothing is sent.
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

/** The upstream side of one exchange (every send of it: a failover re-send or retry relinks it). */
export class UpstreamCall {
  private controller: Dispatcher.DispatchController | null = null;
  private abortError: UpstreamAbortedError | null = null;

  /** Why the gateway aborted it; null while it has not. */
  get abortedBy(): UpstreamAbortReason | null {
    return this.abortError === null ? null : this.abortError.reason;
  }

  /** Ends the upstream exchange now (or as soon as undici starts it). Only the first reason counts. */
  abort(reason: UpstreamAbortReason): void {
    if (this.abortError !== null) return;
    this.abortError = new UpstreamAbortedError(reason);
    const c = this.controller;
    this.controller = null;
    c?.abort(this.abortError);
  }

  /** undici started a request of this exchange on a connection. */
  started(controller: Dispatcher.DispatchController): void {
    if (this.abortError !== null) return controller.abort(this.abortError);
    this.controller = controller;
  }

  /** That request is over (response complete or failed): nothing left to abort. */
  ended(controller: Dispatcher.DispatchController | undefined): void {
    if (this.controller === controller) this.controller = null;
  }
}

/** Where the interceptor finds the UpstreamCall on a request's headers. */
export const kUpstreamCall = Symbol('cellgate.upstreamCall');

/** Puts `call` on `headers` (an object reply-from passes on to the dispatcher). */
export function linkUpstreamCall<H extends object>(headers: H, call: UpstreamCall): H {
  (headers as { [kUpstreamCall]?: UpstreamCall })[kUpstreamCall] = call;
  return headers;
}

/** Passes every event on, telling the UpstreamCall when the request starts and ends. */
class LinkedHandler implements Dispatcher.DispatchHandler {
  private readonly handler: Dispatcher.DispatchHandler;
  private readonly call: UpstreamCall;

  constructor(handler: Dispatcher.DispatchHandler, call: UpstreamCall) {
    this.handler = handler;
    this.call = call;
  }

  onRequestStart(controller: Dispatcher.DispatchController, context: unknown): void {
    this.handler.onRequestStart?.(controller, context);
    // After the handler below has its controller: an abort asked for already ends it here.
    this.call.started(controller);
  }

  onRequestUpgrade(controller: Dispatcher.DispatchController, statusCode: number, headers: Parameters<NonNullable<Dispatcher.DispatchHandler['onRequestUpgrade']>>[2], socket: Parameters<NonNullable<Dispatcher.DispatchHandler['onRequestUpgrade']>>[3]): void {
    this.handler.onRequestUpgrade?.(controller, statusCode, headers, socket);
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: Parameters<NonNullable<Dispatcher.DispatchHandler['onResponseStart']>>[2], statusMessage?: string): void {
    this.handler.onResponseStart?.(controller, statusCode, headers, statusMessage);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.handler.onResponseData?.(controller, chunk);
  }

  onResponseEnd(controller: Dispatcher.DispatchController, trailers: Parameters<NonNullable<Dispatcher.DispatchHandler['onResponseEnd']>>[1]): void {
    this.call.ended(controller);
    this.handler.onResponseEnd?.(controller, trailers);
  }

  onResponseError(controller: Dispatcher.DispatchController, error: Error): void {
    this.call.ended(controller);
    this.handler.onResponseError?.(controller, error);
  }
}

/** Links requests that carry an UpstreamCall; others pass untouched. */
function linkInterceptor(dispatch: Dispatcher.Dispatch): Dispatcher.Dispatch {
  return (opts, handler) => {
    const call = (opts.headers as { [kUpstreamCall]?: unknown } | null | undefined)?.[kUpstreamCall];
    return dispatch(opts, call instanceof UpstreamCall ? new LinkedHandler(handler, call) : handler);
  };
}

export interface UpstreamAgentOptions {
  readonly connectionsPerEndpoint: number;
  readonly requestTimeoutMs: number;
  readonly connectTimeoutMs: number;
}

/** What reply-from built from its `undici` options before, plus the link interceptor. */
export function createUpstreamAgent(o: UpstreamAgentOptions): Dispatcher {
  return new Agent({
    connections: o.connectionsPerEndpoint,
    pipelining: 1,
    headersTimeout: o.requestTimeoutMs,
    bodyTimeout: o.requestTimeoutMs,
    // reply-from turns TLS verification off by default; a router must not.
    connect: { timeout: o.connectTimeoutMs, rejectUnauthorized: true },
  }).compose(linkInterceptor);
}
