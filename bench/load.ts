// Load generators of the benchmarks, both run in the bench process (every proxy measured
// runs in a process of its own):
//  - closedLoop: autocannon, N connections each sending its next request as soon as the
//    previous answer arrives: the most requests/s a target sustains;
//  - PacedLoad: an open-loop generator sending at a fixed rate whatever the answers do (the
//    requests due on each ~1 ms timer tick: at 2,000 req/s mostly two back to back), on up to
//    PACED_MAX_SOCKETS keep-alive sockets, recording every request's latency, status and body.
//    autocannon's `overallRate` is not used for latency: it sends each connection's
//    per-second quota back to back at the start of every second,
//    so its "fixed rate" is a burst at full speed followed by silence, and its latencies are
//    those of the burst.
import { Agent, request } from 'node:http';
import { performance } from 'node:perf_hooks';
import autocannon from 'autocannon';

/** `count` opaque user ids ("u" + 12 hex digits), the same on every call. */
export function userPool(count: number, prefix = 'u'): string[] {
  return Array.from({ length: count }, (_, i) => `${prefix}${((i + 1) * 2654435761 % 2 ** 48).toString(16).padStart(12, '0')}`);
}

export interface ClosedLoopOptions {
  readonly url: string;
  readonly connections: number;
  readonly durationS: number;
  /** Users sent round-robin in the x-user-id header (one prebuilt request each). */
  readonly users: readonly string[];
  readonly path?: string;
}

export interface ClosedLoopResult {
  /** Requests answered 2xx per second of the run. */
  readonly rps: number;
  readonly total: number;
  readonly non2xx: number;
  readonly errors: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

export async function closedLoop(o: ClosedLoopOptions): Promise<ClosedLoopResult> {
  const path = o.path ?? '/api/items';
  // Prebuilt requests: autocannon rebuilds a request per send only when it has a setupRequest.
  const requests = o.users.map((u) => ({ method: 'GET' as const, path, headers: { 'x-user-id': u } }));
  const r = await autocannon({ url: o.url, connections: o.connections, duration: o.durationS, requests });
  return {
    rps: r['2xx'] / r.duration,
    total: r['2xx'] + r.non2xx,
    non2xx: r.non2xx,
    errors: r.errors,
    p50Ms: r.latency.p50,
    p99Ms: r.latency.p99,
  };
}

/** One request of a paced run. Times are performance.now() milliseconds. */
export interface Sample {
  readonly user: string;
  readonly sentMs: number;
  /** How far behind its schedule the generator sent it (its own event loop was late). */
  readonly lateMs: number;
  readonly latencyMs: number;
  /** 0 = no HTTP answer (connection error or timeout). */
  readonly status: number;
  readonly body: string;
}

export interface PacedOptions {
  readonly host: string;
  readonly port: number;
  readonly ratePerS: number;
  readonly users: readonly string[];
  readonly path?: string;
  readonly timeoutMs?: number;
}

/**
 * Sockets a paced run may open. Bounded on purpose: with no bound, a stall of any process on a
 * busy machine makes the client open a new connection for every request sent meanwhile, and
 * the cost of hundreds of connects keeps everything behind long after the stall. Requests
 * beyond the bound wait in the agent's queue, and that wait is part of their latency.
 */
const PACED_MAX_SOCKETS = 64;

export class PacedLoad {
  private readonly agent = new Agent({ keepAlive: true, maxSockets: PACED_MAX_SOCKETS });
  private readonly samples: Sample[] = [];
  private sent = 0;
  private outstanding = 0;
  private startMs = 0;
  private timer: NodeJS.Timeout | null = null;
  private idle: (() => void) | null = null;

  constructor(private readonly o: PacedOptions) {}

  start(): this {
    this.startMs = performance.now();
    this.tick();
    return this;
  }

  /** Stops sending, waits for the answers still due, returns every sample. */
  async stop(): Promise<Sample[]> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.outstanding > 0) await new Promise<void>((resolve) => (this.idle = resolve));
    this.agent.destroy();
    return this.samples;
  }

  private tick(): void {
    const due = Math.floor(((performance.now() - this.startMs) * this.o.ratePerS) / 1000);
    while (this.sent < due) {
      const scheduledMs = this.startMs + (this.sent * 1000) / this.o.ratePerS;
      this.fire(this.o.users[this.sent++ % this.o.users.length] as string, scheduledMs);
    }
    this.timer = setTimeout(() => this.tick(), 1);
  }

  private fire(user: string, scheduledMs: number): void {
    this.outstanding += 1;
    const sentMs = performance.now();
    const lateMs = Math.max(0, sentMs - scheduledMs);
    let settled = false;
    const record = (status: number, body: string) => {
      if (settled) return;
      settled = true;
      this.samples.push({ user, sentMs, lateMs, latencyMs: performance.now() - sentMs, status, body });
      this.outstanding -= 1;
      if (this.outstanding === 0 && this.timer === null) this.idle?.();
    };
    const req = request({
      agent: this.agent, host: this.o.host, port: this.o.port, path: this.o.path ?? '/api/items', headers: { 'x-user-id': user },
    }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => record(res.statusCode ?? 0, body));
      res.on('error', () => record(0, ''));
    });
    req.setTimeout(this.o.timeoutMs ?? 30_000, () => req.destroy(new Error('timeout')));
    req.on('error', () => record(0, ''));
    req.end();
  }
}

/** Runs a paced load for `durationMs` and returns its samples. */
export async function pacedRun(o: PacedOptions, durationMs: number): Promise<Sample[]> {
  const load = new PacedLoad(o).start();
  await new Promise((resolve) => setTimeout(resolve, durationMs));
  return load.stop();
}

/** Nearest-rank percentile (p in 0..100) of unsorted values; NaN for none. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number;
}

/** The status of one GET http://host:port/path (its body drained), 0 when nothing answered within 1 s. */
export function statusOf(host: string, port: number, path: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise<number>((resolve) => {
    const req = request({ host, port, path, headers, timeout: 1000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(0));
    req.end();
  });
}

/** Polls GET http://127.0.0.1:port/path (with `headers`) until it answers 200; throws after the bound. */
export async function waitForOk(port: number, headers: Record<string, string> = {}, timeoutMs = 20_000, path = '/api/items'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  while (Date.now() < deadline) {
    const status = await statusOf('127.0.0.1', port, path, headers);
    if (status === 200) return;
    last = status === 0 ? 'no answer' : `status ${status}`;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`127.0.0.1:${port}${path} did not answer 200 within ${timeoutMs} ms (last: ${last})`);
}
