// The one schema of the gateway configuration (TypeBox: JSON Schema with static types).
// Everything about a key lives here: its type and range, its default, its description
// (docs/configuration.md is generated from it), its CELLGATE_* env variable (derived from
// its path, see env.ts). Extra annotations the schema carries for cellgate:
//   expect  — the problem text when a value does not match (instead of a generic one);
//   secret  — never printed (`serve --check` shows "<redacted>");
//   docDefault — how a default computed at start is described in the docs.
import { type Static, Type } from '@sinclair/typebox';
import { NAME } from '../../cells/check';

const HEADER_NAME = "^[A-Za-z0-9!#$%&'*+.^_`|~-]+$";
/** One literal-or-`:user` segment pattern, e.g. /users/:user or /api/:user/orders. */
const PATH_PATTERN = '^(/[^/:?#]*)*/:user(/[^/:?#]*)*$';
const MAX_MS = 3_600_000;

const int = (min: number, max: number, dflt: number, description: string) =>
  Type.Integer({ minimum: min, maximum: max, default: dflt, description });

const section = <P extends Parameters<typeof Type.Object>[0]>(props: P, description: string) =>
  Type.Object(props, { additionalProperties: false, default: {}, description });

const UserIdSourceSchema = Type.Union([
  Type.Object({ header: Type.String({ pattern: HEADER_NAME, description: 'header name (matched lower-cased)' }) }, { additionalProperties: false }),
  Type.Object({ cookie: Type.String({ pattern: HEADER_NAME }) }, { additionalProperties: false }),
  Type.Object({ query: Type.String({ pattern: HEADER_NAME }) }, { additionalProperties: false }),
  Type.Object({ path: Type.String({ pattern: PATH_PATTERN, expect: 'must be a path pattern with one :user segment, e.g. /users/:user' }) }, { additionalProperties: false }),
], { expect: 'must be exactly one of {header: NAME}, {cookie: NAME}, {query: NAME}, {path: PATTERN}' });

const RouteRuleSchema = Type.Object({
  prefix: Type.String({ pattern: '^/', expect: 'must start with /' }),
  class: Type.Union([Type.Literal('unit'), Type.Literal('global'), Type.Literal('city')]),
  service: Type.Optional(Type.String({ pattern: NAME.source, expect: `must be a service name matching ${NAME.source}` })),
  stripPrefix: Type.Optional(Type.Boolean({ expect: 'must be true or false' })),
}, { additionalProperties: false });

const EtcdSchema = Type.Object({
  endpoints: Type.Optional(Type.Array(Type.String({ pattern: '^(https?://)?[^\\s/,]+:\\d{1,5}$', expect: 'must be host:port or https://host:port' }), {
    minItems: 1, expect: 'must be a non-empty list of host:port or https://host:port', description: 'etcd members (host:port, or https://host:port).',
  })),
  cacert: Type.Optional(Type.String({ minLength: 1, description: 'PEM file of the CA that signed the etcd members\' certificates.' })),
  cert: Type.Optional(Type.String({ minLength: 1, description: 'PEM client certificate (etcd --client-cert-auth).' })),
  key: Type.Optional(Type.String({ minLength: 1, description: 'PEM key of the client certificate.' })),
  user: Type.Optional(Type.String({ minLength: 1, description: 'etcd user (auth enabled).' })),
  password: Type.Optional(Type.String({ secret: true, expect: 'must be a string (quote it in YAML)', description: 'Password of the etcd user; better in CELLGATE_ETCD_PASSWORD than in a file. Never printed.' })),
}, { additionalProperties: false });

const TlsSchema = Type.Object({
  cert: Type.String({ minLength: 1, description: 'PEM certificate chain file (server certificate first)' }),
  key: Type.String({ minLength: 1, description: 'PEM private key file' }),
}, { additionalProperties: false });

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export const GatewayConfigSchema = Type.Object({
  store: Type.Union([Type.String({ pattern: '^(file|etcd):.+' }), Type.Null()], {
    default: null, description: 'Where the routing table lives: `file:PATH` or `etcd:HOST:PORT[,…]` (null: given with --store).',
  }),
  prefix: Type.String({ pattern: '^/\\S*$', default: '/cellgate', description: 'etcd key prefix of the table, history and presence records.' }),
  port: int(0, 65535, 8080, 'Traffic port (0: any free port).'),
  adminPort: int(0, 65535, 9090, 'Admin port: /healthz /readyz /metrics /admin/table /admin/route?user=.'),
  host: Type.String({ minLength: 1, default: '127.0.0.1', description: 'Traffic address; 0.0.0.0 to serve every interface.' }),
  adminHost: Type.String({
    minLength: 1, default: '127.0.0.1', description: 'Admin address, apart from `host`: it shows every upstream URL and pinned user.',
  }),
  zone: Type.Union([Type.String({ pattern: NAME.source }), Type.Null()], {
    default: null, description: 'The zone this gateway stands in: where `city` routes start (null: unknown).',
  }),
  id: Type.String({
    // Printed by cellctl, written into logs and keys: no control characters.
    pattern: '^[^\\x00-\\x1f\\x7f-\\x9f]{1,200}$',
    docDefault: 'HOSTNAME-PID',
    description: 'Unique name of this gateway in presence records: 1-200 characters, no control characters.',
  }),
  etcd: Type.Union([EtcdSchema, Type.Null()], {
    default: null,
    description: 'How to reach a secured etcd: TLS files, a user (flags --etcd-* and CELLGATE_ETCD_* override it); `endpoints` is the store when `store` is not given.',
  }),
  tls: Type.Union([TlsSchema, Type.Null()], {
    default: null, description: 'TLS on the traffic port (HTTPS): PEM files, read at start and again on SIGHUP (null: plain HTTP).',
  }),
  userId: section({
    sources: Type.Array(UserIdSourceSchema, {
      minItems: 1, default: [{ header: 'x-user-id' }], expect: 'must be a non-empty list of {header|cookie|query|path}',
      description: 'Where the user id is read, every source on every request (two different ids: 400 BAD_USER_ID).',
    }),
  }, 'How requests name their user.'),
  routes: Type.Array(RouteRuleSchema, {
    minItems: 1, default: [{ prefix: '/', class: 'unit' }], expect: 'must be a non-empty list of {prefix, class, service?, stripPrefix?}',
    description: 'Route class and service by path prefix (longest wins). `class`: `unit` (the zone of the user\'s cell), `global` (the global zone), `city` (nearest up zone). `service`: which of that zone\'s services serves it (default `default`: the zone\'s plain upstreams; a service no zone of the table offers is refused with the first table, warned about after). `stripPrefix: true` sends the path without the prefix (at least `/`).',
  }),
  buffer: section({
    windowMs: int(1, MAX_MS, 10_000, 'Longest time one request is held while its cell is frozen.'),
    maxRequests: int(0, 1_000_000, 1000, 'Most requests held at once; when full the oldest is answered 504 BUFFER_TIMEOUT.'),
    maxBodyBytes: int(0, 1 << 30, 1_048_576, 'Largest body kept for one held request; a larger one: 413 BODY_TOO_LARGE.'),
    maxTotalBytes: int(0, 2 ** 40, 64 * 1_048_576, 'Most body bytes held over all held requests; past it: 503 ZONE_OVERLOADED.'),
  }, 'Requests of frozen cells during planned moves.'),
  upstream: section({
    connectTimeoutMs: int(1, 600_000, 2_000, 'Connection to an upstream endpoint.'),
    requestTimeoutMs: int(1, MAX_MS, 30_000, 'Deadline for the response headers, from the request\'s arrival (waiting for a connection included; a held request\'s from its release): 504 UPSTREAM_TIMEOUT.'),
    ejectAfterFailures: int(1, 1_000, 3, 'Consecutive failures that eject an endpoint (a refused connection ejects at once).'),
    ejectBaseMs: int(1, MAX_MS, 1_000, 'First ejection; each further one doubles, up to ejectMaxMs.'),
    ejectMaxMs: int(1, MAX_MS, 30_000, 'Longest ejection.'),
    connectionsPerEndpoint: int(1, 100_000, 128, 'Requests one endpoint has at once.'),
    keepAliveTimeoutMs: int(1, MAX_MS, 60_000, 'Idle upstream connections are kept this long for the next request (nginx\'s upstream keepalive_timeout); a shorter Keep-Alive timeout hint of the upstream wins.'),
    maxPendingPerZone: int(0, 1_000_000, 1024, 'Requests of one service of one zone waiting for a connection; one more: 503 ZONE_OVERLOADED at once.'),
  }, 'Upstream endpoints: timeouts, passive health, bounds.'),
  server: section({
    headersTimeoutMs: int(1, MAX_MS, 60_000, 'Whole request head within this (else 408 and closed), like nginx\'s client_header_timeout.'),
    requestTimeoutMs: int(1, 24 * MAX_MS, 300_000, 'Whole request, body included.'),
    keepAliveTimeoutMs: int(1, MAX_MS, 75_000, 'Idle kept-alive client connections are closed after this.'),
    maxConnections: int(1, 10_000_000, 10_000, 'Open client connections; more are closed as they arrive.'),
  }, 'The traffic server\'s limits on clients.'),
  freeze: section({
    inflightGraceMs: Type.Integer({
      minimum: 0, maximum: MAX_MS, default: 2_000, docDefault: '2000 (at most buffer.windowMs / 2)',
      description: 'Requests already at the old zone when their cell freezes may run this long (at most a quarter of the freeze window left), then are cut.',
    }),
  }, 'Planned moves of a cell.'),
  probe: section({
    intervalMs: int(100, MAX_MS, 1_000, 'Every zone endpoint is probed this often (GET of its service\'s healthPath, else the zone\'s; a connect error, a timeout or a 5xx fails); at most one probe in flight per endpoint.'),
    timeoutMs: int(1, MAX_MS, 1_000, 'One probe\'s deadline (connect to end of headers).'),
  }, 'Active health of zones (the evidence `cellgate autopilot` decides on).'),
  presenceRelay: section({
    urls: Type.Array(Type.String({ pattern: '^https?://[^\\s/]+(/\\S*)?$', expect: 'must be http://host:port or https://host:port' }), {
      default: [], expect: 'must be a list of relay URLs',
      description: 'Presence relays of this gateway\'s region (`cellgate presence-relay`), tried in order: the gateway sends its presence record to one, which writes many gateways\' records to etcd in one transaction. When none answers, the gateway writes its own record (as with none configured) and tries the relays again every TTL/3. Empty: no relay.',
    }),
    token: Type.Union([Type.String({ minLength: 16 }), Type.Null()], {
      default: null, secret: true, expect: 'must be a string of at least 16 characters, or null',
      description: 'The relays\' shared bearer token (their --token-file). Never printed.',
    }),
    requestTimeoutMs: int(1, 60_000, 2_000, 'Deadline of one request to a relay; past it the gateway tries the next relay, then its own record.'),
  }, 'Presence through a relay (etcd stores only), for hundreds of gateways or more per region.'),
  trustProxy: Type.Boolean({ default: false, description: 'Keep and extend client-sent x-forwarded-* (only behind a proxy you run).' }),
  snapshotPath: Type.Union([Type.String({ minLength: 1 }), Type.Boolean(), Type.Null()], {
    default: true,
    description: 'Where the last good routing table is kept for a restart without the store (fail-static): a file; true: a file per store and prefix under /var/lib/cellgate when that directory exists and is writable, else $XDG_STATE_HOME/cellgate, else ./.cellgate (`cellgate serve` logs which); false or null: nowhere.',
  }),
  shutdownGraceMs: int(0, MAX_MS, 10_000, 'Longest time shutdown waits for in-flight requests before closing their connections.'),
  logLevel: Type.Union(LOG_LEVELS.map((l) => Type.Literal(l)), {
    default: 'info', description: 'Least severe level written (JSON lines on stderr, pino). The access log does not depend on it.',
  }),
  accessLog: Type.Boolean({
    default: false, description: 'One JSON line per request (method, path, status, zone, service, cell, duration, upstream, request id, keyed hash of the user).',
  }),
  accessLogUserKey: Type.Union([Type.String({ minLength: 16 }), Type.Null()], {
    default: null, secret: true, expect: 'must be a string of at least 16 characters, or null',
    description: 'HMAC key for the user hash in the access log: the same key gives the same hash across gateways and restarts (null: a random key per process).',
  }),
}, { additionalProperties: false });

type DeepReadonly<T> = T extends (infer E)[] ? readonly DeepReadonly<E>[] : T extends object ? { readonly [K in keyof T]: DeepReadonly<T[K]> } : T;

/** The validated, frozen configuration: the schema's static type. */
export type GatewayConfig = DeepReadonly<Static<typeof GatewayConfigSchema>>;
export type UserIdSource = GatewayConfig['userId']['sources'][number];
export type RouteRule = GatewayConfig['routes'][number];
export type BufferConfig = GatewayConfig['buffer'];
export type UpstreamConfig = GatewayConfig['upstream'];
export type ServerConfig = GatewayConfig['server'];
export type FreezeConfig = GatewayConfig['freeze'];
export type TlsConfig = NonNullable<GatewayConfig['tls']>;
export type EtcdConfig = NonNullable<GatewayConfig['etcd']>;
export type LogLevel = GatewayConfig['logLevel'];
