#!/usr/bin/env node
// cellgate: run a gateway (`serve`), a whole local demo topology (`demo`), or one demo zone
// server (`zone-server`, used by the demo and the chaos harness).
import { parseArgs } from 'node:util';
import { cgError } from '../errors';
import { ETCD_SECURITY_OPTIONS, PROGRAM_OPTIONS, parseCommandArgs, type OptionSpec } from './args';
import { onSignals } from './process-life';
import { closest, flagLines } from './flags';
import { reportError } from './output';
import { quietIpServernameWarning } from './quiet-warnings';
import { versionText } from './version';
import { AUTOPILOT_OPTIONS } from './autopilot-options';

const SERVE_OPTIONS = {
  config: { type: 'string' }, store: { type: 'string' }, prefix: { type: 'string' }, port: { type: 'string' }, 'admin-port': { type: 'string' },
  host: { type: 'string' }, 'admin-host': { type: 'string' }, zone: { type: 'string' }, id: { type: 'string' }, workers: { type: 'string' },
  check: { type: 'boolean' }, ...ETCD_SECURITY_OPTIONS,
} as const satisfies OptionSpec;

const DEMO_OPTIONS = {
  dir: { type: 'string' }, port: { type: 'string' }, 'admin-port': { type: 'string' }, 'base-port': { type: 'string' }, reset: { type: 'boolean' },
} as const satisfies OptionSpec;

const ZONE_SERVER_OPTIONS = {
  zone: { type: 'string' }, port: { type: 'string' }, store: { type: 'string' }, prefix: { type: 'string' }, host: { type: 'string' },
  'no-enforce': { type: 'boolean' }, ...ETCD_SECURITY_OPTIONS,
} as const satisfies OptionSpec;

const PRESENCE_RELAY_OPTIONS = {
  store: { type: 'string' }, prefix: { type: 'string' }, listen: { type: 'string' }, id: { type: 'string' }, ttl: { type: 'string' },
  'max-gateways': { type: 'string' }, 'token-file': { type: 'string' }, ...ETCD_SECURITY_OPTIONS,
} as const satisfies OptionSpec;

const REGISTER_OPTIONS = {
  store: { type: 'string' }, prefix: { type: 'string' }, zone: { type: 'string' }, service: { type: 'string' }, url: { type: 'string' },
  id: { type: 'string' }, weight: { type: 'string' }, ttl: { type: 'string' }, 'check-path': { type: 'string' }, 'check-interval': { type: 'string' },
  ...ETCD_SECURITY_OPTIONS,
} as const satisfies OptionSpec;

export interface Subcommand {
  readonly name: string;
  /** One line for the command list. */
  readonly brief: string;
  readonly usage: string;
  readonly summary: string;
  readonly options: OptionSpec;
}

export const SUBCOMMANDS: readonly Subcommand[] = [
  {
    name: 'serve',
    brief: 'run a gateway (config file, flags, store: file or etcd)',
    usage: 'cellgate serve [--config FILE] [--store file:PATH|etcd:HOST:PORT[,…]] [FLAGS]',
    summary: `Run a gateway. Flags override CELLGATE_<KEY> variables, which override the config file
(YAML or JSON; every key, its default and its variable: docs/configuration.md). The store may
also come from the config's store: or etcd.endpoints. --check validates the configuration
(and reads the TLS files), prints the effective one as JSON and exits 0, or 3 with every
problem, without listening or opening the store (like nginx -t). The last good table is kept
on disk for a restart without the store (snapshotPath; default: a file per store under
/var/lib/cellgate, else $XDG_STATE_HOME/cellgate, else ./.cellgate; logged at start).
The admin server listens on --admin-host, apart from the traffic --host. With --workers N,
N processes share the traffic port; the primary serves /metrics summed over the workers on
the admin port, and worker i (0-based) has its own admin server on the admin port + 1 + i.
SIGHUP reloads the TLS certificate.`,
    options: SERVE_OPTIONS,
  },
  {
    name: 'demo',
    brief: 'the whole product on one machine: a gateway in front of 8 demo zones',
    usage: 'cellgate demo [--dir DIR] [--port N] [--admin-port N] [--base-port N] [--reset]',
    summary: `A gateway (traffic port 8080, admin 9090) in front of 8 demo zone servers
(config/demo-topology.yaml; ports 7001-7008, or --base-port N to N+7) on the embedded file
store in DIR. --reset starts from a fresh table. Prints what to try.`,
    options: DEMO_OPTIONS,
  },
  {
    name: 'autopilot',
    brief: 'health-driven zone failover: run several, one leads (etcd election)',
    usage: 'cellgate autopilot --store etcd:HOST:PORT[,…] [FLAGS]',
    summary: `Health-driven zone failover (docs/autopilot.md): a zone is declared down when a strict
majority of live gateways, standing in at least two zones and still seeing another zone
healthy, report it unhealthy for --down-after; then the same planner and executor as
\`cellctl zone down\` run, with actor autopilot. Run several replicas: one leads (an etcd
election on the prefix), the others stand by. Admin port: /healthz /readyz /metrics /status.
Needs etcd (its election and pause flag live there).`,
    options: AUTOPILOT_OPTIONS,
  },
  {
    name: 'register',
    brief: 'register one instance in the endpoint registry while its check passes (a sidecar)',
    usage: 'cellgate register --store SPEC --zone Z --service S --url URL [--id ID] [--weight N] [--ttl S] [--check-path /healthz] [--check-interval S]',
    summary: `Register one instance (an http(s) base URL) as an endpoint of SERVICE in ZONE, under
the store's endpoints/ on a lease (etcd; heartbeat files in the file store) kept alive
while the instance's check passes: GET URL + --check-path every --check-interval, 2xx or
3xx passes. A failing check withdraws the endpoint at once (it comes back when the check
passes again); so do SIGTERM and SIGINT. If this process dies, the endpoint goes when its
lease ends (--ttl). Gateways route to it within a second; the routing table is untouched.
Service "default" is the zone's plain upstreams.`,
    options: REGISTER_OPTIONS,
  },
  {
    name: 'presence-relay',
    brief: 'a region\'s presence relay: gateways send it their presence records, it batches them into etcd',
    usage: 'cellgate presence-relay --store etcd:HOST:PORT[,…] --listen HOST:PORT [--id ID] [--ttl S] [--max-gateways N] [--token-file PATH]',
    summary: `A region's presence relay (docs/operations.md "Presence relay"): gateways PUT their presence
record to /v1/gateways/<id>; the relay writes the records to etcd under <prefix>/gateways-relayed/
in batched transactions (at most one in flight, 128 records each) on its own lease (--ttl), and
answers 204 once the record is committed. A record not refreshed within its ttlSeconds is
deleted. Listen on a private address and give --token-file: whoever can PUT can speak for a
gateway. SIGTERM revokes the lease (every relayed record goes at once). etcd only.`,
    options: PRESENCE_RELAY_OPTIONS,
  },
  {
    name: 'zone-server',
    brief: 'one demo zone server (fenced: 421 NOT_CELL_OWNER for cells it does not own)',
    usage: 'cellgate zone-server --zone ZONE --port N --store SPEC [--prefix P] [--no-enforce]',
    summary: `One demo zone server: answers JSON saying which zone served the request and whether
it owns the request's cell at its epoch (421 NOT_CELL_OWNER otherwise).`,
    options: ZONE_SERVER_OPTIONS,
  },
];

const COMMON_FLAGS = ['help', 'version'];

function globalHelp(): string {
  return `cellgate — the cell-routing edge gateway

Usage: cellgate [FLAGS] COMMAND [FLAGS]   (flags go before or after the command)

Commands:
${SUBCOMMANDS.map((c) => `  ${c.name.padEnd(14)}  ${c.brief}`).join('\n')}

Flags:
${flagLines(COMMON_FLAGS).join('\n')}

Run \`cellgate COMMAND --help\` for a command's flags.
Exit codes: 0 done, 1 error, 2 usage, 3 invalid configuration.
`;
}

function subcommandHelp(c: Subcommand): string {
  return [`Usage: ${c.usage}`, '', c.summary, '', 'Flags:', ...flagLines([...Object.keys(c.options), ...COMMON_FLAGS]), ''].join('\n');
}

const ALL_OPTIONS: OptionSpec = Object.assign({}, PROGRAM_OPTIONS, ...SUBCOMMANDS.map((c) => c.options));

/** Runs a command; resolves null while it keeps running (until a signal), or an exit code. */
export async function main(argv: readonly string[]): Promise<number | null> {
  // A loose parse finds the command word wherever the flags are, and --help / --version.
  const { values: loose, tokens } = parseArgs({ args: [...argv], options: ALL_OPTIONS, strict: false, allowPositionals: true, tokens: true });
  const first = tokens.find((t) => t.kind === 'positional');
  if (loose.version === true) {
    process.stdout.write(versionText('cellgate'));
    return 0;
  }
  const name = first?.kind === 'positional' ? first.value : undefined;
  const command = SUBCOMMANDS.find((c) => c.name === name);
  if (!command) {
    if (name === undefined || name === 'help') {
      process.stdout.write(globalHelp());
      return loose.help === true || name === 'help' ? 0 : 2;
    }
    const near = closest(name, SUBCOMMANDS.map((c) => c.name));
    throw cgError('USAGE', `unknown command "${name}"${near ? `: did you mean "${near}"?` : ''} (see cellgate --help)`);
  }
  // --help never starts anything.
  if (loose.help === true) {
    process.stdout.write(subcommandHelp(command));
    return 0;
  }
  const rest = argv.filter((_, i) => first?.index !== i);
  const { values, positionals } = parseCommandArgs(rest, command.options, `cellgate ${command.name}`, PROGRAM_OPTIONS);
  // Loaded on demand: the gateway (fastify, etcd3) is not needed for --help or a usage error.
  switch (command.name) {
    case 'serve':
      return (await import('./serve')).serve(values, positionals);
    case 'autopilot':
      onSignals(await (await import('./autopilot')).runAutopilot(values, positionals));
      return null;
    case 'demo':
      await (await import('./demo')).runDemo(values, positionals, onSignals);
      return null;
    case 'register':
      onSignals(await (await import('./register')).register(values, positionals));
      return null;
    case 'presence-relay':
      onSignals(await (await import('./presence-relay')).presenceRelay(values, positionals));
      return null;
    default:
      await (await import('./zone-server')).zoneServer(values, positionals);
      return null;
  }
}

if (require.main === module) {
  quietIpServernameWarning();
  main(process.argv.slice(2)).then(
    (code) => { if (code !== null) process.exit(code); },
    (err) => process.exit(reportError(err, false, 'cellgate')),
  );
}
