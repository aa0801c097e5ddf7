// The gateway's configuration: one schema with defaults and units in the names, validated
// once before anything listens, then frozen. Every problem is reported with the path of the
// offending key (INVALID_CONFIG), so a bad file stops `cellgate serve` before it starts.
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { extname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import {
  NAME, Problems, checkInteger, checkObject, checkOneOf, checkString, deepFreeze, isRecord, join,
} from '../cells/check';
import type { RouteClass } from '../cells/types';
import { cgError } from '../errors';

export type UserIdSource =
  | { readonly header: string }
  | { readonly cookie: string }
  | { readonly query: string }
  | { readonly path: string };

export interface RouteRule {
  readonly prefix: string;
  readonly class: RouteClass;
}

export interface BufferConfig {
  /** Longest time one request is held while its cell is frozen. */
  readonly windowMs: number;
  /** Most requests held at once by this gateway; when full the oldest is answered 504 first. */
  readonly maxRequests: number;
  /** Largest request body kept in memory for one held request. */
  readonly maxBodyBytes: number;
}

export interface UpstreamConfig {
  readonly connectTimeoutMs: number;
  /** Time to the upstream's response headers, and the longest silence inside its body. */
  readonly requestTimeoutMs: number;
  /** Consecutive failures after which an endpoint is ejected (a refused connection ejects at once). */
  readonly ejectAfterFailures: number;
  /** First ejection lasts this long; each further one doubles it, up to ejectMaxMs. */
  readonly ejectBaseMs: number;
  readonly ejectMaxMs: number;
  /** Connections kept per upstream endpoint. */
  readonly connectionsPerEndpoint: number;
}

export interface GatewayConfig {
  readonly port: number;
  readonly adminPort: number;
  readonly host: string;
  /** The zone this gateway stands in (what `city` routes start from); null = unknown. */
  readonly zone: string | null;
  /** Unique name of this gateway in presence records. */
  readonly id: string;
  readonly userId: { readonly sources: readonly UserIdSource[] };
  readonly routes: readonly RouteRule[];
  readonly buffer: BufferConfig;
  readonly upstream: UpstreamConfig;
  /** Whether to keep (and append to) client-sent x-forwarded-* headers. */
  readonly trustProxy: boolean;
  /**
   * Where the last good routing table is kept for a restart without the store: a file,
   * false (nowhere), or true (the default, a location per store that `cellgate serve`
   * resolves: snapshot-location.ts; createGateway itself writes only to a given path).
   */
  readonly snapshotPath: string | boolean;
  /** Where the routing table lives: `file:PATH` or `etcd:HOST:PORT[,…]` (null = given on the command line). */
  readonly store: string | null;
  /** etcd key prefix of the table, history and presence. */
  readonly prefix: string;
  /** Longest time shutdown() waits for in-flight requests before closing their connections. */
  readonly shutdownGraceMs: number;
  readonly freeze: FreezeConfig;
  readonly etcd: EtcdConfig | null;
}

export const DEFAULT_CONFIG = deepFreeze({
  port: 8080,
  adminPort: 9090,
  host: '127.0.0.1',
  zone: null,
  userId: { sources: [{ header: 'x-user-id' }] },
  routes: [{ prefix: '/', class: 'unit' }],
  buffer: { windowMs: 10_000, maxRequests: 1000, maxBodyBytes: 1_048_576 },
  upstream: {
    connectTimeoutMs: 2_000,
    requestTimeoutMs: 30_000,
    ejectAfterFailures: 3,
    ejectBaseMs: 1_000,
    ejectMaxMs: 30_000,
    connectionsPerEndpoint: 128,
  },
  trustProxy: false,
  snapshotPath: true,
  store: null,
  prefix: '/cellgate',
  shutdownGraceMs: 10_000,
  freeze: { inflightGraceMs: 2_000 },
});

const TOP_KEYS = ['port', 'adminPort', 'host', 'zone', 'id', 'userId', 'routes', 'buffer', 'upstream', 'trustProxy',
  'snapshotPath', 'shutdownGraceMs', 'store', 'prefix', 'freeze', 'etcd'] as const;
const ROUTE_CLASSES = ['unit', 'global', 'city'] as const;
const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;
/** One literal-or-`:user` segment pattern, e.g. /users/:user or /api/:user/orders. */
const PATH_PATTERN = /^(\/[^/:?#]*)*\/:user(\/[^/:?#]*)*$/;

type Doc = Record<string, unknown>;

/**
 * Validates a configuration document (as read from YAML/JSON), after applying `overrides`
 * (e.g. command-line flags) on top of it. Returns a deep-frozen config or throws INVALID_CONFIG.
 */
export function parseGatewayConfig(doc: unknown, overrides: Partial<Record<(typeof TOP_KEYS)[number], unknown>> = {}): GatewayConfig {
  const p = new Problems();
  const input: Doc = doc === undefined || doc === null ? {} : (doc as Doc);
  if (!checkObject(p, input, '', TOP_KEYS)) throw invalid(p);
  const merged: Doc = { ...input };
  for (const [k, v] of Object.entries(overrides)) if (v !== undefined) merged[k] = v;

  const port = intOr(p, merged.port, 'port', DEFAULT_CONFIG.port, 0, 65535);
  const adminPort = intOr(p, merged.adminPort, 'adminPort', DEFAULT_CONFIG.adminPort, 0, 65535);
  // Port 0 (ephemeral, used by tests) on both is fine: the OS hands out two different ports.
  if (port === adminPort && port !== 0) p.add('adminPort', `must differ from port (${port})`);
  const host = merged.host === undefined ? DEFAULT_CONFIG.host : merged.host;
  checkString(p, host, 'host');
  const zone = merged.zone === undefined || merged.zone === null ? null : merged.zone;
  if (zone !== null) checkString(p, zone, 'zone', NAME);
  const id = merged.id === undefined ? `${hostname()}-${process.pid}` : merged.id;
  checkString(p, id, 'id');
  const trustProxy = merged.trustProxy === undefined ? DEFAULT_CONFIG.trustProxy : merged.trustProxy;
  if (typeof trustProxy !== 'boolean') p.add('trustProxy', 'must be true or false');
  const snapshotPath = merged.snapshotPath === undefined ? DEFAULT_CONFIG.snapshotPath : merged.snapshotPath === null ? false : merged.snapshotPath;
  if (typeof snapshotPath !== 'boolean') checkString(p, snapshotPath, 'snapshotPath');
  const store = merged.store === undefined || merged.store === null ? null : merged.store;
  if (store !== null) checkString(p, store, 'store', /^(file|etcd):.+/);
  const prefix = merged.prefix === undefined ? DEFAULT_CONFIG.prefix : merged.prefix;
  checkString(p, prefix, 'prefix', /^\/[^\s]*$/);
  const shutdownGraceMs = intOr(p, merged.shutdownGraceMs, 'shutdownGraceMs', DEFAULT_CONFIG.shutdownGraceMs, 0, 3_600_000);

  const config = {
    port, adminPort, host, zone, id, trustProxy, snapshotPath, shutdownGraceMs, store, prefix,
    userId: { sources: userIdSources(p, merged.userId) },
    routes: routeRules(p, merged.routes),
    buffer: bufferConfig(p, merged.buffer),
    upstream: upstreamConfig(p, merged.upstream),
  };
  const freeze = freezeConfig(p, merged.freeze, config.buffer);
  const etcd = etcdConfig(p, merged.etcd);
  if (!p.empty) throw invalid(p);
  return deepFreeze({ ...config, freeze, etcd }) as unknown as GatewayConfig;
}

/** Reads a YAML or JSON configuration file (by extension; YAML otherwise) and validates it. */
export async function loadGatewayConfigFile(path: string, overrides?: Parameters<typeof parseGatewayConfig>[1]): Promise<GatewayConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw cgError('INVALID_CONFIG', `cannot read gateway config ${path}: ${(err as Error).message}`, { cause: err });
  }
  let doc: unknown;
  try {
    doc = extname(path).toLowerCase() === '.json' ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw cgError('INVALID_CONFIG', `gateway config ${path} does not parse: ${(err as Error).message}`, { cause: err });
  }
  return parseGatewayConfig(doc, overrides);
}

function invalid(p: Problems): Error {
  return cgError('INVALID_CONFIG', `invalid gateway configuration: ${p.summary()}`, { detail: p.list });
}

function intOr(p: Problems, v: unknown, path: string, fallback: number, min: number, max: number): number {
  if (v === undefined) return fallback;
  checkInteger(p, v, path, min, max);
  return v as number;
}

function userIdSources(p: Problems, v: unknown): UserIdSource[] {
  if (v === undefined) return DEFAULT_CONFIG.userId.sources.map((s) => ({ ...s }));
  if (!checkObject(p, v, 'userId', ['sources'])) return [];
  const sources = v.sources;
  if (!Array.isArray(sources) || sources.length === 0) {
    p.add('userId.sources', 'must be a non-empty list of {header|cookie|query|path}');
    return [];
  }
  return sources.map((s, i): UserIdSource => {
    const path = join('userId.sources', i);
    if (!isRecord(s) || Object.keys(s).length !== 1) {
      p.add(path, 'must be exactly one of {header: NAME}, {cookie: NAME}, {query: NAME}, {path: PATTERN}');
      return { header: '' };
    }
    const [kind, name] = Object.entries(s)[0] as [string, unknown];
    switch (kind) {
      case 'header':
        // Node lowercases incoming header names; matching is by the lowercased name.
        if (checkString(p, name, join(path, kind), HEADER_NAME)) return { header: name.toLowerCase() };
        break;
      case 'cookie':
      case 'query':
        if (checkString(p, name, join(path, kind), HEADER_NAME)) return kind === 'cookie' ? { cookie: name } : { query: name };
        break;
      case 'path':
        if (checkString(p, name, join(path, kind), PATH_PATTERN)) return { path: name };
        break;
      default:
        p.add(join(path, kind), 'unknown key (expected header, cookie, query or path)');
    }
    return { header: '' };
  });
}

function routeRules(p: Problems, v: unknown): RouteRule[] {
  if (v === undefined) return DEFAULT_CONFIG.routes.map((r) => ({ prefix: r.prefix, class: r.class as RouteClass }));
  if (!Array.isArray(v) || v.length === 0) {
    p.add('routes', 'must be a non-empty list of {prefix, class}');
    return [];
  }
  const seen = new Set<string>();
  return v.map((r, i): RouteRule => {
    const path = join('routes', i);
    if (!checkObject(p, r, path, ['prefix', 'class'])) return { prefix: '/', class: 'unit' };
    if (checkString(p, r.prefix, join(path, 'prefix')) && !(r.prefix as string).startsWith('/')) {
      p.add(join(path, 'prefix'), 'must start with /');
    }
    if (typeof r.prefix === 'string') {
      if (seen.has(r.prefix)) p.add(join(path, 'prefix'), `duplicate prefix ${JSON.stringify(r.prefix)}`);
      seen.add(r.prefix);
    }
    checkOneOf(p, r.class, join(path, 'class'), ROUTE_CLASSES);
    return { prefix: r.prefix as string, class: r.class as RouteClass };
  });
}

function bufferConfig(p: Problems, v: unknown): BufferConfig {
  const d = DEFAULT_CONFIG.buffer;
  if (v === undefined) return { ...d };
  if (!checkObject(p, v, 'buffer', ['windowMs', 'maxRequests', 'maxBodyBytes'])) return { ...d };
  return {
    windowMs: intOr(p, v.windowMs, 'buffer.windowMs', d.windowMs, 1, 3_600_000),
    maxRequests: intOr(p, v.maxRequests, 'buffer.maxRequests', d.maxRequests, 0, 1_000_000),
    maxBodyBytes: intOr(p, v.maxBodyBytes, 'buffer.maxBodyBytes', d.maxBodyBytes, 0, 1 << 30),
  };
}

function upstreamConfig(p: Problems, v: unknown): UpstreamConfig {
  const d = DEFAULT_CONFIG.upstream;
  if (v === undefined) return { ...d };
  const keys = Object.keys(d);
  if (!checkObject(p, v, 'upstream', keys)) return { ...d };
  const c: UpstreamConfig = {
    connectTimeoutMs: intOr(p, v.connectTimeoutMs, 'upstream.connectTimeoutMs', d.connectTimeoutMs, 1, 600_000),
    requestTimeoutMs: intOr(p, v.requestTimeoutMs, 'upstream.requestTimeoutMs', d.requestTimeoutMs, 1, 3_600_000),
    ejectAfterFailures: intOr(p, v.ejectAfterFailures, 'upstream.ejectAfterFailures', d.ejectAfterFailures, 1, 1_000),
    ejectBaseMs: intOr(p, v.ejectBaseMs, 'upstream.ejectBaseMs', d.ejectBaseMs, 1, 3_600_000),
    ejectMaxMs: intOr(p, v.ejectMaxMs, 'upstream.ejectMaxMs', d.ejectMaxMs, 1, 3_600_000),
    connectionsPerEndpoint: intOr(p, v.connectionsPerEndpoint, 'upstream.connectionsPerEndpoint', d.connectionsPerEndpoint, 1, 100_000),
  };
  if (c.ejectMaxMs < c.ejectBaseMs) p.add('upstream.ejectMaxMs', `must be >= upstream.ejectBaseMs (${c.ejectBaseMs})`);
  return c;
}

// --- freeze (planned moves): owned with the freeze acknowledgement (freeze-ack.ts) ---

export interface FreezeConfig {
  /**
   * How long requests already with an upstream when their cell freezes may still run before
   * they are cut and the freeze acknowledged (clamped at run time to a quarter of the freeze
   * window left). Must be below buffer.windowMs: held requests wait for the flip, which
   * comes after the grace.
   */
  readonly inflightGraceMs: number;
}

function freezeConfig(p: Problems, v: unknown, buffer: BufferConfig): FreezeConfig {
  const d = DEFAULT_CONFIG.freeze;
  if (v !== undefined && !checkObject(p, v, 'freeze', ['inflightGraceMs'])) return { ...d };
  const given = (v as { inflightGraceMs?: unknown } | undefined)?.inflightGraceMs;
  // The default never exceeds a short hold window on its own.
  const fallback = Math.min(d.inflightGraceMs, Math.floor(buffer.windowMs / 2));
  const inflightGraceMs = intOr(p, given, 'freeze.inflightGraceMs', fallback, 0, 3_600_000);
  if (given !== undefined && inflightGraceMs >= buffer.windowMs) p.add('freeze.inflightGraceMs', `must be less than buffer.windowMs (${buffer.windowMs})`);
  return { inflightGraceMs };
}

// --- etcd connection (endpoints, TLS files, user): read with the CLI's store flags (src/cli/args.ts) ---

export interface EtcdConfig {
  /** host:port or https://host:port; the store is etcd:ENDPOINTS when `store` is not given. */
  readonly endpoints?: readonly string[];
  readonly cacert?: string;
  readonly cert?: string;
  readonly key?: string;
  readonly user?: string;
  /** Better in CELLGATE_ETCD_PASSWORD than in a file; never logged. */
  readonly password?: string;
}

const ETCD_FILE_KEYS = ['cacert', 'cert', 'key', 'user', 'password'] as const;

function etcdConfig(p: Problems, v: unknown): EtcdConfig | null {
  if (v === undefined || v === null) return null;
  if (!checkObject(p, v, 'etcd', ['endpoints', ...ETCD_FILE_KEYS])) return null;
  const out: Record<string, unknown> = {};
  if (v.endpoints !== undefined) {
    const list = typeof v.endpoints === 'string' ? v.endpoints.split(',').map((e) => e.trim()) : v.endpoints;
    if (!Array.isArray(list) || list.length === 0) p.add('etcd.endpoints', 'must be a non-empty list of host:port or https://host:port');
    else list.forEach((e, i) => checkString(p, e, join('etcd.endpoints', i), /^(https?:\/\/)?[^\s/,]+:\d{1,5}$/));
    out.endpoints = list;
  }
  for (const key of ETCD_FILE_KEYS) {
    if (v[key] === undefined) continue;
    // The password's value is never echoed, not even in an error.
    if (key === 'password' && typeof v[key] !== 'string') p.add('etcd.password', 'must be a string (quote it in YAML)');
    else if (key !== 'password') checkString(p, v[key], join('etcd', key));
    out[key] = v[key];
  }
  return out as EtcdConfig;
}
