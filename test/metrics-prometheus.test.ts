// Metrics as Prometheus expects them, on real `cellgate serve` processes over the file store:
// `promtool check metrics` is clean on a live /metrics (promtool comes from Debian's
// `prometheus` package, which .ci/run installs: a missing promtool fails the test, it never
// skips); the standard process/Node metrics carry no prefix; build info, zone status and the
// zero-valued series exist from the first scrape; with --workers 2 the primary's admin port
// sums both workers' counters.
import test, { type ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { accessSync, constants, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { workerAdminPort } from '../src/router/cluster-metrics';
import { REFUSAL_REASONS, UPSTREAM_ERROR_KINDS } from '../src/router/metrics';
import { CELLGATE, cellctl, runCli } from './helpers/cli';
import { send, startGatewayProcess, topologyYaml, type GatewayProcess } from './helpers/e2e';
import { freePorts } from './helpers/ports';
import { Upstream } from './helpers/upstreams';
import { metricValue, until } from './helpers/wait';

const ZONES = ['za', 'zb', 'zc'] as const;
const STATUSES = ['up', 'draining', 'down'] as const;
const SETTLED = ['released', 'evicted', 'timeout', 'too_large', 'client_gone', 'overflow', 'shutdown'];
const VERSION = (JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }).version;

let dir: string;
let tables = 0;
test.before(async () => { dir = await mkdtemp(join(tmpdir(), 'cellgate-metrics-')); });
test.after.always(async () => { if (dir) await rm(dir, { recursive: true, force: true }); });

/** promtool on PATH (or Debian's /usr/bin), null when absent. */
function findPromtool(): string | null {
  for (const d of [...(process.env.PATH ?? '').split(delimiter), '/usr/bin']) {
    const candidate = join(d, 'promtool');
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch { /* not here */ }
  }
  return null;
}

/** `promtool check metrics` on `text` (its findings are printed on stdout/stderr; exit 0 = clean). */
function promtoolCheck(t: ExecutionContext, text: string): Promise<{ code: number | null; findings: string }> {
  const promtool = findPromtool();
  if (!promtool) {
    t.fail('promtool not found: install Debian\'s `prometheus` package (apt-get install -y prometheus), as .ci/run does');
    return Promise.resolve({ code: null, findings: 'promtool missing' });
  }
  return new Promise((resolve, reject) => {
    const child = spawn(promtool, ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let findings = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (findings += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (findings += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, findings }); });
    child.stdin.end(text);
  });
}

/** The processes whose parent is `pid` (Linux /proc): a --workers primary's workers. */
function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid …: comm may hold spaces and parentheses, so read after the last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(entry));
    } catch { /* exited meanwhile */ }
  }
  return out;
}

async function scrape(admin: string): Promise<string> {
  const r = await fetch(`${admin}/metrics`, { signal: AbortSignal.timeout(15_000) });
  if (r.status !== 200) throw new Error(`GET ${admin}/metrics: ${r.status} ${await r.text()}`);
  return r.text();
}

/** The sum of every sample of one metric (all label sets). */
function total(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  return sum;
}

/** Three zones on real upstreams and an initialised file store; everything stopped at teardown. */
async function setup(t: ExecutionContext): Promise<{ file: string; upstreams: Upstream[] }> {
  const upstreams = await Promise.all(ZONES.map((z) => new Upstream(z).start()));
  t.teardown(async () => { await Promise.all(upstreams.map((u) => u.stop())); });
  const n = ++tables;
  const topology = join(dir, `topology-${n}.yaml`);
  await writeFile(topology, topologyYaml(ZONES.map((z, i) => ({ name: z, region: 'r1', city: 'c1', url: upstreams[i]!.url })), 12));
  const file = join(dir, `table-${n}.json`);
  const init = await cellctl(['init', '--topology', topology, '--file', file]);
  if (init.code !== 0) throw new Error(init.stderr);
  return { file, upstreams };
}

async function startGateway(t: ExecutionContext, args: readonly string[], id: string): Promise<GatewayProcess> {
  const gw = await startGatewayProcess(args, id);
  t.teardown(() => gw.kill());
  return gw;
}

/** Until the admin server says ready (a table is applied). */
async function ready(admin: string, what: string): Promise<void> {
  await until(`${what} ready`, async () => (await fetch(`${admin}/readyz`, { signal: AbortSignal.timeout(5000) }).catch(() => null))?.status === 200, 20_000, 50);
}

test('a live /metrics passes promtool; process metrics unprefixed; build info, zone status and zero series from the start', async (t) => {
  const { file } = await setup(t);
  const gw = await startGateway(t, ['--store', `file:${file}`, '--port', '0', '--admin-port', '0'], 'gw-prom');
  await ready(gw.admin, gw.id);
  for (let i = 0; i < 10; i++) t.is((await send(gw.traffic, '/x', { headers: { 'x-user-id': `user-${i}` } })).status, 200);

  const first = await scrape(gw.admin);
  const lint = await promtoolCheck(t, first);
  t.is(lint.findings.trim(), '', 'promtool has no findings');
  t.is(lint.code, 0);

  // Standard names for stock dashboards; none of the prefixed or misnamed ones.
  for (const name of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'process_start_time_seconds', 'nodejs_heap_size_used_bytes', 'nodejs_eventloop_lag_seconds']) {
    t.regex(first, new RegExp(`^${name} `, 'm'), name);
  }
  t.notRegex(first, /^cellgate_(process|nodejs)_/m);
  t.notRegex(first, /^nodejs_active_(handles|requests|resources)_total/m);
  t.is(metricValue(first, `cellgate_build_info{version="${VERSION}",node="${process.version}"}`), 1);
  t.regex(first, /^# TYPE cellgate_zone_status gauge$/m);
  for (const zone of ZONES) for (const status of STATUSES) t.is(metricValue(first, `cellgate_zone_status{zone="${zone}",status="${status}"}`), status === 'up' ? 1 : 0, `${zone} ${status}`);
  for (const reason of REFUSAL_REASONS) t.is(metricValue(first, `cellgate_requests_refused_total{reason="${reason}"}`), 0, reason);
  for (const reason of SETTLED) t.is(metricValue(first, `cellgate_buffer_settled_total{reason="${reason}"}`), 0, reason);
  for (const zone of ZONES) for (const kind of UPSTREAM_ERROR_KINDS) t.is(metricValue(first, `cellgate_upstream_errors_total{zone="${zone}",service="default",kind="${kind}"}`), 0, `${zone} ${kind}`);
  t.is(total(first, 'cellgate_requests_total'), 10);

  // zc down: its cells move away; it is still in every per-zone series, at 0.
  const down = await cellctl(['zone', 'down', 'zc', '--reason', 'metrics test', '--yes', '--file', file]);
  t.is(down.code, 0, down.stderr);
  let after = '';
  await until('the gateway to report zc down', async () => metricValue((after = await scrape(gw.admin)), 'cellgate_zone_status{zone="zc",status="down"}') === 1, 20_000, 50);
  t.is(metricValue(after, 'cellgate_zone_status{zone="zc",status="up"}'), 0);
  t.is(metricValue(after, 'cellgate_zone_status{zone="zc",status="draining"}'), 0);
  t.is(metricValue(after, 'cellgate_cells{zone="zc",state="active"}'), 0);
  t.is(metricValue(after, 'cellgate_cells{zone="zc",state="frozen"}'), 0);
  t.is(total(after, 'cellgate_cells'), 12);
  t.is(metricValue(after, 'cellgate_upstream_pending_requests{zone="zc",service="default"}'), 0);
  t.is(metricValue(after, 'cellgate_upstream_ejected_endpoints{zone="zc",service="default"}'), 0);
  t.is(metricValue(after, 'cellgate_upstream_errors_total{zone="zc",service="default",kind="refused"}'), 0);
  const lintAfter = await promtoolCheck(t, after);
  t.is(lintAfter.findings.trim(), '');
  t.is(lintAfter.code, 0);
  t.is(await gw.stop(), 0);
});

test('--workers 2: one scrape of the primary\'s admin port sums both workers, or fails while one cannot answer; each worker keeps its own admin port', async (t) => {
  const { file } = await setup(t);
  const [port] = await freePorts(1);
  const gw = await startGateway(t, ['--store', `file:${file}`, '--port', String(port), '--admin-port', '0', '--workers', '2'], 'gw-agg');
  const traffic = `http://127.0.0.1:${port}`;
  // The primary listens (and says so) before it forks; the helper returned on a worker's line.
  const primaryLine = gw.stderr().split('\n').find((l) => l.includes('"event":"primary.listening"'));
  if (!primaryLine) throw new Error(`no primary.listening line: ${gw.stderr()}`);
  const primaryAdmin = (JSON.parse(primaryLine) as { admin: string }).admin;
  let workers: { id: string; admin: string }[] = [];
  await until('both workers listening', () => {
    workers = gw.stderr().split('\n').filter((l) => l.includes('"event":"listening"'))
      .map((l) => JSON.parse(l) as { id: string; admin: string }).sort((a, b) => a.id.localeCompare(b.id));
    return workers.length === 2;
  }, 20_000, 50);
  t.deepEqual(workers.map((w) => w.id), ['gw-agg', 'gw-agg-w1']);
  t.is(new Set([primaryAdmin, ...workers.map((w) => w.admin)]).size, 3, 'the primary and each worker on its own admin port');
  for (const w of workers) await ready(w.admin, w.id);

  // Fresh connections are spread over the workers (round robin); send until both have served some.
  let sent = 0;
  let perWorker: number[] = [0, 0];
  await until('requests through both workers', async () => {
    for (let i = 0; i < 10; i++) {
      const r = await send(traffic, '/x', { headers: { 'x-user-id': `user-${sent}` } });
      if (r.status !== 200) throw new Error(`request ${sent}: ${r.status}`);
      sent += 1;
    }
    perWorker = await Promise.all(workers.map(async (w) => total(await scrape(w.admin), 'cellgate_requests_total')));
    return perWorker.every((n) => n > 0);
  }, 30_000, 0);
  t.is(perWorker[0]! + perWorker[1]!, sent, 'every request counted by the worker that served it');

  const primary = await scrape(primaryAdmin);
  t.is(total(primary, 'cellgate_requests_total'), sent, 'the primary sums both workers');
  t.is(total(primary, 'cellgate_request_duration_seconds_count'), sent);
  // Facts every worker shares are not multiplied by the number of workers.
  t.is(metricValue(primary, `cellgate_build_info{version="${VERSION}",node="${process.version}"}`), 1);
  t.is(metricValue(primary, 'cellgate_zone_status{zone="za",status="up"}'), 1);
  t.is(metricValue(primary, 'cellgate_control_plane_connected'), 1);
  t.is(metricValue(primary, 'cellgate_routing_table_version'), metricValue(await scrape(workers[0]!.admin), 'cellgate_routing_table_version'));
  const lint = await promtoolCheck(t, primary);
  t.is(lint.findings.trim(), '', 'promtool has no findings on the aggregated scrape');
  t.is(lint.code, 0);
  const health = await fetch(`${primaryAdmin}/healthz`, { signal: AbortSignal.timeout(5000) });
  t.like(await health.json(), { status: 'ok', role: 'primary', workers: 2 });

  // A worker that cannot answer fails the scrape (prom-client waits 5 s) instead of a sum without its counters.
  const children = childPids(gw.child.pid!);
  t.is(children.length, 2, 'the primary has two workers');
  process.kill(children[0]!, 'SIGSTOP');
  t.teardown(() => { try { process.kill(children[0]!, 'SIGCONT'); } catch { /* gone */ } });
  const failed = await fetch(`${primaryAdmin}/metrics`, { signal: AbortSignal.timeout(20_000) });
  t.is(failed.status, 500);
  t.like(await failed.json(), { error: 'INTERNAL_ERROR' });
  process.kill(children[0]!, 'SIGCONT');
  t.is(total(await scrape(primaryAdmin), 'cellgate_requests_total'), sent, 'the whole sum again once the worker answers');

  // A worker that dies during a scrape fails that scrape; its replacement is summed from then on (from 0).
  process.kill(children[1]!, 'SIGSTOP');
  const during = fetch(`${primaryAdmin}/metrics`, { signal: AbortSignal.timeout(20_000) });
  process.kill(children[1]!, 'SIGKILL');
  t.is((await during).status, 500);
  await until('a replacement worker listening', () => gw.stderr().split('\n').filter((l) => l.includes('"event":"listening"')).length === 3, 20_000, 50);
  let after = NaN;
  await until('the primary to sum two workers again', async () => {
    const r = await fetch(`${primaryAdmin}/healthz`, { signal: AbortSignal.timeout(5000) });
    if (((await r.json()) as { workers: number }).workers !== 2) return false;
    const m = await fetch(`${primaryAdmin}/metrics`, { signal: AbortSignal.timeout(20_000) });
    if (m.status !== 200) return false;
    after = total(await m.text(), 'cellgate_requests_total');
    return true;
  }, 20_000, 50);
  t.true(after === sent - perWorker[0]! || after === sent - perWorker[1]!, `the survivor's ${after} requests of ${sent}, the dead worker's gone`);
  t.is(await gw.stop(), 0);
});

test('--workers: a fixed admin port puts the workers on the next ports; a layout that hits the traffic port is refused before any fork', async (t) => {
  t.deepEqual([0, 1, 2].map((i) => workerAdminPort(9090, i)), [9091, 9092, 9093]);
  t.deepEqual([0, 1].map((i) => workerAdminPort(0, i)), [0, 0], 'admin port 0: each worker an ephemeral port of its own');
  const clash = await runCli(CELLGATE, ['serve', '--store', 'file:/nonexistent/t.json', '--port', '39002', '--admin-port', '39000', '--workers', '3']);
  t.is(clash.code, 2);
  t.regex(clash.stderr, /traffic port 39002 is one of the workers' admin ports \(39001-39003/);
  const high = await runCli(CELLGATE, ['serve', '--store', 'file:/nonexistent/t.json', '--port', '8080', '--admin-port', '65534', '--workers', '2']);
  t.is(high.code, 2);
  t.regex(high.stderr, /admin ports run up to 65536/);
});
