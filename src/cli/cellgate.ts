#!/usr/bin/env node
// cellgate: run a gateway (`serve`), a whole local demo topology (`demo`), or one demo zone
// server (`zone-server`, used by the demo and the chaos harness).
import cluster from 'node:cluster';
import { parseArgs } from 'node:util';
import { cgError } from '../errors';
import { loadGatewayConfigFile, parseGatewayConfig, type GatewayConfig } from '../router/config';
import { createGateway, type Gateway } from '../router/gateway';
import { startDemoZone } from '../router/demo-zone';
import { defaultSnapshotLocation } from '../router/snapshot-location';
import type { EtcdSecurity } from '../store/etcd-security';
import { openStore } from '../store/open';
import type { TableStore } from '../store/types';
import {
  ETCD_SECURITY_OPTIONS, PROGRAM_OPTIONS, etcdSecurityFromFlags, parseCommandArgs, stringOption, type OptionSpec, type Parsed,
} from './args';
import { runDemo } from './demo';
import { closest, flagLines } from './flags';
import { reportError } from './output';
import { quietIpServernameWarning } from './quiet-warnings';
import { versionText } from './version';

const SERVE_OPTIONS = {
  config: { type: 'string' }, store: { type: 'string' }, prefix: { type: 'string' }, port: { type: 'string' }, 'admin-port': { type: 'string' },
  host: { type: 'string' }, zone: { type: 'string' }, id: { type: 'string' }, workers: { type: 'string' },
  ...ETCD_SECURITY_OPTIONS,
} as const satisfies OptionSpec;

const DEMO_OPTIONS = { dir: { type: 'string' }, port: { type: 'string' }, 'admin-port': { type: 'string' } } as const satisfies OptionSpec;

const ZONE_SERVER_OPTIONS = {
  zone: { type: 'string' }, port: { type: 'string' }, store: { type: 'string' }, prefix: { type: 'string' }, host: { type: 'string' },
  'no-enforce': { type: 'boolean' }, ...ETCD_SECURITY_OPTIONS,
} as const satisfies OptionSpec;

export interface Subcommand {
  readonly name: string;
  readonly usage: string;
  readonly summary: string;
  readonly options: OptionSpec;
}

export const SUBCOMMANDS: readonly Subcommand[] = [
  {
    name: 'serve',
    usage: 'cellgate serve [--config FILE] [--store file:PATH|etcd:HOST:PORT[,…]] [FLAGS]',
    summary: `Run a gateway. Flags override the config file (YAML or JSON, see config/gateway.yaml); the
store may also come from the config's store: or etcd.endpoints. The last good table is kept
on disk for a restart without the store (snapshotPath; default: a file per store under
/var/lib/cellgate, else $XDG_STATE_HOME/cellgate, else ./.cellgate; logged at start).
With --workers N, N processes share the traffic port; worker i's admin port is the admin
port + i.`,
    options: SERVE_OPTIONS,
  },
  {
    name: 'demo',
    usage: 'cellgate demo [--dir DIR] [--port N] [--admin-port N]',
    summary: `A gateway in front of 8 demo zones (config/demo-topology.yaml) on the embedded file
store in DIR. Prints what to try.`,
    options: DEMO_OPTIONS,
  },
  {
    name: 'zone-server',
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
${SUBCOMMANDS.map((c) => `  ${c.name.padEnd(11)}  ${c.summary.split('\n')[0]}`).join('\n')}

Flags:
${flagLines(COMMON_FLAGS).join('\n')}

Run \`cellgate COMMAND --help\` for a command's flags.
Exit codes: 0 done, 1 error, 2 usage, 3 invalid configuration.
`;
}

function subcommandHelp(c: Subcommand): string {
  return [`Usage: ${c.usage}`, '', c.summary, '', 'Flags:', ...flagLines([...Object.keys(c.options), ...COMMON_FLAGS]), ''].join('\n');
}

function intFlag(values: Parsed['values'], name: string, min: number, max: number): number | undefined {
  const raw = stringOption(values, name);
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw cgError('USAGE', `--${name} must be an integer in [${min}, ${max}], got "${raw}"`);
  return n;
}

async function serveConfig(values: Parsed['values'], workerIndex: number): Promise<GatewayConfig> {
  const adminPort = intFlag(values, 'admin-port', 0, 65535);
  const id = stringOption(values, 'id');
  const overrides = {
    port: intFlag(values, 'port', 0, 65535),
    adminPort: adminPort === undefined || adminPort === 0 ? adminPort : adminPort + workerIndex,
    host: stringOption(values, 'host'),
    zone: stringOption(values, 'zone'),
    id: id && workerIndex > 0 ? `${id}-w${workerIndex}` : id,
    store: stringOption(values, 'store') ?? process.env.CELLGATE_STORE,
    prefix: stringOption(values, 'prefix'),
  };
  const file = stringOption(values, 'config');
  return file ? loadGatewayConfigFile(file, overrides) : parseGatewayConfig({}, overrides);
}

/** Stops `stop` once on SIGTERM/SIGINT; a second signal exits at once. */
function onSignals(stop: () => Promise<void>): void {
  let stopping = false;
  const handler = (signal: string) => {
    if (stopping) {
      process.stderr.write(`cellgate: ${signal} again, exiting now\n`);
      process.exit(1);
    }
    stopping = true;
    stop().then(() => process.exit(0), (err) => {
      process.stderr.write(`cellgate: shutdown failed: ${(err as Error).message}\n`);
      process.exit(1);
    });
  };
  process.on('SIGTERM', () => handler('SIGTERM'));
  process.on('SIGINT', () => handler('SIGINT'));
}

const NO_STORE = 'no store: give --store file:PATH or --store etcd:HOST:PORT (or `store:` / `etcd.endpoints` in the config, or set CELLGATE_STORE)';

/** The store to follow: --store / CELLGATE_STORE / config `store:`, else the config's etcd.endpoints. */
function storeSpecOf(config: GatewayConfig): string {
  if (config.store) return config.store;
  if (config.etcd?.endpoints?.length) return `etcd:${config.etcd.endpoints.join(',')}`;
  throw cgError('USAGE', NO_STORE);
}

const SECURITY_FLAGS = Object.keys(ETCD_SECURITY_OPTIONS);

/** Opens `spec` with etcd's TLS files and user from the flags, CELLGATE_ETCD_*, or the config's etcd block. */
function openWithSecurity(spec: string, prefix: string | undefined, values: Parsed['values'], config: EtcdSecurity = {}): TableStore {
  if (spec.startsWith('file:')) {
    const stray = SECURITY_FLAGS.find((f) => values[f] !== undefined);
    if (stray) throw cgError('USAGE', `--${stray} applies to an etcd store, not ${spec}`);
    return openStore(spec, { prefix });
  }
  return openStore(spec, { prefix, etcd: { security: etcdSecurityFromFlags(values, process.env, config) } });
}

function logLine(fields: Record<string, unknown>): void {
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), ...fields })}\n`);
}

/** snapshotPath true (the default) becomes a file per store (snapshot-location.ts); logged either way. */
function snapshotPathOf(config: GatewayConfig, storeSpec: string): string | false {
  if (typeof config.snapshotPath === 'string') {
    logLine({ event: 'snapshot', path: config.snapshotPath, why: 'snapshotPath in the configuration' });
    return config.snapshotPath;
  }
  if (config.snapshotPath === false) {
    logLine({ event: 'snapshot', path: null, why: 'snapshotPath: false (fail-static off)' });
    return false;
  }
  const found = defaultSnapshotLocation({ store: storeSpec, prefix: config.prefix });
  logLine({ event: 'snapshot', path: found.path, why: found.why });
  return found.path ?? false;
}

async function serveOne(values: Parsed['values'], workerIndex: number): Promise<void> {
  const loaded = await serveConfig(values, workerIndex);
  const storeSpec = storeSpecOf(loaded);
  const store = openWithSecurity(storeSpec, loaded.prefix, values, loaded.etcd ?? {});
  const config: GatewayConfig = { ...loaded, snapshotPath: snapshotPathOf(loaded, storeSpec) };
  const gateway: Gateway = createGateway({ config, store });
  onSignals(async () => {
    await gateway.shutdown();
    await store.close();
  });
  let addresses;
  try {
    addresses = await gateway.start();
  } catch (err) {
    // e.g. the port is taken: withdraw the presence record at once rather than at lease expiry.
    await gateway.shutdown().catch(() => undefined);
    await store.close().catch(() => undefined);
    throw err;
  }
  logLine({ event: 'listening', id: config.id, ...addresses });
}

/** node:cluster primary: N full gateways on one port; crashed workers are replaced. */
function superviseWorkers(count: number): void {
  let stopping = false;
  const fork = (index: number) => {
    const worker = cluster.fork({ CELLGATE_WORKER_INDEX: String(index) });
    worker.on('exit', (code, signal) => {
      if (stopping) return;
      process.stderr.write(`cellgate: worker ${index} exited (${signal ?? code}); starting another in 1 s\n`);
      setTimeout(() => { if (!stopping) fork(index); }, 1000).unref();
    });
  };
  for (let i = 0; i < count; i++) fork(i);
  onSignals(() => new Promise<void>((resolve) => {
    stopping = true;
    const workers = Object.values(cluster.workers ?? {});
    if (workers.length === 0) return resolve();
    let left = workers.length;
    for (const w of workers) {
      w?.on('exit', () => { if (--left === 0) resolve(); });
      w?.process.kill('SIGTERM');
    }
  }));
}

async function serve(values: Parsed['values'], positionals: readonly string[]): Promise<void> {
  if (positionals.length) throw cgError('USAGE', `unexpected argument ${positionals[0]} (see cellgate serve --help)`);
  const workers = intFlag(values, 'workers', 1, 64) ?? 1;
  if (workers > 1 && cluster.isPrimary) {
    // Validate once in the primary: bad options stop before any fork.
    storeSpecOf(await serveConfig(values, 0));
    superviseWorkers(workers);
    return;
  }
  await serveOne(values, Number(process.env.CELLGATE_WORKER_INDEX ?? 0));
}

async function zoneServer(values: Parsed['values'], positionals: readonly string[]): Promise<void> {
  if (positionals.length) throw cgError('USAGE', `unexpected argument ${positionals[0]} (see cellgate zone-server --help)`);
  const zone = stringOption(values, 'zone');
  if (!zone) throw cgError('USAGE', 'zone-server needs --zone ZONE');
  const spec = stringOption(values, 'store') ?? process.env.CELLGATE_STORE;
  if (!spec) throw cgError('USAGE', NO_STORE);
  const store = openWithSecurity(spec, stringOption(values, 'prefix'), values);
  const server = await startDemoZone({
    zone, store, port: intFlag(values, 'port', 0, 65535) ?? 0, host: stringOption(values, 'host'), enforce: values['no-enforce'] !== true,
  });
  onSignals(async () => {
    await server.close();
    await store.close();
  });
  logLine({ event: 'listening', zone, url: server.url });
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
  switch (command.name) {
    case 'serve':
      await serve(values, positionals);
      return null;
    case 'demo':
      await runDemo(values, positionals, onSignals);
      return null;
    default:
      await zoneServer(values, positionals);
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
