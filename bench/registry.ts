// The endpoint registry's propagation: `npm run bench registry -- [--gateways N] [--processes P]
// [--changes K] [--endpoints E]`. N simulated gateways (bench/registry-sim.ts: each its own
// etcd client, table watch, registry watch, RegistryFollower and routing state — the
// gateway's apply path without HTTP) in P processes against a real 3-member etcd, over a
// table of 8 zones. First E endpoints (default 500) across the 8 zones × 4 services are
// registered, each on its own lease (as E instances would); then K changes, alternately an
// instance registering and the same one withdrawing (close(): lease revoked). Measured per
// change: write start → every gateway routes with it (p50/p99/max; goal p99 ≤ 100 ms, the
// table's), the write itself, and the CPU one apply costs a gateway (merge + view + pools).
import { fork, type ChildProcess } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { tableFromTopologyText } from '../src/cells/topology';
import { createEtcdStore } from '../src/store/etcd-store';
import type { EndpointRegistration } from '../src/store/types';
import { startEtcdCluster } from '../test/helpers/etcd';
import { benchScript } from './children';
import { percentile } from './load';
import type { FromChild, ToChild } from './registry-child';
import { epochMs, type Expectation } from './registry-sim';
import type { Report } from './report';
import { intFlag } from './args';

const PREFIX = '/cellgate-registry-bench';
const ZONES = ['sh-a', 'sh-b', 'hz-a', 'hz-b', 'sz-a', 'sz-b', 'bj-a', 'bj-b'];
const SERVICES = ['default', 'orders', 'payments', 'users'];
const CHILD_TIMEOUT_MS = 120_000;

interface Args { readonly gateways: number; readonly processes: number; readonly changes: number; readonly endpoints: number }

function registryArgs(argv: readonly string[]): Args {
  const int = (name: string, dflt: number, min: number, max: number): number => intFlag(argv, name, dflt, min, max);
  const gateways = int('gateways', 20, 1, 1000);
  return { gateways, processes: Math.min(gateways, int('processes', 4, 1, 64)), changes: int('changes', 40, 2, 1000), endpoints: int('endpoints', 500, 0, 5000) };
}

function topology(): string {
  const zones = ZONES.map((z, i) => `  - { name: ${z}, region: r${Math.floor(i / 2)}, city: c${Math.floor(i / 2)}, capacity: 100, upstreams: ["http://127.0.0.1:${20000 + i}"] }`);
  return `name: registry-bench\ncells: 64\nglobal: sh-a\nzones:\n${zones.join('\n')}\n`;
}

/** A child process of simulated gateways and its messages, awaited by type. */
class Child {
  private readonly queue: FromChild[] = [];
  private wake: (() => void) | null = null;

  constructor(readonly proc: ChildProcess) {
    proc.on('message', (m: FromChild) => {
      this.queue.push(m);
      this.wake?.();
    });
    proc.on('exit', () => this.wake?.());
  }

  async next<T extends FromChild['type']>(type: T): Promise<Extract<FromChild, { type: T }>> {
    const deadline = Date.now() + CHILD_TIMEOUT_MS;
    for (;;) {
      const m = this.queue.shift();
      if (m?.type === 'error') throw new Error(`simulator: ${m.message}`);
      if (m?.type === type) return m as Extract<FromChild, { type: T }>;
      if (m) continue;
      if (this.proc.exitCode !== null) throw new Error(`simulator exited (${this.proc.exitCode})`);
      if (Date.now() > deadline) throw new Error(`simulator sent no ${type} within ${CHILD_TIMEOUT_MS} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 1_000);
        this.wake = () => { clearTimeout(timer); this.wake = null; resolve(); };
      });
    }
  }

  send(m: ToChild): void {
    this.proc.send(m);
  }
}

/** Arms every child for `e`, runs `write`, and returns [write start, write end, last gateway applied] (epoch ms) and the applies' CPU. */
async function change(children: readonly Child[], e: Expectation, write: () => Promise<unknown>): Promise<{ t0: number; written: number; applied: number; applyMs: number[] }> {
  for (const c of children) c.send({ type: 'expect', e });
  await Promise.all(children.map((c) => c.next('armed')));
  const t0 = epochMs();
  await write();
  const written = epochMs();
  const answers = await Promise.all(children.map((c) => c.next('applied')));
  return { t0, written, applied: Math.max(...answers.map((a) => a.atMs)), applyMs: answers.flatMap((a) => a.applyMs) };
}

export async function run(report: Report, argv: readonly string[] = process.argv.slice(2)): Promise<void> {
  const args = registryArgs(argv);
  report.section(`endpoint registry: ${args.gateways} simulated gateways in ${args.processes} processes, ${args.endpoints} registered endpoints (8 zones × 4 services), ${args.changes} changes, 3-member etcd`);
  report.note(`${cpus().length} cores, load average ${loadavg()[0]!.toFixed(1)} at start; one etcd client per gateway.`);
  const etcd = await startEtcdCluster(3);
  const open = () => createEtcdStore({ endpoints: etcd.endpoints, prefix: PREFIX });
  const admin = open();
  const registrar = open();
  const children: Child[] = [];
  const registrations: EndpointRegistration[] = [];
  try {
    const created = await admin.compareAndSwap(0, tableFromTopologyText(topology()));
    if (!created.ok) throw new Error('could not write the table');
    for (let p = 0; p < args.processes; p++) {
      const gateways = Math.floor(args.gateways / args.processes) + (p < args.gateways % args.processes ? 1 : 0);
      const start = { endpoints: etcd.endpoints, prefix: PREFIX, gateways, version: created.version };
      children.push(new Child(fork(benchScript('registry-child'), [], { env: { ...process.env, CELLGATE_REGISTRY_CHILD: JSON.stringify(start) }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })));
    }
    await Promise.all(children.map((c) => c.next('ready')));

    // E endpoints, registered 50 at a time (as instances starting together would).
    const load = await change(children, { count: args.endpoints }, async () => {
      for (let i = 0; i < args.endpoints; i += 50) {
        const batch = Array.from({ length: Math.min(50, args.endpoints - i) }, (_, k) => i + k);
        registrations.push(...await Promise.all(batch.map((n) => registrar.registry.register({
          zone: ZONES[n % ZONES.length]!, service: SERVICES[Math.floor(n / ZONES.length) % SERVICES.length]!, id: `bench-${n}`,
          url: `http://10.${Math.floor(n / 250)}.${n % 250}.1:8080`,
        }))));
      }
    });
    report.line(`${args.endpoints} endpoints registered → every gateway routes with them`, load.applied - load.t0, 'ms');

    const allAppliedMs: number[] = [];
    const writeMs: number[] = [];
    const applyMs: number[] = [];
    for (let c = 0; c < args.changes; c++) {
      const id = `churn-${c >> 1}`;
      const coming = c % 2 === 0;
      const r = await change(children, coming ? { has: id } : { hasNot: id }, async () => {
        if (coming) registrations.push(await registrar.registry.register({ zone: 'sh-a', service: 'orders', id, url: `http://10.99.${c >> 1}.1:8080` }));
        else await registrations.pop()!.close();
      });
      allAppliedMs.push(r.applied - r.t0);
      writeMs.push(r.written - r.t0);
      applyMs.push(...r.applyMs);
    }
    report.line('registry change → all gateways applied, p50', percentile(allAppliedMs, 50), 'ms');
    report.line('registry change → all gateways applied, p99', percentile(allAppliedMs, 99), 'ms', { bar: { max: 100 } });
    report.line('registry change → all gateways applied, max', Math.max(...allAppliedMs), 'ms');
    report.line('of which the write (register / revoke), p50', percentile(writeMs, 50), 'ms', { note: 'lease grant + put, or revoke, on a 3-member etcd' });
    report.line(`one apply of ${args.endpoints}+ endpoints (merge, view, pools), p50`, percentile(applyMs, 50), 'ms', { note: 'per gateway, per change' });
    report.line(`one apply of ${args.endpoints}+ endpoints, p99`, percentile(applyMs, 99), 'ms');
    report.note('write start = just before register() (lease grant + put) or close() (lease revoke); applied = the last gateway rebuilt routing with it.');
  } finally {
    for (const c of children) if (c.proc.exitCode === null) c.send({ type: 'stop' });
    // Bounded: a simulator that does not stop within 10 s is killed.
    await Promise.all(children.map((c) => (c.proc.exitCode === null ? new Promise<void>((resolve) => {
      const timer = setTimeout(() => c.proc.kill('SIGKILL'), 10_000);
      c.proc.once('exit', () => { clearTimeout(timer); resolve(); });
    }) : null)));
    await Promise.all(registrations.map((r) => r.close().catch(() => undefined)));
    await registrar.close();
    await admin.close();
    await etcd.stop();
  }
}
