// `cellgate demo`: the whole product on one machine, for trying it out. A file store made
// from config/demo-topology.yaml, one demo zone server per zone upstream (ports 7001-7008, or
// --base-port N and up), and a gateway in front, standing in zone sh-a. `--reset` starts from
// a fresh table. Everything stops on Ctrl-C.
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { tableFromTopologyText } from '../cells/topology';
import { cgError } from '../errors';
import { parseGatewayConfig } from '../router/config';
import { startDemoZone, type DemoZone } from '../router/demo-zone';
import { createGateway } from '../router/gateway';
import { openStore } from '../store/open';
import type { RoutingTable } from '../cells/types';
import type { TableStore } from '../store/types';
import { intFlag, stringOption, type Parsed } from './args';

/** The package root (dist/src/cli -> ../../..). */
const ROOT = resolve(__dirname, '..', '..', '..');
export const DEMO_TOPOLOGY = join(ROOT, 'config', 'demo-topology.yaml');
const GATEWAY_ZONE = 'sh-a';

/** The demo topology's table, its zone servers moved to basePort, basePort + 1, … when given. */
function demoTable(basePort: number | undefined): RoutingTable {
  const table = tableFromTopologyText(readFileSync(DEMO_TOPOLOGY, 'utf8'));
  if (basePort === undefined) return table;
  let port = basePort;
  const zones = table.zones.map((z) => ({ ...z, upstreams: z.upstreams.map(() => `http://127.0.0.1:${port++}`) }));
  return { ...table, zones };
}

async function ensureTable(store: TableStore, basePort: number | undefined): Promise<void> {
  if (await store.load()) return;
  const table = demoTable(basePort);
  // If someone else initialised it meanwhile, the CAS fails and theirs is used.
  await store.compareAndSwap(0, table, {
    actor: 'cellgate-demo', at: new Date().toISOString(), reason: 'demo start', action: 'init --topology config/demo-topology.yaml',
    summary: [`${table.cells.length} cells over ${table.zones.length} zones`],
  });
}

function portOf(url: string): number {
  return Number(new URL(url).port);
}

/** `values`: the flags of `cellgate demo`, parsed by cellgate.ts. */
export async function runDemo(values: Parsed['values'], positionals: readonly string[], onSignals: (stop: () => Promise<void>) => void): Promise<void> {
  if (positionals.length) throw cgError('USAGE', `unexpected argument ${positionals[0]} (see cellgate demo --help)`);
  const dir = resolve(stringOption(values, 'dir') ?? '.demo');
  const basePort = intFlag(values, 'base-port', 1, 65535 - 8);
  // --reset: the table, its history, presence files and the snapshot go; the demo starts afresh.
  if (values.reset === true) rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const tablePath = join(dir, 'table.json');
  const store = openStore(`file:${tablePath}`);
  await ensureTable(store, basePort);
  const vt = await store.load();
  if (!vt) throw cgError('NOT_INITIALIZED', `${tablePath} holds no table`);
  const firstPort = portOf(vt.table.zones[0]!.upstreams[0]!);
  if (basePort !== undefined && firstPort !== basePort) {
    throw cgError('USAGE', `${tablePath} already places the zone servers from port ${firstPort}: add --reset to start afresh on --base-port ${basePort}`);
  }

  const zones: DemoZone[] = [];
  for (const zone of vt.table.zones) {
    for (const upstream of zone.upstreams) zones.push(await startDemoZone({ zone: zone.name, store, port: portOf(upstream) }));
  }
  const config = parseGatewayConfig({
    port: intFlag(values, 'port', 0, 65535) ?? 8080,
    adminPort: intFlag(values, 'admin-port', 0, 65535) ?? 9090,
    zone: GATEWAY_ZONE,
    id: 'demo-gateway',
    snapshotPath: join(dir, 'snapshot.json'),
    routes: [{ prefix: '/global/', class: 'global' }, { prefix: '/city/', class: 'city' }, { prefix: '/', class: 'unit' }],
  });
  const gateway = createGateway({ config, store, log: () => undefined });
  onSignals(async () => {
    await gateway.shutdown();
    await Promise.all(zones.map((z) => z.close()));
    await store.close();
  });
  const addr = await gateway.start();
  // What it prints is to be tried at once: say so only once the gateway routes with the table.
  await gateway.waitForVersion(vt.version);
  const file = relative(process.cwd(), tablePath) || tablePath;
  const cellctl = `node ${relative(process.cwd(), join(ROOT, 'dist', 'src', 'cli', 'cellctl.js'))}`;
  process.stdout.write(`cellgate demo: gateway ${addr.traffic} (admin ${addr.admin}) in front of ${zones.length} demo zones
table: ${file} (revision ${vt.version}); the gateway stands in zone ${GATEWAY_ZONE}

Try:
  curl -s -H 'x-user-id: alice' ${addr.traffic}/hello            # served by alice's zone
  curl -s ${addr.traffic}/global/info                            # the global zone
  curl -s '${addr.admin}/admin/route?user=alice'                 # why alice goes where she goes
  ${cellctl} route alice bob --file ${file}
  ${cellctl} status --file ${file}
  ${cellctl} zone down sh-a --reason "demo outage" --yes --file ${file}
  ${cellctl} zone up sh-a --reason "demo repaired" --yes --file ${file}
  curl -s ${addr.admin}/metrics | grep ^cellgate_

Ctrl-C stops everything.
`);
}
