#!/usr/bin/env node
// cellgate: run a gateway (`serve`), a whole local demo topology (`demo`), or one demo zone
// server (`zone-server`, used by the demo and the chaos harness).
import cluster from 'node:cluster';
import { cgError } from '../errors';
import { checkWorkerPorts, shareMetricsWithPrimary, startClusterMetricsServer, workerAdminPort } from '../router/cluster-metrics';
import { loadGatewayConfigFile, parseGatewayConfig, redactedConfig, unknownVariables, type GatewayConfig } from '../router/config';
import { createGateway, type Gateway } from '../router/gateway';
import { startDemoZone } from '../router/demo-zone';
import { readPemPairSync } from '../router/tls';
import { openStore } from '../store/open';
import { parseCommandArgs, stringOption, type Parsed } from './args';
import { runDemo } from './demo';
import { AUTOPILOT_HELP, runAutopilot } from './autopilot';
import { reportError } from './output';

const HELP = `cellgate — the cell-routing edge gateway

  cellgate serve [--config FILE] --store file:PATH|etcd:HOST:PORT[,…] [--prefix P]
                 [--port N] [--admin-port N] [--host H] [--admin-host H] [--zone ZONE] [--id NAME]
                 [--workers N] [--check]
      Run a gateway. Flags override CELLGATE_* variables, which override the config file
      (YAML or JSON; every key: docs/configuration.md). --check validates the configuration
      (and reads the TLS files), prints the effective configuration as JSON and exits 0, or 3
      with every problem, without listening or opening the store (like nginx -t).
      The admin server (/metrics, /admin/table) listens on --admin-host (default 127.0.0.1),
      apart from the traffic --host.
      With --workers N, N processes share the traffic port; the primary serves /metrics
      summed over the workers on the admin port, and worker i (0-based) has its own admin
      server on the admin port + 1 + i (an ephemeral port each when the admin port is 0).
  cellgate demo [--dir DIR] [--port N] [--admin-port N]
      A gateway in front of 8 demo zones (config/demo-topology.yaml) on the embedded file
      store in DIR (default .demo). Prints what to try.
  cellgate zone-server --zone ZONE --port N --store SPEC [--prefix P] [--no-enforce]
      One demo zone server: answers JSON saying which zone served the request and whether
      it owns the request's cell at its epoch (421 NOT_CELL_OWNER otherwise).

${AUTOPILOT_HELP}
Exit codes: 0 done, 1 error, 2 usage, 3 invalid configuration.
`;

const SERVE_OPTIONS = {
  config: { type: 'string' }, store: { type: 'string' }, prefix: { type: 'string' }, port: { type: 'string' }, 'admin-port': { type: 'string' },
  host: { type: 'string' }, 'admin-host': { type: 'string' }, zone: { type: 'string' }, id: { type: 'string' }, workers: { type: 'string' },
  check: { type: 'boolean' },
} as const;

function intFlag(values: Parsed['values'], name: string, min: number, max: number): number | undefined {
  const raw = stringOption(values, name);
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw cgError('USAGE', `--${name} must be an integer in [${min}, ${max}], got "${raw}"`);
  return n;
}

/** The gateway's config; a --workers worker (`workerIndex` not null) gets its own admin port and id. */
async function serveConfig(values: Parsed['values'], workerIndex: number | null): Promise<GatewayConfig> {
  const overrides = {
    port: intFlag(values, 'port', 0, 65535),
    adminPort: intFlag(values, 'admin-port', 0, 65535),
    host: stringOption(values, 'host'),
    adminHost: stringOption(values, 'admin-host'),
    zone: stringOption(values, 'zone'),
    id: stringOption(values, 'id'),
    store: stringOption(values, 'store'),
    prefix: stringOption(values, 'prefix'),
  };
  const file = stringOption(values, 'config');
  const sources = { env: process.env };
  const config = file ? await loadGatewayConfigFile(file, overrides, sources) : parseGatewayConfig({}, overrides, sources);
  if (workerIndex === null) return config;
  return { ...config, adminPort: workerAdminPort(config.adminPort, workerIndex), id: workerIndex > 0 ? `${config.id}-w${workerIndex}` : config.id };
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

const NO_STORE = 'no store: give --store file:PATH or --store etcd:HOST:PORT (or `store:` in the config, or set CELLGATE_STORE)';

function storeSpecOf(values: Parsed['values']): string {
  const spec = stringOption(values, 'store') ?? process.env.CELLGATE_STORE;
  if (!spec) throw cgError('USAGE', NO_STORE);
  return spec;
}

async function serveOne(values: Parsed['values'], workerIndex: number | null): Promise<void> {
  const config = await serveConfig(values, workerIndex);
  if (!config.store) throw cgError('USAGE', NO_STORE);
  const store = openStore(config.store, { prefix: config.prefix });
  const gateway: Gateway = createGateway({ config, store });
  if (workerIndex !== null) shareMetricsWithPrimary(gateway.registry);
  onSignals(async () => {
    await gateway.shutdown();
    await store.close();
  });
  // SIGHUP: new TLS files for new connections (a failure is logged, the old pair stays).
  if (config.tls) process.on('SIGHUP', () => void gateway.reloadTls().catch(() => undefined));
  let addresses;
  try {
    addresses = await gateway.start();
  } catch (err) {
    // e.g. the port is taken: withdraw the presence record at once rather than at lease expiry.
    await gateway.shutdown().catch(() => undefined);
    await store.close().catch(() => undefined);
    throw err;
  }
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), event: 'listening', id: config.id, ...addresses })}\n`);
}

/** node:cluster primary: N full gateways on one port; crashed workers are replaced. `closeRest` runs once they have exited. */
function superviseWorkers(count: number, closeRest: () => Promise<void>): void {
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
  }).then(closeRest));
}

async function serve(argv: readonly string[]): Promise<void> {
  const { values, positionals } = parseCommandArgs(argv, SERVE_OPTIONS);
  if (positionals.length) throw cgError('USAGE', `unexpected argument ${positionals[0]}`);
  const workers = intFlag(values, 'workers', 1, 64) ?? 1;
  if (values.check === true) return checkConfig(values);
  if (workers > 1 && cluster.isPrimary) {
    // Validate once in the primary: bad options stop before any fork.
    const config = await serveConfig(values, null);
    if (!config.store) throw cgError('USAGE', NO_STORE);
    checkWorkerPorts(config, workers);
    const metrics = await startClusterMetricsServer({ host: config.adminHost, port: config.adminPort });
    process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), event: 'primary.listening', pid: process.pid, workers, admin: metrics.admin })}\n`);
    superviseWorkers(workers, () => metrics.close());
    // SIGHUP reloads every listening worker's TLS certificate (and no longer ends the primary);
    // a worker still starting reads the files as they are now and has no handler yet.
    if (config.tls) {
      const listening = new Set<number>();
      cluster.on('listening', (w) => listening.add(w.id));
      cluster.on('exit', (w) => listening.delete(w.id));
      process.on('SIGHUP', () => {
        for (const w of Object.values(cluster.workers ?? {})) if (w && listening.has(w.id)) w.process.kill('SIGHUP');
      });
    }
    return;
  }
  await serveOne(values, cluster.isWorker ? Number(process.env.CELLGATE_WORKER_INDEX ?? 0) : null);
}

/** `serve --check`: the effective configuration (secrets redacted) on stdout, or INVALID_CONFIG (exit 3). */
async function checkConfig(values: Parsed['values']): Promise<void> {
  const config = await serveConfig(values, null);
  if (!config.store) throw cgError('USAGE', NO_STORE);
  if (config.tls) readPemPairSync(config.tls);
  process.stdout.write(`${JSON.stringify(redactedConfig(config), null, 2)}\n`);
  for (const warning of unknownVariables(process.env)) process.stderr.write(`cellgate: warning: ${warning}\n`);
  process.stderr.write('cellgate: configuration OK\n');
}

async function zoneServer(argv: readonly string[]): Promise<void> {
  const { values, positionals } = parseCommandArgs(argv, {
    zone: { type: 'string' }, port: { type: 'string' }, store: { type: 'string' }, host: { type: 'string' }, 'no-enforce': { type: 'boolean' },
  });
  if (positionals.length) throw cgError('USAGE', `unexpected argument ${positionals[0]}`);
  const zone = stringOption(values, 'zone');
  if (!zone) throw cgError('USAGE', 'zone-server needs --zone ZONE');
  const store = openStore(storeSpecOf(values), { prefix: stringOption(values, 'prefix') });
  const server = await startDemoZone({
    zone, store, port: intFlag(values, 'port', 0, 65535) ?? 0, host: stringOption(values, 'host'), enforce: values['no-enforce'] !== true,
  });
  onSignals(async () => {
    await server.close();
    await store.close();
  });
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), event: 'listening', zone, url: server.url })}\n`);
}

export async function main(argv: readonly string[]): Promise<number | null> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve':
      await serve(rest);
      return rest.includes('--check') ? 0 : null; // serve keeps running until a signal
    case 'demo':
      await runDemo(rest, onSignals);
      return null;
    case 'zone-server':
      await zoneServer(rest);
      return null;
    case 'autopilot':
      onSignals(await runAutopilot(rest));
      return null;
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(HELP);
      return command === undefined ? 2 : 0;
    default:
      throw cgError('USAGE', `unknown command "${command}" (see cellgate --help)`);
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => { if (code !== null) process.exit(code); },
    (err) => process.exit(reportError(err, false, 'cellgate')),
  );
}
