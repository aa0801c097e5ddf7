// The etcd store's options, its etcd3 client, and the one place where etcd3 / gRPC errors
// become ours: every call goes through `EtcdContext.call`, which bounds it in time and
// turns any failure into STORE_UNAVAILABLE, so nothing above the store sees gRPC.
import { Etcd3 } from 'etcd3';
import { cgError, isCellgateError, type CellgateError } from '../errors';
import { hostBreaker } from './etcd-breaker';
import { classifyEtcdError, diagnoseTls, explainEtcdError, plainEndpointWantsTls } from './etcd-errors';
import { perCallPolicy, runAs, type CallKind, type WritePolicyTestHooks } from './etcd-policy';
import { resolveEtcdSecurity, type EtcdSecurity, type ResolvedEtcdSecurity } from './etcd-security';
import { DEFAULT_TABLE_ENCODING, type TableEncoding } from './table-encoding';

export type { EtcdSecurity } from './etcd-security';

export interface EtcdStoreTestHooks extends WritePolicyTestHooks {
  /** Awaited before each watcher is created, with the revision it will start from. */
  beforeWatchCreate?(fromRevision: number): Promise<void> | void;
  /** While true, watch events are ignored: a watcher gone silent, which only the watchdog can make up for. */
  dropWatchEvents?: boolean;
}

export interface EtcdStoreOptions {
  /** "host:port" (or a full http(s):// URL) of one or more etcd members. */
  readonly endpoints: readonly string[];
  /** Key prefix of everything the store writes. */
  readonly prefix?: string;
  /** Bound on every unary call (a dead or frozen etcd fails a call after this long). */
  readonly callTimeoutMs?: number;
  /** Period of the watch's linearizable re-read, which catches anything a silent watcher missed. */
  readonly watchdogIntervalMs?: number;
  /** Bound on creating a watcher (etcd3's create() never settles while etcd is unreachable). */
  readonly watchCreateTimeoutMs?: number;
  /** Back-off between attempts to reach etcd again: from min, doubling, up to max. */
  readonly retryMinMs?: number;
  readonly retryMaxMs?: number;
  /** gRPC keepalive pings: etcd answers pings sent more often than every 5 s with GOAWAY. */
  readonly keepaliveTimeMs?: number;
  readonly keepaliveTimeoutMs?: number;
  /** TLS files and user/password (etcd-security.ts). */
  readonly security?: EtcdSecurity;
  /** How the table is written (table-encoding.ts): compressed by default; both are always read. */
  readonly tableEncoding?: TableEncoding;
  readonly testHooks?: EtcdStoreTestHooks;
  /**
   * The flag that names the etcd endpoints in the running command, for "check FLAG" hints:
   * `--etcd` (cellctl, the default), `--store` (cellgate serve, register, autopilot).
   */
  readonly flagHint?: string;
}

export interface ResolvedEtcdOptions {
  readonly endpoints: readonly string[];
  readonly prefix: string;
  readonly callTimeoutMs: number;
  readonly watchdogIntervalMs: number;
  readonly watchCreateTimeoutMs: number;
  readonly retryMinMs: number;
  readonly retryMaxMs: number;
  readonly keepaliveTimeMs: number;
  readonly keepaliveTimeoutMs: number;
  readonly security: ResolvedEtcdSecurity;
  readonly tableEncoding: TableEncoding;
  readonly testHooks: EtcdStoreTestHooks;
  readonly flagHint: string;
}

const DEFAULTS = {
  prefix: '/cellgate',
  flagHint: '--etcd',
  callTimeoutMs: 5_000,
  watchdogIntervalMs: 5_000,
  watchCreateTimeoutMs: 5_000,
  retryMinMs: 100,
  retryMaxMs: 5_000,
  keepaliveTimeMs: 10_000,
  keepaliveTimeoutMs: 5_000,
} as const;

const DURATION_KEYS = ['callTimeoutMs', 'watchdogIntervalMs', 'watchCreateTimeoutMs', 'retryMinMs', 'retryMaxMs', 'keepaliveTimeMs', 'keepaliveTimeoutMs'] as const;

export function resolveEtcdOptions(opts: EtcdStoreOptions): ResolvedEtcdOptions {
  const endpoints = [...(opts.endpoints ?? [])];
  if (endpoints.length === 0) throw cgError('USAGE', 'the etcd store needs at least one endpoint (host:port)');
  for (const e of endpoints) {
    if (!/^(https?:\/\/)?[^\s/,]+:\d{1,5}$/.test(e)) throw cgError('USAGE', `bad etcd endpoint "${e}": expected host:port`);
  }
  const security = resolveEtcdSecurity(opts.security ?? {}, endpoints);
  const prefix = (opts.prefix ?? DEFAULTS.prefix).replace(/\/+$/, '');
  if (!prefix.startsWith('/')) throw cgError('USAGE', `etcd prefix must start with "/", got "${opts.prefix}"`);
  const tableEncoding = opts.tableEncoding ?? DEFAULT_TABLE_ENCODING;
  if (tableEncoding !== 'deflate' && tableEncoding !== 'json') throw cgError('USAGE', `etcd store option tableEncoding must be deflate or json, got ${String(tableEncoding)}`);
  const resolved = { ...DEFAULTS, ...stripUndefined(opts), endpoints, prefix, security, tableEncoding, testHooks: opts.testHooks ?? {} };
  for (const key of DURATION_KEYS) {
    const v = resolved[key];
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw cgError('USAGE', `etcd store option ${key} must be a positive number of ms, got ${String(v)}`);
  }
  return Object.freeze(resolved);
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

export function createEtcdClient(opts: ResolvedEtcdOptions): Etcd3 {
  const { tls, auth } = opts.security;
  return new Etcd3({
    hosts: [...opts.security.urls],
    // Without a CA file, https:// endpoints are checked against the system's roots.
    ...(tls ? { credentials: { rootCertificate: tls.ca as Buffer, privateKey: tls.key, certChain: tls.cert } } : {}),
    ...(auth ? { auth: { username: auth.user, password: auth.password } } : {}),
    grpcOptions: {
      // Detect a peer that vanished without closing the TCP connection (a frozen VM, a cut link).
      'grpc.keepalive_time_ms': opts.keepaliveTimeMs,
      'grpc.keepalive_timeout_ms': opts.keepaliveTimeoutMs,
      'grpc.keepalive_permit_without_calls': 1,
      // gRPC's reconnect back-off grows to 120 s by default: far too slow to notice etcd is back.
      'grpc.initial_reconnect_backoff_ms': Math.min(opts.retryMinMs, 1_000),
      'grpc.max_reconnect_backoff_ms': Math.max(opts.retryMaxMs, 1_000),
    },
    faultHandling: {
      host: (host) => hostBreaker(host, { failuresToOpen: 3, cooldownMs: Math.min(opts.retryMaxMs, 1_000) }),
      // Reads retried (on another member), writes sent once: see etcd-policy.ts.
      // 6 attempts, backing off 100 ms to 800 ms: about 2.3 s, an election's worth.
      global: perCallPolicy({ readAttempts: 6, hooks: opts.testHooks }),
    },
    // Streams (watch, lease keepalive) live on; every unary call gets a deadline.
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + opts.callTimeoutMs }),
  });
}

/**
 * The store boundary: any error becomes STORE_UNAVAILABLE (ours pass through unchanged),
 * with a message that says what is wrong: a certificate problem, an authentication
 * failure, a missing permission, or an etcd that cannot be reached (etcd-errors.ts).
 */
export function toStoreError(err: unknown, what: string, opts?: ResolvedEtcdOptions, probe: { tlsProblem?: string | null; wantsTls?: boolean } = {}): CellgateError {
  if (isCellgateError(err)) return err;
  const explained = explainEtcdError(err, {
    what, endpoints: opts?.endpoints ?? [], prefix: opts?.prefix ?? '', user: opts?.security.auth?.user, flagHint: opts?.flagHint, ...probe,
  });
  return cgError('STORE_UNAVAILABLE', explained.message, { cause: err, detail: { reason: explained.reason } });
}

/**
 * toStoreError, after asking the first endpoint directly why gRPC could not connect: over
 * TLS, what is wrong with the certificates; in clear text, whether the server wants TLS
 * (etcd-errors.ts). Only for calls that found etcd unreachable, bounded by a short probe.
 */
export async function toStoreErrorDiagnosed(err: unknown, what: string, opts: ResolvedEtcdOptions): Promise<CellgateError> {
  const kind = isCellgateError(err) ? null : classifyEtcdError(err);
  const url = opts.security.urls[0]!;
  if (url.startsWith('https://') && (kind === 'unreachable' || kind === 'certificate')) {
    return toStoreError(err, what, opts, { tlsProblem: await diagnoseTls(url, opts.security.tls ?? {}) });
  }
  if (url.startsWith('http://') && kind === 'unreachable') return toStoreError(err, what, opts, { wantsTls: await plainEndpointWantsTls(url) });
  return toStoreError(err, what, opts);
}

/**
 * Resolves like `promise`, or rejects with STORE_UNAVAILABLE after `ms` ("cannot reach etcd at
 * …, check FLAG" when `endpoints` are given; FLAG is the command's flag for them).
 */
export function bounded<T>(promise: Promise<T>, ms: number, what: string, endpoints?: readonly string[], flagHint: string = DEFAULTS.flagHint): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    const message = endpoints?.length
      ? `cannot reach etcd at ${endpoints.join(',')}: ${what} got no answer within ${ms} ms (is it running? check ${flagHint})`
      : `etcd ${what}: no answer within ${ms} ms`;
    timer = setTimeout(() => reject(cgError('STORE_UNAVAILABLE', message, { detail: { reason: 'unreachable' } })), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export interface EtcdKeys {
  readonly table: string;
  readonly historyPrefix: string;
  readonly gatewaysPrefix: string;
  readonly relayedGatewaysPrefix: string;
  readonly endpointsPrefix: string;
}

export function etcdKeys(prefix: string): EtcdKeys {
  return { table: `${prefix}/table`, historyPrefix: `${prefix}/history/`, gatewaysPrefix: `${prefix}/gateways/`, relayedGatewaysPrefix: `${prefix}/gateways-relayed/`, endpointsPrefix: `${prefix}/endpoints/` };
}

/** What the store's parts (watch, presence) share. */
export class EtcdContext {
  readonly keys: EtcdKeys;

  constructor(readonly client: Etcd3, readonly opts: ResolvedEtcdOptions, readonly description: string) {
    this.keys = etcdKeys(opts.prefix);
  }

  /**
   * Runs one etcd call, bounded by callTimeoutMs, with errors translated. `kind` picks the
   * retry policy: a read may be sent again, a write never (its caller reconciles).
   */
  call<T>(what: string, kind: CallKind, fn: () => PromiseLike<T>): Promise<T> {
    const attempt = Promise.resolve().then(() => runAs(kind, fn)).then(
      (v) => v,
      async (err: unknown) => {
        // The diagnosis only improves the message: if it fails itself, the plain translation stands.
        throw await toStoreErrorDiagnosed(err, what, this.opts).catch(() => toStoreError(err, what, this.opts));
      },
    );
    return bounded(attempt, this.opts.callTimeoutMs, what, this.opts.endpoints, this.opts.flagHint);
  }
}
