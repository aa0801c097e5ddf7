// What active probes cost a real gateway, idle (issue 14):
//   npm run bench probe-gateway -- [--rounds R] [--seconds S]
// Two `cellgate serve` processes follow one table in a real etcd: 8 zones × 4 services whose
// 532 endpoints (the registry-load plan's 32 static + 500, here all static) are distinct
// loopback origins of one upstream (nginx `return 200`, else node:http). P probes every 1 s
// (the default), Q every 600 s (none within the run): both idle, measured
// in the same windows from /proc, so P − Q is what the probes cost the gateway process.
import { writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { tableFromTopologyText } from '../src/cells/topology';
import { createEtcdStore } from '../src/store/etcd-store';
import type { TableStore } from '../src/store/types';
import { startEtcd, type EtcdHandle } from '../test/helpers/etcd';
import { freePorts } from '../test/helpers/ports';
import { intFlag } from './args';
import { CELLGATE_JS, groupCpuMs, makeTempDir, removeTempDir, startNode, stopAll, type BenchChild } from './children';
import { percentile } from './load';
import { startMultiUpstream, type MultiUpstream } from './multi-upstream';
import { findNginx } from './nginx';
import { DEFAULT_REGISTERED, gatewayConfig, PORTS_PER_HOST, registeredEndpoints, SERVICES, staticUrl, upstreamListens, ZONES } from './registry-load-plan';
import type { Report } from './report';

const PREFIX = '/cellgate-probe-gateway';
const HEALTHY_TIMEOUT_MS = 60_000;

/** The registry-load plan's 532 endpoints, all in the table. */
function topology(ports: readonly number[]): string {
  const registered = registeredEndpoints(DEFAULT_REGISTERED, ports);
  const urls = (zone: number, service: number): string => {
    const list = [staticUrl(zone, service, ports), ...registered.filter((e) => e.zone === ZONES[zone] && e.service === SERVICES[service]).map((e) => e.url)];
    return `[${list.map((u) => `"${u}"`).join(', ')}]`;
  };
  const zones = ZONES.map((zone, i) => {
    const services = SERVICES.slice(1).map((s, j) => `${s}: { upstreams: ${urls(i, j + 1)} }`).join(', ');
    return `  - { name: ${zone}, region: r${Math.floor(i / 4)}, city: c${Math.floor(i / 2)}, capacity: 100, upstreams: ${urls(i, 0)}, services: { ${services} } }`;
  });
  return `name: probe-gateway-bench\ncells: 64\nglobal: sh-a\nzones:\n${zones.join('\n')}\n`;
}

interface Gateway { readonly name: string; readonly child: BenchChild; readonly adminPort: number }

async function metricsText(g: Gateway): Promise<string> {
  return (await fetch(`http://127.0.0.1:${g.adminPort}/metrics`, { signal: AbortSignal.timeout(5_000) })).text();
}

function metricSum(text: string, name: string): number {
  return text.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `)).reduce((a, l) => a + Number(l.split(' ').pop()), 0);
}

async function startGateway(children: BenchChild[], dir: string, name: string, etcd: EtcdHandle, probeMs: number): Promise<Gateway> {
  const [port, adminPort] = await freePorts(2) as [number, number];
  const configFile = join(dir, `${name}.yaml`);
  await writeFile(configFile, gatewayConfig(probeMs));
  const child = startNode(name, CELLGATE_JS, [
    'serve', '--config', configFile, '--store', `etcd:${etcd.endpoints.join(',')}`, '--prefix', PREFIX,
    '--port', String(port), '--admin-port', String(adminPort), '--zone', 'sh-a', '--id', name,
  ], process.env.CELLGATE_BENCH_NODE_ARGS ? { NODE_OPTIONS: process.env.CELLGATE_BENCH_NODE_ARGS } : undefined);
  children.push(child);
  await child.waitForLine((l) => l.includes('"event":"listening"'));
  return { name, child, adminPort };
}

/** Waits until every endpoint of every zone passed a probe of `g`. */
async function everyEndpointUp(g: Gateway, total: number): Promise<void> {
  const deadline = Date.now() + HEALTHY_TIMEOUT_MS;
  for (;;) {
    const text = await metricsText(g);
    if (metricSum(text, 'cellgate_probes_total') >= total && metricSum(text, 'cellgate_probe_zone_healthy') === ZONES.length) return;
    if (Date.now() > deadline) throw new Error(`${g.name}: not every zone healthy within ${HEALTHY_TIMEOUT_MS} ms`);
    await new Promise((resolve) => setTimeout(resolve, 200)); // polling a bounded condition
  }
}

export async function run(report: Report, argv: readonly string[] = process.argv.slice(2)): Promise<void> {
  const rounds = intFlag(argv, 'rounds', 5, 1, 20);
  const seconds = intFlag(argv, 'seconds', 3, 1, 30);
  const total = ZONES.length * SERVICES.length + DEFAULT_REGISTERED;
  report.section(`active probes of ${total} endpoints in a real gateway, idle: P probes every 1 s, Q every 600 s; ${rounds} windows of ${seconds} s, medians`);
  report.note(`${cpus().length} cores; load average ${loadavg().map((l) => l.toFixed(2)).join(' ')} at start`);
  const dir = await makeTempDir('cellgate-bench-probegw-');
  const children: BenchChild[] = [];
  let upstream: MultiUpstream | null = null;
  let etcd: EtcdHandle | null = null;
  let store: TableStore | null = null;
  try {
    const ports = await freePorts(PORTS_PER_HOST);
    upstream = await startMultiUpstream(findNginx(), upstreamListens(ports));
    etcd = await startEtcd();
    store = createEtcdStore({ endpoints: etcd.endpoints, prefix: PREFIX });
    if (!(await store.compareAndSwap(0, tableFromTopologyText(topology(ports)))).ok) throw new Error('could not write the table');
    const p = await startGateway(children, dir, 'P', etcd, 1_000);
    const q = await startGateway(children, dir, 'Q', etcd, 600_000);
    await everyEndpointUp(p, total); // Q: its first probes come an interval after its table, not within this run
    await new Promise((resolve) => setTimeout(resolve, 2_000)); // warm-up before measuring
    const rows: { p: number; q: number; perProbeUs: number }[] = [];
    for (let r = 0; r < rounds; r++) {
      const probes0 = metricSum(await metricsText(p), 'cellgate_probes_total');
      const before = [groupCpuMs(p.child.pid), groupCpuMs(q.child.pid)];
      const t0 = performance.now();
      await new Promise((resolve) => setTimeout(resolve, seconds * 1000)); // a measuring window, not a synchronisation
      const after = [groupCpuMs(p.child.pid), groupCpuMs(q.child.pid)];
      const elapsedS = (performance.now() - t0) / 1000;
      const probes = metricSum(await metricsText(p), 'cellgate_probes_total') - probes0;
      if (before.some((v) => v === null) || after.some((v) => v === null)) throw new Error('no /proc: CPU cannot be measured');
      const pMs = (after[0]! - before[0]!) / elapsedS;
      const qMs = (after[1]! - before[1]!) / elapsedS;
      rows.push({ p: pMs, q: qMs, perProbeUs: ((pMs - qMs) * elapsedS * 1000) / probes });
    }
    const med = (pick: (r: (typeof rows)[number]) => number): number => percentile(rows.map(pick), 50);
    const range = (pick: (r: (typeof rows)[number]) => number): string => `${Math.min(...rows.map(pick)).toFixed(1)}–${Math.max(...rows.map(pick)).toFixed(1)}`;
    report.note(`upstream: ${upstream.name}`);
    report.line('P (probes every 1 s), idle', med((r) => r.p), 'ms/s', { note: `windows ${range((r) => r.p)}` });
    report.line('Q (probes every 600 s), idle', med((r) => r.q), 'ms/s', { note: `windows ${range((r) => r.q)}` });
    report.line('P − Q per probe', med((r) => r.perProbeUs), 'µs', { note: `windows ${range((r) => r.perProbeUs)}; P − Q ${med((r) => r.p - r.q).toFixed(1)} ms/s` });
    const failed = (await metricsText(p)).split('\n').filter((l) => l.startsWith('cellgate_probes_total{') && l.includes('result="failed"')).reduce((a, l) => a + Number(l.split(' ').pop()), 0);
    report.note(`P's failed probes over the run: ${failed}`);
    report.note(`load average ${loadavg().map((l) => l.toFixed(2)).join(' ')} at the end`);
  } finally {
    await store?.close().catch(() => undefined);
    await stopAll(children);
    await upstream?.stop();
    await etcd?.stop();
    await removeTempDir(dir);
  }
}
