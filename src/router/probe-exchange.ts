// One active health probe on the wire (probes.ts schedules them): a GET of one probed URL over
// a connection of its own, an undici Client per probed URL (one connection, kept alive from one
// probe to the next, as node:http's keep-alive Agent with maxSockets 1 did), driven through
// `dispatch()` with a handler object of ours: no ClientRequest, IncomingMessage, stream or
// per-probe listener closures. The verdict is taken at the final response's headers (a 5xx
// fails, any other status passes); the body is read and dropped so that the connection can
// carry the next probe. undici's own header and body timers are off: the prober's deadline
// covers the whole probe (connect included) for all probes started together, with one timer
// (ProbeExchange.expire). Measured: bench/probe-cost.ts.
import { Client, type Dispatcher } from 'undici';

/** Outcome of one probe (a reply body is drained and dropped, never kept). */
export type ProbeResult = 'ok' | 'failed';

/** Where a probe's outcome goes (the prober). */
export interface ProbeOwner {
  /** Once per probe that was sent: its result. */
  probeDecided(target: ProbeTarget, result: ProbeResult): void;
}

/** A (zone, service) whose endpoint a target is (the metric labels of its probes). */
export interface ProbeUse {
  readonly zone: string;
  readonly service: string;
}

/**
 * One probed URL (an endpoint's origin + its pool's health path): what was last seen of it and
 * its connection. Pools listing the same origin with the same health path share one target,
 * so one probe answers for all of them (an origin is one server: endpoints.ts shares its
 * passive health the same way).
 */
export class ProbeTarget {
  /** origin + health path: the target's key. */
  readonly href: string;
  readonly origin: string;
  /** Every pool listing it; set by the prober when the pools change. */
  uses: readonly ProbeUse[];
  /** The slot of the interval it is probed in (probes.ts spreads targets over the interval). */
  slot = 0;
  /** The last probe's outcome; null before the first one ends (no evidence either way). */
  last: ProbeResult | null = null;
  lastOkMs: number | null = null;
  /** When its last probe was sent (the prober's clock). */
  startedAtMs = -Infinity;
  /** The probe in flight, null when none is: at most one per target. */
  exchange: ProbeExchange | null = null;
  private client: Client | null = null;
  /** What every probe of it sends (undici does not change it). */
  private readonly request: Dispatcher.DispatchOptions;

  constructor(origin: string, healthPath: string, uses: readonly ProbeUse[], headers: Readonly<Record<string, string>>) {
    this.origin = origin;
    this.href = origin + healthPath;
    this.uses = uses;
    this.request = { method: 'GET', path: healthPath, headers, headersTimeout: 0, bodyTimeout: 0 };
  }

  /** Sends one probe now; `owner` hears its result. Null when undici refused it before sending (no evidence either way). */
  send(owner: ProbeOwner, timeoutMs: number): ProbeExchange | null {
    const exchange = new ProbeExchange(owner, this);
    this.exchange = exchange;
    this.client ??= new Client(this.origin, { connectTimeout: timeoutMs, headersTimeout: 0, bodyTimeout: 0, keepAliveTimeout: KEEP_ALIVE_MS });
    this.client.dispatch(this.request, exchange);
    if (this.exchange !== exchange) return null; // refused before anything was sent
    exchange.dispatched = true;
    return exchange;
  }

  /** Closes its connection (a timed-out probe's, or the target is gone): the next probe opens a new one. */
  dropConnection(): void {
    const client = this.client;
    this.client = null;
    client?.destroy().catch(ignore);
  }
}

/**
 * How long a probe connection stays open with nothing on it (nginx's upstream keepalive_timeout,
 * as upstream.keepAliveTimeoutMs): the default interval of 1 s reuses it; a server's shorter
 * Keep-Alive hint wins.
 */
const KEEP_ALIVE_MS = 60_000;

function ignore(): void {
  // a connection being closed has nothing left to report
}

/** undici's handler of one probe: told of the response's start and end, or of its failure. */
export class ProbeExchange implements Dispatcher.DispatchHandler {
  /** Set once undici took the request (a refusal while dispatching is not a failed probe). */
  dispatched = false;
  private decided = false;
  private readonly owner: ProbeOwner;
  private readonly target: ProbeTarget;

  constructor(owner: ProbeOwner, target: ProbeTarget) {
    this.owner = owner;
    this.target = target;
  }

  onRequestStart(): void {
    // nothing to keep: a probe is stopped by dropping its connection (expire)
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number): void {
    if (statusCode >= 200) this.decide(statusCode < 500 ? 'ok' : 'failed'); // a 1xx is not the answer yet
  }

  onResponseData(): void {
    // the body is dropped: only its end matters (the connection is then free for the next probe)
  }

  onResponseEnd(): void {
    this.end();
  }

  onResponseError(): void {
    if (this.dispatched) this.decide('failed');
    this.end();
  }

  /** The probe's deadline passed: it fails unless its answer came, and its connection is dropped if it is still busy. */
  expire(): void {
    if (this.target.exchange !== this) return;
    this.decide('failed');
    this.end();
    this.target.dropConnection();
  }

  private decide(result: ProbeResult): void {
    if (this.decided) return;
    this.decided = true;
    this.owner.probeDecided(this.target, result);
  }

  private end(): void {
    if (this.target.exchange === this) this.target.exchange = null;
  }
}
