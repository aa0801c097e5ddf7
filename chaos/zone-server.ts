#!/usr/bin/env node
// The chaos harness's zone server: one upstream endpoint of one zone, run as its own process
// (so it can be killed -9, stopped and restarted). It is the oracle of the harness: it
// follows the routing table with cellgate's own fencing (src/fencing) and writes one JSON
// line per request — synchronously, before answering, so that every answered request is on
// disk even if the process is killed right after:
//   {t, srv, zone, rid, user, method, cell, epoch, rev, hdrZone, verdict, why, view, bytes, sha, status}
// It answers with the same facts (and the body's sha256), so the load generator can check
// each POST body end to end. A request this zone does not own at its epoch is refused
// 421 NOT_CELL_OWNER (unless --no-enforce), which is what a fenced data tier does.
//
// A gateway may apply a new table a few ms before this server does; a request routed with
// a newer revision than the one this server follows waits (bounded) for the server to catch
// up before it is judged, so that a correct route is never refused because the oracle lags.
//
// Long-lived traffic (zone-streams.ts): WebSocket upgrades (judged like requests, then an echo
// that names the zone; every message logged with its time, so the harness can tell whether
// one reached a zone after its cell moved away), slow downloads (/slow/…?ms=N) and long polls
// (/poll/…?ms=N). Those go to a second log, streams-SRV.jsonl (StreamLogLine). Hop-by-hop
// headers that reached this server are listed in the request's log line (`hop`).
import { createHash } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import { OwnershipFollower, type Ownership, requestUserId } from '../src/fencing';
import { openStore } from '../src/store/open';
import { hopHeaders, serveStreams } from './zone-streams';

export interface ZoneLogLine {
  readonly t: number;
  readonly srv: string;
  readonly zone: string;
  readonly rid: string | null;
  readonly user: string | null;
  readonly method: string;
  readonly cell: string | null;
  readonly epoch: number | null;
  /** x-routing-revision: the table version the gateway routed with. */
  readonly rev: number | null;
  /** x-cell-zone: the zone the gateway meant to send it to. */
  readonly hdrZone: string | null;
  readonly verdict: Ownership['kind'];
  readonly why: string | null;
  /** The table version this server judged with. */
  readonly view: number | null;
  readonly bytes: number;
  readonly sha: string;
  readonly status: number;
  /** Hop-by-hop headers that reached this server (absent when none did): a gateway must strip them. */
  readonly hop?: readonly string[];
}

const CATCH_UP_MS = 2_000;

function header(req: IncomingMessage, name: string): string | null {
  const v = req.headers[name];
  return typeof v === 'string' ? v : Array.isArray(v) ? (v[0] ?? null) : null;
}

function intHeader(req: IncomingMessage, name: string): number | null {
  const v = header(req, name);
  return v !== null && /^\d{1,15}$/.test(v) ? Number(v) : null;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      zone: { type: 'string' }, server: { type: 'string' }, port: { type: 'string' }, store: { type: 'string' },
      prefix: { type: 'string' }, log: { type: 'string' }, 'no-enforce': { type: 'boolean' }, 'work-ms': { type: 'string' },
    },
    strict: true,
  });
  const zone = values.zone;
  const storeSpec = values.store;
  const logPath = values.log;
  if (!zone || !storeSpec || !logPath) throw new Error('usage: zone-server --zone Z --store SPEC --log FILE [--server NAME] [--port N] [--prefix P] [--no-enforce] [--work-ms N]');
  const srv = values.server ?? zone;
  const enforce = values['no-enforce'] !== true;
  const workMs = Number(values['work-ms'] ?? 2);
  const store = openStore(storeSpec, { prefix: values.prefix });
  const follower = new OwnershipFollower(store);
  const logFd = openSync(logPath, 'a');
  const streamLogFd = openSync(logPath.replace(/zone-([^/]*)\.jsonl$/, 'streams-$1.jsonl'), 'a');

  const viewVersion = () => follower.view?.version ?? null;

  async function judge(req: IncomingMessage): Promise<Ownership> {
    const rev = intHeader(req, 'x-routing-revision');
    if (rev !== null) {
      const deadline = Date.now() + CATCH_UP_MS;
      while ((viewVersion() ?? 0) < rev && Date.now() < deadline) await sleep(5);
    }
    return follower.check(zone as string, req.headers);
  }

  function reply(res: ServerResponse, status: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }

  const streams = serveStreams({ zone: zone as string, srv, enforce, judge, recheck: (headers) => follower.check(zone as string, headers), log: (line) => writeSync(streamLogFd, `${JSON.stringify(line)}\n`) });
  const unreachableFrom = new Set<string>();
  const server = createServer((req, res) => {
    const url = req.url ?? '/';
    if (url.startsWith('/__chaos/state')) return reply(res, 200, { zone, srv, view: viewVersion(), pid: process.pid });
    // A one-sided partition: health probes from the named gateways see this server unreachable.
    if (url.startsWith('/__chaos/unreachable-from?')) {
      unreachableFrom.clear();
      for (const g of (new URLSearchParams(url.split('?')[1]).get('gateways') ?? '').split(',')) if (g) unreachableFrom.add(g);
      return reply(res, 200, { unreachableFrom: [...unreachableFrom] });
    }
    const prober = req.headers['x-cellgate-probe'];
    if (typeof prober === 'string' && unreachableFrom.has(prober)) return void req.socket.destroy();
    const streamed = streams.slowKind(url);
    const hash = createHash('sha256');
    let bytes = 0;
    req.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      hash.update(chunk);
    });
    req.on('error', () => undefined);
    req.on('end', () => {
      void (async () => {
        const verdict = await judge(req);
        if (workMs > 0) await sleep(Math.random() * 2 * workMs);
        const status = verdict.kind === 'notOwned' && enforce ? 421 : verdict.kind === 'unknown' && enforce ? 503 : 200;
        const hop = hopHeaders(req.headers);
        const line: ZoneLogLine = {
          t: Date.now(), srv, zone: zone as string, rid: header(req, 'x-request-id'), user: requestUserId(req.headers),
          method: req.method ?? 'GET', cell: header(req, 'x-cell-id'),
          epoch: intHeader(req, 'x-cell-epoch'), rev: intHeader(req, 'x-routing-revision'), hdrZone: header(req, 'x-cell-zone'),
          verdict: verdict.kind, why: verdict.kind === 'notOwned' ? verdict.why : null, view: viewVersion(),
          bytes, sha: hash.digest('hex'), status, ...(hop.length ? { hop } : {}),
        };
        // Synchronously, before answering: an answered request is always in the log.
        writeSync(logFd, `${JSON.stringify(line)}\n`);
        if (status === 421) return reply(res, 421, { error: 'NOT_CELL_OWNER', message: line.why, zone, srv });
        if (status === 503) return reply(res, 503, { error: 'NO_ROUTING_TABLE', message: 'the zone server has no table yet', zone, srv });
        if (streamed) return streams.serveSlow(streamed, req, res, line);
        reply(res, 200, {
          zone, srv, cell: line.cell, epoch: line.epoch, rev: line.rev, owned: verdict.kind === 'owned',
          user: line.user, rid: line.rid, method: line.method, bytes, sha: line.sha,
        });
      })();
    });
  });
  server.keepAliveTimeout = 10_000;
  server.on('upgrade', (req, socket, head) => streams.upgrade(req, socket, head));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(Number(values.port ?? 0), '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;

  let stopping = false;
  const stop = () => {
    if (stopping) return process.exit(1);
    stopping = true;
    server.close();
    server.closeIdleConnections();
    streams.close();
    void follower.close().then(() => store.close()).finally(() => {
      closeSync(logFd);
      closeSync(streamLogFd);
      process.exit(0);
    });
    setTimeout(() => process.exit(0), 2_000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), event: 'listening', zone, srv, port })}\n`);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`zone-server: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
