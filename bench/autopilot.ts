// `npm run bench failover`, autopilot part (issue 12): the time from a zone's death (its
// upstream process SIGKILLed under steady load on its users) to the last failed request,
// (1) with an operator script that runs `cellctl zone down` at the first error it sees (the
// lower bound: a human is slower), then (2) with `cellgate autopilot` (defaults), same run.
import { performance } from 'node:perf_hooks';
import { CellRing } from '../src/cells/ring';
import type { RoutingTable } from '../src/cells/types';
import { FailoverExecutor } from '../src/failover/executor';
import { planZoneUp } from '../src/failover/planner';
import type { TableStore } from '../src/store/types';
import { benchScript, CELLCTL_JS, CELLGATE_JS, jsonLine, startNode, type BenchChild } from './children';
import { PacedLoad, userPool } from './load';
import type { Report } from './report';

const ZONE = 'sh-a';
const RATE = 200;
const DEATH_BAR_MS = 8_000;
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function until(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`bench autopilot: timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** A fresh upstream process for ZONE, in the table, the zone up, every gateway seeing it healthy. */
async function freshZone(store: TableStore, children: BenchChild[]): Promise<BenchChild> {
  const up = startNode(`upstream ${ZONE}`, benchScript('upstream-server'), ['--echo-zone']);
  children.push(up);
  const port = Number(jsonLine(await up.waitForLine((l) => l.includes('"listening"'))).port);
  const cur = (await store.load())!;
  const table = structuredClone(cur.table) as unknown as { zones: { name: string; upstreams: string[] }[] };
  table.zones.find((z) => z.name === ZONE)!.upstreams = [`http://127.0.0.1:${port}`];
  const cas = await store.compareAndSwap(cur.version, table as unknown as RoutingTable);
  if (!cas.ok) throw new Error('bench autopilot: the table changed under the bench');
  await new FailoverExecutor({ store, makePlan: (t) => planZoneUp(t, ZONE), actor: 'bench', reason: 'benchmark' }).run();
  await until(`every gateway sees ${ZONE} healthy`, async () => {
    const records = await store.presence.list();
    return records.length > 0 && records.every((r) => r.zoneHealth?.[ZONE]?.healthy === true && r.zoneHealth[ZONE]!.endpointsTotal === 1);
  }, 30_000);
  return up;
}

/** Kills ZONE's upstream under load; `react` runs from the kill on; returns kill -> last failed answer. */
async function deathTrial(store: TableStore, children: BenchChild[], gatewayPort: number, react: () => Promise<void>): Promise<{ lastFailMs: number; failed: number; sent: number }> {
  const up = await freshZone(store, children);
  const table = (await store.load())!.table;
  const ring = CellRing.build(table);
  const zoneCells = new Set(table.cells.filter((c) => c.zone === ZONE).map((c) => c.name));
  const users = userPool(20_000, 'd').filter((u) => zoneCells.has(ring.cellOf(u))).slice(0, 300);
  const load = new PacedLoad({ host: '127.0.0.1', port: gatewayPort, ratePerS: RATE, users, timeoutMs: 5_000 }).start();
  let samples;
  let killAt = 0;
  try {
    await sleep(1_500);
    killAt = performance.now();
    await up.stop(0);
    await react();
    await until(`${ZONE} down`, async () => (await store.load())!.table.zones.find((z) => z.name === ZONE)?.status === 'down', 30_000);
    await sleep(1_500);
  } finally {
    samples = await load.stop();
  }
  const failed = samples.filter((s) => s.status !== 200 && s.sentMs + s.latencyMs >= killAt);
  const lastFail = failed.reduce((m, s) => Math.max(m, s.sentMs + s.latencyMs), killAt);
  return { lastFailMs: lastFail - killAt, failed: failed.length, sent: samples.length };
}

/** The operator script: probe one user of the zone every 20 ms; at the first error, `cellctl zone down`. */
function operatorScript(gatewayPort: number, etcd: string, prefix: string, user: string): () => Promise<void> {
  return async () => {
    for (;;) {
      const ok = await fetch(`http://127.0.0.1:${gatewayPort}/api/items`, { headers: { 'x-user-id': user }, signal: AbortSignal.timeout(2_000) })
        .then((r) => r.status === 200, () => false);
      if (!ok) break;
      await sleep(20);
    }
    const cli = startNode('cellctl zone down', CELLCTL_JS, ['zone', 'down', ZONE, '--etcd', etcd, '--prefix', prefix, '--yes', '--reason', 'bench operator script', '--actor', 'bench-operator']);
    await cli.waitExit();
  };
}

export async function autopilotSection(report: Report, store: TableStore, etcd: string, prefix: string, gatewayPort: number, children: BenchChild[]): Promise<void> {
  report.section(`zone death -> last failed request: operator script vs cellgate autopilot (defaults), ${RATE} req/s on ${ZONE}'s users`);
  report.note('the zone\'s only upstream process is SIGKILLed under load; "last failed" = the last non-200 answer after the kill.');
  report.note('operator script: one user probed every 20 ms, `cellctl zone down` at the first error (a lower bound for a person).');
  const table = (await store.load())!.table;
  const ring = CellRing.build(table);
  const probeUser = userPool(20_000, 'o').find((u) => table.cells.find((c) => c.name === ring.cellOf(u))?.home === ZONE) as string;
  const operator = await deathTrial(store, children, gatewayPort, operatorScript(gatewayPort, etcd, prefix, probeUser));
  report.line('operator script: zone death -> last failed request', operator.lastFailMs, 'ms', { note: `${operator.failed} failed of ${operator.sent}` });

  const autopilot = startNode('autopilot', CELLGATE_JS, ['autopilot', '--store', `etcd:${etcd}`, '--prefix', prefix, '--id', 'bench-ap', '--admin-port', '0']);
  children.push(autopilot);
  const admin = String(jsonLine(await autopilot.waitForLine((l) => l.includes('"event":"listening"'))).admin);
  await until('the autopilot leads', async () => /^cellgate_autopilot_leader 1$/m.test(await (await fetch(`${admin}/metrics`)).text()), 20_000);
  const auto = await deathTrial(store, children, gatewayPort, async () => undefined);
  report.line('autopilot: zone death -> last failed request', auto.lastFailMs, 'ms', { bar: { max: DEATH_BAR_MS }, note: `${auto.failed} failed of ${auto.sent} (goal)` });
  await autopilot.stop();
}
