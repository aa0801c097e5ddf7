// The chaos suite, as `npm test` and CI run it: a real topology per scenario (3-member
// etcd, zone servers, three gateway processes), faults under load, every invariant
// checked. The test runs `npm run chaos -- --quick` (or `--all` with
// CELLGATE_CHAOS_SUITE=all, what CI runs) as the operator would — the compiled command —
// and reads its report. `npm test` runs this file on its own, after the other test files
// (.ci/test): the harness measures timing and needs the machine to itself.
import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SuiteReport } from '../chaos/run';
import { SCENARIOS } from '../chaos/scenarios';

const RUN = join(__dirname, '..', 'chaos', 'run.js');
const SUITE = process.env.CELLGATE_CHAOS_SUITE === 'all' ? 'all' : 'quick';
const PICKED = SUITE === 'all' ? SCENARIOS : SCENARIOS.filter((s) => s.quick);
// Bound of the whole run: every scenario's own run time plus a generous minute each to
// bring its topology up and down on a loaded 2-core machine.
const BOUND_MS = PICKED.reduce((sum, s) => sum + s.durationMs + (s.tailMs ?? 3_000) + 60_000, 0);

test(`the ${SUITE} chaos suite passes every invariant and reports its figures`, async (t) => {
  t.timeout(BOUND_MS + 60_000);
  const out = await mkdtemp(join(tmpdir(), `cellgate-chaos-${SUITE}-`));
  t.teardown(() => rm(out, { recursive: true, force: true }));
  const started = Date.now();
  const { code, stderr } = await new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, [RUN, `--${SUITE}`, '--out', out], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    // SIGTERM lets the harness stop every process it started.
    const timer = setTimeout(() => child.kill('SIGTERM'), BOUND_MS);
    child.on('error', reject);
    child.on('close', (c) => {
      clearTimeout(timer);
      resolve({ code: c, stderr: err });
    });
  });
  const report = JSON.parse(await readFile(join(out, 'report.json'), 'utf8')) as SuiteReport;
  const failed = report.scenarios.flatMap((s) => s.invariants.filter((i) => !i.passed).map((i) => `${s.name}: ${i.name} — ${i.detail}`));
  t.deepEqual(failed, [], stderr.slice(-3000));
  t.is(code, 0);
  t.true(report.passed);
  t.is(report.suite, SUITE);
  t.deepEqual(report.scenarios.map((s) => s.name), PICKED.map((s) => s.name));
  t.true(report.scenarios.length >= 5);
  for (const s of report.scenarios) {
    t.true(s.requests > 1_000, `${s.name}: ${s.requests} requests`);
    t.true(s.invariants.length >= 6, `${s.name} judged by ${s.invariants.length} invariants`);
    t.truthy(s.figures, `${s.name} has figures`);
  }
  const figure = (name: string) => report.scenarios.find((s) => s.name === name)?.figures;
  t.true((figure('zone-down-same-city')?.failoverConvergenceMs ?? 0) > 0, 'failover convergence measured');
  t.true((figure('zone-down-same-city')?.errorWindowMs ?? 0) > 0, 'error window of the crash measured');
  t.true((figure('planned-cell-move')?.longestHeldMs ?? 0) > 0, 'held requests measured in a planned move');
  const html = await readFile(join(out, 'report.html'), 'utf8');
  t.is((html.match(/<svg /g) ?? []).length, report.scenarios.length, 'one timeline chart per scenario');
  t.log(`${SUITE} chaos suite: ${report.scenarios.length} scenarios in ${((Date.now() - started) / 1000).toFixed(0)} s`);
});
