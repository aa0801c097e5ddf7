// Every flag either CLI takes, with what it means and its default: the one source of the
// flag lists in --help (a test checks that every option of every command is here).

export interface FlagDoc {
  /** What the flag's value is called in help ("FILE"); none for a boolean. */
  readonly value?: string;
  readonly description: string;
  readonly default?: string;
  /** The environment variable read when the flag is not given. */
  readonly env?: string;
}

export const FLAG_DOCS: Readonly<Record<string, FlagDoc>> = {
  // store (cellctl)
  file: { value: 'PATH', description: 'use the embedded file store at PATH' },
  etcd: { value: 'HOST:PORT[,…]', description: 'use etcd at these endpoints (https://HOST:PORT for TLS)', env: 'CELLGATE_ETCD' },
  prefix: { value: 'P', description: 'etcd key prefix of the table, history, presence and endpoint registry', default: '/cellgate' },
  'etcd-cacert': { value: 'FILE', description: 'PEM CA that signed etcd\'s server certificate (turns TLS on)', default: 'the system\'s roots', env: 'CELLGATE_ETCD_CACERT' },
  'etcd-cert': { value: 'FILE', description: 'PEM client certificate, for an etcd with --client-cert-auth', env: 'CELLGATE_ETCD_CERT' },
  'etcd-key': { value: 'FILE', description: 'PEM key of --etcd-cert', env: 'CELLGATE_ETCD_KEY' },
  'etcd-user': { value: 'NAME[:PASSWORD]', description: 'etcd user; the password from here, CELLGATE_ETCD_PASSWORD, or (cellctl on a terminal) a prompt without echo; never printed', env: 'CELLGATE_ETCD_USER' },
  // output and the common flags
  json: { description: 'machine output: one JSON document (or one per line)', default: 'off' },
  yes: { description: 'do not ask for confirmation (required off a terminal)', default: 'off' },
  help: { description: 'show this help and exit (runs nothing)' },
  version: { description: 'print the version and exit' },
  // changes
  reason: { value: 'TEXT', description: 'why, recorded in the history (required for a change)' },
  actor: { value: 'NAME', description: 'who, recorded in the history', default: 'user@host' },
  'dry-run': { description: 'print the plan, write nothing', default: 'off' },
  force: { description: 'init: replace the table there; changes: accept a blast-radius violation', default: 'off' },
  timeout: { value: 'S', description: 'how long to wait for the gateways to converge, in seconds', default: '10' },
  'max-move-share': { value: 'S', description: 'refuse a change that moves more than this share of the cells', default: '0.5' },
  'freeze-ms': { value: 'N', description: 'freeze window of a planned move, in ms', default: '8000' },
  batch: { value: 'N', description: 'cells moved per planned batch (zone up, region up: home cells returned)', default: 'zone up, region up: all at once; rebalance: 8, or fewer when --max-move-share allows fewer' },
  // zone add, rebalance
  region: { value: 'R', description: 'zone add: the region of the new zone' },
  city: { value: 'C', description: 'zone add: the city of the new zone' },
  capacity: { value: 'N', description: 'zone add: the most cells the zone may carry' },
  elastic: { description: 'zone add: an elastic zone: no homes, no failover target; cells only from rebalance --onto-elastic', default: 'off' },
  upstream: { value: 'URL', description: 'zone add: an http(s) base URL of the zone\'s default service (repeatable)' },
  'health-path': { value: 'P', description: 'zone add: the path gateways probe on each endpoint', default: '/' },
  'onto-elastic': { value: 'SHARE', description: 'rebalance: move about SHARE (0 < SHARE <= 1) of the cells onto the elastic zones, by their capacity (homes stay)' },
  'off-elastic': { description: 'rebalance: every cell on an elastic zone returns to its home', default: 'off' },
  // command-specific
  topology: { value: 'FILE', description: 'topology YAML to make the table from' },
  cells: { description: 'also list every cell', default: 'off' },
  stdin: { description: 'read user ids from stdin, one per line', default: 'off' },
  gateways: { description: 'list every live gateway, however many (default: counts per revision and the stragglers past 20)', default: 'off' },
  limit: { value: 'N', description: 'show the last N entries', default: '50' },
  // cellgate
  config: { value: 'FILE', description: 'gateway configuration, YAML or JSON (see config/gateway.yaml)' },
  store: { value: 'file:PATH|etcd:HOST:PORT[,…]', description: 'where the routing table lives', env: 'CELLGATE_STORE' },
  port: { value: 'N', description: 'traffic port', default: '8080' },
  'admin-port': { value: 'N', description: 'admin port (/healthz /readyz /metrics /admin/…); cellgate autopilot: default 9190', default: '9090' },
  host: { value: 'H', description: 'address to listen on', default: '127.0.0.1' },
  'admin-host': { value: 'H', description: 'address of the admin server, apart from --host (it shows every upstream URL)', default: '127.0.0.1' },
  check: { description: 'validate the configuration (and TLS files), print the effective one and exit 0, or 3 (like nginx -t)', default: 'off' },
  zone: { value: 'ZONE', description: 'the zone this process stands in (register: the instance\'s zone; endpoints: only this one)' },
  id: { value: 'NAME', description: 'name in presence records (register: the endpoint\'s id, unique in its zone and service; presence-relay: the relay\'s, in the "relay" field of each record it writes)', default: 'hostname-pid' },
  workers: { value: 'N', description: 'run N gateway processes on one port (node:cluster); the primary sums their /metrics on the admin port', default: '1' },
  // cellgate autopilot
  'down-after': { value: 'S', description: 'autopilot: a zone must look down this many seconds on end before it is failed over', default: '5' },
  cooldown: { value: 'S', description: 'autopilot: seconds between two of its actions', default: '60' },
  'max-down-share': { value: 'X', description: 'autopilot: most of the total capacity it may have down at once', default: '0.34' },
  'auto-failback': { description: 'autopilot: bring a zone it took down back up (planned, batched) once healthy for --up-after', default: 'off' },
  'up-after': { value: 'S', description: 'autopilot: seconds a zone must look healthy before an automatic failback', default: '120' },
  'lease-ttl': { value: 'S', description: 'autopilot: the leader\'s etcd lease; a standby takes over this long after the leader dies', default: '5' },
  'log-level': { value: 'L', description: 'least severe log level written: fatal, error, warn, info, debug, trace, silent', default: 'info' },
  dir: { value: 'DIR', description: 'where the demo keeps its table and snapshot', default: '.demo' },
  'base-port': { value: 'N', description: 'the demo zone servers listen on N … N+7', default: '7001' },
  reset: { description: 'remove the demo\'s table, history and snapshot first, and start afresh', default: 'off' },
  'no-enforce': { description: 'answer every cell (no fencing)', default: 'off' },
  // cellgate register, cellctl endpoints
  service: { value: 'S | S=URL', description: 'the service (register: of the instance; endpoints: only this one; zone add: S=URL adds URL to service S, repeatable); "default" is the zone\'s plain upstreams' },
  url: { value: 'URL', description: 'register: the instance\'s http(s) base URL, as gateways should reach it' },
  weight: { value: 'N', description: 'register: relative share of requests, 1-100 (recorded; gateways round-robin for now)', default: '1' },
  ttl: { value: 'S', description: 'the lease (register: a dead instance is gone this long after its last keep-alive; presence-relay: so are the records of a dead relay)', default: 'register 5, presence-relay 10' },
  'check-path': { value: '/PATH', description: 'register: GET URL + PATH checks the instance (2xx/3xx passes); withdrawn while it fails', default: 'no check' },
  'check-interval': { value: 'S', description: 'register: seconds between two checks', default: '1' },
  // cellgate presence-relay
  listen: { value: 'HOST:PORT', description: 'presence-relay: the address gateways send their presence records to (a private one)' },
  'max-gateways': { value: 'N', description: 'presence-relay: the most gateways it holds; more get 503 RELAY_FULL (and write their own records)', default: '20000' },
  'token-file': { value: 'PATH', description: 'presence-relay: a file holding the bearer token every request must carry (Authorization: Bearer …)', default: 'no token' },
};

/** "  --etcd-cacert FILE   PEM CA … [default: …; env CELLGATE_ETCD_CACERT]" lines, aligned. */
export function flagLines(names: readonly string[]): string[] {
  const heads = names.map((n) => {
    const doc = FLAG_DOCS[n];
    return `  --${n}${doc?.value ? ` ${doc.value}` : ''}`;
  });
  const width = Math.min(Math.max(...heads.map((h) => h.length)), 40);
  return names.map((n, i) => {
    const doc = FLAG_DOCS[n];
    const notes = [doc?.default ? `default: ${doc.default}` : '', doc?.env ? `env ${doc.env}` : ''].filter(Boolean).join('; ');
    const text = `${doc?.description ?? ''}${notes ? ` [${notes}]` : ''}`;
    const head = heads[i]!;
    return head.length > width ? `${head}\n${' '.repeat(width + 2)}${text}` : `${head.padEnd(width)}  ${text}`;
  });
}

export { closest } from '../cells/check';
