// The gateway's benchmark (issue 13), all in one run against one upstream:
//  - requests/s, closed loop with wrk (C; `-t1 -c64`, 100,000 distinct users from a Lua
//    script), autocannon when wrk is not installed (said so): plain fastify +
//    @fastify/http-proxy with a static upstream (the bar), `cellgate serve`, raw node:http +
//    an undici Pool (the Node ceiling), nginx with one worker and `hash $http_x_user_id
//    consistent` where nginx is installed, and `cellgate serve --workers 2`;
//  - CPU per request of each proxy's processes, read from /proc over the measured run;
//  - added latency at a fixed 2,000 req/s (open loop, this process's own paced client): p50/p99
//    through each proxy minus p50/p99 of calling the upstream directly in the same round.
// The upstream is nginx `return 200` when nginx is installed, else a node:http process.
// `--code DIST` adds `cellgate serve` of another build (e.g. the code before a change) as one
// more side of the same alternated rounds: a before/after comparison under the same load.
// Every side runs ROUNDS times, taking turns (round 1: every target, round 2: every target
// again, …); each figure is the MEDIAN of its runs, with the spread (lowest–highest) beside
// it. Never the best run: on a shared machine the best run is the one nobody else was busy.
import { cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { tableFromTopologyText } from '../src/cells/topology';
import { openStore } from '../src/store/open';
import { freePort } from '../test/helpers/ports';
import {
  benchScript, CELLGATE_JS, groupCpuMs, jsonLine, makeTempDir, removeTempDir, startNode, stopAll, type BenchChild,
} from './children';
import { closedLoop, pacedRun, percentile, userPool, waitForOk, type Sample } from './load';
import { findNginx, startNginx, type RunningNginx } from './nginx';
import type { Report } from './report';
import { benchTopology } from './topology';
import { findWrk, runWrk, writeUsersScript } from './wrk';

const ROUNDS = 3;
const CONNECTIONS = 64;
const WRK_THREADS = 1;
const WARMUP_S = 1;
const DURATION_S = 5;
const USERS = 100_000;
const FIXED_RATE = 2_000;
const LATENCY_ROUNDS = 3;
const LATENCY_WARMUP_MS = 500;
const LATENCY_DURATION_MS = 3_000;
const RATIO_BAR = 1.0;
const RATIO_MOONSHOT = 1.3;
const NGINX_RATIO_BAR = 0.45;
const ADDED_P99_GOAL_MS = 2;
const ADDED_P50_GOAL_MS = 0.3;
/** Beyond this, the direct run says the machine itself is saturated. */
const LATE_WARNING_MS = 5;

/** Starts a bench helper that prints a "listening" line; the child joins `children` at once (stopped even if start-up fails). */
async function startListening(children: BenchChild[], name: string, script: string, args: readonly string[]): Promise<{ child: BenchChild; port: number }> {
  const child = startNode(name, script, args);
  children.push(child);
  const line = await child.waitForLine((l) => l.includes('"listening"'));
  return { child, port: Number(jsonLine(line).port) };
}

/** `cellgate serve` on the file store; resolves once it proxies a request. */
async function startGateway(children: BenchChild[], storePath: string, workers: number, users: readonly string[], script = CELLGATE_JS): Promise<{ child: BenchChild; port: number }> {
  const port = await freePort();
  const child = startNode(`cellgate serve --workers ${workers}`, script, [
    'serve', '--store', `file:${storePath}`, '--port', String(port), '--admin-port', '0', '--zone', 'sh-a',
    '--id', `bench-gw-${workers}`, '--workers', String(workers),
  ], process.env.CELLGATE_BENCH_NODE_ARGS ? { NODE_OPTIONS: process.env.CELLGATE_BENCH_NODE_ARGS } : undefined);
  children.push(child);
  let listening = 0;
  await child.waitForLine((l) => l.includes('"event":"listening"') && ++listening === workers);
  await waitForOk(port, { 'x-user-id': users[0] as string });
  return { child, port };
}

interface Run { readonly rps: number; readonly cpuUs: number | null; readonly bad: number }

interface Target {
  readonly name: string;
  readonly port: number;
  /** Process group of the proxy, for its CPU time. */
  readonly pgid: number | undefined;
  readonly runs: Run[];
}

/** `--code DIST`: the dist directory of another build to compare, or null. */
function comparedCode(argv: readonly string[]): string | null {
  const i = argv.indexOf('--code');
  const dir = i >= 0 ? argv[i + 1] : undefined;
  return dir ? resolve(dir) : null;
}

const median = (values: readonly number[]) => percentile(values, 50);
const spread = (values: readonly number[], digits = 0) => `${Math.min(...values).toFixed(digits)}–${Math.max(...values).toFixed(digits)}`;

/** wrk when installed, else autocannon (in this process: it competes for the same cores). */
interface Generator {
  readonly name: string;
  run(port: number, durationS: number): Promise<{ rps: number; total: number; bad: number }>;
}

async function generator(dir: string, users: readonly string[]): Promise<Generator> {
  const wrk = findWrk();
  if (wrk) {
    const script = await writeUsersScript(dir, users.length);
    return {
      name: `wrk -t${WRK_THREADS} -c${CONNECTIONS} (Lua script: ${users.length.toLocaleString('en-US')} distinct x-user-id)`,
      run: (port, durationS) => runWrk({ binary: wrk, script, port, threads: WRK_THREADS, connections: CONNECTIONS, durationS }),
    };
  }
  return {
    name: `autocannon, ${CONNECTIONS} connections (wrk not installed: the generator is Node in this process and eats the same cores)`,
    run: async (port, durationS) => {
      const r = await closedLoop({ url: `http://127.0.0.1:${port}`, connections: CONNECTIONS, durationS, users });
      return { rps: r.rps, total: r.total, bad: r.non2xx + r.errors };
    },
  };
}

async function measureThroughput(gen: Generator, target: Target): Promise<void> {
  await gen.run(target.port, WARMUP_S);
  const cpuBefore = groupCpuMs(target.pgid);
  const r = await gen.run(target.port, DURATION_S);
  const cpuAfter = groupCpuMs(target.pgid);
  const cpuUs = cpuBefore !== null && cpuAfter !== null && r.total > 0 ? ((cpuAfter - cpuBefore) * 1000) / r.total : null;
  target.runs.push({ rps: r.rps, cpuUs, bad: r.bad });
}

/** Requests/s and CPU per request of every target; targets[0] is the baseline, targets[1] cellgate. */
async function throughputSection(report: Report, gen: Generator, targets: readonly Target[], nginxName: string | null, upstreamName: string): Promise<void> {
  report.section(`gateway requests/s: closed loop, ${DURATION_S} s after ${WARMUP_S} s warm-up, ${ROUNDS} runs per side alternated, median (spread)`);
  report.note(`generator: ${gen.name}; upstream: ${upstreamName}`);
  report.note(`${cpus().length} cores, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')} at start: generator, proxy and upstream share them;`);
  report.note('the ratios within this run are what count. CPU per request: user+system time of the proxy\'s processes (/proc) over the run.');
  if (!nginxName) report.note('nginx not found: its figure is skipped (apt-get install nginx-light to include it).');
  for (let round = 0; round < ROUNDS; round++) {
    for (const target of targets) await measureThroughput(gen, target);
  }
  report.note(`load average ${loadavg().map((l) => l.toFixed(2)).join(' ')} at the end`);
  const rpsOf = (t: Target) => median(t.runs.map((r) => r.rps));
  const cpuOf = (t: Target) => {
    const c = t.runs.map((r) => r.cpuUs).filter((v): v is number => v !== null);
    return c.length ? median(c) : null;
  };
  const base = targets[0] as Target;
  const baseRef = { name: 'baseline', value: rpsOf(base) };
  for (const [i, t] of targets.entries()) {
    const cpus = t.runs.map((r) => r.cpuUs).filter((v): v is number => v !== null);
    const bad = t.runs.reduce((a, r) => a + r.bad, 0);
    const note = `runs ${spread(t.runs.map((r) => r.rps))}${cpus.length ? `; CPU ${Math.round(median(cpus))} µs/req (${spread(cpus)})` : ''}${bad ? `; ${bad} non-2xx/errors` : ''}`;
    report.line(t.name, rpsOf(t), 'req/s', i === 0 ? { note } : { baseline: baseRef, note });
  }
  const gw = targets[1] as Target;
  // Ratio per round (the two sides ran back to back), then the median of those.
  const ratios = gw.runs.map((r, i) => r.rps / (base.runs[i] as Run).rps);
  const ratio = median(ratios);
  report.line('cellgate serve / baseline', ratio, 'x', { bar: { min: RATIO_BAR }, note: `per-round ${spread(ratios, 2)}; moonshot ${RATIO_MOONSHOT}x: ${ratio >= RATIO_MOONSHOT ? 'met' : 'not met'}` });
  const baseCpu = cpuOf(base);
  const gwCpu = cpuOf(gw);
  if (baseCpu !== null && gwCpu !== null) {
    report.line('cellgate serve CPU per request / baseline', gwCpu / baseCpu, 'x', { note: '(lower is better; steadier than req/s on a shared machine)' });
  }
  const nginx = nginxName ? targets.find((t) => t.name === nginxName) : undefined;
  if (nginx) {
    const r = nginx.runs.map((n, i) => (gw.runs[i] as Run).rps / n.rps);
    report.line('cellgate serve / nginx (one process each)', median(r), 'x', { bar: { min: NGINX_RATIO_BAR }, note: `per-round ${spread(r, 2)}` });
  }
  const other = targets.find((t) => t.name.startsWith('cellgate serve (code:'));
  if (other) {
    const r = other.runs.map((o, i) => o.rps / (base.runs[i] as Run).rps);
    const otherCpu = cpuOf(other);
    report.line(`${other.name} / baseline`, median(r), 'x', {
      note: `per-round ${spread(r, 2)}${otherCpu !== null && gwCpu !== null ? `; CPU per request, this build / that one: ${(gwCpu / otherCpu).toFixed(2)}x` : ''}`,
    });
  }
  const w2 = targets.find((t) => t.name.includes('--workers 2'));
  if (w2) {
    report.line('cellgate --workers 2 / cellgate', rpsOf(w2) / rpsOf(gw), 'x', {
      note: `${cpus().length} cores shared with wrk and the upstream: a second worker has no core of its own here`,
    });
  }
}

interface LatencyRuns { readonly p50: number[]; readonly p99: number[]; readonly late: number[]; count: number; failed: number }

async function measureLatency(port: number, users: readonly string[], into: LatencyRuns): Promise<void> {
  const opts = { host: '127.0.0.1', port, ratePerS: FIXED_RATE, users };
  await pacedRun(opts, LATENCY_WARMUP_MS);
  const samples: Sample[] = await pacedRun(opts, LATENCY_DURATION_MS);
  const ok = samples.filter((s) => s.status === 200).map((s) => s.latencyMs);
  into.p50.push(percentile(ok, 50));
  into.p99.push(percentile(ok, 99));
  into.late.push(percentile(samples.map((s) => s.lateMs), 99));
  into.count += samples.length;
  into.failed += samples.length - ok.length;
}

/** p50/p99 at a fixed rate: the upstream directly and through each proxy, round by round. */
async function latencySection(report: Report, upstreamPort: number, proxies: readonly { name: string; port: number; bars: boolean }[], users: readonly string[]): Promise<void> {
  report.section(`gateway added latency: open loop at a fixed ${FIXED_RATE.toLocaleString('en-US')} req/s, ${LATENCY_DURATION_MS / 1000} s after ${LATENCY_WARMUP_MS / 1000} s warm-up, ${LATENCY_ROUNDS} rounds, median (spread)`);
  report.note('generator: this process\'s own paced client (bench/load.ts PacedLoad; wrk cannot pace, wrk2 is not in Debian): the requests');
  report.note('due are sent on each ~1 ms timer tick (at 2,000 req/s mostly two back to back: the second waits for the first at every side),');
  report.note(`on up to 64 keep-alive connections, latency from send to the end of the answer; added = proxy − direct in the same round.`);
  report.note(`load average ${loadavg().map((l) => l.toFixed(2)).join(' ')} at start`);
  const fresh = (): LatencyRuns => ({ p50: [], p99: [], late: [], count: 0, failed: 0 });
  const direct = fresh();
  const via = proxies.map(fresh);
  for (let round = 0; round < LATENCY_ROUNDS; round++) {
    await measureLatency(upstreamPort, users, direct);
    for (const [i, p] of proxies.entries()) await measureLatency(p.port, users, via[i] as LatencyRuns);
  }
  const late = median(direct.late);
  if (late > LATE_WARNING_MS) report.note(`NOTE: the generator sent late by ${late.toFixed(1)} ms at p99 even to the upstream directly: the machine is starved.`);
  const ms = (v: number[]) => `(${spread(v, 2)}) ms`;
  report.line('upstream directly: p50', median(direct.p50), 'ms', { note: ms(direct.p50) });
  report.line('upstream directly: p99', median(direct.p99), 'ms', { note: `${ms(direct.p99)}; ${direct.count.toLocaleString('en-US')} requests${direct.failed ? `, ${direct.failed} failed` : ''}` });
  for (const [i, p] of proxies.entries()) {
    const f = via[i] as LatencyRuns;
    const added50 = f.p50.map((v, r) => v - (direct.p50[r] as number));
    const added99 = f.p99.map((v, r) => v - (direct.p99[r] as number));
    report.line(`${p.name}: added p50`, median(added50), 'ms', { ...(p.bars ? { bar: { max: ADDED_P50_GOAL_MS } } : {}), note: ms(added50) });
    report.line(`${p.name}: added p99`, median(added99), 'ms', {
      ...(p.bars ? { bar: { max: ADDED_P99_GOAL_MS } } : {}),
      note: `${ms(added99)}; p50/p99 ${median(f.p50).toFixed(2)}/${median(f.p99).toFixed(2)} ms; ${f.count.toLocaleString('en-US')} requests${f.failed ? `, ${f.failed} failed` : ''}`,
    });
  }
}

export async function run(report: Report): Promise<void> {
  const users = userPool(USERS);
  const dir = await makeTempDir('cellgate-bench-gw-');
  const children: BenchChild[] = [];
  const nginxes: RunningNginx[] = [];
  const ready = (port: number) => waitForOk(port, { 'x-user-id': users[0] as string });
  try {
    const nginxBinary = findNginx();
    let upstreamPort: number;
    let upstreamName: string;
    if (nginxBinary) {
      const up = await startNginx(nginxBinary, { upstream: true }, ready);
      nginxes.push(up);
      upstreamPort = up.port;
      upstreamName = 'nginx `return 200` (one worker)';
    } else {
      const up = await startListening(children, 'upstream', benchScript('upstream-server'), []);
      upstreamPort = up.port;
      upstreamName = 'node:http in its own process (nginx not installed)';
    }
    const upstreamUrl = `http://127.0.0.1:${upstreamPort}`;
    const storePath = join(dir, 'table.json');
    const store = openStore(`file:${storePath}`);
    try {
      const cas = await store.compareAndSwap(0, tableFromTopologyText(benchTopology('bench', upstreamUrl)));
      if (!cas.ok) throw new Error('could not write the bench routing table');
    } finally {
      await store.close();
    }

    const baseline = await startListening(children, 'baseline proxy', benchScript('baseline-proxy'), ['--upstream', upstreamUrl]);
    const gateway = await startGateway(children, storePath, 1, users);
    const raw = await startListening(children, 'raw proxy', benchScript('raw-proxy'), ['--upstream', upstreamUrl]);
    const gateway2 = await startGateway(children, storePath, 2, users);
    const code = comparedCode(process.argv);
    const compared = code ? await startGateway(children, storePath, 1, users, join(code, 'src', 'cli', 'cellgate.js')) : null;
    const comparedName = `cellgate serve (code: ${code})`;
    const nginxName = nginxBinary ? 'nginx 1 worker, hash $http_x_user_id consistent' : null;
    const nginx = nginxBinary ? await startNginx(nginxBinary, { proxyTo: upstreamPort }, ready) : null;
    if (nginx) nginxes.push(nginx);

    const targets: Target[] = [
      { name: 'baseline: @fastify/http-proxy, static upstream', port: baseline.port, pgid: baseline.child.pid, runs: [] },
      { name: 'cellgate serve', port: gateway.port, pgid: gateway.child.pid, runs: [] },
      ...(compared ? [{ name: comparedName, port: compared.port, pgid: compared.child.pid, runs: [] }] : []),
      { name: 'ceiling: node:http + undici Pool', port: raw.port, pgid: raw.child.pid, runs: [] },
      ...(nginx && nginxName ? [{ name: nginxName, port: nginx.port, pgid: nginx.pid, runs: [] }] : []),
      { name: 'cellgate serve --workers 2', port: gateway2.port, pgid: gateway2.child.pid, runs: [] },
    ];
    const only = process.env.CELLGATE_BENCH_ONLY; // e.g. "latency" or "throughput", for profiling sessions
    if (only !== 'latency') await throughputSection(report, await generator(dir, users), targets, nginxName, upstreamName);
    if (only !== 'throughput') {
      await latencySection(report, upstreamPort, [
        { name: 'cellgate serve', port: gateway.port, bars: true },
        ...(compared ? [{ name: comparedName, port: compared.port, bars: false }] : []),
        { name: 'baseline proxy', port: baseline.port, bars: false },
        { name: 'ceiling node+undici', port: raw.port, bars: false },
        ...(nginx ? [{ name: 'nginx', port: nginx.port, bars: false }] : []),
      ], users);
    }
  } finally {
    await Promise.all(nginxes.map((n) => n.stop()));
    await stopAll(children);
    await removeTempDir(dir);
  }
}
