// The failover engine's benchmark, on a 3-member etcd cluster with 3 `cellgate serve`
// processes (each its own etcd client, watch and presence lease) and one upstream process:
//  - convergence: CHANGES changes made in-process with FailoverExecutor (so no CLI start-up
//    is counted), alternating `zone down sh-a` (unplanned: one CAS) and `zone up sh-a`
//    (failback: a planned move, the freeze protocol's two CAS and two waits); per change the
//    time from the first write's start to the moment the executor saw every gateway's
//    presence record on the new revision (what `cellctl` waits for), and, from the records'
//    own `updatedAt`, to when the last gateway published it. Plus the `cellctl` process end
//    to end for a few changes, next to `cellctl --help` (the CLI's start-up alone);
//  - the request pause of a planned move: steady open-loop load on one cell's users through
//    one gateway while that cell moves back and forth (`cell move`, freeze protocol); the
//    longest request of those users overlapping each move, against their p99 before.
import { cpus, loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { CellRing } from '../src/cells/ring';
import { tableFromTopologyText } from '../src/cells/topology';
import type { RoutingTable } from '../src/cells/types';
import { FailoverExecutor } from '../src/failover/executor';
import { waitForConvergence } from '../src/failover/convergence';
import { planCellMove, planZoneDown, planZoneUp, type Plan } from '../src/failover/planner';
import { openStore } from '../src/store/open';
import type { TableStore } from '../src/store/types';
import { startEtcdCluster, type EtcdCluster } from '../test/helpers/etcd';
import { freePort } from '../test/helpers/ports';
import { benchScript, CELLCTL_JS, CELLGATE_JS, jsonLine, startNode, stopAll, type BenchChild } from './children';
import { autopilotSection } from './autopilot';
import { histogramDelta, histogramSummary, walFsyncHistogram } from './etcd-metrics';
import { PacedLoad, percentile, userPool, waitForOk, type Sample } from './load';
import type { Report } from './report';
import { benchTopology } from './topology';

const PREFIX = '/cellgate-bench';
const GATEWAYS = 3;
const CHANGES = 50;
const CLI_CHANGES = 5;
const CONVERGE_BAR_MS = 100;
const MOVES = 5;
const MOVE_RATE = 200;
const MOVE_USERS = 200;
const STEADY_MS = 3_000;
const BETWEEN_MOVES_MS = 1_500;
const PAUSE_BAR_MS = 300;
const ZONE = 'sh-a';

/** `store` with the times of the first compareAndSwap call since reset() (the change's write start) and of its answer. */
function timedStore(store: TableStore): TableStore & { firstWriteMs: number | null; firstWriteDoneMs: number | null; reset(): void } {
  const timed = {
    firstWriteMs: null as number | null,
    firstWriteDoneMs: null as number | null,
    reset() {
      timed.firstWriteMs = null;
      timed.firstWriteDoneMs = null;
    },
    get description() { return store.description; },
    get presence() { return store.presence; },
    get registry() { return store.registry; },
    load: () => store.load(),
    watch: (events: Parameters<TableStore['watch']>[0]) => store.watch(events),
    compareAndSwap: async (version: number, table: RoutingTable, note?: Parameters<TableStore['compareAndSwap']>[2]) => {
      const first = timed.firstWriteMs === null;
      if (first) timed.firstWriteMs = performance.now();
      const result = await store.compareAndSwap(version, table, note);
      if (first) timed.firstWriteDoneMs = performance.now();
      return result;
    },
    listHistory: () => store.listHistory(),
    close: () => store.close(),
  };
  return timed;
}

interface ChangeTiming {
  readonly kind: 'unplanned' | 'planned';
  /** The first write's round trip (an etcd commit: a majority's WAL fsync). */
  readonly casMs: number;
  /** First write start -> executor saw every presence record on the new revision. */
  readonly observedMs: number;
  /** First write start -> the last gateway's presence record was made (its updatedAt). */
  readonly appliedMs: number;
  /** Executor start (load, plan, writes, history, waits) -> it returned. */
  readonly commandMs: number;
}

async function timedChange(store: ReturnType<typeof timedStore>, makePlan: (t: RoutingTable) => Plan): Promise<ChangeTiming> {
  store.reset();
  let observedAt: number | null = null;
  let kind: ChangeTiming['kind'] = 'unplanned';
  const start = performance.now();
  const executor = new FailoverExecutor({
    store, makePlan, actor: 'bench', reason: 'benchmark',
    onEvent: (e) => {
      if (e.type === 'plan') kind = e.plan.kind === 'planned' && e.plan.moves.length > 0 ? 'planned' : 'unplanned';
      if (e.type === 'converging' && e.phase === 'change' && e.status.converged) observedAt ??= performance.now();
    },
  });
  const result = await executor.run();
  const end = performance.now();
  const writeStart = store.firstWriteMs;
  const writeDone = store.firstWriteDoneMs;
  if (writeStart === null || writeDone === null || observedAt === null) throw new Error('a bench change wrote nothing or did not converge');
  // updatedAt is wall-clock time written by each gateway: map it onto this process's clock.
  const records = await store.presence.list();
  const lastUpdate = Math.max(...records.filter((r) => r.appliedVersion >= result.versionAfter).map((r) => Date.parse(r.updatedAt)));
  const appliedAt = lastUpdate - Date.now() + performance.now();
  return { kind, casMs: writeDone - writeStart, observedMs: observedAt - writeStart, appliedMs: Math.max(0, appliedAt - writeStart), commandMs: end - start };
}

function statsNote(values: readonly number[]): string {
  return `p50 ${percentile(values, 50).toFixed(1)} ms, p99 ${percentile(values, 99).toFixed(1)} ms, max ${Math.max(...values).toFixed(1)} ms over ${values.length} changes`;
}

async function convergenceSection(report: Report, store: ReturnType<typeof timedStore>, etcdEndpoints: readonly string[]): Promise<void> {
  report.section(`failover convergence: ${CHANGES} changes, ${GATEWAYS} gateway processes, 3-member etcd, in-process FailoverExecutor`);
  report.note(`${cpus().length} cores, load average ${loadavg()[0]!.toFixed(1)} at start (other processes on the machine count too).`);
  report.note(`alternating zone down ${ZONE} (unplanned, 1 CAS) and zone up ${ZONE} (failback: freeze, wait, flip, wait).`);
  report.note('"seen" = first write start -> the executor saw every presence record on the new revision (it watches them);');
  report.note('"published" = first write start -> the last gateway made its presence record (its updatedAt).');
  const timings: ChangeTiming[] = [];
  const fsyncBefore = await walFsyncHistogram(etcdEndpoints);
  for (let i = 0; i < CHANGES; i++) {
    timings.push(await timedChange(store, (t) => (i % 2 === 0 ? planZoneDown(t, ZONE) : planZoneUp(t, ZONE))));
  }
  const fsyncs = histogramDelta(await walFsyncHistogram(etcdEndpoints), fsyncBefore);
  const seen = timings.map((t) => t.observedMs);
  report.line('all changes: write -> all gateways seen, p50', percentile(seen, 50), 'ms', { note: `over ${seen.length} changes` });
  report.line('all changes: write -> all gateways seen, p99', percentile(seen, 99), 'ms', { bar: { max: CONVERGE_BAR_MS }, note: `over ${seen.length} changes (goal)` });
  for (const kind of ['unplanned', 'planned'] as const) {
    const of = timings.filter((t) => t.kind === kind);
    const label = kind === 'unplanned' ? `zone down (unplanned)` : `zone up (planned, freeze protocol)`;
    report.line(`${label}: first write round trip p50`, percentile(of.map((t) => t.casMs), 50), 'ms', { note: statsNote(of.map((t) => t.casMs)) });
    report.line(`${label}: seen p50`, percentile(of.map((t) => t.observedMs), 50), 'ms', { note: statsNote(of.map((t) => t.observedMs)) });
    report.line(`${label}: published p50`, percentile(of.map((t) => t.appliedMs), 50), 'ms', { note: statsNote(of.map((t) => t.appliedMs)) });
    report.line(`${label}: whole command p50`, percentile(of.map((t) => t.commandMs), 50), 'ms', { note: statsNote(of.map((t) => t.commandMs)) });
  }
  const p50 = histogramSummary(fsyncs, 0.5);
  const p99 = histogramSummary(fsyncs, 0.99);
  report.note(`etcd WAL fsyncs during these changes (all members): ${p50.count}, p50 <= ${p50.boundMs} ms, p99 <= ${p99.boundMs} ms`);
  report.note('(every write — table, history, each gateway\'s presence — waits for a majority\'s fsync; data dirs under the OS temp dir).');
}

/** Runs a node script to its end as a tracked child (killed if the bench stops); its wall time. */
async function timeProcess(script: string, args: readonly string[]): Promise<{ ms: number; code: number | null; output: string }> {
  const start = performance.now();
  const child = startNode(`node ${script} ${args.slice(0, 3).join(' ')}`, script, args, { CELLGATE_ETCD: '' });
  const timer = setTimeout(() => void child.stop(), 60_000);
  const code = await child.waitExit();
  const ms = performance.now() - start;
  clearTimeout(timer);
  return { ms, code, output: child.tail() };
}

async function cliSection(report: Report, etcd: string): Promise<void> {
  report.section(`cellctl end to end: ${CLI_CHANGES} changes as processes (start-up, connect, plan, write, wait, exit)`);
  const changes: number[] = [];
  for (let i = 0; i < CLI_CHANGES; i++) {
    const args = ['zone', i % 2 === 0 ? 'down' : 'up', ZONE, '--etcd', etcd, '--prefix', PREFIX, '--reason', 'benchmark', '--actor', 'bench', '--yes', '--json'];
    const r = await timeProcess(CELLCTL_JS, args);
    if (r.code !== 0) throw new Error(`cellctl ${args.slice(0, 3).join(' ')} exited ${r.code}:\n${r.output}`);
    changes.push(r.ms);
  }
  const help: number[] = [];
  for (let i = 0; i < CLI_CHANGES; i++) help.push((await timeProcess(CELLCTL_JS, ['--help'])).ms);
  report.line('cellctl zone down/up, process end to end: p50', percentile(changes, 50), 'ms', { note: statsNote(changes) });
  report.line('cellctl --help (node + CLI start-up only): p50', percentile(help, 50), 'ms', { note: `over ${help.length} runs` });
}

interface MoveWindow {
  readonly startMs: number;
  readonly endMs: number;
  readonly to: string;
}

/**
 * Per move, the longest request of those in flight at any moment of it; the requests before
 * the first move (after `steadyFrom`) as the normal latency; and the requests answered by a
 * zone other than the move's target although sent after the move returned and answered
 * before the next one began (none may be: every gateway was on the new table).
 */
function analyseMoves(samples: readonly Sample[], windows: readonly MoveWindow[], steadyFrom: number) {
  const firstMove = windows[0]?.startMs ?? Infinity;
  const steady = samples.filter((s) => s.sentMs >= steadyFrom && s.sentMs + s.latencyMs < firstMove && s.status === 200).map((s) => s.latencyMs);
  const pauses: number[] = [];
  let during = 0;
  let wrongZone = 0;
  for (const [i, w] of windows.entries()) {
    const overlapping = samples.filter((s) => s.sentMs <= w.endMs && s.sentMs + s.latencyMs >= w.startMs);
    during += overlapping.length;
    pauses.push(Math.max(0, ...overlapping.map((s) => s.latencyMs)));
    const next = windows[i + 1]?.startMs ?? Infinity;
    wrongZone += samples.filter((s) => s.sentMs > w.endMs && s.sentMs + s.latencyMs < next && s.status === 200 && !s.body.includes(`"zone":"${w.to}"`)).length;
  }
  return { steady, pauses, during, wrongZone };
}

async function pauseSection(report: Report, store: TableStore, gatewayPort: number): Promise<void> {
  const current = await store.load();
  if (!current) throw new Error('no table');
  const table = current.table;
  const ring = CellRing.build(table);
  const cell = table.cells.find((c) => c.zone === 'hz-a' && c.state === 'active');
  if (!cell) throw new Error('no active cell in hz-a');
  const users = userPool(40_000, 'm').filter((u) => ring.cellOf(u) === cell.name).slice(0, MOVE_USERS);
  const zones = [cell.zone, 'sz-a'];

  report.section(`planned move pause: ${MOVES} moves of cell ${cell.name} (${zones.join(' <-> ')}) under ${MOVE_RATE} req/s of its users through one gateway`);
  report.note(`load average ${loadavg()[0]!.toFixed(1)} at start; open-loop load on ${users.length} users of ${cell.name}; ${GATEWAYS} gateways must acknowledge each freeze; "during a move" =`);
  report.note('a request in flight at any moment between the move\'s first write and the executor returning.');
  const load = new PacedLoad({ host: '127.0.0.1', port: gatewayPort, ratePerS: MOVE_RATE, users }).start();
  const windows: MoveWindow[] = [];
  let samples: Sample[];
  const steadyFrom = performance.now() + 1_000; // the first second warms up connections
  try {
    await sleep(1_000 + STEADY_MS);
    for (let i = 0; i < MOVES; i++) {
      const to = zones[(i + 1) % 2] as string;
      const startMs = performance.now();
      await new FailoverExecutor({ store, makePlan: (t) => planCellMove(t, cell.name, to), actor: 'bench', reason: 'benchmark' }).run();
      windows.push({ startMs, endMs: performance.now(), to });
      await sleep(BETWEEN_MOVES_MS);
    }
  } finally {
    samples = await load.stop();
  }
  const { steady, pauses, during, wrongZone } = analyseMoves(samples, windows, steadyFrom);
  const failed = samples.filter((s) => s.status !== 200);
  report.line(`normal: ${cell.name} users p50 before the moves`, percentile(steady, 50), 'ms', { note: `over ${steady.length} requests` });
  report.line(`normal: ${cell.name} users p99 before the moves`, percentile(steady, 99), 'ms');
  report.line('longest request during a move (worst move)', Math.max(...pauses), 'ms', {
    bar: { max: PAUSE_BAR_MS }, note: `over ${during} requests during ${windows.length} moves (goal)`,
  });
  report.line('longest request during a move (median move)', percentile(pauses, 50), 'ms', { note: `per move: ${pauses.map((p) => p.toFixed(0)).join(', ')} ms` });
  report.line('move duration (executor start -> returned), p50', percentile(windows.map((w) => w.endMs - w.startMs), 50), 'ms');
  report.line('failed requests (whole run, warm-up included)', failed.length, 'requests', { bar: { max: 0 }, note: `of ${samples.length}` });
  report.line('answered by the old zone after a move returned', wrongZone, 'requests', { bar: { max: 0 } });
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function startGateway(children: BenchChild[], etcd: string, index: number, zone: string): Promise<number> {
  const port = await freePort();
  const child = startNode(`gateway ${index}`, CELLGATE_JS, [
    'serve', '--store', `etcd:${etcd}`, '--prefix', PREFIX, '--port', String(port), '--admin-port', '0', '--zone', zone, '--id', `bench-gw-${index}`,
  ]);
  children.push(child);
  await child.waitForLine((l) => l.includes('"event":"listening"'));
  return port;
}

/** Waits until all GATEWAYS gateways are registered and on `version` (registration follows start-up asynchronously). */
async function waitForGateways(store: TableStore, version: number, checksum: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const status = await waitForConvergence(store.presence, version, checksum, { timeoutMs: 1_000 });
    if (status.converged && status.gateways.length === GATEWAYS) return;
    if (Date.now() > deadline) {
      throw new Error(`gateways not ready: ${status.gateways.length} of ${GATEWAYS} registered, behind: ${status.behind.map((g) => g.id).join(', ') || 'none'}`);
    }
    await sleep(100);
  }
}

export async function run(report: Report): Promise<void> {
  const children: BenchChild[] = [];
  let cluster: EtcdCluster | null = null;
  let store: ReturnType<typeof timedStore> | null = null;
  try {
    cluster = await startEtcdCluster(3);
    const etcd = cluster.endpoints.join(',');
    const upstream = startNode('upstream', benchScript('upstream-server'), ['--echo-zone']);
    children.push(upstream);
    const upstreamPort = Number(jsonLine(await upstream.waitForLine((l) => l.includes('"listening"'))).port);
    store = timedStore(openStore(`etcd:${etcd}`, { prefix: PREFIX }));
    const cas = await store.compareAndSwap(0, tableFromTopologyText(benchTopology('bench-failover', `http://127.0.0.1:${upstreamPort}`)));
    if (!cas.ok) throw new Error('could not write the bench routing table');
    const ports: number[] = [];
    for (const [i, zone] of ['sh-a', 'sh-b', 'hz-a'].entries()) ports.push(await startGateway(children, etcd, i, zone));
    await waitForOk(ports[0] as number, { 'x-user-id': 'warm-up' });
    await waitForGateways(store, cas.version, cas.checksum);

    await convergenceSection(report, store, cluster.endpoints);
    await cliSection(report, etcd);
    // Back to every zone up whatever the CLI changes left.
    await new FailoverExecutor({ store, makePlan: (t) => planZoneUp(t, ZONE), actor: 'bench', reason: 'benchmark' }).run();
    await pauseSection(report, store, ports[0] as number);
    if (process.env.BENCH_FAILOVER_AUTOPILOT !== '0') await autopilotSection(report, store, etcd, PREFIX, ports[0] as number, children);
  } finally {
    await store?.close();
    await stopAll(children);
    await cluster?.stop();
  }
}
