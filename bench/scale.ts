// The control plane at scale: `npm run bench scale -- --gateways N [--changes K] [--out DIR]
// [--processes P] [--code DIST] [--cells C] [--clients per-gateway|per-process] [--shared-client] [--table-encoding deflate|json]
// [--relays R]`. N simulated gateways (bench/scale-child.ts: each its own etcd
// client, table watch, lease, follower, routing state and presence publisher, no HTTP
// listener) in P processes against a real 3-member etcd; K changes made with the real
// executor (what `cellctl` runs), alternating `zone down sh-a` (unplanned: one version) and
// `zone up sh-a` (failback, planned: freeze + flip, two versions), each waiting on the
// presence watch for every gateway. Measured per change: write start -> the executor saw
// every gateway on the new revision (p50/p99/max), presence writes (counted by the
// gateways), etcd CPU (/proc of the members), bytes etcd sent to clients (its gRPC metric),
// CPU of the gateway processes per gateway. `--code DIST` runs the simulated gateways and
// the executor from another build (e.g. the code before a change) for comparison.
// `--clients per-process` (or `--shared-client`; current code only) shares one etcd client among a process's
// gateways: etcd still sees one watcher, one lease with its keep-alive stream and one put
// per gateway, but P connections instead of N — the simulator's own gRPC overhead, which on
// real gateways is spread over N machines, then weighs less on this one.
// `--relays R` starts R presence relays (`cellgate presence-relay` of this build, one process
// each, like one per region) and the simulated gateways send their presence through them:
// etcd then takes a few transactions per relay per version instead of one put per gateway.
import { fork, type ChildProcess } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { RoutingTable } from '../src/cells/types';
import { startEtcdCluster, type EtcdCluster } from '../test/helpers/etcd';
import { benchScript, procCpuMs, stopAll, type BenchChild } from './children';
import { percentile } from './load';
import { startRelays } from './relays';
import type { Report } from './report';
import type { ChildMessage, ChildStart } from './scale-child';
import { benchTopology } from './topology';
import { flagValue as flag, intFlag } from './args';

const PREFIX = '/cellgate-scale';
const CONVERGE_TIMEOUT_MS = 30_000;
const READY_TIMEOUT_MS = 180_000;
/** Quiet time before the changes: the steady-state cost (lease keep-alives, watchdog reads). */
const IDLE_MS = 5_000;
const SIMULATOR_NODE_ARGS = '--max-semi-space-size=64';

export interface ScaleArgs {
  readonly gateways: number;
  readonly changes: number;
  readonly out: string | null;
  readonly processes: number;
  readonly codeDir: string;
  /** Cells of the table (64 by default, as in the issue; 10,000 shows the apply path's cost). */
  readonly cells: number;
  readonly clients: 'per-gateway' | 'per-process';
  /** How the executor writes the table (the stores' default is json; the bench measures deflate, the scalable setting). */
  readonly tableEncoding: 'deflate' | 'json';
  /** Presence relays (`cellgate presence-relay`, this build) the gateways send their records through; 0: none. */
  readonly relays: number;
}

export interface ScaleResult {
  readonly gateways: number;
  readonly changes: number;
  readonly applyAllP50Ms: number;
  readonly applyAllP99Ms: number;
  readonly applyAllMaxMs: number;
  readonly presenceWritesPerChange: number;
  readonly etcdCpuMsPerChange: number;
  readonly applyCpuMsPerGateway: number;
}

export function scaleArgs(argv: readonly string[]): ScaleArgs {
  const int = (name: string, dflt: number, min: number, max: number): number => intFlag(argv, name, dflt, min, max);
  const gateways = int('gateways', 50, 1, 5_000);
  return {
    gateways,
    changes: int('changes', 10, 1, 1_000),
    out: flag(argv, 'out') ?? null,
    // One simulator process per core: more only add event loops and heaps competing for them.
    processes: int('processes', Math.min(cpus().length, gateways), 1, 64),
    codeDir: resolve(flag(argv, 'code') ?? join(__dirname, '..')),
    cells: int('cells', 64, 1, 20_000),
    clients: argv.includes('--shared-client') ? 'per-process' : clientsFlag(flag(argv, 'clients')),
    tableEncoding: encodingFlag(flag(argv, 'table-encoding')),
    relays: int('relays', 0, 0, 16),
  };
}

function encodingFlag(raw: string | undefined): ScaleArgs['tableEncoding'] {
  if (raw === undefined || raw === 'deflate' || raw === 'json') return raw ?? 'deflate';
  throw new Error(`--table-encoding must be deflate or json, got ${raw}`);
}

function clientsFlag(raw: string | undefined): ScaleArgs['clients'] {
  if (raw === undefined || raw === 'per-gateway' || raw === 'per-process') return raw ?? 'per-gateway';
  throw new Error(`--clients must be per-gateway or per-process, got ${raw}`);
}

/** Raft proposals etcd committed (every put or transaction of a client is one). */
async function etcdProposals(endpoints: readonly string[]): Promise<number> {
  const res = await fetch(`http://${endpoints[0]}/metrics`);
  const m = /^etcd_server_proposals_committed_total (\S+)$/m.exec(await res.text());
  return m ? Number(m[1]) : 0;
}

async function etcdSentBytes(endpoints: readonly string[]): Promise<number> {
  let sum = 0;
  for (const e of endpoints) {
    const res = await fetch(`http://${e}/metrics`);
    const m = /^etcd_network_client_grpc_sent_bytes_total (\S+)$/m.exec(await res.text());
    sum += m ? Number(m[1]) : 0;
  }
  return sum;
}

class Child {
  private readonly waiters: ((m: ChildMessage) => boolean)[] = [];
  readonly exited: Promise<void>;

  constructor(readonly proc: ChildProcess) {
    proc.on('message', (m: ChildMessage) => {
      const i = this.waiters.findIndex((w) => w(m));
      if (i >= 0) this.waiters.splice(i, 1);
    });
    this.exited = new Promise((r) => proc.once('exit', () => r()));
  }

  next<T extends ChildMessage['type']>(type: T, timeoutMs: number): Promise<Extract<ChildMessage, { type: T }>> {
    return new Promise((resolvePromise, reject) => {
      const timer = setTimeout(() => reject(new Error(`simulator process: no '${type}' within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push((m) => {
        if (m.type === 'error') {
          clearTimeout(timer);
          reject(new Error(m.message));
          return true;
        }
        if (m.type !== type) return false;
        clearTimeout(timer);
        resolvePromise(m as Extract<ChildMessage, { type: T }>);
        return true;
      });
    });
  }

  async stats(): Promise<Extract<ChildMessage, { type: 'stats' }>> {
    const reply = this.next('stats', 30_000);
    this.proc.send({ type: 'stats' });
    return reply;
  }
}

interface Totals { cpuMs: number; presenceWrites: number; applies: number; applyCpuMs: number }

async function totals(children: readonly Child[]): Promise<Totals> {
  const all = await Promise.all(children.map((c) => c.stats()));
  return all.reduce((a, s) => ({ cpuMs: a.cpuMs + s.cpuMs, presenceWrites: a.presenceWrites + s.presenceWrites, applies: a.applies + s.applies, applyCpuMs: a.applyCpuMs + s.applyCpuMs }), { cpuMs: 0, presenceWrites: 0, applies: 0, applyCpuMs: 0 });
}

type Load = <T>(module: string) => T;

/** Runs the simulation; everything it starts is stopped before it returns or throws. */
export async function simulate(args: ScaleArgs, log: (line: string) => void = () => undefined): Promise<ScaleResult & Record<string, number>> {
  const load: Load = <T>(module: string) => require(join(args.codeDir, module)) as T;
  const { tableFromTopologyText } = load<typeof import('../src/cells/topology')>('src/cells/topology');
  const { openStore } = load<typeof import('../src/store/open')>('src/store/open');
  const { FailoverExecutor } = load<typeof import('../src/failover/executor')>('src/failover/executor');
  const { planZoneDown, planZoneUp } = load<typeof import('../src/failover/planner')>('src/failover/planner');
  let cluster: EtcdCluster | null = null;
  const children: Child[] = [];
  let relays: BenchChild[] = [];
  const killAll = () => { for (const c of children) c.proc.kill('SIGKILL'); };
  process.once('exit', killAll);
  try {
    cluster = await startEtcdCluster(3);
    const endpoints = cluster.endpoints;
    const store = openStore(`etcd:${endpoints.join(',')}`, { prefix: PREFIX, etcd: { tableEncoding: args.tableEncoding } });
    try {
      // The bench topology (4 zones), with room for the cells asked for.
      const topology = benchTopology('scale', 'http://127.0.0.1:9').replace('cells: 64', `cells: ${args.cells}`).replace(/capacity: 100/g, `capacity: ${Math.max(100, args.cells)}`);
      const cas = await store.compareAndSwap(0, tableFromTopologyText(topology));
      if (!cas.ok) throw new Error('the table could not be created');
      const ids = Array.from({ length: args.gateways }, (_, i) => `gw-${String(i).padStart(5, '0')}`);
      const started = args.relays > 0 ? await startRelays(args.relays, endpoints, PREFIX) : { procs: [], urls: [] };
      relays = started.procs;
      for (let p = 0; p < args.processes; p++) {
        const start: ChildStart = { codeDir: args.codeDir, endpoints, prefix: PREFIX, ids: ids.filter((_, i) => i % args.processes === p), clients: args.clients, relays: started.urls };
        // CELLGATE_SCALE_NODE_ARGS: node flags for the simulator processes (e.g. --cpu-prof).
        // By default a larger young generation: hundreds of simulated gateways share one
        // process's, where each real gateway has its own, so the default would collect
        // garbage far more often per gateway than a gateway does.
        const execArgv = (process.env.CELLGATE_SCALE_NODE_ARGS ?? SIMULATOR_NODE_ARGS).split(' ').filter((a) => a !== '');
        const proc = fork(benchScript('scale-child'), [], { execArgv, env: { ...process.env, CELLGATE_SCALE_CHILD: JSON.stringify(start) }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
        children.push(new Child(proc));
      }
      const ready = await Promise.all(children.map((c) => c.next('ready', READY_TIMEOUT_MS)));
      const registered = ready.reduce((a, r) => a + r.registered, 0);
      if (registered !== args.gateways) throw new Error(`only ${registered} of ${args.gateways} simulated gateways registered`);
      log(`${args.gateways} gateways in ${args.processes} processes registered`);
      const members = cluster.members;
      const etcdCpu = () => members.reduce((a, m) => a + procCpuMs(m.pid), 0);
      const relayCpu = () => relays.reduce((a, p) => a + procCpuMs(p.pid), 0);
      // Steady state: nothing changes.
      const idle0 = { etcd: etcdCpu(), bytes: await etcdSentBytes(endpoints), gw: await totals(children), at: performance.now() };
      await new Promise((r) => setTimeout(r, IDLE_MS));
      const idle1 = { etcd: etcdCpu(), bytes: await etcdSentBytes(endpoints), gw: await totals(children), at: performance.now() };
      const idleS = (idle1.at - idle0.at) / 1000;
      const allApplied: number[] = [];
      const fanOut: number[] = [];
      // Per version: its write (compare-and-swap sent) -> the executor saw every gateway on it.
      const perPhase: Record<'change' | 'freeze' | 'flip' | 'between', number[]> = { change: [], freeze: [], flip: [], between: [] };
      const before = { etcd: etcdCpu(), relay: relayCpu(), proposals: await etcdProposals(endpoints), bytes: await etcdSentBytes(endpoints), gw: await totals(children), at: performance.now() };
      let versions = 0;
      for (let i = 0; i < args.changes; i++) {
        let writeStart: number | null = null;
        let seenAll: number | null = null;
        const casStarts: number[] = [];
        const seenPerPhase: { phase: string; at: number }[] = [];
        const timed = new Proxy(store, {
          get(target, prop) {
            if (prop === 'compareAndSwap') {
              return (v: number, t: RoutingTable, note?: Parameters<typeof store.compareAndSwap>[2]) => {
                writeStart ??= performance.now();
                casStarts.push(performance.now());
                return target.compareAndSwap(v, t, note);
              };
            }
            const value = Reflect.get(target, prop) as unknown;
            return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
          },
        });
        const result = await new FailoverExecutor({
          store: timed, actor: 'bench', reason: 'scale benchmark', convergeTimeoutMs: CONVERGE_TIMEOUT_MS, freezeMs: CONVERGE_TIMEOUT_MS * 2,
          makePlan: (t) => (i % 2 === 0 ? planZoneDown(t, 'sh-a') : planZoneUp(t, 'sh-a')),
          onEvent: (e) => {
            if (e.type === 'written') versions += 1;
            if (e.type === 'converging' && e.status.converged) {
              seenAll = performance.now();
              if (seenPerPhase.at(-1)?.phase !== e.phase) seenPerPhase.push({ phase: e.phase, at: seenAll });
            }
          },
        }).run();
        if (casStarts.length === 1 && seenPerPhase.length === 1) perPhase.change.push(seenPerPhase[0]!.at - casStarts[0]!);
        if (casStarts.length === 2 && seenPerPhase.length === 2) {
          perPhase.freeze.push(seenPerPhase[0]!.at - casStarts[0]!);
          perPhase.between.push(casStarts[1]! - seenPerPhase[0]!.at);
          perPhase.flip.push(seenPerPhase[1]!.at - casStarts[1]!);
        }
        if (writeStart === null || seenAll === null || !result.convergence?.converged) throw new Error(`change ${i + 1} did not converge`);
        // Where the time went: the last version reaching every gateway (fan-out + apply), then
        // their presence writes reaching the executor's watch.
        const stats = await Promise.all(children.map((c) => c.stats()));
        const lastApplied = Math.max(...stats.map((st) => st.appliedAt[String(result.versionAfter)]?.last ?? NaN));
        const lastAppliedPerf = lastApplied - Date.now() + performance.now();
        fanOut.push(lastAppliedPerf - (writeStart as number));
        allApplied.push((seenAll as number) - writeStart);
        log(`change ${i + 1}/${args.changes}: all ${args.gateways} applied in ${((seenAll as number) - writeStart).toFixed(0)} ms (the last gateway applied at ${fanOut.at(-1)!.toFixed(0)} ms)`);
      }
      const after = { etcd: etcdCpu(), relay: relayCpu(), proposals: await etcdProposals(endpoints), bytes: await etcdSentBytes(endpoints), gw: await totals(children), at: performance.now() };
      const k = args.changes;
      const windowS = (after.at - before.at) / 1000;
      const gwIdleCpuPerS = (idle1.gw.cpuMs - idle0.gw.cpuMs) / idleS;
      const etcdIdleCpuPerS = (idle1.etcd - idle0.etcd) / idleS;
      const changeGwCpu = after.gw.cpuMs - before.gw.cpuMs - gwIdleCpuPerS * windowS;
      const r = (x: number) => Math.round(x * 100) / 100;
      return {
        gateways: args.gateways,
        changes: k,
        applyAllP50Ms: r(percentile(allApplied, 50)),
        applyAllP99Ms: r(percentile(allApplied, 99)),
        applyAllMaxMs: r(Math.max(...allApplied)),
        presenceWritesPerChange: r((after.gw.presenceWrites - before.gw.presenceWrites) / k),
        // What etcd's members used during the changes (/proc), per change; the steady state is
        // in the detail below (idle rate; and the changes' share with it taken off).
        etcdCpuMsPerChange: r((after.etcd - before.etcd) / k),
        applyCpuMsPerGateway: r(changeGwCpu / k / args.gateways),
        // More than the issue's keys, for the cost model (docs/scaling.md).
        cells: args.cells,
        // One-version changes, and the two versions of a planned one (freeze, then flip):
        // each from its write to the executor seeing every gateway on it.
        ...Object.fromEntries((['change', 'freeze', 'flip'] as const).flatMap((ph) => (perPhase[ph].length ? [[`${ph}VersionP50Ms`, r(percentile(perPhase[ph], 50))], [`${ph}VersionMaxMs`, r(Math.max(...perPhase[ph]))]] : []))),
        ...(perPhase.between.length ? { freezeSeenToFlipWriteP50Ms: r(percentile(perPhase.between, 50)) } : {}),
        lastGatewayAppliedP50Ms: r(percentile(fanOut, 50)),
        lastGatewayAppliedP99Ms: r(percentile(fanOut, 99)),
        versionsPerChange: r(versions / k),
        etcdCpuMsPerChangeAboveIdle: r((after.etcd - before.etcd - etcdIdleCpuPerS * windowS) / k),
        presenceWritesPerVersion: r((after.gw.presenceWrites - before.gw.presenceWrites) / versions),
        applyCpuMsPerVersionPerGateway: r(changeGwCpu / versions / args.gateways),
        syncApplyMsPerVersion: r((after.gw.applyCpuMs - before.gw.applyCpuMs) / Math.max(1, after.gw.applies - before.gw.applies)),
        etcdSentBytesPerChange: Math.round((after.bytes - before.bytes - ((idle1.bytes - idle0.bytes) / idleS) * windowS) / k),
        idleEtcdCpuMsPerS: r(etcdIdleCpuPerS),
        idleEtcdSentBytesPerS: Math.round((idle1.bytes - idle0.bytes) / idleS),
        idleGatewayCpuMsPerS: r(gwIdleCpuPerS),
        // etcd requests (raft proposals) per version: N presence puts without relays, a few
        // transactions per relay with them (the executor's own writes and reads included).
        etcdProposalsPerVersion: r((after.proposals - before.proposals) / versions),
        relays: args.relays,
        ...(args.relays > 0 ? { relayCpuMsPerChange: r((after.relay - before.relay) / k) } : {}),
      };
    } finally {
      await store.close();
    }
  } finally {
    for (const c of children) c.proc.connected && c.proc.send({ type: 'stop' });
    await Promise.race([Promise.all(children.map((c) => c.exited)), new Promise((r) => setTimeout(r, 20_000))]);
    killAll();
    process.removeListener('exit', killAll);
    await stopAll(relays);
    await cluster?.stop();
  }
}

export async function run(report: Report, argv: readonly string[] = process.argv.slice(2)): Promise<void> {
  const args = scaleArgs(argv);
  report.section(`control plane at scale: ${args.gateways} simulated gateways, ${args.cells} cells, ${args.changes} changes, 3-member etcd${args.codeDir === resolve(join(__dirname, '..')) ? '' : ` (code: ${args.codeDir})`}`);
  report.note(`${cpus().length} cores, load average ${loadavg()[0]!.toFixed(1)} at start; ${args.processes} simulator processes, ${args.clients === 'per-gateway' ? 'one etcd client per gateway' : 'one etcd client per process, shared by its gateways (each still its own watcher, lease and puts)'}.`);
  const loadAtStart = loadavg()[0]!;
  const result: ScaleResult & Record<string, number> = { ...(await simulate(args, (line) => report.note(line))), loadAverageAtStart: Math.round(loadAtStart * 100) / 100, loadAverageAtEnd: Math.round(loadavg()[0]! * 100) / 100 };
  const bars: Partial<Record<string, { max: number }>> = {
    applyAllP99Ms: { max: 1_000 }, presenceWritesPerChange: { max: args.gateways * result.versionsPerChange }, applyCpuMsPerGateway: { max: 5 * result.versionsPerChange },
  };
  for (const [key, value] of Object.entries(result)) {
    const bar = bars[key];
    report.line(key, value, /Ms|Cpu/.test(key) ? (/PerS$/.test(key) ? 'ms/s' : 'ms') : /Bytes/.test(key) ? 'bytes' : '', bar ? { bar } : {});
  }
  if (args.out) {
    await mkdir(args.out, { recursive: true });
    const issueKeys: (keyof ScaleResult)[] = ['gateways', 'changes', 'applyAllP50Ms', 'applyAllP99Ms', 'applyAllMaxMs', 'presenceWritesPerChange', 'etcdCpuMsPerChange', 'applyCpuMsPerGateway'];
    await writeFile(join(args.out, 'scale.json'), `${JSON.stringify(Object.fromEntries(issueKeys.map((k) => [k, result[k]])), null, 2)}\n`);
    await writeFile(join(args.out, 'scale-detail.json'), `${JSON.stringify(result, null, 2)}\n`);
    report.note(`wrote ${join(args.out, 'scale.json')}`);
  }
}
