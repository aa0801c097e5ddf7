// What spreading the same load over more upstream endpoints costs a proxy, apart from any
// registry (issue 14's "throughput unchanged with 500 registered endpoints"):
//   npm run bench endpoint-spread -- [--rounds R]
// Two reference proxies, each run twice — in front of the 32 static endpoints of
// bench/registry-load-plan.ts, and in front of those plus the 500 that bench registers
// (532 origins, one upstream nginx answering on all) — in alternated rounds, wrk -t1 -c64:
//  - nginx, one worker, round robin, keep-alive to every server;
//  - raw node:http + one undici Pool per origin, round robin (bench/raw-proxy.ts).
// The same requests reach the same upstream either way: only the number of origins (and so of
// upstream connections, and the memory they touch per request) differs. cellgate's own pair is
// `registry-load` (none vs registered) and `registry-load --baseline static` (listed vs registered).
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { freePorts } from '../test/helpers/ports';
import { benchScript, groupCpuMs, makeTempDir, removeTempDir, startNode, stopAll, type BenchChild } from './children';
import { intFlag } from './args';
import { percentile, waitForOk } from './load';
import { startMultiUpstream, type MultiUpstream } from './multi-upstream';
import { findNginx, startNginx, type RunningNginx } from './nginx';
import { loadScript, registeredEndpoints, SERVICES, staticUrl, upstreamListens, ZONES, PORTS_PER_HOST } from './registry-load-plan';
import type { Report } from './report';
import { findWrk, runWrk } from './wrk';

const CONNECTIONS = 64;
const WARMUP_S = 1;
const DURATION_S = 5;
const USERS = 100_000;

interface Side { readonly name: string; readonly port: number; readonly pid: number | undefined; readonly runs: { rps: number; cpuUs: number }[] }

const median = (v: readonly number[]) => percentile(v, 50);
const spread = (v: readonly number[], digits: number) => `${Math.min(...v).toFixed(digits)}–${Math.max(...v).toFixed(digits)}`;

async function measure(wrk: string, script: string, side: Side): Promise<void> {
  await runWrk({ binary: wrk, script, port: side.port, threads: 1, connections: CONNECTIONS, durationS: WARMUP_S });
  const before = groupCpuMs(side.pid);
  const r = await runWrk({ binary: wrk, script, port: side.port, threads: 1, connections: CONNECTIONS, durationS: DURATION_S });
  const after = groupCpuMs(side.pid);
  if (r.bad > 0) throw new Error(`${side.name}: ${r.bad} non-2xx answers or errors`);
  if (before === null || after === null || r.total === 0) throw new Error(`${side.name}: no CPU figure (/proc) or no request`);
  side.runs.push({ rps: r.rps, cpuUs: ((after - before) * 1000) / r.total });
}

function reportPair(report: Report, few: Side, many: Side): void {
  for (const s of [few, many]) {
    report.line(`${s.name}: req/s`, median(s.runs.map((r) => r.rps)), 'req/s', { note: `CPU ${median(s.runs.map((r) => r.cpuUs)).toFixed(1)} µs/req (${spread(s.runs.map((r) => r.cpuUs), 1)})` });
  }
  const cpu = many.runs.map((r, i) => r.cpuUs / few.runs[i]!.cpuUs);
  const rps = many.runs.map((r, i) => r.rps / few.runs[i]!.rps);
  report.line(`${many.name} / ${few.name}: CPU per request`, median(cpu), 'x', { note: `per round ${spread(cpu, 3)}; req/s ${median(rps).toFixed(3)}x (${spread(rps, 3)})` });
}

export async function run(report: Report, argv: readonly string[] = process.argv.slice(2)): Promise<void> {
  const rounds = intFlag(argv, 'rounds', 3, 3, 10);
  const wrk = findWrk();
  const nginx = findNginx();
  report.section(`what spreading load over 532 origins instead of 32 costs nginx and raw node+undici: wrk -t1 -c${CONNECTIONS}, ${DURATION_S} s after ${WARMUP_S} s warm-up, ${rounds} alternated rounds, medians`);
  if (!wrk || !nginx) {
    report.note(`${!wrk ? 'wrk' : 'nginx'} not installed: skipped.`);
    return;
  }
  report.note(`${cpus().length} cores shared with wrk and the upstream; load average ${loadavg().map((l) => l.toFixed(2)).join(' ')} at start`);
  const dir = await makeTempDir('cellgate-bench-spread-');
  const children: BenchChild[] = [];
  const proxies: RunningNginx[] = [];
  let upstream: MultiUpstream | null = null;
  try {
    const ports = await freePorts(PORTS_PER_HOST);
    upstream = await startMultiUpstream(nginx, upstreamListens(ports));
    const few = ZONES.flatMap((_, z) => SERVICES.map((_, s) => staticUrl(z, s, ports)));
    const many = [...few, ...registeredEndpoints(500, ports).map((e) => e.url)];
    const sides: Side[] = [];
    for (const [label, urls] of [['32', few], ['532', many]] as const) {
      const proxy = await startNginx(nginx, { roundRobin: urls.map((u) => u.slice('http://'.length)) }, (port) => waitForOk(port, {}));
      proxies.push(proxy);
      sides.push({ name: `nginx, ${label} origins`, port: proxy.port, pid: proxy.pid, runs: [] });
    }
    for (const [label, urls] of [['32', few], ['532', many]] as const) {
      const child = startNode(`raw ${label}`, benchScript('raw-proxy'), ['--upstream', urls.join(',')]);
      children.push(child);
      const port = Number((JSON.parse(await child.waitForLine((l) => l.includes('"listening"'))) as { port: number }).port);
      await waitForOk(port, {});
      sides.push({ name: `raw node+undici, ${label} origins`, port, pid: child.pid, runs: [] });
    }
    const script = join(dir, 'load.lua');
    await writeFile(script, loadScript(USERS));
    for (let r = 0; r < rounds; r++) {
      for (const side of r % 2 === 0 ? sides : [...sides].reverse()) await measure(wrk, script, side);
    }
    reportPair(report, sides[0]!, sides[1]!);
    reportPair(report, sides[2]!, sides[3]!);
    report.note(`load average ${loadavg().map((l) => l.toFixed(2)).join(' ')} at the end`);
  } finally {
    await stopAll(children);
    for (const p of proxies) await p.stop();
    await upstream?.stop();
    await removeTempDir(dir);
  }
}
