// The zone server's long-lived traffic: WebSockets, slow downloads and long polls. Each is
// judged by the same fencing as a request when it starts; what happens later is logged to
// the stream log (one JSON line per event, written synchronously) so that the harness can
// compare it with the table history: a WebSocket message that reached a zone after its
// cell moved away, a slow response still streaming from the old zone after the flip.
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { ZoneLogLine } from './zone-server';

/** The fencing verdict (fencing's Ownership kind), taken through zone-server.ts so that only it imports fencing. */
type Verdict = ZoneLogLine['verdict'];

export type StreamEvent = 'ws-open' | 'ws-refused' | 'ws-msg' | 'ws-close' | 'slow-end';

export interface StreamLogLine {
  readonly t: number;
  readonly srv: string;
  readonly zone: string;
  readonly event: StreamEvent;
  /** The client's x-ws-id (WebSockets) or x-request-id (slow requests). */
  readonly id: string | null;
  readonly cell: string | null;
  readonly epoch: number | null;
  /** ws-msg: the client's message number; slow-end: the chunks written. */
  readonly seq?: number;
  /** ws-msg: this server's verdict on the socket's cell now (the gateway must have closed it before it is stale). */
  readonly verdict?: Verdict;
  /** ws-close: the close code; slow-end: whether the response was written to the end. */
  readonly code?: number;
  readonly completed?: boolean;
  /** slow-end: when the response started. */
  readonly startedAt?: number;
}

/** Hop-by-hop headers (RFC 9110 §7.6.1) and every header the request's Connection names. */
const HOP = ['keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', 'expect'];

/** The hop-by-hop headers present in a (non-upgrade) request, `connection` itself excepted (undici sets it). */
export function hopHeaders(headers: IncomingHttpHeaders): string[] {
  const found = HOP.filter((h) => headers[h] !== undefined);
  const conn = headers.connection;
  for (const token of (typeof conn === 'string' ? conn : '').split(',').map((x) => x.trim().toLowerCase())) {
    if (token && token !== 'keep-alive' && token !== 'close' && headers[token] !== undefined && !found.includes(token)) found.push(token);
  }
  return found;
}

export interface StreamDeps {
  readonly zone: string;
  readonly srv: string;
  readonly enforce: boolean;
  judge(req: IncomingMessage): Promise<{ readonly kind: Verdict }>;
  recheck(headers: IncomingHttpHeaders): { readonly kind: Verdict };
  log(line: StreamLogLine): void;
}

type SlowKind = 'slow' | 'poll';

function header(h: IncomingHttpHeaders, name: string): string | null {
  const v = h[name];
  return typeof v === 'string' ? v : Array.isArray(v) ? (v[0] ?? null) : null;
}

function intHeader(h: IncomingHttpHeaders, name: string): number | null {
  const v = header(h, name);
  return v !== null && /^\d{1,15}$/.test(v) ? Number(v) : null;
}

function queryMs(url: string, key: string, fallback: number): number {
  const m = new RegExp(`[?&]${key}=(\\d{1,7})`).exec(url);
  return m ? Math.min(Number(m[1]), 120_000) : fallback;
}

export function serveStreams(deps: StreamDeps) {
  const { zone, srv } = deps;
  const wss = new WebSocketServer({ noServer: true });
  const base = (h: IncomingHttpHeaders) => ({ srv, zone, cell: header(h, 'x-cell-id'), epoch: intHeader(h, 'x-cell-epoch') });

  function onSocket(ws: WebSocket, req: IncomingMessage): void {
    const id = header(req.headers, 'x-ws-id');
    const facts = base(req.headers);
    deps.log({ t: Date.now(), ...facts, event: 'ws-open', id });
    ws.send(JSON.stringify({ hello: true, zone, srv, cell: facts.cell, epoch: facts.epoch }));
    ws.on('message', (data) => {
      const seq = Number(/^m(\d+)$/.exec(data.toString())?.[1] ?? -1);
      // Logged before the echo: a message that reached this zone is on disk.
      deps.log({ t: Date.now(), ...facts, event: 'ws-msg', id, seq, verdict: deps.recheck(req.headers).kind });
      ws.send(JSON.stringify({ zone, srv, cell: facts.cell, epoch: facts.epoch, seq }));
    });
    ws.on('close', (code) => deps.log({ t: Date.now(), ...facts, event: 'ws-close', id, code }));
    ws.on('error', () => undefined);
  }

  return {
    /** Whether a URL asks for a slow response: /slow/… (a download, a chunk every chunkMs) or /poll/… (nothing until the end). */
    slowKind(url: string): SlowKind | null {
      return url.startsWith('/slow/') ? 'slow' : url.startsWith('/poll/') ? 'poll' : null;
    },

    /** Answers a judged, owned request slowly: for ?ms=N in all, logging how it ended. */
    serveSlow(kind: SlowKind, req: IncomingMessage, res: ServerResponse, line: ZoneLogLine): void {
      const url = req.url ?? '/';
      const totalMs = queryMs(url, 'ms', 5_000);
      const chunkMs = Math.max(20, queryMs(url, 'chunkMs', 200));
      const startedAt = Date.now();
      let chunks = 0;
      let timer: NodeJS.Timeout | null = null;
      let ended = false;
      const end = (completed: boolean) => {
        if (ended) return;
        ended = true;
        if (timer) clearTimeout(timer);
        deps.log({ t: Date.now(), ...base(req.headers), event: 'slow-end', id: line.rid, seq: chunks, completed, startedAt });
      };
      res.on('close', () => end(res.writableFinished));
      const facts = JSON.stringify({ zone, srv, cell: line.cell, epoch: line.epoch, rev: line.rev, owned: true, user: line.user, rid: line.rid, method: line.method, bytes: line.bytes, sha: line.sha });
      if (kind === 'poll') {
        timer = setTimeout(() => {
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(facts) });
          res.end(facts);
        }, totalMs);
        return;
      }
      // A download: the facts first (so the client knows the zone at once), then a line per chunk.
      res.writeHead(200, { 'content-type': 'application/x-ndjson', 'x-zone': zone, 'x-srv': srv });
      res.write(`${facts}\n`);
      const tick = () => {
        chunks++;
        if (Date.now() - startedAt >= totalMs) return void res.end(`{"chunk":${chunks},"end":true}\n`);
        res.write(`{"chunk":${chunks}}\n`);
        timer = setTimeout(tick, chunkMs);
      };
      timer = setTimeout(tick, chunkMs);
    },

    /** A WebSocket upgrade: judged like a request (421 when this zone does not own the cell at that epoch), then an echo. */
    upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
      socket.on('error', () => undefined);
      void deps.judge(req).then((verdict) => {
        const refused = deps.enforce && (verdict.kind === 'notOwned' || verdict.kind === 'unknown');
        if (refused) {
          deps.log({ t: Date.now(), ...base(req.headers), event: 'ws-refused', id: header(req.headers, 'x-ws-id') });
          socket.end('HTTP/1.1 421 Misdirected Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
          return;
        }
        wss.handleUpgrade(req, socket, head, (ws) => onSocket(ws, req));
      }, () => socket.destroy());
    },

    close(): void {
      for (const ws of wss.clients) ws.terminate();
      wss.close();
    },
  };
}
