// `cellgate serve`: the configuration (file, flags, environment), the store with etcd's
// TLS files and user, the fail-static snapshot location, one gateway or N workers.
import cluster from 'node:cluster';
import { cgError } from '../errors';
import { loadGatewayConfigFile, parseGatewayConfig, type GatewayConfig } from '../router/config';
import { createGateway, type Gateway } from '../router/gateway';
import { defaultSnapshotLocation } from '../router/snapshot-location';
import { NO_STORE, intFlag, openWithSecurity, stringOption, type Parsed } from './args';
import { logLine, onSignals } from './process-life';

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

export async function serve(values: Parsed['values'], positionals: readonly string[]): Promise<void> {
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

