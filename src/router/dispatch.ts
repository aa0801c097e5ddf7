// Sending a routed request to its upstream under its zone's and service's bounds
// (admission.ts) and its deadline: it goes to its endpoint once that has a free connection,
// waits in the queue of its zone and service otherwise (503 ZONE_OVERLOADED when that is full, 504 UPSTREAM_TIMEOUT when its
// deadline passes first), and gives its connection slot back exactly once when the upstream
// exchange is over — whichever of reply-from's paths ends it (response stream closed, error,
// response to a client that has gone, the gateway's own deadline, which also aborts the
// upstream request: upstream-agent.ts).
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyReplyFromHooks } from '@fastify/reply-from';
import type { Admission } from './admission';
import type { Clock } from '../clock';
import type { Endpoint, EndpointHealth, ZonePool } from './endpoints';
import { sendError, sendUnavailable } from './error-reply';
import { sendContinue } from './expect-continue';
import type { SendDirect } from './direct-proxy';
import type { Exchange } from './exchange';
import type { GatewayMetrics } from './metrics';

export interface DispatchDeps {
  readonly admission: Admission;
  readonly clock: Clock;
  readonly health: EndpointHealth;
  readonly metrics: GatewayMetrics;
  /** reply-from's getUpstream: reads the exchange's endpoint when the request is sent. */
  readonly getUpstream: (request: FastifyRequest, base: string) => string;
  /** The lean path (direct-proxy.ts), for exchanges marked `direct`. */
  readonly sendDirect: SendDirect;
}

export interface Dispatch {
  /** Sends the exchange (ex.dest, ex.fromOptions, ex.pool, ex.endpoint set) when it may go. */
  admit(reply: FastifyReply, ex: Exchange): void;
  /** The upstream's response headers arrived, or it failed: the deadline no longer applies. */
  headersArrived(ex: Exchange): void;
  /** The upstream exchange is over: its slot goes to the next waiting request (idempotent). */
  releaseSlot(ex: Exchange): void;
}

export function createDispatch(deps: DispatchDeps): Dispatch {
  const { admission, clock, health, metrics, getUpstream, sendDirect } = deps;

  function admit(reply: FastifyReply, ex: Exchange): void {
    // Room at once (the usual case): no SlotRequest and no closures made for this request.
    if (admission.tryStart(ex.pool as ZonePool, ex.endpoint as Endpoint)) return send(reply, ex, ex.endpoint as Endpoint);
    const admitted = admission.enter({
      pool: ex.pool as ZonePool,
      endpoint: ex.endpoint as Endpoint,
      deadlineMs: ex.deadlineMs,
      start: (endpoint) => send(reply, ex, endpoint),
      expire: () => {
        metrics.refused('queue_timeout');
        sendError(reply, 'UPSTREAM_TIMEOUT');
      },
      unavailable: () => sendUnavailable(reply, ex.zone, ex.service, (ex.pool as ZonePool).endpoints.length),
    });
    switch (admitted.kind) {
      case 'started':
        return;
      case 'waiting':
        reply.raw.once('close', admitted.cancel);
        return;
      case 'refused':
        metrics.refused('pending_full');
        sendError(reply, 'ZONE_OVERLOADED');
        return;
      default: {
        const never: never = admitted;
        throw new Error(`unknown admission ${JSON.stringify(never)}`);
      }
    }
  }

  function send(reply: FastifyReply, ex: Exchange, endpoint: Endpoint): void {
    ex.endpoint = endpoint;
    ex.slot = endpoint;
    // undici times the headers from the moment it writes the request, on timers that may fire
    // up to a second late: it gets what is left, and the gateway keeps the deadline itself.
    const timeout = Math.max(1, ex.deadlineMs - clock.now());
    ex.deadlineTimer = clock.setTimer(() => onDeadline(reply, ex), timeout);
    try {
      sendContinue(reply.request.raw, reply.raw);
      if (ex.direct) sendDirect(reply, ex, endpoint, timeout);
      else reply.from(ex.dest, { ...ex.fromOptions, getUpstream, timeout } as FastifyReplyFromHooks);
    } catch {
      headersArrived(ex);
      releaseSlot(ex);
      if (!reply.sent) sendError(reply, 'INTERNAL_ERROR');
    }
  }

  /**
   * The deadline passed with no response headers. The endpoint's failure only when the client
   * had sent its whole request: an upload still arriving (slowly, or stalled after `Expect:
   * 100-continue`) is the client's doing, answered 408 like nginx's client_body_timeout, and
   * never counted against the endpoint (else three slow clients eject a healthy one).
   */
  function onDeadline(reply: FastifyReply, ex: Exchange): void {
    ex.deadlineTimer = null;
    if (!reply.request.raw.complete) {
      metrics.refused('client_timeout');
      if (!reply.sent) sendError(reply, 'REQUEST_TIMEOUT');
    } else {
      if (ex.endpoint) health.record(ex.endpoint, 'failure');
      metrics.upstreamError(ex.zone, ex.service, 'timeout');
      if (!reply.sent) sendError(reply, 'UPSTREAM_TIMEOUT');
    }
    // Not left to undici's own timeout (up to a second later): the upstream's connection closes
    // now (after the answer is written: undici also destroys an unfinished upload), and the
    // slot goes to the next request only once that connection is no longer busy.
    ex.upstream.abort('deadline');
    releaseSlot(ex);
  }

  function headersArrived(ex: Exchange): void {
    if (ex.deadlineTimer === null) return;
    clock.clearTimer(ex.deadlineTimer);
    ex.deadlineTimer = null;
  }

  function releaseSlot(ex: Exchange): void {
    const e = ex.slot;
    if (e === null) return;
    ex.slot = null;
    admission.release(e);
  }

  return { admit, headersArrived, releaseSlot };
}
