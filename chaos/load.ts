// The load generator: bounded user traffic through the gateways, fixed-rate (open loop) or
// closed-loop (N workers, each sending its next request when the last one is answered).
// Many users; GETs, POSTs with random bodies (checked end to end: the zone server echoes
// the sha256 and size it received) and a share of global traffic. Every request is
// recorded: when sent and answered, the status, the zone that served it, the latency.
//
// It behaves like a load balancer with connection-level retry in front of the gateways: a
// request whose connection a gateway refuses (nothing was sent) goes to the next gateway.
import { createHash, randomBytes } from 'node:crypto';
import { Agent, request } from 'node:http';

export interface LoadSpec {
  readonly mode: 'rate' | 'closed';
  /** Requests per second over all gateways (rate mode). */
  readonly ratePerSec?: number;
  /** Concurrent workers (closed mode). */
  readonly workers?: number;
  /** Closed mode: pause of each worker between its requests. */
  readonly thinkMs?: number;
  readonly users?: number;
  /** Users that get `hotShare` of the requests (e.g. users pinned to one cell). */
  readonly hotUsers?: readonly string[];
  readonly hotShare?: number;
  /** Share of POSTs (the rest are GETs). */
  readonly postShare?: number;
  /** Share of requests to the global zone (/g/...). */
  readonly globalShare?: number;
  readonly minBodyBytes?: number;
  readonly maxBodyBytes?: number;
  /** Client timeout: an unanswered request after this is recorded as lost. */
  readonly timeoutMs?: number;
  /** Rate mode: requests in flight above this are not sent (recorded as skipped). */
  readonly maxInFlight?: number;
}

export interface RequestRecord {
  readonly id: string;
  readonly user: string;
  readonly method: 'GET' | 'POST';
  readonly path: string;
  /** Index of the gateway that answered (or last tried). */
  gw: number;
  readonly sent: number;
  done: number;
  status: number;
  /** The contract's error name, or a client-side one (ECONNRESET, CLIENT_TIMEOUT, BAD_ECHO…). */
  error: string | null;
  zone: string | null;
  srv: string | null;
  cell: string | null;
  epoch: number | null;
  rev: number | null;
  readonly bytes: number;
  readonly sha: string | null;
  tries: number;
}

export interface LoadTarget {
  /** Traffic ports of the gateways. */
  readonly ports: readonly number[];
}

const RETRY_ON = new Set(['ECONNREFUSED']);

export class LoadGenerator {
  readonly records: RequestRecord[] = [];
  private readonly agents: Agent[];
  private readonly spec: Required<LoadSpec>;
  private running = false;
  private inFlight = 0;
  private seq = 0;
  private rr = 0;
  private ticker: NodeJS.Timeout | null = null;
  private workers: Promise<void>[] = [];
  private idle: (() => void) | null = null;
  skipped = 0;

  constructor(private readonly target: LoadTarget, spec: LoadSpec) {
    this.spec = {
      ratePerSec: 200, workers: 16, thinkMs: 50, users: 5000, hotUsers: [], hotShare: 0, postShare: 0.3, globalShare: 0.05,
      minBodyBytes: 16, maxBodyBytes: 4096, timeoutMs: 20_000, maxInFlight: 1500, ...spec,
    };
    this.agents = target.ports.map(() => new Agent({ keepAlive: true, maxSockets: 256, keepAliveMsecs: 1000 }));
  }

  start(): void {
    this.running = true;
    const started = Date.now();
    if (this.spec.mode === 'rate') {
      let sent = 0;
      this.ticker = setInterval(() => {
        const due = Math.floor(((Date.now() - started) / 1000) * this.spec.ratePerSec);
        while (sent < due) {
          sent++;
          if (this.inFlight >= this.spec.maxInFlight) this.skipped++;
          else void this.one();
        }
      }, 10);
    } else {
      for (let i = 0; i < this.spec.workers; i++) {
        this.workers.push((async () => {
          while (this.running) {
            await this.one();
            if (this.spec.thinkMs > 0) await new Promise((r) => setTimeout(r, this.spec.thinkMs));
          }
        })());
      }
    }
  }

  /** Stops sending; resolves when every request in flight is answered (or timed out). */
  async stop(): Promise<void> {
    this.running = false;
    if (this.ticker) clearInterval(this.ticker);
    this.ticker = null;
    await Promise.all(this.workers);
    if (this.inFlight > 0) await new Promise<void>((resolve) => (this.idle = resolve));
    for (const a of this.agents) a.destroy();
  }

  private next(): { user: string; method: 'GET' | 'POST'; path: string; body: Buffer | null } {
    const s = this.spec;
    const hot = s.hotUsers.length > 0 && Math.random() < s.hotShare;
    const user = hot ? s.hotUsers[Math.floor(Math.random() * s.hotUsers.length)]! : `u${Math.floor(Math.random() * s.users).toString().padStart(5, '0')}`;
    const global = Math.random() < s.globalShare;
    const method = Math.random() < s.postShare ? 'POST' : 'GET';
    const body = method === 'POST' ? randomBytes(s.minBodyBytes + Math.floor(Math.random() * (s.maxBodyBytes - s.minBodyBytes + 1))) : null;
    return { user, method, path: global ? `/g/settings/${user}` : `/orders/${user}`, body };
  }

  private async one(): Promise<void> {
    const { user, method, path, body } = this.next();
    const rec: RequestRecord = {
      id: `r${(++this.seq).toString(36)}-${process.pid.toString(36)}`, user, method, path, gw: -1, sent: Date.now(), done: 0,
      status: 0, error: null, zone: null, srv: null, cell: null, epoch: null, rev: null,
      bytes: body?.length ?? 0, sha: body ? createHash('sha256').update(body).digest('hex') : null, tries: 0,
    };
    this.records.push(rec);
    this.inFlight++;
    try {
      const start = this.rr++ % this.target.ports.length;
      for (let i = 0; i < this.target.ports.length; i++) {
        rec.gw = (start + i) % this.target.ports.length;
        rec.tries++;
        const outcome = await this.send(rec, rec.gw, body);
        if (!(outcome.error && RETRY_ON.has(outcome.error))) break;
      }
    } finally {
      rec.done = Date.now();
      if (--this.inFlight === 0 && !this.running) this.idle?.();
    }
  }

  private send(rec: RequestRecord, gw: number, body: Buffer | null): Promise<RequestRecord> {
    return new Promise((resolve) => {
      let settled = false;
      const finish = (status: number, error: string | null) => {
        if (settled) return;
        settled = true;
        rec.status = status;
        rec.error = error;
        resolve(rec);
      };
      const headers: Record<string, string | number> = { 'x-user-id': rec.user, 'x-request-id': rec.id };
      if (body) {
        headers['content-type'] = 'application/octet-stream';
        headers['content-length'] = body.length;
      }
      const req = request({
        host: '127.0.0.1', port: this.target.ports[gw], method: rec.method, path: rec.path, headers, agent: this.agents[gw], timeout: this.spec.timeoutMs,
      }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', () => finish(res.statusCode ?? 0, 'RESPONSE_ABORTED'));
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          let json: Record<string, unknown> = {};
          try {
            json = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
          } catch { /* not JSON */ }
          if (status !== 200) return finish(status, typeof json.error === 'string' ? json.error : `HTTP_${status}`);
          rec.zone = typeof json.zone === 'string' ? json.zone : null;
          rec.srv = typeof json.srv === 'string' ? json.srv : null;
          rec.cell = typeof json.cell === 'string' ? json.cell : null;
          rec.epoch = typeof json.epoch === 'number' ? json.epoch : null;
          rec.rev = typeof json.rev === 'number' ? json.rev : null;
          // End-to-end check: the zone server saw exactly this user, request and body.
          const echoOk = json.user === rec.user && json.rid === rec.id && json.bytes === rec.bytes
            && (rec.sha === null || json.sha === rec.sha) && json.owned !== false;
          finish(status, echoOk ? null : 'BAD_ECHO');
        });
      });
      req.on('timeout', () => {
        req.destroy();
        finish(0, 'CLIENT_TIMEOUT');
      });
      req.on('error', (err: NodeJS.ErrnoException) => finish(0, err.code ?? 'CLIENT_ERROR'));
      req.end(body ?? undefined);
    });
  }
}
