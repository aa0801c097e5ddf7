// End-to-end building blocks: `cellgate serve` gateways as real processes, recording zone
// servers (fenced with the product's own plugin) in this process, and a small HTTP client.
// Every process and server is stopped by `stop()`, which tests call in teardown.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import fastify, { type FastifyInstance } from 'fastify';
import { fencingPlugin } from '../../src/fencing';
import type { TableStore } from '../../src/store/types';
import { CELLGATE } from './cli';

export interface GatewayProcess {
  readonly id: string;
  readonly traffic: string;
  readonly admin: string;
  readonly child: ChildProcess;
  stderr(): string;
  /** SIGTERM and wait for the exit code. */
  stop(): Promise<number | null>;
  kill(): void;
  pause(): void;
  resume(): void;
  exited: Promise<number | null>;
}

const live = new Set<ChildProcess>();
const stateHomes = new Set<string>();
process.on('exit', () => {
  for (const c of live) try { c.kill('SIGKILL'); } catch { /* gone */ }
  for (const d of stateHomes) rmSync(d, { recursive: true, force: true });
});

/**
 * A fresh XDG_STATE_HOME for one gateway process: the default fail-static snapshot goes
 * there, not into the working directory, and is not shared with the test's other gateways
 * (a gateway that found another's snapshot would be ready before it reached the store).
 * Tests of the snapshot itself pass their own XDG_STATE_HOME or snapshotPath.
 */
export function freshStateHome(): string {
  const dir = mkdtempSync(join(tmpdir(), 'cellgate-state-'));
  stateHomes.add(dir);
  return dir;
}

/** Starts `cellgate serve` and resolves once it listens (its 'listening' line on stderr). */
export function startGatewayProcess(args: readonly string[], id: string, timeoutMs = 20_000, env: NodeJS.ProcessEnv = {}): Promise<GatewayProcess> {
  const child = spawn(process.execPath, [CELLGATE, 'serve', '--id', id, ...args], {
    stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, XDG_STATE_HOME: freshStateHome(), ...env },
  });
  live.add(child);
  let stderr = '';
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => { live.delete(child); resolve(code); }));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`gateway ${id} did not start: ${stderr}`)); }, timeoutMs);
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
      const line = stderr.split('\n').find((l) => l.includes('"event":"listening"'));
      if (!line) return;
      clearTimeout(timer);
      const info = JSON.parse(line) as { traffic: string; admin: string };
      resolve({
        id, traffic: info.traffic, admin: info.admin, child, exited,
        stderr: () => stderr,
        stop: async () => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM'); return exited; },
        kill: () => child.kill('SIGKILL'),
        pause: () => child.kill('SIGSTOP'),
        resume: () => child.kill('SIGCONT'),
      });
    });
    void exited.then((code) => { clearTimeout(timer); reject(new Error(`gateway ${id} exited (${code}) before listening: ${stderr}`)); });
  });
}

export interface Delivery {
  readonly zone: string;
  readonly id: string;
  readonly method: string;
  readonly bodySha256: string;
  readonly cell: string;
  readonly epoch: string;
}

/** A zone server that fences with cellgate's plugin and records every request it served. */
export class RecordingZone {
  readonly deliveries: Delivery[] = [];
  private app: FastifyInstance | null = null;
  port = 0;

  constructor(readonly zone: string, private readonly store: TableStore) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(port = 0): Promise<this> {
    const app = fastify({ logger: false, bodyLimit: 4 * 1024 * 1024 });
    await app.register(fencingPlugin, { store: this.store, zone: this.zone });
    app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
    app.all('/*', async (request) => {
      const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
      const delayMs = Number((request.query as Record<string, string>).delayMs ?? 0);
      if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
      const d: Delivery = {
        zone: this.zone, id: String(request.headers['x-request-id'] ?? ''), method: request.method,
        bodySha256: createHash('sha256').update(body).digest('hex'),
        cell: String(request.headers['x-cell-id'] ?? ''), epoch: String(request.headers['x-cell-epoch'] ?? ''),
      };
      this.deliveries.push(d);
      return d;
    });
    await app.listen({ host: '127.0.0.1', port });
    this.port = (app.server.address() as AddressInfo).port;
    this.app = app;
    return this;
  }

  async stop(): Promise<void> {
    await this.app?.close();
    this.app = null;
  }
}

export interface Answer {
  readonly status: number;
  readonly json: Record<string, unknown>;
  readonly ms: number;
}

/** One HTTP request with a fresh connection, bounded by timeoutMs. */
export function send(base: string, path: string, opts: { method?: string; headers?: Record<string, string>; body?: Buffer; timeoutMs?: number } = {}): Promise<Answer> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const url = new URL(path, base);
    const req = httpRequest(url, { method: opts.method ?? 'GET', headers: { ...opts.headers, ...(opts.body ? { 'content-type': 'application/octet-stream', 'content-length': String(opts.body.length) } : {}) }, agent: false, timeout: opts.timeoutMs ?? 15_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (c: string) => (text += c)).on('end', () => {
        let json: Record<string, unknown> = {};
        try { json = JSON.parse(text) as Record<string, unknown>; } catch { json = { raw: text }; }
        resolve({ status: res.statusCode ?? 0, json, ms: Date.now() - started });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`timeout after ${opts.timeoutMs ?? 15_000} ms`)));
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** Topology YAML for zones whose upstreams are the given URLs. */
export function topologyYaml(zones: readonly { name: string; region: string; city: string; url: string; capacity?: number }[], cells = 16): string {
  const lines = zones.map((z) => `  - { name: ${z.name}, region: ${z.region}, city: ${z.city}, capacity: ${z.capacity ?? 100}, upstreams: ["${z.url}"] }`);
  return `name: e2e\ncells: ${cells}\nglobal: ${zones[0].name}\nzones:\n${lines.join('\n')}\n`;
}
