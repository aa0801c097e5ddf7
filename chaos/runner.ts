// Runs one scenario end to end: bring the topology up, start the recorder and the load,
// play the timeline, stop the load, let the gateways settle, collect the zone servers'
// logs, tear everything down (also when something throws), then judge the invariants and
// compute the figures. A harness failure (a step that could not run, a topology that did
// not come up) fails the scenario with its own invariant rather than crashing the suite.
import { cp, mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClientFleet } from './clients';
import { computeFigures, computeTimeline, type Figures, type Timeline } from './figures';
import { getText, sleep, waitUntil } from './http-json';
import { Cluster } from './launcher';
import { LoadGenerator, type RequestRecord } from './load';
import { onInterrupt } from './procs';
import { Recorder } from './recorder';
import { EjectionSampler } from './sampler';
import type { GatewayFinal, InvariantResult, RunData, Scenario } from './scenario';
import type { CellctlOutcome, StepContext, StepOutcome } from './steps';
import { resolveTopology } from './topology';
import type { ZoneLogLine } from './zone-server';
import type { StreamLogLine } from './zone-streams';

export interface ScenarioReport {
  readonly name: string;
  readonly title: string;
  readonly description: string;
  readonly passed: boolean;
  readonly requests: number;
  readonly durationMs: number;
  readonly invariants: readonly InvariantResult[];
  readonly figures: Figures | null;
  readonly timeline: Timeline | null;
  readonly steps: readonly { label: string; kind: string; t: number; durationMs: number; ok: boolean; detail: string }[];
  /** Where the processes' logs were kept (only for failed scenarios). */
  readonly logs?: string;
}

export interface RunOptions {
  /** Logs of failed scenarios are copied under outDir/logs/NAME. */
  readonly outDir?: string;
  /** Called about once a second while the load runs. */
  readonly onTick?: (info: { name: string; elapsedMs: number; durationMs: number; sent: number; failed: number; phase: string }) => void;
}

function metricValue(text: string, name: string, labels = ''): number | null {
  const re = new RegExp(`^${name}${labels ? `\\{[^}]*${labels}[^}]*\\}` : '(\\{[^}]*\\})?'} ([0-9.eE+-]+)$`, 'm');
  const m = re.exec(text);
  return m ? Number(m[m.length - 1]) : null;
}

async function playTimeline(s: Scenario, ctx: StepContext, t0: number): Promise<StepOutcome[]> {
  const outcomes: StepOutcome[] = [];
  const finished = new Map<string, () => void>();
  const finishedP = new Map(s.timeline.map((st) => [st.label, new Promise<void>((resolve) => finished.set(st.label, resolve))]));
  await Promise.all(s.timeline.map(async (step) => {
    const wait = t0 + step.at - Date.now();
    if (wait > 0) await sleep(wait);
    await Promise.all((step.waitFor ?? []).map((label) => finishedP.get(label)));
    const outcome: StepOutcome = { label: step.label, kind: step.kind, t0: Date.now(), t1: 0, ok: true, detail: '', gateway: step.gateway };
    outcomes.push(outcome);
    ctx.outcomes.set(step.label, outcome);
    try {
      const r = await step.run(ctx);
      if (typeof r === 'string') outcome.detail = r;
      else if (r) {
        outcome.cellctl = r as CellctlOutcome;
        outcome.detail = `exit ${r.code ?? r.signal}`;
      }
    } catch (err) {
      outcome.ok = false;
      outcome.detail = (err as Error).message.slice(0, 500);
    }
    outcome.t1 = Date.now();
    finished.get(step.label)?.();
  }));
  return outcomes.sort((a, b) => a.t0 - b.t0);
}

/** The zone servers' logs (`zone-SRV.jsonl` requests, `streams-SRV.jsonl` streams), merged in time order. */
async function readZoneLogs<T extends { t: number }>(dir: string, prefix: 'zone-' | 'streams-'): Promise<T[]> {
  const out: T[] = [];
  for (const f of await readdir(dir)) {
    if (!f.startsWith(prefix) || !f.endsWith('.jsonl')) continue;
    for (const line of (await readFile(join(dir, f), 'utf8')).split('\n')) {
      if (!line) continue;
      try { out.push(JSON.parse(line) as T); } catch { /* a line cut by kill -9 */ }
    }
  }
  return out.sort((a, b) => a.t - b.t);
}

/** After the load: wait (bounded) until every running gateway is on the store's table; read their metrics. */
async function settle(cluster: Cluster, recorder: Recorder, boundMs: number): Promise<RunData['final']> {
  let store: { version: number; checksum: string } | null = null;
  let convergedAt: number | null = null;
  try {
    await waitUntil('gateways converged', boundMs, async () => {
      const latest = recorder.latest();
      store = latest ? { version: latest.version, checksum: latest.checksum as string } : null;
      if (!store) return false;
      const applied = await Promise.all(cluster.gateways.filter((g) => g.running).map((g) => g.applied().catch(() => null)));
      return applied.every((a) => a !== null && a.version === store!.version && a.checksum === store!.checksum);
    }, 100);
    convergedAt = Date.now();
  } catch { /* judged by the invariant */ }
  const gateways: GatewayFinal[] = await Promise.all(cluster.gateways.map(async (g) => {
    const applied = await g.applied().catch(() => null);
    const metrics = g.running ? await getText(g.adminPort, '/metrics', 2_000).catch(() => '') : '';
    return {
      id: g.id, running: g.running, version: applied?.version ?? null, checksum: applied?.checksum ?? null,
      buffered: metricValue(metrics, 'cellgate_buffered_requests'),
      bufferTimeouts: metricValue(metrics, 'cellgate_buffer_timeouts_total'),
      rejectedTables: metricValue(metrics, 'cellgate_table_updates_total', 'result="rejected"'),
    };
  }));
  return { store, gateways, convergedAt };
}

/**
 * A topology that does not come up (a port taken meanwhile, a machine too loaded to start
 * a dozen processes in time) says nothing about cellgate: try once more in a fresh
 * directory before failing the scenario.
 */
async function launchWithRetry(topology: ReturnType<typeof resolveTopology>, dir: string, prefix: string): Promise<Cluster> {
  try {
    return await Cluster.launch(topology, join(dir, 'run1'), prefix);
  } catch (err) {
    process.stderr.write(`chaos: the topology did not come up (${(err as Error).message.split('\n')[0]}); trying again\n`);
    return Cluster.launch(topology, join(dir, 'run2'), prefix);
  }
}

export async function runScenario(s: Scenario, opts: RunOptions = {}): Promise<ScenarioReport> {
  const started = Date.now();
  const dir = await mkdtemp(join(tmpdir(), `cellgate-chaos-${s.name}-`));
  const topology = resolveTopology(s.topology);
  let cluster: Cluster | null = null;
  let recorder: Recorder | null = null;
  let load: LoadGenerator | null = null;
  let clients: ClientFleet | null = null;
  let sampler: EjectionSampler | null = null;
  let harnessError: string | null = null;
  let run: RunData | null = null;
  // Ctrl-C: stop the topology, then remove its files.
  const unregister = onInterrupt(async () => {
    await cluster?.stop();
    await rm(dir, { recursive: true, force: true });
  });
  const tick = (phase: string, t0 = started) => opts.onTick?.({
    name: s.name, elapsedMs: Date.now() - t0, durationMs: s.durationMs, phase,
    sent: load?.records.length ?? 0, failed: load?.records.filter((r) => r.done > 0 && (r.status !== 200 || r.error !== null)).length ?? 0,
  });
  try {
    tick('starting');
    cluster = await launchWithRetry(topology, dir, `/chaos/${s.name}`);
    recorder = new Recorder(cluster.etcdEndpoints, cluster.prefix);
    await recorder.start();
    load = new LoadGenerator({ ports: cluster.gateways.map((g) => g.port) }, s.load);
    const ctx: StepContext = { cluster, recorder, memo: new Map(), outcomes: new Map() };
    clients = new ClientFleet(cluster.gateways.map((g) => g.port), s.clients ?? []);
    if (s.sampleEjections) sampler = new EjectionSampler(cluster.gateways);
    const t0 = Date.now();
    load.start();
    clients.start();
    sampler?.start();
    const ticker = setInterval(() => tick('running', t0), 1_000);
    let steps: StepOutcome[];
    try {
      [steps] = await Promise.all([playTimeline(s, ctx, t0), sleep(s.durationMs)]);
      const lastEnd = steps.reduce((m, st) => Math.max(m, st.t1), t0);
      const tail = lastEnd + (s.tailMs ?? 3_000) - Date.now();
      if (tail > 0) await sleep(tail);
    } finally {
      clearInterval(ticker);
    }
    tick('draining', t0);
    await Promise.all([load.stop(), clients.stop()]);
    sampler?.stop();
    const tLoadEnd = Date.now();
    const final = await settle(cluster, recorder, s.convergeBoundMs ?? 5_000);
    run = {
      scenario: s, t0, tLoadEnd, gatewayIds: cluster.gateways.map((g) => g.id), requests: load.records as RequestRecord[],
      skipped: load.skipped, zoneLog: [], streamLog: [], clients: clients.records, ws: clients.wsRecords, ejections: sampler?.samples ?? [],
      tables: recorder.tables, presence: recorder.presence, steps, final,
    };
  } catch (err) {
    harnessError = (err as Error).stack ?? String(err);
  } finally {
    tick('stopping');
    await load?.stop().catch(() => undefined);
    await clients?.stop().catch(() => undefined);
    sampler?.stop();
    await recorder?.close().catch(() => undefined);
    await cluster?.stop().catch(() => undefined);
  }
  if (run && cluster) run = { ...run, zoneLog: await readZoneLogs<ZoneLogLine>(cluster.dir, 'zone-'), streamLog: await readZoneLogs<StreamLogLine>(cluster.dir, 'streams-') };

  const invariants: InvariantResult[] = [];
  const failedSteps = run?.steps.filter((st) => !st.ok) ?? [];
  invariants.push({
    name: 'harness ran the scenario',
    passed: harnessError === null && failedSteps.length === 0,
    detail: harnessError ? harnessError.slice(0, 1500) : failedSteps.length ? failedSteps.map((st) => `${st.label}: ${st.detail}`).join('; ') : `${run?.steps.length ?? 0} steps ran`,
  });
  if (run) {
    for (const inv of s.invariants) {
      try {
        const r = inv.check(run);
        invariants.push({ name: inv.name, passed: r.passed, detail: r.detail });
      } catch (err) {
        invariants.push({ name: inv.name, passed: false, detail: `could not be checked: ${(err as Error).message}` });
      }
    }
  }
  const passed = invariants.every((i) => i.passed);
  let logs: string | undefined;
  if (!passed && opts.outDir) {
    logs = join(opts.outDir, 'logs', s.name);
    await mkdir(logs, { recursive: true });
    await cp(dir, logs, { recursive: true }).catch(() => undefined);
  }
  await rm(dir, { recursive: true, force: true });
  unregister();
  return {
    name: s.name, title: s.title, description: s.description, passed, requests: run?.requests.length ?? 0, durationMs: Date.now() - started,
    invariants, figures: run ? computeFigures(run) : null, timeline: run ? computeTimeline(run) : null,
    steps: (run?.steps ?? []).map((st) => ({ label: st.label, kind: st.kind, t: st.t0 - (run?.t0 ?? 0), durationMs: st.t1 - st.t0, ok: st.ok, detail: st.detail })),
    ...(logs ? { logs } : {}),
  };
}
