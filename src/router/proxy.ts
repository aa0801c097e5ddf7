// The traffic server: fastify + @fastify/http-proxy, the upstream chosen per request.
//
// Per request, in order:
//   preHandler  — route rule by path prefix (class, service, stripPrefix), user id,
//                 RoutingView route, endpoint of the rule's service in the route's zone
//                 (round robin over healthy ones); a frozen cell's request is held in the
//                 HoldBuffer (its body kept in memory) until released.
//                 A request with no body and a plain path is admitted and sent from here,
//                 by the direct path (direct-proxy.ts: undici dispatch, no handler, no reply-from).
//   handler     — admission (admission.ts): the request goes to its endpoint if that has a
//                 free connection, else waits in its zone's and service's bounded queue until
//                 one frees or its deadline (arrival + upstream.requestTimeoutMs) passes.
//   getUpstream — synchronous: the endpoint the preHandler chose (also for WebSockets).
//   rewriteRequestHeaders — strips hop-by-hop and client-sent routing headers, stamps ours.
//   onResponse / onError — passive health, contract errors, failover of a refused
//                 safe request to the next endpoint of the same zone and service; the connection slot
//                 is given back when the upstream exchange ends.
//   upstream abort — the upstream request is ended at once when a freeze grace cuts it, its
//                 deadline passes or its client goes away (the gateway's agent: upstream-agent.ts).
// No parsing beyond the user id on this path; the access log (when on) is one call at
// response close and the request id stamped upstream.
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { METHODS, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import httpProxy from '@fastify/http-proxy';
import type { FastifyReplyFromHooks } from '@fastify/reply-from';
import type { Route, RoutingView } from '../cells/lookup';
import { isCellgateError } from '../errors';
import type { Clock } from '../clock';
import type { GatewayConfig } from './config';
import type { AccessLog } from './access-log';
import { Admission } from './admission';
import { createDispatch } from './dispatch';
import { createDirectProxy, directDest, isPlainPath, takesDirectPath } from './direct-proxy';
import type { EndpointHealth, Pools } from './endpoints';
import { Exchange, kExchange, type OkRoute } from './exchange';
import { EMPTY_BODY, declaredLength, readHeldBody } from './held-body';
import { sendError, sendUnavailable } from './error-reply';
import { deferContinue, sendContinue } from './expect-continue';
import { hasDuplicateHost, stampRequestHeaders, stripHopByHop, stripResponseHopByHop, wsForwardableHeaders } from './headers';
import type { EvictReason, HoldBuffer } from './hold-buffer';
import type { Logger } from './log';
import type { GatewayMetrics } from './metrics';
import type { CellRequests, TrackedRequest } from './cell-requests';
import { compileRouteMatcher, normalizedUrl, strippedUrl } from './route-rules';
import { applyServerLimits, trafficServerOptions } from './server-limits';
import { classifyUpstreamError, isRetryable, retryDelay } from './upstream-policy';
import { BadUserId, compileUserIdExtractor, sendBadUserId } from './user-id';
import { createUpstreamAgent, linkUpstreamCall } from './upstream-agent';
import type { UpstreamWebSockets } from './ws-upstream';

/** The routing state of one applied table; swapped whole, never changed in place. */
export interface RoutingState {
  readonly view: RoutingView;
  /** zone → service → pool. */
  readonly pools: Pools;
  /** `String(view.version)`, made once for the x-routing-revision header. */
  readonly revision: string;
}

export interface ProxyDeps {
  readonly config: GatewayConfig;
  /** Read on every request: the current routing state (null until a table is loaded). */
  readonly routing: { current: RoutingState | null };
  readonly buffer: HoldBuffer;
  readonly health: EndpointHealth;
  readonly metrics: GatewayMetrics;
  readonly clock: Clock;
  /**
   * Plain requests being served (held ones included; upgraded WebSockets never), and per cell
   * the ones with an upstream (a freeze is acknowledged once its cells have none, or their
   * grace ended: see freeze-ack.ts).
   */
  readonly load: { inFlight: number; readonly requests: CellRequests };
  /** Pairs proxied WebSockets with their routes for the WebSocket registry. */
  readonly websockets: UpstreamWebSockets;
  /** One line per request at response close; null when the access log is off. */
  readonly accessLog: AccessLog | null;
  /** The proxy's own logger (internal errors; never per request). */
  readonly logger: Logger;
  /** fastify's https options (tls: {cert, key}); null for plain HTTP. */
  readonly https: { readonly cert: Buffer; readonly key: Buffer } | null;
}

export function buildTrafficServer(deps: ProxyDeps): FastifyInstance {
  const { config, routing, buffer, health, metrics, clock, load, websockets, accessLog, logger } = deps;
  const matchRule = compileRouteMatcher(config.routes);
  const userIdOf = compileUserIdExtractor(config.userId.sources);
  const trustProxy = config.trustProxy;
  /** Header sources of the user id: the upstream gets exactly the one id the request was routed by. */
  const userIdHeaders = config.userId.sources.flatMap((src) => ('header' in src ? [src.header] : []));
  const maxBodyBytes = config.buffer.maxBodyBytes;
  const requestTimeoutMs = config.upstream.requestTimeoutMs;
  // maxPendingPerZone bounds each service of each zone (the name predates services).
  const admission = new Admission({ maxPendingPerZone: config.upstream.maxPendingPerZone, clock });
  // One agent for both paths (reply-from's and the direct one: direct-proxy.ts), so they share connections.
  const upstreamAgent = createUpstreamAgent(config.upstream);
  const { admit, headersArrived, releaseSlot } = createDispatch({
    admission, clock, health, metrics, getUpstream, sendDirect: (reply, ex, endpoint, timeoutMs) => sendDirect(reply, ex, endpoint, timeoutMs),
  });
  const sendDirect = createDirectProxy({ agent: upstreamAgent, health, stampRequestHeaders: stampRouted, headersArrived, releaseSlot, onError });
  metrics.attach({ pending: () => admission.pending(), bufferCounters: () => buffer.counters, bufferedBytes: () => buffer.bytes.used });

  const app = fastify({
    logger: false,
    // During shutdown, requests already on open connections are still served (with
    // `Connection: close`) instead of fastify's own non-contract 503.
    return503OnClosing: false,
    requestIdHeader: false,
    ...trafficServerOptions(config, deps.https, metrics),
  }) as unknown as FastifyInstance;
  applyServerLimits(app, config, metrics);
  deferContinue(app.server);
  app.decorateRequest('cellgate', null);
  const proxiedMethods = proxyEveryMethod(app);

  /** Computes a route with the current table; null = no table. */
  function routeOf(ex: Exchange, nowMs: number): Route | null {
    const state = routing.current;
    if (!state) return null;
    switch (ex.cls) {
      case 'unit':
        return state.view.routeUnit(ex.user as string, nowMs);
      case 'global':
        return state.view.routeGlobal(nowMs);
      case 'city':
        return state.view.routeCity(config.zone, nowMs);
      default: {
        const never: never = ex.cls;
        throw new Error(`unknown route class ${String(never)}`);
      }
    }
  }

  /** Points the exchange at an endpoint of its service in the route's zone; false = none is available. */
  function assign(ex: Exchange, route: OkRoute, nowMs: number): boolean {
    const state = routing.current as RoutingState;
    ex.route = route;
    ex.zone = route.zone.name;
    ex.revision = state.revision;
    // No pool: the table names no such service (a route warned about when the table was applied).
    const pool = state.pools.get(route.zone.name)?.get(ex.service);
    ex.pool = pool ?? null;
    ex.endpoint = pool ? pool.pick(nowMs) : null;
    if (ex.endpoint !== null && route.cell !== null) track(ex, route.cell);
    return ex.endpoint !== null;
  }

  /** 502 naming the zone and the service that had no endpoint to give. */
  function unavailable(reply: FastifyReply, ex: Exchange): void {
    sendUnavailable(reply, ex.zone, ex.service, ex.pool?.endpoints.length ?? 0);
  }

  /** Enters a plain request in its cell's registry (once): freezes of the cell wait for it. */
  function track(ex: Exchange, cell: string): void {
    if (ex.tracked !== null || ex.upgraded || ex.response === null) return;
    ex.tracked = trackedRequest(cell, ex);
    load.requests.enter(ex.tracked);
  }

  /** A request with an upstream, as the freeze acknowledgement sees it: cut ends its upstream request and its client connection. */
  function trackedRequest(cell: string, ex: Exchange): TrackedRequest {
    const res = ex.response as ServerResponse;
    return {
      cell,
      cut: () => {
        const started = res.headersSent;
        ex.upstream.abort('grace_cut');
        res.destroy();
        return started ? 'mid_response' : 'awaiting_response';
      },
    };
  }

  function onResponseClose(this: ServerResponse): void {
    const ex = (this as ServerResponse & { [kExchange]?: Exchange })[kExchange];
    if (!ex) return;
    if (!ex.upgraded) load.inFlight -= 1;
    if (ex.tracked !== null) load.requests.leave(ex.tracked);
    if (!this.writableFinished) {
      if (ex.ticket) ex.ticket.clientGone();
      // Nobody is left to answer: the upstream stops working on it now (a no-op once it is over).
      ex.upstream.abort('client_gone');
    }
    const status = this.writableFinished ? this.statusCode : ex.upgraded ? 101 : 499;
    const seconds = (performance.now() - ex.startedMs) / 1000;
    metrics.request(ex.zone, ex.service, ex.cls, status, seconds);
    if (accessLog !== null) accessLog.write(ex, this.req, status, seconds);
  }

  function preHandler(request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void): void {
    const ex = new Exchange();
    request.cellgate = ex;
    // An upgrade (WebSocket) is a connection, not a request in flight: the WebSocket registry keeps it.
    ex.upgraded = (request.raw as { upgrade?: boolean }).upgrade === true;
    if (!ex.upgraded) load.inFlight += 1;
    ex.response = reply.raw;
    (reply.raw as ServerResponse & { [kExchange]?: Exchange })[kExchange] = ex;
    // 'close' comes exactly once per response, also when the client goes away first.
    reply.raw.on('close', onResponseClose);

    const raw = request.raw;
    if (hasDuplicateHost(raw.rawHeaders)) return void sendError(reply, 'BAD_REQUEST');
    // Routed, and sent on, as the upstream will read it (route-rules.ts normalizedUrl).
    const url = normalizedUrl(raw.url as string);
    if (url !== raw.url) raw.url = url;
    const rule = matchRule(url);
    if (rule === null) return void sendError(reply, 'NOT_FOUND');
    const cls = rule.class;
    ex.cls = cls;
    ex.service = rule.service;
    if (rule.stripPrefix) {
      ex.strip = rule.prefix;
      // http-proxy opens a WebSocket's upstream with the request's own url (the handler below sees plain requests only).
      if (ex.upgraded) raw.url = strippedUrl(url, rule.prefix);
    }
    if (cls === 'unit') {
      const user = userIdOf(url, raw.headers, raw.rawHeaders);
      if (user === null) return void sendError(reply, 'NO_USER_ID');
      if (user instanceof BadUserId) return void sendBadUserId(reply, user);
      ex.user = user;
    }
    const now = clock.now();
    ex.deadlineMs = now + requestTimeoutMs;
    const route = routeOf(ex, now);
    if (route === null) return void sendError(reply, 'NO_ROUTING_TABLE');
    if (!route.ok) return void sendError(reply, route.error);
    if (route.frozenUntilMs !== null) return hold(request, reply, ex, route.frozenUntilMs, done);
    if (!assign(ex, route, now)) return void unavailable(reply, ex);
    // The common request (no body, a plain path) goes to its upstream from here (direct-proxy.ts).
    const path = ex.upgraded ? null : directDest(request);
    const dest = path === null || ex.strip === null ? path : strippedUrl(path, ex.strip);
    // directDest() checked the path already; a stripped one is checked again.
    if (dest === null || (ex.strip !== null && !isPlainPath(dest))) return done();
    ex.dest = dest;
    ex.direct = true;
    admit(reply, ex);
  }

  /** A frozen cell: keep the request (and its body) until the buffer settles it. */
  function hold(request: FastifyRequest, reply: FastifyReply, ex: Exchange, frozenUntilMs: number, done: (err?: Error) => void): void {
    // The body's bytes count against buffer.maxTotalBytes until the exchange is over.
    const reservation = buffer.bytes.reservation();
    reply.raw.once('close', reservation.free);
    const stream = request.body instanceof Readable ? request.body : null;
    const refusal = stream ? refusalOf(request, reservation) : null;
    const ticket = buffer.hold(
      frozenUntilMs,
      (nowMs) => routeOf(ex, nowMs) ?? { ok: false, class: ex.cls, cell: null, error: 'NO_ROUTING_TABLE', why: 'no table' },
      refusal,
    );
    ex.ticket = ticket;
    // A body refused up front is never read here: Node discards it once the answer is sent.
    if (stream && refusal === null) sendContinue(request.raw, reply.raw);
    const body = stream && refusal === null ? readHeldBody(stream, maxBodyBytes, reservation) : Promise.resolve(EMPTY_BODY);
    body.then((b) => {
      if (b === 'tooLarge') ticket.evict('bodyTooLarge');
      else if (b === 'overBudget') ticket.evict('budget');
      else if (b === 'failed') ticket.clientGone();
    }, () => ticket.clientGone());

    ticket.settled.then(async (s) => {
      switch (s.kind) {
        case 'aborted':
          return; // the client is gone: there is no one to answer
        case 'reject':
          reservation.free();
          countRejection(s.error);
          sendError(reply, s.error);
          return;
        case 'release': {
          ex.ticket = null;
          // Counted on its cell from the release on: should the cell freeze again while the body
          // is still arriving, that freeze is acknowledged only once this request has finished
          // (or been cut after the grace), never while it may still go to the old zone.
          if (s.route.ok && s.route.cell !== null) track(ex, s.route.cell);
          const b = await body;
          if (b === 'failed') return;
          if (b === 'tooLarge' || b === 'overBudget') {
            // Crossed after the release: refused all the same, as soon as it was crossed.
            const error = b === 'tooLarge' ? 'BODY_TOO_LARGE' : 'ZONE_OVERLOADED';
            countRejection(error);
            sendError(reply, error);
            return;
          }
          // Its deadline counts from the release: the hold is bounded by buffer.windowMs on its own.
          ex.deadlineMs = clock.now() + requestTimeoutMs;
          // The body may have taken a while: route with the table in force now (the zone the
          // release chose may have gone down since). The cell was released, so it is served
          // by its current owner even if a newer freeze has begun: that freeze counts this
          // request (tracked above) and is acknowledged only once it is gone.
          const route = routeOf(ex, clock.now()) ?? s.route;
          if (!route.ok) {
            sendError(reply, route.error);
            return;
          }
          if (!assign(ex, route, clock.now())) {
            unavailable(reply, ex);
            return;
          }
          if (request.body instanceof Readable) request.body = b.length === 0 ? undefined : Readable.from(b, { objectMode: false });
          done();
          return;
        }
        default: {
          const never: never = s;
          throw new Error(`unknown settlement ${JSON.stringify(never)}`);
        }
      }
    }).catch((err: unknown) => {
      if (!reply.sent) done(err as Error);
    });
  }

  /** Whether a request can be held at all: a declared body over a limit is refused at once. */
  function refusalOf(request: FastifyRequest, reservation: { reserve(n: number): boolean }): EvictReason | null {
    const length = declaredLength(request.raw.headers['content-length']);
    if (length !== null && length > maxBodyBytes) return 'bodyTooLarge';
    if (length !== null ? !reservation.reserve(length) : buffer.bytes.used >= buffer.bytes.max) return 'budget';
    return null;
  }

  function countRejection(error: 'BUFFER_TIMEOUT' | 'BODY_TOO_LARGE' | 'ZONE_OVERLOADED'): void {
    switch (error) {
      case 'BUFFER_TIMEOUT':
        metrics.bufferTimeouts.inc();
        return;
      case 'BODY_TOO_LARGE':
        metrics.refused('body_too_large');
        return;
      case 'ZONE_OVERLOADED':
        metrics.refused('buffer_full');
        return;
      default: {
        const never: never = error;
        throw new Error(`unknown rejection ${String(never)}`);
      }
    }
  }

  function getUpstream(request: FastifyRequest, base: string): string {
    const e = request.cellgate?.endpoint;
    return e ? e.origin : base;
  }

  function rewriteRequestHeaders(request: FastifyRequest, headers: IncomingHttpHeaders): IncomingHttpHeaders {
    stripHopByHop(headers, request.raw.headers.connection);
    return stampRouted(request, headers);
  }

  /** The routed request's own headers on a copy without hop-by-hop ones: the user id as routed, the request id, the routing stamp. */
  function stampRouted(request: FastifyRequest, headers: IncomingHttpHeaders): IncomingHttpHeaders {
    const ex = request.cellgate as Exchange;
    const route = ex.route as OkRoute;
    const raw = request.raw;
    // A repeated header ("alice, alice") or one named in Connection must not give the upstream
    // another user than the routed one: it gets the routed id, once, as it came on the wire.
    if (ex.user !== null) for (const name of userIdHeaders) if (raw.headers[name] !== undefined) headers[name] = wireForm(ex.user);
    if (accessLog !== null) headers['x-request-id'] = accessLog.requestId(ex, raw.headers['x-request-id']);
    return stampRequestHeaders(
      headers,
      { cell: route.cell, zone: route.zone.name, epoch: String(route.epoch), revision: ex.revision },
      { remoteAddress: raw.socket.remoteAddress, encrypted: (raw.socket as { encrypted?: boolean }).encrypted === true, host: raw.headers.host },
      trustProxy,
    ) as IncomingHttpHeaders;
  }

  /** The upstream's response headers (every response passes here, also one whose client has gone). */
  function rewriteHeaders(headers: IncomingHttpHeaders, request: FastifyRequest): IncomingHttpHeaders {
    const ex = request.cellgate as Exchange;
    headersArrived(ex);
    // reply-from destroys the response of a client that has gone without calling onResponse.
    if (request.raw.aborted) releaseSlot(ex);
    return stripResponseHopByHop(headers);
  }

  function onResponse(request: FastifyRequest, reply: FastifyReply, res: { statusCode: number; stream: Readable }): void {
    const ex = request.cellgate as Exchange;
    res.stream.once('close', () => releaseSlot(ex));
    if (reply.sent) {
      // Answered already (the gateway's deadline passed): a late response is dropped.
      res.stream.destroy();
      return;
    }
    if (ex.endpoint) {
      const s = res.statusCode;
      health.record(ex.endpoint, s === 502 || s === 503 || s === 504 ? 'failure' : 'success');
    }
    reply.send(res.stream);
  }

  function onError(reply: FastifyReply, { error }: { error: Error }): void {
    const request = reply.request;
    const ex = request.cellgate as Exchange;
    headersArrived(ex);
    releaseSlot(ex);
    // The gateway aborted it (grace cut, deadline, client gone): no upstream failure, nothing to answer or retry.
    if (ex.upstream.abortedBy !== null) return;
    if (reply.sent) return; // the gateway's deadline answered already
    const failure = classifyUpstreamError(error);
    metrics.upstreamError(ex.zone, ex.service, failure.kind);
    if (ex.endpoint && failure.health !== null) health.record(ex.endpoint, failure.health);
    // Nothing reached the endpoint: try the service's next one in the zone, as nginx's
    // proxy_next_upstream does for a request never sent — any method when there is no body to
    // replay (a direct exchange has none), else only a safe one.
    const resendable = ex.direct || isRetryable(request.raw.method as string, request.raw.headers);
    if (failure.notSent && ex.pool && (ex.direct || ex.fromOptions) && ex.tries < ex.pool.endpoints.length && resendable) {
      const next = ex.pool.pick(clock.now(), ex.endpoint ?? undefined);
      if (next) {
        ex.endpoint = next;
        ex.tries += 1;
        admit(reply, ex);
        return;
      }
    }
    if (failure.error === 'UPSTREAM_UNAVAILABLE') unavailable(reply, ex);
    else sendError(reply, failure.error);
  }

  // reply-from's typings describe http2 variants and a different retryDelay shape than its
  // code passes; these functions match what the code (v12.6.5) actually calls them with.
  const replyOptions = {
    getUpstream,
    // Plain requests only: the symbol-keyed link to the exchange's upstream call (never sent).
    rewriteRequestHeaders: (request: FastifyRequest, headers: IncomingHttpHeaders) =>
      linkUpstreamCall(rewriteRequestHeaders(request, headers), (request.cellgate as Exchange).upstream),
    rewriteHeaders,
    onResponse,
    onError,
    retryDelay,
  } as unknown as FastifyReplyFromHooks;

  app.register(httpProxy, {
    // No static upstream: every request's upstream comes from getUpstream (also for WebSockets,
    // which http-proxy only asks getUpstream when both upstream and wsUpstream are empty).
    upstream: '',
    httpMethods: proxiedMethods,
    websocket: true,
    disableRequestLogging: true,
    // reply-from destroys the agent given here with the server; its sockets must not outlive shutdown().
    destroyAgent: true,
    // The gateway's own agent: the options reply-from was given before, and every upstream
    // request abortable by its exchange (freeze grace, deadline, client gone: upstream-agent.ts).
    undici: upstreamAgent as never,
    replyOptions,
    preHandler: preHandler as never,
    handler: (request, reply, dest, options) => {
      const ex = request.cellgate as Exchange;
      // dest is the path without its query (reply-from adds the request's query back).
      ex.dest = ex.strip === null ? dest : strippedUrl(dest, ex.strip);
      ex.fromOptions = options;
      ex.direct = takesDirectPath(request, ex.dest);
      admit(reply, ex);
      // A direct exchange writes to reply.raw itself: fastify need not wait on the reply (reply.then).
      return ex.direct ? undefined : reply;
    },
    wsClientOptions: {
      handshakeTimeout: config.upstream.connectTimeoutMs,
      finishRequest: websockets.finishRequest,
      // Called by http-proxy right before it opens the upstream socket (see ws-upstream.ts).
      rewriteRequestHeaders: (_headers: unknown, request: FastifyRequest) => {
        const ex = request.cellgate as Exchange;
        const route = ex.route as OkRoute;
        websockets.expect({ cell: route.cell, zone: route.zone.name, epoch: route.epoch });
        return rewriteRequestHeaders(request, wsForwardableHeaders(request.headers));
      },
    } as never,
    wsHooks: { onConnect: websockets.onConnect } as never,
  });

  app.setNotFoundHandler((_request, reply) => {
    sendError(reply, 'NOT_FOUND');
  });
  app.setErrorHandler((err: Error & { statusCode?: number }, _request, reply) => {
    if (isCellgateError(err)) return sendError(reply, err.error);
    const status = err.statusCode ?? 500;
    if (status >= 500) logger.error({ event: 'request.internal_error', error: err.message });
    return sendError(reply, status >= 400 && status < 500 ? 'BAD_REQUEST' : 'INTERNAL_ERROR');
  });
  return app;
}

/** A decoded user id as a header value: its UTF-8 bytes, one latin1 character each (what Node sends as is). */
function wireForm(user: string): string {
  return /^[\x20-\x7e]*$/.test(user) ? user : Buffer.from(user, 'utf8').toString('latin1');
}

/**
 * Every method Node parses is proxied, as nginx does (WebDAV's PROPFIND and MKCOL, PURGE,
 * REPORT…), not only http-proxy's seven; fastify learns the ones it does not know, each with
 * a body. Not CONNECT (a tunnel, not a request to route) nor TRACE (it echoes the request).
 */
function proxyEveryMethod(app: FastifyInstance): string[] {
  const methods = METHODS.filter((m) => m !== 'CONNECT' && m !== 'TRACE');
  for (const m of methods) if (!app.supportedMethods.includes(m)) app.addHttpMethod(m, { hasBody: true });
  return methods;
}
