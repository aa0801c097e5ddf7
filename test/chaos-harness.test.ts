// The chaos harness tested on its own: its parts (the fault proxy, the oracle's judgement,
// the scenario catalogue, the CLI) without processes, and then the proof that it catches a
// broken build — deliberately wrong planner output written into etcd must make the named
// invariants fail, the report say so, and the command exit non-zero.
import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tableFromTopologyText } from '../src/cells/topology';
import type { RoutingTable } from '../src/cells/types';
import { RoutingView } from '../src/cells/lookup';
import { versioned } from '../src/cells/table';
import type { ClientRecord } from '../chaos/clients';
import { judgeRoutes, oneOwnerPerEpoch } from '../chaos/invariants';
import { noEjectionWhileHealthy } from '../chaos/invariants-clients';
import { noWsMessageAtOldZone, slowCutOnlyAfterGrace } from '../chaos/invariants-moves';
import type { SuiteReport } from '../chaos/run';
import type { RunData, Scenario } from '../chaos/scenario';
import { defineScenario } from '../chaos/scenario';
import { SCENARIOS } from '../chaos/scenarios';
import { SELFTESTS } from '../chaos/selftest';
import { at, mark } from '../chaos/steps';
import { FaultProxy } from '../chaos/tcp-proxy';
import type { ZoneLogLine } from '../chaos/zone-server';
import { twoZoneTopologyYaml } from './helpers/fixtures';

const RUN = join(__dirname, '..', 'chaos', 'run.js');

function runChaos(args: readonly string[], timeoutMs: number): Promise<{ code: number | null; stderr: string; stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [RUN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    // SIGTERM lets the harness stop every process it started.
    const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

async function echoServer(t: { teardown(fn: () => unknown): void }): Promise<number> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    s.pipe(s);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => {
    for (const s of sockets) s.destroy();
    server.close(() => resolve());
  }));
  return (server.address() as { port: number }).port;
}

/** Sends `text` on a fresh connection; resolves with what came back within waitMs, or the error code. */
function exchange(port: number, text: string, waitMs: number): Promise<{ data: string; error: string | null; ms: number; socket: Socket }> {
  return new Promise((resolve) => {
    const started = Date.now();
    const socket = connect({ port, host: '127.0.0.1' });
    let data = '';
    let done = false;
    const finish = (error: string | null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({ data, error, ms: Date.now() - started, socket });
    };
    const timer = setTimeout(() => finish(null), waitMs);
    socket.on('data', (d) => {
      data += d.toString('utf8');
      if (data.length >= text.length) finish(null);
    });
    socket.on('error', (err: NodeJS.ErrnoException) => finish(err.code ?? 'ERROR'));
    socket.on('close', () => finish(data ? null : 'CLOSED'));
    socket.write(text);
  });
}

test('the fault proxy passes, delays, refuses and blackholes connections', async (t) => {
  const target = await echoServer(t);
  const proxy = new FaultProxy('test', target);
  const port = await proxy.start();
  t.teardown(() => proxy.close());

  const plain = await exchange(port, 'hello', 2_000);
  t.is(plain.data, 'hello');
  plain.socket.destroy();

  proxy.setMode({ kind: 'pass', latencyMs: 150 });
  const slow = await exchange(port, 'slow', 3_000);
  t.is(slow.data, 'slow');
  t.true(slow.ms >= 280, `a round trip through 150 ms each way took ${slow.ms} ms`);
  slow.socket.destroy();

  proxy.setMode({ kind: 'refuse' });
  const refused = await exchange(port, 'x', 2_000);
  t.truthy(refused.error, 'a refused connection is reset');

  proxy.setMode({ kind: 'blackhole' });
  const held = await exchange(port, 'lost', 300);
  t.is(held.data, '', 'nothing gets through a blackhole');
  t.is(held.error, null, 'a blackholed connection stays open');
  const reset = new Promise<void>((resolve) => held.socket.once('close', () => resolve()));
  proxy.setMode({ kind: 'pass' });
  await reset;
  t.pass('leaving the blackhole resets the connections caught in it');
  const healed = await exchange(port, 'back', 2_000);
  t.is(healed.data, 'back');
  healed.socket.destroy();
  t.true(proxy.resets >= 2);
});

function fakeRun(lines: Partial<ZoneLogLine>[], sent: Record<string, number>): RunData {
  const t1 = tableFromTopologyText(twoZoneTopologyYaml);
  const c00 = t1.cells.find((c) => c.name === 'c00')!;
  const t2: RoutingTable = { ...t1, cells: t1.cells.map((c) => (c.name === 'c00' ? { ...c, zone: 'sh-b', epoch: c.epoch + 1 } : c)) };
  const scenario = defineScenario({ name: 'fake', title: 'fake', description: 'fake', quick: false, load: { mode: 'rate' }, durationMs: 1, timeline: [], invariants: [] });
  const base: ZoneLogLine = {
    t: 0, srv: 'sh-a-1', zone: 'sh-a', rid: null, user: 'u1', method: 'GET', cell: 'c00', epoch: c00.epoch, rev: 1, hdrZone: 'sh-a',
    verdict: 'owned', why: null, view: 2, bytes: 0, sha: '', status: 200,
  };
  return {
    scenario, t0: 0, tLoadEnd: 10_000, gatewayIds: ['gw-0'], skipped: 0, steps: [],
    requests: Object.entries(sent).map(([id, at]) => ({
      id, user: 'u1', method: 'GET', path: '/x', gw: 0, sent: at, done: at + 5, status: 421, error: 'NOT_CELL_OWNER',
      zone: null, srv: null, cell: 'c00', epoch: null, rev: null, bytes: 0, sha: null, tries: 1,
    })),
    zoneLog: lines.map((l) => ({ ...base, ...l })), streamLog: [], clients: [], ws: { sessions: [], messages: [] }, ejections: [],
    tables: [{ t: 1_000, version: 1, table: t1, checksum: 'a' }, { t: 2_000, version: 2, table: t2, checksum: 'b' }],
    presence: [{ t: 1_010, id: 'gw-0', appliedVersion: 1, checksum: 'a', deleted: false, via: 'direct' }, { t: 2_050, id: 'gw-0', appliedVersion: 2, checksum: 'b', deleted: false, via: 'direct' }],
    final: { store: { version: 2, checksum: 'b' }, gateways: [], convergedAt: 0 },
  };
}

test('the oracle tells a fenced stale route in transition from a misroute', (t) => {
  const stale = { verdict: 'notOwned' as const, status: 421, why: 'moved' };
  const run = fakeRun([
    { rid: 'in-transition', ...stale },
    { rid: 'after-convergence', ...stale },
    { rid: 'wrong-endpoint', hdrZone: 'sh-b' },
    { rid: 'served-anyway', verdict: 'notOwned', status: 200 },
    { rid: 'fine', rev: 2, zone: 'sh-b', hdrZone: 'sh-b', epoch: 2 },
    { rid: 'lagging-oracle', ...stale, rev: 2, view: 1, zone: 'sh-b', hdrZone: 'sh-b', epoch: 2 },
  ], { 'in-transition': 2_010, 'after-convergence': 2_500 });
  const v = judgeRoutes(run);
  t.is(v.fencedInTransition, 1);
  t.is(v.oracleLag, 1);
  t.deepEqual(v.misroutes.map((m) => [m.line.rid, m.kind]).sort(), [
    ['after-convergence', 'stale route after convergence'],
    ['served-anyway', 'served by a non-owner'],
    ['wrong-endpoint', 'wrong zone endpoint'],
  ]);
  const split = oneOwnerPerEpoch().check(fakeRun([{ rid: 'a' }, { rid: 'b', zone: 'sh-b', hdrZone: 'sh-b' }], {}));
  t.false(split.passed);
  t.regex(split.detail, /c00@1 by sh-a and sh-b/);
});

test('the long-lived-client invariants tell a late WebSocket message, a healthy ejection and an early cut from fine ones', (t) => {
  const base = fakeRun([], {});
  const session = { id: 'ws000.1', client: 'ws000', conn: 1, user: 'u1', gw: 0, startedAt: 0, openedAt: 10, zone: 'sh-a', cell: 'c00', epoch: 1, closedAt: 0, code: null, closedBy: null, error: null };
  const msg = (at: number) => ({ t: at, srv: 'sh-a-1', zone: 'sh-a', event: 'ws-msg' as const, id: 'ws000.1', cell: 'c00', epoch: 1, seq: at, verdict: 'owned' as const });
  // Unplanned flip at 2000, applied by gw-0 at 2050: a message in between was in transit.
  const ws = { ...base, ws: { sessions: [session], messages: [] }, streamLog: [msg(1_500), msg(2_040)] };
  t.true(noWsMessageAtOldZone().check(ws).passed);
  const late = noWsMessageAtOldZone().check({ ...ws, streamLog: [...ws.streamLog, msg(2_300)] });
  t.false(late.passed);
  t.regex(late.detail, /ws000\.1#2300 at sh-a 250 ms after its gateway applied the flip of c00 to sh-b/);
  // Planned (the cell was frozen before the flip): its sockets were closed at the freeze, so nothing may arrive after the flip.
  const [first, second] = base.tables;
  const frozen = { ...first!, table: { ...first!.table!, cells: first!.table!.cells.map((c) => (c.name === 'c00' ? { ...c, state: 'frozen' as const, frozenUntilMs: 9_000 } : c)) } };
  t.false(noWsMessageAtOldZone().check({ ...ws, tables: [frozen, second!] }).passed);
  t.false(noWsMessageAtOldZone().check({ ...ws, streamLog: [] }).passed, 'nothing observed is not a pass');

  const steps = [{ label: 'kill -9 sh-a', kind: 'fault' as const, t0: 3_000, t1: 3_010, ok: true, detail: '' }];
  const sample = (at: number, zone: string, ejected: number) => ({ t: at, gateway: 'gw-0', zone, ejected });
  const eject = noEjectionWhileHealthy({ 'sh-a': 'kill -9 sh-a' });
  t.true(eject.check({ ...base, steps, ejections: [sample(1_000, 'sh-a', 0), sample(3_500, 'sh-a', 2)] }).passed);
  const healthy = eject.check({ ...base, steps, ejections: [sample(1_000, 'sh-b', 1), sample(2_000, 'sh-a', 1)] });
  t.false(healthy.passed);
  t.regex(healthy.detail, /sh-b at gw-0: 1 endpoint\(s\) ejected/);
  t.regex(healthy.detail, /sh-a at gw-0/);
  t.false(eject.check({ ...base, steps, ejections: [] }).passed, 'no sample is not a pass');

  // c00 frozen at 2000 (and moved at 4500): a slow download cut 2.1 s after the freeze is the grace at work, one cut after 0.5 s is not.
  const view = new RoutingView(versioned(first!.table!, 1));
  const user = Array.from({ length: 200 }, (_, i) => `u${i}`).find((u) => view.cellOfUser(u) === 'c00')!;
  const moved = { ...second!, t: 4_500, version: 3 };
  const tables = [first!, { ...frozen, t: 2_000, version: 2 }, moved];
  const slow = (id: string, sent: number, done: number, error: string | null): ClientRecord => ({
    id, kind: 'slow-download', variant: '', user, gw: 0, sent, done, firstByte: sent + 5, status: 200, error, zone: 'sh-a', cell: 'c00', bytes: 0, sha: null, chunks: 3, deadlineMs: 20_000,
  });
  const grace = slowCutOnlyAfterGrace(2_000);
  const ok = grace.check({ ...base, tables, clients: [slow('a', 1_000, 4_100, 'RESPONSE_ABORTED'), slow('b', 5_000, 9_000, null)] });
  t.true(ok.passed, ok.detail);
  t.regex(ok.detail, /1 cut after the grace \{"slow-download 200 RESPONSE_ABORTED":1\}/);
  t.false(grace.check({ ...base, tables, clients: [slow('early', 1_000, 2_500, 'RESPONSE_ABORTED')] }).passed);
  t.false(grace.check({ ...base, tables, clients: [slow('unfrozen', 5_000, 6_000, 'ECONNRESET')] }).passed);
});

test('the scenario catalogue: at least 10 scenarios, 5 quick ones, every one judged by the standard invariants', (t) => {
  const names = SCENARIOS.map((s) => s.name);
  t.true(SCENARIOS.length >= 10);
  t.true(SCENARIOS.filter((s) => s.quick).length >= 5);
  t.is(new Set(names).size, names.length, 'unique names');
  for (const s of SCENARIOS) {
    const inv = s.invariants.map((i) => i.name);
    for (const required of ['no misrouted request', 'POST bodies delivered once and intact', 'gateways converge on one revision and checksum', 'no buffered request lost']) {
      t.true(inv.includes(required), `${s.name} checks "${required}"`);
    }
    t.true(s.timeline.length > 0, `${s.name} has a timeline`);
  }
  const planned = SCENARIOS.filter((s) => s.invariants.some((i) => i.name === 'zero failed requests'));
  const unplanned = SCENARIOS.filter((s) => s.invariants.some((i) => i.name === 'bounded error window'));
  t.true(planned.length >= 3 && unplanned.length >= 3);
  const bad: Scenario = { name: 'x', title: 'x', description: 'x', quick: false, load: { mode: 'rate' }, durationMs: 1_000, invariants: [], timeline: [at(0, mark('a'), { waitFor: 'b' })] };
  t.throws(() => defineScenario(bad), { message: /waits for "b"/ });
});

test('the chaos command: usage errors exit 2, --list names every scenario and self-test', async (t) => {
  const usage = await runChaos(['--quick', '--all'], 20_000);
  t.is(usage.code, 2);
  t.regex(usage.stderr, /usage: npm run chaos/);
  t.is((await runChaos(['--scenario', 'no-such-scenario'], 20_000)).code, 2);
  const list = await runChaos(['--list'], 20_000);
  t.is(list.code, 0);
  for (const s of [...SCENARIOS, ...SELFTESTS.map((x) => x.scenario)]) t.true(list.stdout.includes(s.name), s.name);
});

test('a deliberately broken build fails the named invariants, the report shows it, and the command exits 1', async (t) => {
  t.timeout(6 * 60_000);
  const out = await mkdtemp(join(tmpdir(), 'cellgate-chaos-selftest-'));
  t.teardown(() => rm(out, { recursive: true, force: true }));
  const result = await runChaos(['--out', out, ...SELFTESTS.flatMap((x) => ['--scenario', x.scenario.name])], 5 * 60_000);
  t.is(result.code, 1, result.stderr.slice(-2000));
  const report = JSON.parse(await readFile(join(out, 'report.json'), 'utf8')) as SuiteReport;
  t.false(report.passed);
  for (const selftest of SELFTESTS) {
    const s = report.scenarios.find((x) => x.name === selftest.scenario.name);
    if (!s) return t.fail(`no report of ${selftest.scenario.name}`);
    t.false(s.passed, s.name);
    t.true(s.requests > 500, `${s.name} ran its load (${s.requests} requests)`);
    const verdict = (name: string) => s.invariants.find((i) => i.name === name);
    for (const name of selftest.mustFail) t.false(verdict(name)?.passed ?? true, `${s.name}: "${name}" fails — ${verdict(name)?.detail}`);
    for (const name of selftest.mustPass) t.true(verdict(name)?.passed ?? false, `${s.name}: "${name}" passes — ${verdict(name)?.detail}`);
  }
  const html = await readFile(join(out, 'report.html'), 'utf8');
  t.regex(html, /FAILED/);
  t.regex(html, /no misrouted request/);
  t.is((html.match(/<svg /g) ?? []).length, SELFTESTS.length, 'one timeline chart per scenario');
});
