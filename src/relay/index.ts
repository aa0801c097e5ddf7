// The presence relay (issue 15): gateways of a region PUT their presence record here over
// HTTP; the relay writes them to etcd under <prefix>/gateways-relayed/<id>, many per
// transaction, on its own lease, so that etcd takes a few requests per table version
// instead of one per gateway. A PUT is answered 204 only once a record of that gateway at
// least as new is committed; the same record again (the gateway's heartbeat) is answered
// at once, without a write. It never touches <prefix>/gateways/ (the gateways' own records).
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { cgError } from '../errors';
import { createEtcdClient, EtcdContext, resolveEtcdOptions, type EtcdStoreOptions } from '../store/etcd-client';
import type { PresenceRecord } from '../store/types';
import { systemClock, type Clock, type TimerHandle } from '../clock';
import type { RelayLog } from './log';
import { RelayEntries } from './relay-entries';
import { createRelayServer } from './relay-http';
import { RelayLease } from './relay-lease';
import { RelayWriter, type WriterStats } from './relay-writer';

export { MAX_BODY_BYTES, MAX_GATEWAY_TTL_SECONDS } from './relay-http';
export { MAX_TXN_OPS } from './relay-writer';
export type { RelayLog } from './log';

export const DEFAULT_RELAY_TTL_SECONDS = 10;
export const DEFAULT_MAX_GATEWAYS = 20_000;
/** A PUT or DELETE not committed within this long is answered 503 STORE_UNAVAILABLE. */
export const COMMIT_DEADLINE_MS = 5_000;
/** Bound on the bytes of records held (20,000 gateways of ~12 KiB). */
export const MAX_TOTAL_BYTES = 256 * 1024 * 1024;
const MAX_WAITERS_PER_GATEWAY = 4;
const SWEEP_INTERVAL_MS = 500;

export interface PresenceRelayOptions {
  /** etcd endpoints, prefix, TLS and auth: the same options as the store's. */
  readonly etcd: EtcdStoreOptions;
  /** Written into every record it relays ("relay" field), and logged. */
  readonly id: string;
  readonly host: string;
  /** 0: any free port. */
  readonly port: number;
  readonly ttlSeconds?: number;
  readonly maxGateways?: number;
  /** Shared bearer token; null: none asked. */
  readonly token?: string | null;
  readonly commitDeadlineMs?: number;
  readonly clock?: Clock;
  readonly log?: RelayLog;
}

export interface PresenceRelay {
  readonly id: string;
  /** http://HOST:PORT */
  readonly url: string;
  readonly gateways: number;
  readonly stats: WriterStats;
  /** Stops listening, answers waiting requests 503, revokes the lease (every relayed key goes). */
  close(): Promise<void>;
}

export async function startPresenceRelay(opts: PresenceRelayOptions): Promise<PresenceRelay> {
  const clock = opts.clock ?? systemClock;
  const log = opts.log ?? (() => undefined);
  const ttlSeconds = opts.ttlSeconds ?? DEFAULT_RELAY_TTL_SECONDS;
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1) throw cgError('USAGE', `the relay's lease TTL must be a whole number of seconds >= 1, got ${ttlSeconds}`);
  const resolved = resolveEtcdOptions(opts.etcd);
  const ctx = new EtcdContext(createEtcdClient(resolved), resolved, `etcd:${resolved.endpoints.join(',')}`);
  let writer: RelayWriter | null = null;
  const lease = new RelayLease(ctx, ttlSeconds, clock, log, {
    granted: () => writer?.kick(),
    lost: () => entries.leaseLost(),
  });
  const entries = new RelayEntries(ctx.keys.relayedGatewaysPrefix, {
    maxGateways: opts.maxGateways ?? DEFAULT_MAX_GATEWAYS,
    maxTotalBytes: MAX_TOTAL_BYTES,
    commitDeadlineMs: opts.commitDeadlineMs ?? COMMIT_DEADLINE_MS,
    maxWaitersPerGateway: MAX_WAITERS_PER_GATEWAY,
  }, clock, () => writer?.kick());
  writer = new RelayWriter(ctx, () => entries, lease, clock, log);
  try {
    await lease.start();
  } catch (err) {
    ctx.client.close();
    throw err;
  }
  const relayField = { relay: opts.id };
  const server = createRelayServer({
    put: (id: string, record: PresenceRecord, ttl: number) => entries.put(id, JSON.stringify({ ...record, ...relayField }), ttl),
    remove: (id: string) => entries.remove(id),
    health: () => ({ ok: lease.id !== null, gateways: entries.size }),
  }, opts.token ?? null);
  // A gateway keeps one keep-alive connection; twice the gateways leaves room for reconnects.
  server.maxConnections = 2 * (opts.maxGateways ?? DEFAULT_MAX_GATEWAYS) + 100;
  try {
    await listen(server, opts.host, opts.port);
  } catch (err) {
    await lease.close();
    ctx.client.close();
    throw cgError('USAGE', `cannot listen on ${opts.host}:${opts.port}: ${(err as Error).message}`);
  }
  let sweep: TimerHandle | null = null;
  const sweepSoon = () => {
    sweep = clock.setTimer(() => {
      const expired = entries.expire();
      if (expired > 0) log('relay.expired', { gateways: expired });
      sweepSoon();
    }, SWEEP_INTERVAL_MS);
  };
  sweepSoon();
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  let closing: Promise<void> | null = null;
  const w = writer;
  return {
    id: opts.id,
    url: `http://${host}:${address.port}`,
    get gateways() {
      return entries.size;
    },
    get stats() {
      return w.counts;
    },
    close: () => (closing ??= (async () => {
      if (sweep) clock.clearTimer(sweep);
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      await w.stop();
      entries.failAll(cgError('STORE_UNAVAILABLE', `presence relay ${opts.id} is stopping`));
      await lease.close();
      ctx.client.close();
      server.closeAllConnections();
      await closed;
    })()),
  };
}

function listen(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}
