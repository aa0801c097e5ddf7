// Gateway throughput with and without the endpoint registry (issue 14: "unchanged (± 3 %) with
// 500 registered endpoints across 8 zones × 4 services"):
//   npm run bench registry-load -- [--rounds R] [--endpoints E] [--probe-ms MS] [--baseline static]
// (--probe-ms: the gateways' probe.intervalMs, to tell the probes' cost from the data path's;
// --baseline static: A's table lists the same E endpoints statically, so A/B is the registry's
// own cost, apart from the cost of routing over E more endpoints;
// CELLGATE_BENCH_NODE_ARGS: node options of the gateways, e.g. --cpu-prof.)
// A real single-member etcd holds the table of bench/registry-load-plan.ts (8 zones × 4
// services, one static endpoint each) under two prefixes; two `cellgate serve` processes
// follow it, identical but for their prefix: under B's, E (default 500) endpoints are
// registered with registerEndpoint() (one lease each, as E instances would), under A's none.
// One upstream (nginx `return 200`, else node:http) answers on every endpoint's loopback
// address. wrk (100,000 distinct users, the four route prefixes in turn) loads A and B in
// alternated rounds; medians of req/s, CPU per request (/proc) and wrk's p50/p99. Then 20
// registry changes while idle (one endpoint added, then withdrawn): write start → B's
// `registry.applied` line with the new count.
import { writeFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { tableFromTopologyText } from '../src/cells/topology';
import { registerEndpoint, type EndpointHandle } from '../src/registry';
import { createEtcdStore } from '../src/store/etcd-store';
import type { TableStore } from '../src/store/types';
import { startEtcd, type EtcdHandle } from '../test/helpers/etcd';
import { freePorts } from '../test/helpers/ports';
import { CELLGATE_JS, groupCpuMs, jsonLine, makeTempDir, removeTempDir, startNode, stopAll, type BenchChild } from './children';
import { percentile, userPool, waitForOk } from './load';
import { startMultiUpstream, type MultiUpstream } from './multi-upstream';
import { findNginx } from './nginx';
import {
  churnEndpoint, DEFAULT_REGISTERED, gatewayConfig, loadScript, loadTopology, PORTS_PER_HOST, registeredEndpoints, upstreamListens, type PlannedEndpoint,
} from './registry-load-plan';
import type { Report } from './report';
import { findWrk, runWrk, type WrkResult } from './wrk';
import { flagValue, intFlag } from './args';

const PREFIX_A = '/cellgate-load-a';
const PREFIX_B = '/cellgate-load-b';
const USERS = 100_000;
const CONNECTIONS = 64;
const WARMUP_S = 1;
const DURATION_S = 5;
const CHANGES = 20;
const REGISTER_BATCH = 50;
const APPLY_TIMEOUT_MS = 60_000;
const CHANGE_TIMEOUT_MS = 10_000;
/** ± 3 %: B/A within these. */
const RATIO_BAR = { min: 0.97, max: 1.03 };

interface Side { readonly name: string; readonly child: BenchChild; readonly port: number; readonly adminPort: number; readonly runs: { wrk: WrkResult; cpuUs: number | null }[] }

interface Options { readonly rounds: number; readonly endpoints: number; readonly probeMs: number | null; readonly staticBaseline: boolean }

function args(argv: readonly string[]): Options {
  const int = (name: string, dflt: number, min: number, max: number): number => intFlag(argv, name, dflt, min, max);
  const probeMs = argv.includes('--probe-ms') ? int('probe-ms', 1000, 100, 600_000) : null;
  const baseline = flagValue(argv, 'baseline') ?? 'none';
  if (baseline !== 'none' && baseline !== 'static') throw new Error(`--baseline must be none or static, got ${baseline}`);
  return { rounds: int('rounds', 3, 3, 10), endpoints: int('endpoints', DEFAULT_REGISTERED, 1, DEFAULT_REGISTERED), probeMs, staticBaseline: baseline === 'static' };
}

const load = () => loadavg().map((l) => l.toFixed(2)).join(' ');
const median = (v: readonly number[]) => percentile(v, 50);
const spread = (v: readonly number[], digits = 0) => `${Math.min(...v).toFixed(digits)}–${Math.max(...v).toFixed(digits)}`;

/** A `registry.applied` line of `gw` whose count is `count` (and nothing ignored by the merge). */
function appliedLine(gw: BenchChild, count: number, timeoutMs: number): Promise<Record<string, unknown>> {
  const seen = gw.waitForLine((l) => l.includes('"registry.applied"') && jsonLine(l).count === count, timeoutMs).then(jsonLine);
  seen.catch(() => undefined); // awaited by the caller; a failure before that must not crash the bench
  return seen;
}

async function startGateway(children: BenchChild[], name: string, configFile: string, etcd: EtcdHandle, prefix: string, user: string): Promise<Side> {
  const [port, adminPort] = await freePorts(2) as [number, number];
  const child = startNode(name, CELLGATE_JS, [
    'serve', '--config', configFile, '--store', `etcd:${etcd.endpoints.join(',')}`, '--prefix', prefix,
    '--port', String(port), '--admin-port', String(adminPort), '--zone', 'sh-a', '--id', name,
  ], process.env.CELLGATE_BENCH_NODE_ARGS ? { NODE_OPTIONS: process.env.CELLGATE_BENCH_NODE_ARGS } : undefined); // e.g. --cpu-prof, as in bench/gateway.ts
  children.push(child);
  await child.waitForLine((l) => l.includes('"event":"listening"'));
  await waitForOk(port, { 'x-user-id': user });
  return { name, child, port, adminPort, runs: [] };
}

/** Registers every planned endpoint on `store`, REGISTER_BATCH at a time, into `handles`. */
async function registerAll(store: TableStore, planned: readonly PlannedEndpoint[], handles: EndpointHandle[]): Promise<void> {
  for (let i = 0; i < planned.length; i += REGISTER_BATCH) {
    const batch = planned.slice(i, i + REGISTER_BATCH);
    handles.push(...await Promise.all(batch.map((e) => registerEndpoint({ store, zone: e.zone, service: e.service, id: e.id, url: e.url }))));
  }
}

/** Sum of a metric's samples in a gateway's /metrics. */
async function metricSum(adminPort: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`, { signal: AbortSignal.timeout(5_000) })).text();
  return text.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `)).reduce((a, l) => a + Number(l.split(' ').pop()), 0);
}

const IDLE_MS = 3_000;

/** CPU ms per second of each side's process group over IDLE_MS with no traffic (null without /proc). */
async function idleCpu(sides: readonly Side[]): Promise<(number | null)[]> {
  const before = sides.map((s) => groupCpuMs(s.child.pid));
  const t0 = performance.now();
  await new Promise((resolve) => setTimeout(resolve, IDLE_MS)); // a measuring window, not a synchronisation
  const elapsedS = (performance.now() - t0) / 1000;
  return sides.map((s, i) => {
    const after = groupCpuMs(s.child.pid);
    const b = before[i];
    return after !== null && b !== null && b !== undefined ? (after - b) / elapsedS : null;
  });
}

async function measure(wrk: string, script: string, side: Side): Promise<void> {
  await runWrk({ binary: wrk, script, port: side.port, threads: 1, connections: CONNECTIONS, durationS: WARMUP_S });
  const before = groupCpuMs(side.child.pid);
  const r = await runWrk({ binary: wrk, script, port: side.port, threads: 1, connections: CONNECTIONS, durationS: DURATION_S });
  const after = groupCpuMs(side.child.pid);
  side.runs.push({ wrk: r, cpuUs: before !== null && after !== null && r.total > 0 ? ((after - before) * 1000) / r.total : null });
}

function reportThroughput(report: Report, a: Side, b: Side): void {
  for (const s of [a, b]) {
    const rps = s.runs.map((r) => r.wrk.rps);
    const cpu = s.runs.map((r) => r.cpuUs).filter((v): v is number => v !== null);
    const bad = s.runs.reduce((n, r) => n + r.wrk.bad, 0);
    report.line(`${s.name}: req/s`, median(rps), 'req/s', {
      note: `runs ${spread(rps)}${cpu.length ? `; CPU ${Math.round(median(cpu))} µs/req (${spread(cpu)})` : ''}; wrk p50/p99 ${median(s.runs.map((r) => r.wrk.p50Ms)).toFixed(2)}/${median(s.runs.map((r) => r.wrk.p99Ms)).toFixed(2)} ms${bad ? `; ${bad} non-2xx/errors` : ''}`,
    });
  }
  const ratios = b.runs.map((r, i) => r.wrk.rps / a.runs[i]!.wrk.rps);
  report.line('B / A requests/s (per-round ratio, median)', median(ratios), 'x', { bar: RATIO_BAR, note: `± 3 %; per-round ${spread(ratios, 3)}` });
  const cpuRatios = b.runs.map((r, i) => (r.cpuUs !== null && a.runs[i]!.cpuUs !== null ? r.cpuUs / a.runs[i]!.cpuUs! : null)).filter((v): v is number => v !== null);
  if (cpuRatios.length) report.line('B / A CPU per request (per-round, median)', median(cpuRatios), 'x', { note: `per-round ${spread(cpuRatios, 3)}; lower is better, steadier than req/s here` });
}

/** CHANGES registry changes while idle: add one endpoint, then withdraw it; write start → B applied. The live one is in `handles` (closed by the caller on failure). */
async function changeLatency(report: Report, store: TableStore, b: Side, handles: EndpointHandle[], ports: readonly number[]): Promise<void> {
  const base = handles.length;
  const ms: number[] = [];
  for (let c = 0; c < CHANGES; c++) {
    const e = churnEndpoint(c >> 1, ports);
    const adding = c % 2 === 0;
    const seen = appliedLine(b.child, adding ? base + 1 : base, CHANGE_TIMEOUT_MS);
    const t0 = performance.now();
    if (adding) handles.push(await registerEndpoint({ store, zone: e.zone, service: e.service, id: e.id, url: e.url }));
    else await handles.pop()!.close();
    await seen;
    ms.push(performance.now() - t0);
  }
  report.line('registry change → gateway B applied, p50', percentile(ms, 50), 'ms', { note: `${CHANGES} changes while idle, one endpoint added / withdrawn` });
  report.line('registry change → gateway B applied, p99', percentile(ms, 99), 'ms', { bar: { max: 100 }, note: `max ${Math.max(...ms).toFixed(1)} ms; write start → B's registry.applied log line` });
}

export async function run(report: Report, argv: readonly string[] = process.argv.slice(2)): Promise<void> {
  const o = args(argv);
  const wrk = findWrk();
  report.section(`gateway throughput with ${o.endpoints} registered endpoints (8 zones × 4 services) vs ${o.staticBaseline ? `the same ${o.endpoints} listed statically` : 'none'}: wrk -t1 -c${CONNECTIONS}, ${DURATION_S} s after ${WARMUP_S} s warm-up, ${o.rounds} rounds per side alternated, medians`);
  if (!wrk) {
    report.note('wrk not installed: skipped (apt-get install wrk).');
    return;
  }
  report.note(`${cpus().length} cores shared with wrk, the upstream, etcd and the other side; load average ${load()} at start`);
  const dir = await makeTempDir('cellgate-bench-regload-');
  const children: BenchChild[] = [];
  const handles: EndpointHandle[] = [];
  let upstream: MultiUpstream | null = null;
  let etcd: EtcdHandle | null = null;
  const stores: TableStore[] = [];
  try {
    const ports = await freePorts(PORTS_PER_HOST);
    upstream = await startMultiUpstream(findNginx(), upstreamListens(ports));
    etcd = await startEtcd();
    const planned = registeredEndpoints(o.endpoints, ports);
    const tables = [loadTopology(ports, o.staticBaseline ? planned : []), loadTopology(ports)].map(tableFromTopologyText);
    for (const [i, prefix] of [PREFIX_A, PREFIX_B].entries()) {
      const store = createEtcdStore({ endpoints: etcd.endpoints, prefix });
      stores.push(store);
      if (!(await store.compareAndSwap(0, tables[i]!)).ok) throw new Error(`could not write the table under ${prefix}`);
    }
    const configFile = join(dir, 'gateway.yaml');
    await writeFile(configFile, gatewayConfig(o.probeMs));
    const users = userPool(USERS);
    const a = await startGateway(children, o.staticBaseline ? `A (+${o.endpoints} static)` : 'A (static only)', configFile, etcd, PREFIX_A, users[0]!);
    const b = await startGateway(children, `B (+${o.endpoints} registered)`, configFile, etcd, PREFIX_B, users[0]!);
    const applied = appliedLine(b.child, planned.length, APPLY_TIMEOUT_MS);
    const t0 = performance.now();
    await registerAll(stores[1]!, planned, handles);
    const line = await applied;
    if (line.ignored !== 0 || line.refused !== 0) throw new Error(`gateway B ignored ${String(line.ignored)} / refused ${String(line.refused)} registered endpoints`);
    report.note(`${planned.length} endpoints registered (${REGISTER_BATCH} at a time, a lease each) → B applied them in ${(performance.now() - t0).toFixed(0)} ms; upstream: ${upstream.name}`);
    const seen = await Promise.all([a, b].map((s) => metricSum(s.adminPort, 'cellgate_registry_endpoints')));
    report.note(`cellgate_registry_endpoints: A ${seen[0]}, B ${seen[1]} (read from /metrics before loading)`);
    if (seen[0] !== 0 || seen[1] !== planned.length) throw new Error('the gateways do not route with the expected registered endpoints');

    // Idle CPU: what the gateways spend with no traffic (active probes of every endpoint, watches).
    const idle = await idleCpu([a, b]);
    report.note(`idle CPU (no traffic, ${IDLE_MS / 1000} s): A ${idle[0]?.toFixed(1) ?? '?'} ms/s, B ${idle[1]?.toFixed(1) ?? '?'} ms/s; probes: every endpoint every ${o.probeMs ?? 1000} ms${o.probeMs === null ? ' (the default)' : ''}`);
    const script = join(dir, 'load.lua');
    await writeFile(script, loadScript(USERS));
    for (let r = 0; r < o.rounds; r++) {
      // A first in even rounds, B first in odd ones: a drift of the machine's load hits both.
      for (const side of r % 2 === 0 ? [a, b] : [b, a]) await measure(wrk, script, side);
    }
    reportThroughput(report, a, b);
    report.note(`load average ${load()} at the end of the throughput rounds`);
    await changeLatency(report, stores[1]!, b, handles, ports);
  } finally {
    await Promise.all(handles.map((h) => h.close().catch(() => undefined)));
    await Promise.all(stores.map((s) => s.close().catch(() => undefined)));
    await stopAll(children);
    await upstream?.stop();
    await etcd?.stop();
    await removeTempDir(dir);
  }
}
