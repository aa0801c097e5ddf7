// Recording upstream servers for gateway tests: plain node:http on 127.0.0.1 port 0, each
// answering JSON about what it received, with a per-test `behave` hook to fail on purpose
// (by attempt number, undici-style), and a WebSocket echo that first says who it is.
// `stop()` closes the listener (connections to its port are then refused) and `restart()`
// listens on the same port again, for ejection/recovery tests.
import { createHash } from 'node:crypto';
import { createServer, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocketServer } from 'ws';

export interface Received {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly bodyBytes: number;
  readonly bodySha256: string;
  readonly at: number;
}

/** What the default reply carries. */
export interface UpstreamAnswer {
  upstream: string;
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  bodyBytes: number;
  bodySha256: string;
}

/** Returns true when it answered (or destroyed) the request itself. */
export type Behave = (req: IncomingMessage, res: ServerResponse, received: Received, attempt: number) => boolean | Promise<boolean>;

export class Upstream {
  readonly name: string;
  /** Requests received, the gateways' health probes apart (they come every probe.intervalMs). */
  readonly received: Received[] = [];
  /** The gateways' active health probes (x-cellgate-probe). */
  readonly probes: Received[] = [];
  /** WebSocket messages received: the x-user-id of the socket, the text, when. */
  readonly wsReceived: { user: string; text: string; at: number }[] = [];
  /** How requests are answered, when a test fails them on purpose; never called for probes. */
  behave: Behave | null = null;
  /**
   * How the gateways' probes are answered. Apart from `behave` so that a test that fails or
   * hangs its requests does not also fail the probes that happen to fall in (and eject the endpoint).
   */
  probeBehave: Behave | null = null;
  port = 0;
  private server: Server | null = null;
  private wss: WebSocketServer | null = null;
  private readonly sockets = new Set<Socket>();

  constructor(name: string) {
    this.name = name;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(port = 0): Promise<this> {
    // A request whose body breaks off (the gateway cut a slow client) is dropped, never an unhandled rejection.
    const server = createServer((req, res) => void this.handle(req, res).catch(() => res.destroy()));
    server.keepAliveTimeout = 30_000;
    server.on('connection', (s) => {
      this.sockets.add(s);
      s.once('close', () => this.sockets.delete(s));
    });
    const wss = new WebSocketServer({ noServer: true });
    server.on('upgrade', (req, socket, head) => {
      wss.handleUpgrade(req, socket, head, (ws) => {
        ws.send(JSON.stringify({ hello: true, upstream: this.name, url: req.url, headers: req.headers }));
        ws.on('message', (data, binary) => {
          this.wsReceived.push({ user: String(req.headers['x-user-id'] ?? ''), text: data.toString(), at: Date.now() });
          ws.send(data, { binary });
        });
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    this.server = server;
    this.wss = wss;
    this.port = (server.address() as AddressInfo).port;
    return this;
  }

  /** Closes the listener and every connection: new connections to the port are refused. */
  async stop(): Promise<void> {
    const server = this.server;
    const wss = this.wss;
    this.server = null;
    this.wss = null;
    if (wss) {
      for (const c of wss.clients) c.terminate();
      await new Promise<void>((r) => wss.close(() => r()));
    }
    if (!server) return;
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  }

  /** Listens again on the same port. */
  restart(): Promise<this> {
    return this.start(this.port);
  }

  /** Requests whose x-user-id was `user`. */
  receivedFor(user: string): Received[] {
    return this.received.filter((r) => r.headers['x-user-id'] === user);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const hash = createHash('sha256');
    let bytes = 0;
    for await (const chunk of req) {
      hash.update(chunk as Buffer);
      bytes += (chunk as Buffer).length;
    }
    const received: Received = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, bodyBytes: bytes, bodySha256: hash.digest('hex'), at: Date.now() };
    const list = req.headers['x-cellgate-probe'] === undefined ? this.received : this.probes;
    list.push(received);
    const behave = list === this.probes ? this.probeBehave : this.behave;
    if (behave && (await behave(req, res, received, list.length))) return;
    const answer: UpstreamAnswer = { upstream: this.name, ...received };
    const body = JSON.stringify(answer);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }
}

/** Starts `names.length` upstreams. */
export async function startUpstreams(...names: string[]): Promise<Upstream[]> {
  return Promise.all(names.map((n) => new Upstream(n).start()));
}

export async function stopAll(upstreams: readonly Upstream[]): Promise<void> {
  await Promise.all(upstreams.map((u) => u.stop()));
}

export interface HttpResult {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
  text(): string;
  json<T = Record<string, unknown>>(): T;
}

/** One request with node:http (a fresh connection each time, so tests never share sockets). */
export function httpCall(
  url: string,
  options: { method?: string; headers?: Record<string, string | string[]>; body?: Buffer | string; timeoutMs?: number } = {},
): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const headers = { ...options.headers };
    // Node sends no length for a DELETE/OPTIONS body by default: say it, or the body is read as the next request.
    if (options.body !== undefined && headers['content-length'] === undefined) headers['content-length'] = String(Buffer.byteLength(options.body));
    // The path is sent exactly as written (a WHATWG URL would resolve "/a/../b" client-side).
    const m = /^http:\/\/([^/:]+):(\d+)(\/.*)?$/.exec(url);
    if (!m) throw new Error(`httpCall needs http://host:port/path, got ${url}`);
    const target = { host: m[1], port: Number(m[2]), path: m[3] ?? '/' };
    const req = httpRequest({ ...target, method: options.method ?? 'GET', headers, agent: false, timeout: options.timeoutMs ?? 30_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks);
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body,
          text: () => body.toString('utf8'),
          json: <T>() => JSON.parse(body.toString('utf8')) as T,
        });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`request to ${url} timed out`)));
    req.on('error', reject);
    req.end(options.body);
  });
}
