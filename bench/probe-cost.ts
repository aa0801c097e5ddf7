// What active health probes cost a gateway per endpoint (issue 14: a gateway with 532
// endpoints spent ~100 ms/s of CPU on probes while idle):
//   npm run bench probe-cost -- [--rounds R] [--seconds S] [--endpoints E] [--interval-ms MS]
// The prober of src/router/probes.ts runs in this process over the pools of the registry-load
// plan (8 zones × 4 services, 32 static endpoints + E registered, each its own loopback
// origin) against one real upstream (nginx `return 200`, else node:http) listening on every
// address. Once every endpoint has passed a first probe and after a warm-up interval, R
// rounds of two windows of S seconds: this process's CPU (process.cpuUsage: the prober is all
// it runs) and probes finished (cellgate_probes_total); then the event loop's delay (p99, max:
// what a request on this loop would wait behind the probes). Medians over the rounds.
// CELLGATE_BENCH_PROFILE=FILE: a CPU profile of the windows (.cpuprofile) is written there.
import { writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { cpus, loadavg } from 'node:os';
import { Registry } from 'prom-client';
import { tableFromTopologyText } from '../src/cells/topology';
import { systemClock } from '../src/clock';
import { DEFAULT_CONFIG } from '../src/router/config';
import { EndpointHealth, type ExtraEndpoints } from '../src/router/endpoints';
import { ZoneProber } from '../src/router/probes';
import type { ZoneHealthReport } from '../src/store/types';
import { freePorts } from '../test/helpers/ports';
import { intFlag } from './args';
import { percentile } from './load';
import { startMultiUpstream, type MultiUpstream } from './multi-upstream';
import { findNginx } from './nginx';
import { DEFAULT_REGISTERED, loadTopology, PORTS_PER_HOST, registeredEndpoints, upstreamListens } from './registry-load-plan';
import type { Report } from './report';

const FIRST_VERDICT_TIMEOUT_MS = 30_000;

function args(argv: readonly string[]): { rounds: number; seconds: number; endpoints: number; intervalMs: number } {
  return {
    rounds: intFlag(argv, 'rounds', 5, 1, 20),
    seconds: intFlag(argv, 'seconds', 3, 1, 30),
    endpoints: intFlag(argv, 'endpoints', DEFAULT_REGISTERED, 0, DEFAULT_REGISTERED),
    intervalMs: intFlag(argv, 'interval-ms', 1_000, 100, 60_000),
  };
}

function extraOf(endpoints: number, ports: readonly number[]): ExtraEndpoints {
  const extra = new Map<string, Map<string, string[]>>();
  for (const e of registeredEndpoints(endpoints, ports)) {
    const byService = extra.get(e.zone) ?? new Map<string, string[]>();
    extra.set(e.zone, byService);
    byService.set(e.service, [...(byService.get(e.service) ?? []), e.url]);
  }
  return extra;
}

/** Resolves once `latest()` shows every zone with all its endpoints up; rejects after the deadline. */
async function everyEndpointUp(latest: () => Record<string, ZoneHealthReport>, total: number): Promise<void> {
  const deadline = Date.now() + FIRST_VERDICT_TIMEOUT_MS;
  for (;;) {
    const zones = Object.values(latest());
    if (zones.reduce((n, z) => n + z.endpointsUp, 0) === total) return;
    if (Date.now() > deadline) throw new Error(`probes: not every endpoint up within ${FIRST_VERDICT_TIMEOUT_MS} ms (${JSON.stringify(latest())})`);
    await new Promise((resolve) => setTimeout(resolve, 100)); // polling a bounded condition
  }
}

async function probesDone(registry: Registry): Promise<number> {
  const metric = await registry.getSingleMetric('cellgate_probes_total')?.get();
  return metric ? metric.values.reduce((n, v) => n + v.value, 0) : 0;
}

interface Window { readonly cpuMsPerS: number; readonly systemShare: number; readonly usPerProbe: number; readonly probesPerS: number; readonly loopP99Ms: number; readonly loopMaxMs: number }

const pause = (ms: number): Promise<unknown> => new Promise((resolve) => setTimeout(resolve, ms)); // a measuring window, not a synchronisation

/**
 * One CPU window, then one event-loop window of as long: the loop-delay histogram samples every
 * millisecond, which alone costs ~20 ms/s of CPU, so it never runs while CPU is measured.
 */
async function window(registry: Registry, seconds: number): Promise<Window> {
  const probes0 = await probesDone(registry);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await pause(seconds * 1000);
  const cpu = process.cpuUsage(cpu0);
  const elapsedS = (performance.now() - t0) / 1000;
  const probes = (await probesDone(registry)) - probes0;
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  await pause(seconds * 1000);
  loop.disable();
  const cpuMs = (cpu.user + cpu.system) / 1000;
  return { cpuMsPerS: cpuMs / elapsedS, systemShare: cpu.system / (cpu.user + cpu.system), usPerProbe: probes > 0 ? (cpuMs * 1000) / probes : NaN, probesPerS: probes / elapsedS, loopP99Ms: loop.percentile(99) / 1e6, loopMaxMs: loop.max / 1e6 };
}

/** With CELLGATE_BENCH_PROFILE=FILE, a CPU profile of the measuring windows only (not the start-up) is written to FILE. */
async function startProfile(): Promise<(() => Promise<void>) | null> {
  const file = process.env.CELLGATE_BENCH_PROFILE;
  if (!file) return null;
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  return async () => {
    const { profile } = await session.post('Profiler.stop');
    await writeFile(file, JSON.stringify(profile));
    session.disconnect();
  };
}

export async function run(report: Report, argv: readonly string[] = process.argv.slice(2)): Promise<void> {
  const o = args(argv);
  const total = 32 + o.endpoints;
  report.section(`active probes of ${total} endpoints (8 zones × 4 services), every ${o.intervalMs} ms, idle: ${o.rounds} rounds of ${o.seconds} s windows, medians`);
  report.note(`${cpus().length} cores; load average ${loadavg().map((l) => l.toFixed(2)).join(' ')} at start`);
  let upstream: MultiUpstream | null = null;
  let prober: ZoneProber | null = null;
  try {
    const ports = await freePorts(PORTS_PER_HOST);
    upstream = await startMultiUpstream(findNginx(), upstreamListens(ports));
    const table = tableFromTopologyText(loadTopology(ports));
    const pools = new EndpointHealth(DEFAULT_CONFIG.upstream, () => Date.now()).poolsFor(table, extraOf(o.endpoints, ports));
    const registry = new Registry();
    let latest: Record<string, ZoneHealthReport> = {};
    const idle = await window(registry, 1);
    prober = new ZoneProber({
      intervalMs: o.intervalMs, timeoutMs: DEFAULT_CONFIG.probe.timeoutMs, clock: systemClock, registry, gatewayId: 'bench-probe-cost',
      pools: () => pools, onChange: (r) => { latest = r; },
    });
    prober.start();
    await everyEndpointUp(() => latest, total);
    await new Promise((resolve) => setTimeout(resolve, o.intervalMs)); // warm-up: one more interval before measuring
    const profile = await startProfile();
    const windows: Window[] = [];
    for (let r = 0; r < o.rounds; r++) windows.push(await window(registry, o.seconds));
    await profile?.();
    const med = (pick: (w: Window) => number): number => percentile(windows.map(pick), 50);
    const range = (pick: (w: Window) => number, digits: number): string => `${Math.min(...windows.map(pick)).toFixed(digits)}–${Math.max(...windows.map(pick)).toFixed(digits)}`;
    report.note(`upstream: ${upstream.name}; this process idle without a prober: ${idle.cpuMsPerS.toFixed(1)} ms/s`);
    report.line('prober CPU, idle', med((w) => w.cpuMsPerS), 'ms/s', { note: `windows ${range((w) => w.cpuMsPerS, 1)}; system ${(100 * med((w) => w.systemShare)).toFixed(0)} %` });
    report.line('CPU per probe', med((w) => w.usPerProbe), 'µs', { note: `windows ${range((w) => w.usPerProbe, 0)}; ${med((w) => w.probesPerS).toFixed(0)} probes/s` });
    report.line('event-loop delay p99', med((w) => w.loopP99Ms), 'ms', { note: `max ${range((w) => w.loopMaxMs, 1)} ms` });
    if (Object.values(latest).reduce((n, z) => n + z.endpointsUp, 0) !== total) report.note(`NOT every endpoint up at the end: ${JSON.stringify(latest)}`);
  } finally {
    prober?.close();
    await upstream?.stop();
  }
}
