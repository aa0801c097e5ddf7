// `cellgate serve`: the configuration (file, CELLGATE_* environment, flags), the store with
// etcd's TLS files and user, the fail-static snapshot location, one gateway or N workers
// (whose metrics the primary sums), `--check`, and SIGHUP for the TLS certificate.
import cluster from 'node:cluster';
import { cgError } from '../errors';
import { checkWorkerPorts, shareMetricsWithPrimary, startClusterMetricsServer, workerAdminPort } from '../router/cluster-metrics';
import { loadGatewayConfigFile, parseGatewayConfig, redactedConfig, unknownVariables, type GatewayConfig } from '../router/config';
import { createGateway, type Gateway } from '../router/gateway';
import { defaultSnapshotLocation } from '../router/snapshot-location';
import { readPemPairSync } from '../router/tls';
import { checkRelayUrl, RelayedPresence } from '../store/relayed-presence';
import type { TableStore } from '../store/types';
import { NO_STORE, intFlag, openWithSecurity, stringOption, type Parsed } from './args';
import { logLine, onSignals } from './process-life';

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

/** The store to follow: --store / CELLGATE_STORE / config `store:`, else the config's etcd.endpoints. */
function storeSpecOf(config: GatewayConfig): string {
  if (config.store) return config.store;
  if (config.etcd?.endpoints?.length) return `etcd:${config.etcd.endpoints.join(',')}`;
  throw cgError('USAGE', NO_STORE);
}

/** snapshotPath true (the default) becomes a file per store (snapshot-location.ts); logged either way. */
function snapshotPathOf(config: GatewayConfig, storeSpec: string): string | false {
  if (typeof config.snapshotPath === 'string') {
    logLine({ event: 'snapshot', path: config.snapshotPath, why: 'snapshotPath in the configuration' });
    return config.snapshotPath;
  }
  if (config.snapshotPath === false || config.snapshotPath === null) {
    logLine({ event: 'snapshot', path: null, why: 'snapshotPath: false (fail-static off)' });
    return false;
  }
  const found = defaultSnapshotLocation({ store: storeSpec, prefix: config.prefix });
  logLine({ event: 'snapshot', path: found.path, why: found.why });
  return found.path ?? false;
}

/** Presence through the configured relays (etcd stores only); null without relays. */
function relayedPresenceOf(config: GatewayConfig, storeSpec: string, store: TableStore): RelayedPresence | null {
  const { urls, token, requestTimeoutMs } = config.presenceRelay;
  if (urls.length === 0) return null;
  if (!storeSpec.startsWith('etcd:')) throw cgError('USAGE', 'presenceRelay.urls needs an etcd store: a file store has no relay');
  return new RelayedPresence(store.presence, {
    relays: urls.map(checkRelayUrl), ...(token ? { token } : {}), requestTimeoutMs,
    onState: (id, state, detail) => logLine({ event: 'presence.relay', id, state, ...detail }),
  });
}

async function serveOne(values: Parsed['values'], workerIndex: number | null): Promise<void> {
  const loaded = await serveConfig(values, workerIndex);
  const storeSpec = storeSpecOf(loaded);
  const store = openWithSecurity(storeSpec, loaded.prefix, values, loaded.etcd ?? {});
  const config: GatewayConfig = { ...loaded, snapshotPath: snapshotPathOf(loaded, storeSpec) };
  const relayed = relayedPresenceOf(config, storeSpec, store);
  const gateway: Gateway = createGateway({ config, store, ...(relayed ? { presence: relayed } : {}) });
  if (workerIndex !== null) shareMetricsWithPrimary(gateway.registry);
  const closeAll = async () => {
    await gateway.shutdown();
    await relayed?.close();
    await store.close();
  };
  onSignals(closeAll);
  // SIGHUP: new TLS files for new connections (a failure is logged, the old pair stays).
  if (config.tls) process.on('SIGHUP', () => void gateway.reloadTls().catch(() => undefined));
  let addresses;
  try {
    addresses = await gateway.start();
  } catch (err) {
    // e.g. the port is taken: withdraw the presence record at once rather than at lease expiry.
    await closeAll().catch(() => undefined);
    throw err;
  }
  logLine({ event: 'listening', id: config.id, ...addresses });
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

/** SIGHUP reloads every listening worker's TLS certificate (and no longer ends the primary). */
function forwardSighupToWorkers(): void {
  // A worker still starting reads the files as they are now and has no handler yet.
  const listening = new Set<number>();
  cluster.on('listening', (w) => listening.add(w.id));
  cluster.on('exit', (w) => listening.delete(w.id));
  process.on('SIGHUP', () => {
    for (const w of Object.values(cluster.workers ?? {})) if (w && listening.has(w.id)) w.process.kill('SIGHUP');
  });
}

/** `serve --check`: the effective configuration (secrets redacted) on stdout, or INVALID_CONFIG (exit 3). */
async function checkConfig(values: Parsed['values']): Promise<void> {
  const config = await serveConfig(values, null);
  storeSpecOf(config);
  if (config.tls) readPemPairSync(config.tls);
  process.stdout.write(`${JSON.stringify(redactedConfig(config), null, 2)}\n`);
  for (const warning of unknownVariables(process.env)) process.stderr.write(`cellgate: warning: ${warning}\n`);
  process.stderr.write('cellgate: configuration OK\n');
}

/** Runs `cellgate serve`; resolves with an exit code for a command that ends (--check), null while serving. */
export async function serve(values: Parsed['values'], positionals: readonly string[]): Promise<number | null> {
  if (positionals.length) throw cgError('USAGE', `unexpected argument ${positionals[0]} (see cellgate serve --help)`);
  const workers = intFlag(values, 'workers', 1, 64) ?? 1;
  if (values.check === true) {
    await checkConfig(values);
    return 0;
  }
  if (workers > 1 && cluster.isPrimary) {
    // Validate once in the primary: bad options stop before any fork.
    const config = await serveConfig(values, null);
    storeSpecOf(config);
    checkWorkerPorts(config, workers);
    const metrics = await startClusterMetricsServer({ host: config.adminHost, port: config.adminPort });
    logLine({ event: 'primary.listening', pid: process.pid, workers, admin: metrics.admin });
    superviseWorkers(workers, () => metrics.close());
    if (config.tls) forwardSighupToWorkers();
    return null;
  }
  await serveOne(values, cluster.isWorker ? Number(process.env.CELLGATE_WORKER_INDEX ?? 0) : null);
  return null;
}
