// A TCP proxy the harness controls: put in front of an etcd member (to cut one gateway off
// the control plane) or a zone endpoint (to add latency or drop connections). Modes:
//   pass      — forward, optionally delaying every chunk by latencyMs and resetting the
//               connection on a client chunk with probability dropRate;
//   refuse    — every connection is reset at once (a dead host that answers with RST);
//   blackhole — connections are accepted and then nothing goes through in either
//               direction (a cut link / partition); on leaving this mode they are reset,
//               as the peers' TCP timers would eventually do.
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

export type ProxyMode =
  | { readonly kind: 'pass'; readonly latencyMs?: number; readonly dropRate?: number }
  | { readonly kind: 'refuse' }
  | { readonly kind: 'blackhole' };

interface Pair {
  readonly client: Socket;
  readonly upstream: Socket;
}

/** Writes chunks to `dst` after a delay, in order. */
class DelayedPipe {
  private readonly queue: { due: number; chunk: Buffer }[] = [];
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly dst: Socket) {}

  push(chunk: Buffer, delayMs: number): void {
    const last = this.queue[this.queue.length - 1];
    this.queue.push({ due: Math.max(Date.now() + delayMs, last?.due ?? 0), chunk });
    this.schedule();
  }

  clear(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.queue.length = 0;
  }

  private schedule(): void {
    if (this.timer || this.queue.length === 0) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      const now = Date.now();
      while (this.queue.length && this.queue[0]!.due <= now) {
        const { chunk } = this.queue.shift()!;
        if (!this.dst.destroyed) this.dst.write(chunk);
      }
      this.schedule();
    }, Math.max(0, this.queue[0]!.due - Date.now()));
  }
}

export class FaultProxy {
  private server: Server | null = null;
  private mode: ProxyMode = { kind: 'pass' };
  private readonly pairs = new Set<Pair>();
  private listenPort = 0;
  /** Connections reset by this proxy (refuse, drops, leaving blackhole). */
  resets = 0;
  connections = 0;

  constructor(readonly name: string, readonly targetPort: number, readonly targetHost = '127.0.0.1') {}

  get port(): number {
    return this.listenPort;
  }

  get currentMode(): ProxyMode {
    return this.mode;
  }

  async start(port = 0): Promise<number> {
    const server = createServer({ noDelay: true }, (client) => this.accept(client));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    this.server = server;
    this.listenPort = (server.address() as AddressInfo).port;
    return this.listenPort;
  }

  setMode(mode: ProxyMode): void {
    const before = this.mode;
    this.mode = mode;
    if (mode.kind === 'refuse' || (before.kind === 'blackhole' && mode.kind !== 'blackhole')) this.resetAll();
  }

  /** Resets every open connection. */
  resetAll(): void {
    for (const pair of [...this.pairs]) this.reset(pair);
  }

  async close(): Promise<void> {
    this.resetAll();
    const server = this.server;
    this.server = null;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    this.connections++;
    client.on('error', () => undefined);
    if (this.mode.kind === 'refuse') {
      this.resets++;
      client.resetAndDestroy();
      return;
    }
    const upstream = connect({ port: this.targetPort, host: this.targetHost, noDelay: true });
    upstream.on('error', () => undefined);
    const pair: Pair = { client, upstream };
    this.pairs.add(pair);
    const toUpstream = new DelayedPipe(upstream);
    const toClient = new DelayedPipe(client);
    client.on('data', (chunk: Buffer) => {
      const m = this.mode;
      if (m.kind === 'blackhole') return;
      if (m.kind === 'pass' && m.dropRate && Math.random() < m.dropRate) return this.reset(pair);
      if (m.kind === 'pass' && m.latencyMs) toUpstream.push(chunk, m.latencyMs);
      else if (!upstream.destroyed) upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      const m = this.mode;
      if (m.kind === 'blackhole') return;
      if (m.kind === 'pass' && m.latencyMs) toClient.push(chunk, m.latencyMs);
      else if (!client.destroyed) client.write(chunk);
    });
    const done = () => {
      toUpstream.clear();
      toClient.clear();
      this.pairs.delete(pair);
    };
    // A refused or reset upstream is passed on as a reset, so the client sees what it would see directly.
    upstream.once('close', (hadError) => {
      done();
      if (hadError) client.resetAndDestroy();
      else client.end();
    });
    client.once('close', (hadError) => {
      done();
      if (hadError) upstream.resetAndDestroy();
      else upstream.end();
    });
  }

  private reset(pair: Pair): void {
    this.resets++;
    this.pairs.delete(pair);
    pair.client.resetAndDestroy();
    pair.upstream.resetAndDestroy();
  }
}
