// The floor under the scale benchmark: what the etcd client alone costs a gateway per table
// version, with no cellgate code on top. `npm run bench scale-floor -- [--gateways K]
// [--versions V] [--via store|etcd3] [--shared-client]`: K clients (each its own etcd3 client,
// made with the store's options, or one shared) each watch the table key and hold a lease; a
// writer puts the bench table (as the store encodes it) V times; on every event each client
// puts its presence record on its lease, which is the least a gateway must do per version
// (receive the version, acknowledge it). `--via store` makes the put through the store's call
// wrapper (EtcdContext.call: time bound, retry policy, error translation), `--via etcd3`
// straight through etcd3. Measured: this process's CPU per client per version, and the etcd
// members' CPU per put (/proc), against a real 3-member etcd. Multiplied by N and by the
// versions of a change, it bounds from below what N simulated gateways need on one machine.
import { cpus, loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import type { Etcd3, Lease } from 'etcd3';
import { tableFromTopologyText } from '../src/cells/topology';
import { createEtcdClient, EtcdContext, resolveEtcdOptions } from '../src/store/etcd-client';
import { encodeTableValue } from '../src/store/table-encoding';
import { startEtcdCluster } from '../test/helpers/etcd';
import { procCpuMs } from './children';
import type { Report } from './report';
import { benchTopology } from './topology';
import { flagValue as flag } from './args';

const PREFIX = '/cellgate-floor';
const VERSION_TIMEOUT_MS = 30_000;

function ownCpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

export async function run(report: Report, argv: readonly string[] = process.argv.slice(2)): Promise<void> {
  const k = Number(flag(argv, 'gateways') ?? 200);
  const versions = Number(flag(argv, 'versions') ?? 20);
  const via = flag(argv, 'via') ?? 'store';
  const shared = argv.includes('--shared-client');
  // --ack none: each client only receives the version (no presence put): the receive half of the floor.
  const ack = flag(argv, 'ack') ?? 'put';
  if (!Number.isInteger(k) || k < 1 || k > 2_000) throw new Error(`--gateways must be an integer in [1, 2000], got ${k}`);
  if (!Number.isInteger(versions) || versions < 1 || versions > 200) throw new Error(`--versions must be an integer in [1, 200], got ${versions}`);
  if (via !== 'store' && via !== 'etcd3') throw new Error(`--via must be store or etcd3, got ${via}`);
  if (ack !== 'put' && ack !== 'none') throw new Error(`--ack must be put or none, got ${ack}`);
  report.section(`etcd client floor: ${k} clients, ${versions} versions, ${ack === 'none' ? 'no acknowledgement' : `puts via ${via}`}, ${shared ? 'one shared client' : 'one client each'}`);
  report.note(`${cpus().length} cores, load average ${loadavg()[0]!.toFixed(1)} at start.`);
  const cluster = await startEtcdCluster(3);
  const clients: Etcd3[] = [];
  const leases: Lease[] = [];
  try {
    const opts = resolveEtcdOptions({ endpoints: cluster.endpoints, prefix: PREFIX });
    const ctx = new EtcdContext(createEtcdClient(opts), opts, 'floor');
    clients.push(ctx.client);
    const value = encodeTableValue(tableFromTopologyText(benchTopology('floor', 'http://127.0.0.1:9')));
    await ctx.client.put(ctx.keys.table).value(value);
    let acked = 0;
    let wanted = 0;
    let wake: () => void = () => undefined;
    const sharedClient = shared ? createEtcdClient(opts) : null;
    if (sharedClient) clients.push(sharedClient);
    for (let i = 0; i < k; i++) {
      const client = sharedClient ?? createEtcdClient(opts);
      if (!sharedClient) clients.push(client);
      const mine = new EtcdContext(client, opts, 'floor');
      const lease: Lease = client.lease(10, { autoKeepAlive: true });
      leases.push(lease);
      await lease.grant();
      const key = `${mine.keys.gatewaysPrefix}gw-${i}`;
      const watcher = await client.watch().key(mine.keys.table).create();
      watcher.on('put', (kv) => {
        if (ack === 'none') {
          if (++acked === wanted) wake();
          return;
        }
        const record = JSON.stringify({ id: `gw-${i}`, appliedVersion: Number(kv.mod_revision) });
        const put = () => lease.put(key).value(record).exec();
        void (via === 'store' ? mine.call('publish presence', 'write', put) : put()).then(() => {
          if (++acked === wanted) wake();
        });
      });
    }
    const etcdCpu = () => cluster.members.reduce((a, m) => a + procCpuMs(m.pid), 0);
    const walls: number[] = [];
    const cpu0 = ownCpuMs();
    const etcd0 = etcdCpu();
    for (let v = 0; v < versions; v++) {
      wanted += k;
      const all = new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`version ${v + 1}: ${wanted - acked} acknowledgements missing after ${VERSION_TIMEOUT_MS} ms`)), VERSION_TIMEOUT_MS);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      const t0 = performance.now();
      await ctx.client.put(ctx.keys.table).value(value);
      await all;
      walls.push(performance.now() - t0);
    }
    const clientCpu = ownCpuMs() - cpu0;
    const etcdCpuMs = etcdCpu() - etcd0;
    walls.sort((a, b) => a - b);
    const r = (x: number) => Math.round(x * 1000) / 1000;
    report.line('clientCpuMsPerGatewayPerVersion', r(clientCpu / versions / k), 'ms');
    report.line('etcdCpuMsPerPut', r(etcdCpuMs / versions / k), 'ms');
    report.line('allAckedP50Ms', r(walls[Math.floor(walls.length / 2)]!), 'ms');
    report.line('loadAverageAtEnd', r(loadavg()[0]!), '');
  } finally {
    // A lease left to keep itself alive keeps this process alive after the report.
    for (const l of leases) l.release();
    for (const c of clients) c.close();
    await cluster.stop();
  }
}
