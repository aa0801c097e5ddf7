// WebSocket clients through the gateways: each holds one socket to the zone of its user,
// sends a numbered message every messageEveryMs and expects the zone server's echo (which
// names the zone). When the gateway closes the socket (code 1012 when the cell freezes or
// moves) the client reconnects at once, as a browser app would; a reconnect to a frozen
// cell is held by the gateway until the flip. Every connection and every message is
// recorded, with the x-ws-id the zone server logs, so that the harness can tell which zone
// each message reached and when.
import WebSocket from 'ws';

export interface WsClientSpec {
  readonly kind: 'websocket';
  /** One client per user, spread over the gateways. */
  readonly users: readonly string[];
  readonly messageEveryMs: number;
  /** Longest a message may wait for its echo (unless its socket was closed meanwhile). */
  readonly echoDeadlineMs: number;
  /** Longest from a close by the gateway to the next socket's first message (a reconnect may be held during a freeze). */
  readonly reconnectDeadlineMs: number;
}

export interface WsSession {
  /** `CLIENT.CONN`, sent as x-ws-id and logged by the zone server. */
  readonly id: string;
  readonly client: string;
  readonly conn: number;
  readonly user: string;
  gw: number;
  /** Connecting began. */
  readonly startedAt: number;
  /** The zone server's hello arrived (0: never). */
  openedAt: number;
  zone: string | null;
  cell: string | null;
  epoch: number | null;
  closedAt: number;
  /** The close code the client saw (1012: the gateway's "service restart"). */
  code: number | null;
  /** server: the other side closed it; harness: the run ended; failed: it never opened. */
  closedBy: 'server' | 'harness' | 'failed' | null;
  error: string | null;
}

export interface WsMessage {
  readonly session: string;
  readonly seq: number;
  readonly sentAt: number;
  echoAt: number;
  zone: string | null;
}

export interface WsRecords {
  readonly sessions: WsSession[];
  readonly messages: WsMessage[];
}

const RETRY_MS = 100;

export class WsClients {
  readonly records: WsRecords = { sessions: [], messages: [] };
  private running = false;
  private readonly open = new Set<WebSocket>();
  private readonly loops: Promise<void>[] = [];

  constructor(private readonly ports: readonly number[], private readonly specs: readonly WsClientSpec[]) {}

  start(): void {
    this.running = true;
    let n = 0;
    for (const spec of this.specs) {
      for (const user of spec.users) {
        const client = `ws${(n++).toString().padStart(3, '0')}`;
        this.loops.push(this.run(spec, client, user, n % this.ports.length));
      }
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    for (const ws of this.open) ws.close(1000, 'run over');
    await Promise.all(this.loops);
  }

  /** Connects again and again until the run ends (to the next gateway when one refuses). */
  private async run(spec: WsClientSpec, client: string, user: string, gw: number): Promise<void> {
    for (let conn = 1; this.running; conn++) {
      const s = await this.session(spec, client, conn, user, gw);
      if (s.closedBy === 'failed') {
        if (s.error === 'ECONNREFUSED') gw = (gw + 1) % this.ports.length;
        await new Promise((r) => setTimeout(r, RETRY_MS));
      }
    }
  }

  private session(spec: WsClientSpec, client: string, conn: number, user: string, gw: number): Promise<WsSession> {
    const s: WsSession = {
      id: `${client}.${conn}`, client, conn, user, gw, startedAt: Date.now(), openedAt: 0, zone: null, cell: null, epoch: null,
      closedAt: 0, code: null, closedBy: null, error: null,
    };
    this.records.sessions.push(s);
    return new Promise((resolve) => {
      const ws = new WebSocket(`ws://127.0.0.1:${this.ports[gw]}/live/${user}`, {
        headers: { 'x-user-id': user, 'x-ws-id': s.id }, handshakeTimeout: spec.reconnectDeadlineMs + 5_000,
      });
      this.open.add(ws);
      const pending = new Map<number, WsMessage>();
      let seq = 0;
      let ticker: NodeJS.Timeout | null = null;
      ws.on('message', (data) => {
        let j: { hello?: boolean; zone?: string; cell?: string; epoch?: number; seq?: number } = {};
        try { j = JSON.parse(data.toString()) as typeof j; } catch { return; }
        if (j.hello) {
          s.openedAt = Date.now();
          s.zone = j.zone ?? null;
          s.cell = j.cell ?? null;
          s.epoch = j.epoch ?? null;
          ticker = setInterval(() => {
            const m: WsMessage = { session: s.id, seq: ++seq, sentAt: Date.now(), echoAt: 0, zone: null };
            this.records.messages.push(m);
            pending.set(m.seq, m);
            ws.send(`m${m.seq}`);
          }, spec.messageEveryMs);
          return;
        }
        const m = j.seq === undefined ? undefined : pending.get(j.seq);
        if (!m) return;
        pending.delete(m.seq);
        m.echoAt = Date.now();
        m.zone = j.zone ?? null;
      });
      ws.on('unexpected-response', (_req, res) => {
        s.error = `HTTP_${res.statusCode ?? 0}`;
        res.resume();
        ws.terminate();
      });
      ws.on('error', (err: NodeJS.ErrnoException) => (s.error ??= err.code ?? err.message.slice(0, 80)));
      ws.on('close', (code) => {
        if (ticker) clearInterval(ticker);
        this.open.delete(ws);
        s.closedAt = Date.now();
        s.code = code;
        s.closedBy = s.openedAt === 0 ? 'failed' : this.running ? 'server' : 'harness';
        resolve(s);
      });
    });
  }
}
