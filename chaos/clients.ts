// Clients that are not the well-behaved load (load.ts): odd or hostile HTTP requests, slow
// ones, and (ws-clients.ts) WebSockets. A scenario lists them in `clients`; each runs from
// the start of the load until it stops, bounded in count (concurrency or rate) and time, and
// records what happened to every request it sent, with the deadline the contract gives it.
//
//   odd-headers    requests with hop-by-hop headers (Upgrade: foo without WebSocket,
//                  Keep-Alive: x, Connection: x-foo + X-Foo, curl-style Expect: 100-continue
//                  uploads) and repeated or conflicting user-id headers
//   slow-headers   connections that send their request headers a line at a time, never done
//   slow-upload    POSTs whose body arrives a chunk at a time
//   slow-download  GET /slow/USER?ms=N: the zone server streams a chunk every chunkMs for N ms
//   long-poll      GET /poll/USER?ms=N: the zone server answers after N ms
import { createHash, randomBytes } from 'node:crypto';
import { request, type IncomingHttpHeaders } from 'node:http';
import { connect, type Socket } from 'node:net';
import { WsClients, type WsClientSpec, type WsRecords } from './ws-clients';

export type OddVariant = 'upgrade-foo' | 'keep-alive-x' | 'connection-x-foo' | 'expect-100' | 'user-id-repeated' | 'user-id-conflict';
export const ODD_VARIANTS: readonly OddVariant[] = ['upgrade-foo', 'keep-alive-x', 'connection-x-foo', 'expect-100', 'user-id-repeated', 'user-id-conflict'];

export type ClientSpec =
  | {
    readonly kind: 'odd-headers';
    readonly ratePerSec: number;
    /** Requests sent at once, same variant, same user, same gateway (an attacker's burst: back-to-back failures). */
    readonly burst: number;
    readonly uploadBytes: number;
    readonly deadlineMs: number;
  }
  | { readonly kind: 'slow-headers'; readonly connections: number; readonly lineEveryMs: number }
  | { readonly kind: 'slow-upload'; readonly concurrency: number; readonly chunks: number; readonly chunkBytes: number; readonly chunkEveryMs: number; readonly deadlineMs: number }
  | {
    readonly kind: 'slow-download' | 'long-poll';
    /** One request at a time per user, again and again; users are spread over the gateways. */
    readonly users: readonly string[];
    readonly lengthMs: number;
    readonly chunkMs?: number;
    /** Longest a request may take beyond its own length (held during a freeze, cut after a grace). */
    readonly deadlineMs: number;
    /** ms after the load started: none is sent before / after. */
    readonly fromMs?: number;
    readonly untilMs?: number;
  }
  | WsClientSpec;

export type ClientKind = ClientSpec['kind'];

export interface ClientRecord {
  readonly id: string;
  readonly kind: Exclude<ClientKind, 'websocket'>;
  readonly variant: string;
  readonly user: string;
  gw: number;
  readonly sent: number;
  /** 0: never answered (slow-headers still open when the run ended). */
  done: number;
  /** When the first response byte came (slow downloads). */
  firstByte: number;
  status: number;
  /** The contract's error code, or a client-side one (ECONNRESET, RESPONSE_ABORTED, BAD_ECHO, CLOSED_BY_SERVER…). */
  error: string | null;
  zone: string | null;
  cell: string | null;
  readonly bytes: number;
  readonly sha: string | null;
  /** Chunks received (downloads). */
  chunks: number;
  /** Longest this request may take, from `sent`. */
  readonly deadlineMs: number;
}

export class ClientFleet {
  readonly records: ClientRecord[] = [];
  readonly ws: WsClients;
  private running = false;
  private t0 = 0;
  private seq = 0;
  private rr = 0;
  private readonly tasks: Promise<void>[] = [];
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly sockets = new Set<Socket>();

  constructor(private readonly gatewayPorts: readonly number[], private readonly specs: readonly ClientSpec[]) {
    this.ws = new WsClients(gatewayPorts, specs.filter((s): s is WsClientSpec => s.kind === 'websocket'));
  }

  get wsRecords(): WsRecords {
    return this.ws.records;
  }

  start(): void {
    this.running = true;
    this.t0 = Date.now();
    for (const spec of this.specs) {
      switch (spec.kind) {
        case 'odd-headers': this.startOdd(spec); break;
        case 'slow-headers': this.startSlowHeaders(spec); break;
        case 'slow-upload':
          for (let i = 0; i < spec.concurrency; i++) this.loop(() => this.slowUpload(spec));
          break;
        case 'slow-download':
        case 'long-poll':
          spec.users.forEach((user, i) => this.loop(() => this.slowGet(spec, user, i), spec.fromMs, spec.untilMs));
          break;
        case 'websocket': break;
        default: {
          const never: never = spec;
          throw new Error(`unknown client kind ${JSON.stringify(never)}`);
        }
      }
    }
    this.ws.start();
  }

  /** Stops sending; waits (bounded by each request's own timeout) for what is in flight; closes slow-header connections. */
  async stop(): Promise<void> {
    this.running = false;
    for (const t of this.timers) clearInterval(t);
    this.timers.clear();
    for (const s of this.sockets) s.destroy();
    await Promise.all([...this.tasks, this.ws.stop()]);
  }

  private gw(): number {
    return this.rr++ % this.gatewayPorts.length;
  }

  private record(kind: ClientRecord['kind'], variant: string, user: string, deadlineMs: number, body: Buffer | null): ClientRecord {
    const rec: ClientRecord = {
      id: `c${(++this.seq).toString(36)}-${process.pid.toString(36)}`, kind, variant, user, gw: this.gw(), sent: Date.now(), done: 0, firstByte: 0,
      status: 0, error: null, zone: null, cell: null, bytes: body?.length ?? 0, sha: body ? createHash('sha256').update(body).digest('hex') : null, chunks: 0, deadlineMs,
    };
    this.records.push(rec);
    return rec;
  }

  /** Runs `one` again and again while running (and inside [fromMs, untilMs] of the load). */
  private loop(one: () => Promise<void>, fromMs = 0, untilMs = Number.POSITIVE_INFINITY): void {
    this.tasks.push((async () => {
      const wait = this.t0 + fromMs - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      while (this.running && Date.now() - this.t0 < untilMs) await one();
    })());
  }

  private startOdd(spec: Extract<ClientSpec, { kind: 'odd-headers' }>): void {
    let bursts = 0;
    const timer = setInterval(() => {
      const due = Math.floor(((Date.now() - this.t0) / 1000) * (spec.ratePerSec / spec.burst));
      while (this.running && bursts < due) {
        const variant = ODD_VARIANTS[bursts++ % ODD_VARIANTS.length] as OddVariant;
        const user = randomUser();
        const gw = this.gw();
        for (let i = 0; i < spec.burst; i++) this.tasks.push(this.odd(spec, variant, user, gw));
      }
    }, 20);
    this.timers.add(timer);
  }

  private async odd(spec: Extract<ClientSpec, { kind: 'odd-headers' }>, variant: OddVariant, user: string, gw: number): Promise<void> {
    const body = variant === 'expect-100' ? randomBytes(spec.uploadBytes) : null;
    const rec = this.record('odd-headers', variant, user, spec.deadlineMs, body);
    rec.gw = gw;
    const headers: Record<string, string | string[] | number> = { 'x-user-id': user, 'x-request-id': rec.id };
    switch (variant) {
      case 'upgrade-foo': headers.upgrade = 'foo'; break;
      case 'keep-alive-x': headers['keep-alive'] = 'x'; break;
      case 'connection-x-foo': headers.connection = 'x-foo'; headers['x-foo'] = 'bar'; break;
      case 'expect-100': headers.expect = '100-continue'; headers['content-type'] = 'application/octet-stream'; headers['content-length'] = spec.uploadBytes; break;
      case 'user-id-repeated': headers['x-user-id'] = [user, user]; break;
      case 'user-id-conflict': headers['x-user-id'] = [user, randomUser()]; break;
      default: {
        const never: never = variant;
        throw new Error(`unknown variant ${String(never)}`);
      }
    }
    await this.exchange(rec, `/orders/${user}`, headers, body, variant === 'expect-100');
  }

  private async slowUpload(spec: Extract<ClientSpec, { kind: 'slow-upload' }>): Promise<void> {
    const user = randomUser();
    const body = randomBytes(spec.chunks * spec.chunkBytes);
    const rec = this.record('slow-upload', `${spec.chunks}×${spec.chunkBytes} B every ${spec.chunkEveryMs} ms`, user, spec.chunks * spec.chunkEveryMs + spec.deadlineMs, body);
    const headers = { 'x-user-id': user, 'x-request-id': rec.id, 'content-type': 'application/octet-stream', 'content-length': body.length };
    await this.exchange(rec, `/uploads/${user}`, headers, body, false, { chunkBytes: spec.chunkBytes, everyMs: spec.chunkEveryMs });
  }

  private async slowGet(spec: Extract<ClientSpec, { kind: 'slow-download' | 'long-poll' }>, user: string, index: number): Promise<void> {
    const rec = this.record(spec.kind, `${spec.lengthMs} ms`, user, spec.lengthMs + spec.deadlineMs, null);
    rec.gw = index % this.gatewayPorts.length;
    const path = `/${spec.kind === 'slow-download' ? 'slow' : 'poll'}/${user}?ms=${spec.lengthMs}&chunkMs=${spec.chunkMs ?? 200}`;
    await this.exchange(rec, path, { 'x-user-id': user, 'x-request-id': rec.id }, null, false);
  }

  /**
   * One request, answered or failed; a body is sent at once, after a 100 Continue (or, as
   * curl does, after 1 s without one), or in chunks. Bounded by the record's deadline + 5 s.
   */
  private exchange(rec: ClientRecord, path: string, headers: Record<string, string | string[] | number>, body: Buffer | null, expectContinue: boolean, chunked?: { chunkBytes: number; everyMs: number }): Promise<void> {
    return new Promise((resolve) => {
      let settled = false;
      let lines = '';
      const finish = (status: number, error: string | null) => {
        if (settled) return;
        settled = true;
        rec.done = Date.now();
        rec.status = status;
        rec.error = error;
        resolve();
      };
      const req = request({
        host: '127.0.0.1', port: this.gatewayPorts[rec.gw], method: body ? 'POST' : 'GET', path, headers, agent: false, timeout: rec.deadlineMs + 5_000,
      }, (res) => {
        rec.firstByte = Date.now();
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          lines += d;
          rec.chunks += (d.match(/\n/g) ?? []).length;
        });
        res.on('aborted', () => finish(res.statusCode ?? 0, 'RESPONSE_ABORTED'));
        res.on('error', () => finish(res.statusCode ?? 0, 'RESPONSE_ABORTED'));
        res.on('end', () => finish(res.statusCode ?? 0, judgeReply(rec, res.statusCode ?? 0, res.headers, lines)));
      });
      req.on('timeout', () => {
        req.destroy();
        finish(0, 'CLIENT_TIMEOUT');
      });
      req.on('error', (err: NodeJS.ErrnoException) => finish(0, err.code ?? 'CLIENT_ERROR'));
      if (!body) return void req.end();
      if (chunked) return void this.writeSlowly(req, body, chunked, () => settled);
      if (!expectContinue) return void req.end(body);
      let bodySent = false;
      const sendBody = () => {
        if (bodySent || settled) return;
        bodySent = true;
        req.end(body);
      };
      req.on('continue', sendBody);
      setTimeout(sendBody, 1_000).unref();
      req.flushHeaders();
    });
  }

  private writeSlowly(req: ReturnType<typeof request>, body: Buffer, c: { chunkBytes: number; everyMs: number }, stopped: () => boolean): void {
    let offset = 0;
    const next = () => {
      if (stopped() || req.destroyed) return;
      const chunk = body.subarray(offset, offset + c.chunkBytes);
      offset += chunk.length;
      if (offset >= body.length) return void req.end(chunk);
      req.write(chunk);
      setTimeout(next, c.everyMs);
    };
    next();
  }

  /** Connections that send a request line and then a header line every lineEveryMs, never the blank line. */
  private startSlowHeaders(spec: Extract<ClientSpec, { kind: 'slow-headers' }>): void {
    for (let i = 0; i < spec.connections; i++) {
      const user = randomUser();
      const rec = this.record('slow-headers', `a header line every ${spec.lineEveryMs} ms`, user, Number.POSITIVE_INFINITY, null);
      const socket = connect({ host: '127.0.0.1', port: this.gatewayPorts[rec.gw] as number });
      this.sockets.add(socket);
      let n = 0;
      const timer = setInterval(() => socket.write(`x-slow-${n++}: ${'a'.repeat(8)}\r\n`), spec.lineEveryMs);
      this.timers.add(timer);
      socket.on('connect', () => socket.write(`GET /orders/${user} HTTP/1.1\r\nhost: 127.0.0.1\r\nx-user-id: ${user}\r\n`));
      socket.on('data', (d) => {
        if (rec.status === 0) rec.status = Number(/^HTTP\/1\.1 (\d{3})/.exec(d.toString('latin1'))?.[1] ?? 0);
      });
      socket.on('error', (err: NodeJS.ErrnoException) => (rec.error ??= err.code ?? 'CLIENT_ERROR'));
      socket.on('close', () => {
        clearInterval(timer);
        this.timers.delete(timer);
        this.sockets.delete(socket);
        // Closed while the harness still ran it: the gateway cut it (e.g. its header timeout).
        if (this.running) {
          rec.done = Date.now();
          rec.error ??= 'CLOSED_BY_SERVER';
        }
      });
    }
  }
}

function randomUser(): string {
  return `u${Math.floor(Math.random() * 5000).toString().padStart(5, '0')}`;
}

/** null when the reply is what the zone server says for exactly this request, else why not. */
function judgeReply(rec: ClientRecord, status: number, headers: IncomingHttpHeaders, text: string): string | null {
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(text.split('\n')[0] ?? '') as Record<string, unknown>;
  } catch { /* not JSON */ }
  if (status !== 200) return typeof json.error === 'string' ? json.error : `HTTP_${status}`;
  rec.zone = typeof json.zone === 'string' ? json.zone : (typeof headers['x-zone'] === 'string' ? headers['x-zone'] : null);
  rec.cell = typeof json.cell === 'string' ? json.cell : null;
  const echoOk = json.rid === rec.id && json.bytes === rec.bytes && (rec.sha === null || json.sha === rec.sha) && json.owned !== false;
  return echoOk ? null : 'BAD_ECHO';
}
