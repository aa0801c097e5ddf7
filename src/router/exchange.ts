// What the gateway knows about one request while it serves it: made by the preHandler,
// read by getUpstream, the header rewrite, the response/error hooks and the hold buffer.
import type { ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { FastifyReplyFromHooks } from '@fastify/reply-from';
import type { Route } from '../cells/lookup';
import type { RouteClass } from '../cells/types';
import type { TrackedRequest } from './cell-requests';
import type { TimerHandle } from '../clock';
import type { Endpoint, ZonePool } from './endpoints';
import type { HeldTicket } from './hold-buffer';
import { UpstreamCall } from './upstream-agent';

export type OkRoute = Extract<Route, { ok: true }>;

/** What the gateway knows about one request while it is served. */
export class Exchange {
  cls: RouteClass = 'unit';
  user: string | null = null;
  /** The `zone` metric label: the zone served, or "none" when the request was not routed. */
  zone = 'none';
  /** The route rule's service (the `service` metric label; "none" when no rule matched). */
  service = 'none';
  /** The rule's prefix when it strips it from the path sent upstream; null otherwise. */
  strip: string | null = null;
  route: OkRoute | null = null;
  pool: ZonePool | null = null;
  endpoint: Endpoint | null = null;
  revision = '';
  /** The upstream path http-proxy computed (kept for a failover re-send). */
  dest = '/';
  fromOptions: FastifyReplyFromHooks | null = null;
  /** Sent by direct-proxy.ts rather than reply-from (no body, a plain path). */
  direct = false;
  tries = 1;
  upgraded = false;
  ticket: HeldTicket | null = null;
  /** This request in the per-cell registry while it is with an upstream (plain requests only). */
  tracked: TrackedRequest | null = null;
  /** The client response (what a cut at the end of a freeze grace destroys). */
  response: ServerResponse | null = null;
  readonly startedMs = performance.now();
  /** When it must have been answered (clock ms): arrival (or release from the hold) + upstream.requestTimeoutMs. */
  deadlineMs = 0;
  /** The endpoint whose connection slot this request holds (admission.ts); null when none. */
  slot: Endpoint | null = null;
  /** The gateway's own deadline for the upstream's response headers (undici's timers are coarse). */
  deadlineTimer: TimerHandle | null = null;
  /** The request id of the access log (set only when it is on). */
  requestId: string | null = null;
  /** Its upstream request, which the gateway can abort at any point (upstream-agent.ts). */
  readonly upstream = new UpstreamCall();
}

declare module 'fastify' {
  interface FastifyRequest {
    cellgate: Exchange | null;
  }
}

/** Where the response-close listener finds the exchange of its response. */
export const kExchange = Symbol('cellgate.exchange');
