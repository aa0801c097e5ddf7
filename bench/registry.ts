// The endpoint registry's propagation: `npm run bench registry -- [--gateways N] [--changes K]
// [--endpoints E]`. N simulated gateways in this process (each its own etcd client, table
// watch, registry watch, RegistryFollower and routing state: the gateway's apply path
// without HTTP) against a real 3-member etcd, over a table of 8 zones. First E endpoints
// (default 500) across the 8 zones × 4 services are registered, each on its own lease (as
// E instances would); then K changes, alternately an instance registering and the same one
// withdrawing (close(): lease revoked). Measured per change: write start → every gateway
// routes with it (p50/p99/max; goal p99 ≤ 100 ms, the table's), and the CPU one apply of a
// registry of E endpoints costs a gateway (merge + routing view + pools).
import { cpus, loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { tableFromTopologyText } from '../src/cells/topology';
import { systemClock } from '../src/router/clock';
import { parseGatewayConfig } from '../src/router/config';
import { EndpointHealth } from '../src/router/endpoints';
import { RegistryFollower } from '../src/router/registry-follower';
import { RoutingStateHolder } from '../src/router/routing-state';
import { createEtcdStore } from '../src/store/etcd-store';
import type { EndpointRegistration, RegistrySnapshot, TableStore } from '../src/store/types';
import { startEtcdCluster } from '../test/helpers/etcd';
import { percentile } from './load';
import type { Report } from './report';

const PREFIX = '/cellgate-registry-bench';
const ZONES = ['sh-a', 'sh-b', 'hz-a', 'hz-b', 'sz-a', 'sz-b', 'bj-a', 'bj-b'];
const SERVICES = ['default', 'orders', 'payments', 'users'];
const APPLY_TIMEOUT_MS = 30_000;

interface Args { readonly gateways: number; readonly changes: number; readonly endpoints: number }

function registryArgs(argv: readonly string[]): Args {
  const int = (name: string, dflt: number, min: number, max: number): number => {
    const i = argv.indexOf(`--${name}`);
    if (i < 0) return dflt;
    const n = Number(argv[i + 1]);
    if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be an integer in [${min}, ${max}]`);
    return n;
  };
  return { gateways: int('gateways', 20, 1, 500), changes: int('changes', 40, 2, 1000), endpoints: int('endpoints', 500, 0, 5000) };
}

function topology(): string {
  const zones = ZONES.map((z, i) => `  - { name: ${z}, region: r${Math.floor(i / 2)}, city: c${Math.floor(i / 2)}, capacity: 100, upstreams: ["http://127.0.0.1:${20000 + i}"] }`);
  return `name: registry-bench\ncells: 64\nglobal: sh-a\nzones:\n${zones.join('\n')}\n`;
}

/** One simulated gateway: what createGateway wires for the table and the registry. */
class SimGateway {
  readonly routing = new RoutingStateHolder(new EndpointHealth(parseGatewayConfig({}).upstream, () => Date.now()), systemClock);
  readonly applyMs: number[] = [];
  private readonly follower: RegistryFollower;
  private waiter: { check: (s: RegistrySnapshot) => boolean; resolve: (atMs: number) => void } | null = null;
  private last: RegistrySnapshot | null = null;
  private readonly tableWatch;

  constructor(readonly store: TableStore) {
    this.tableWatch = store.watch({ onTable: (vt) => this.routing.swap(vt, 'store', Date.now()) });
    this.follower = new RegistryFollower(store.registry, {
      apply: (s) => {
        const t = performance.now();
        const merge = this.routing.registryChanged(s);
        this.applyMs.push(performance.now() - t);
        return merge;
      },
      applied: (s) => {
        this.last = s;
        const w = this.waiter;
        if (w && w.check(s)) {
          this.waiter = null;
          w.resolve(performance.now());
        }
      },
      log: () => undefined,
    });
    this.follower.start();
  }

  /** Resolves with the time (performance.now) the first snapshot satisfying `check` was applied. */
  until(check: (s: RegistrySnapshot) => boolean): Promise<number> {
    if (this.last && check(this.last)) return Promise.resolve(performance.now());
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('a gateway did not apply the registry change in time')), APPLY_TIMEOUT_MS);
      this.waiter = { check, resolve: (at) => { clearTimeout(timer); resolve(at); } };
    });
  }

  async close(): Promise<void> {
    await this.follower.close();
    await this.tableWatch.close();
    await this.store.close();
  }
}

const has = (id: string) => (s: RegistrySnapshot) => s.endpoints.some((e) => e.id === id);
const hasNot = (id: string) => (s: RegistrySnapshot) => !s.endpoints.some((e) => e.id === id);

export async function run(report: Report, argv: readonly string[] = process.argv.slice(2)): Promise<void> {
  const args = registryArgs(argv);
  report.section(`endpoint registry: ${args.gateways} simulated gateways, ${args.endpoints} registered endpoints (8 zones × 4 services), ${args.changes} changes, 3-member etcd`);
  report.note(`${cpus().length} cores, load average ${loadavg()[0]!.toFixed(1)} at start; one etcd client per gateway, all in this process.`);
  const etcd = await startEtcdCluster(3);
  const open = () => createEtcdStore({ endpoints: etcd.endpoints, prefix: PREFIX });
  const admin = open();
  const registrar = open();
  const gateways: SimGateway[] = [];
  const registrations: EndpointRegistration[] = [];
  try {
    const created = await admin.compareAndSwap(0, tableFromTopologyText(topology()));
    if (!created.ok) throw new Error('could not write the table');
    for (let i = 0; i < args.gateways; i++) gateways.push(new SimGateway(open()));
    await Promise.all(gateways.map((g) => g.routing.waitForVersion(created.version, APPLY_TIMEOUT_MS, 'bench')));

    // E endpoints, registered 50 at a time (as instances starting together would).
    const loadStart = performance.now();
    for (let i = 0; i < args.endpoints; i += 50) {
      const batch = Array.from({ length: Math.min(50, args.endpoints - i) }, (_, k) => i + k);
      registrations.push(...await Promise.all(batch.map((n) => registrar.registry.register({
        zone: ZONES[n % ZONES.length]!, service: SERVICES[Math.floor(n / ZONES.length) % SERVICES.length]!, id: `bench-${n}`,
        url: `http://10.${Math.floor(n / 250)}.${n % 250}.1:8080`,
      }))));
    }
    await Promise.all(gateways.map((g) => g.until((s) => s.endpoints.length === args.endpoints)));
    report.line(`${args.endpoints} endpoints registered → every gateway routes with them`, performance.now() - loadStart, 'ms');
    const big = gateways.flatMap((g) => g.applyMs.slice(-1)); // each gateway's apply of the whole registry
    report.line(`one apply of ${args.endpoints} endpoints (merge, view, pools), p50`, percentile(big, 50), 'ms', { note: 'per gateway, per change' });

    // K changes: one instance comes, then goes.
    const allAppliedMs: number[] = [];
    const writeMs: number[] = [];
    for (let c = 0; c < args.changes; c++) {
      const id = `churn-${c >> 1}`;
      const coming = c % 2 === 0;
      const waits = gateways.map((g) => g.until(coming ? has(id) : hasNot(id)));
      const t0 = performance.now();
      if (coming) registrations.push(await registrar.registry.register({ zone: 'sh-a', service: 'orders', id, url: `http://10.99.${c >> 1}.1:8080` }));
      else await registrations.pop()!.close();
      writeMs.push(performance.now() - t0);
      const times = await Promise.all(waits);
      allAppliedMs.push(Math.max(...times) - t0);
    }
    report.line('registry change → all gateways applied, p50', percentile(allAppliedMs, 50), 'ms');
    report.line('registry change → all gateways applied, p99', percentile(allAppliedMs, 99), 'ms', { bar: { max: 100 } });
    report.line('registry change → all gateways applied, max', Math.max(...allAppliedMs), 'ms');
    report.line('of which the write (register / revoke), p50', percentile(writeMs, 50), 'ms', { note: 'lease grant + put, or revoke, on a 3-member etcd' });
    const changeApply = gateways.flatMap((g) => g.applyMs.slice(-args.changes));
    report.line(`one apply during the changes (${args.endpoints + 1} endpoints), p99`, percentile(changeApply, 99), 'ms');
    report.note('write start = just before register() (lease grant + put) or close() (lease revoke); applied = the gateway rebuilt routing with it.');
  } finally {
    await Promise.all(registrations.map((r) => r.close().catch(() => undefined)));
    await Promise.all(gateways.map((g) => g.close().catch(() => undefined)));
    await registrar.close();
    await admin.close();
    await etcd.stop();
  }
}
