#!/usr/bin/env node
// npm run chaos -- (--quick | --all | --scenario NAME …) [--out DIR] [--list]
// Runs the scenarios one after another, writes DIR/report.json and DIR/report.html, and
// exits 1 when any invariant failed (2 on bad usage). On a terminal, a progress line.
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { acquireChaosLock } from './lock';
import { renderHtml } from './report-html';
import { runScenario, type ScenarioReport } from './runner';
import type { Scenario } from './scenario';
import { SCENARIOS } from './scenarios';
import { SELFTESTS } from './selftest';

/** Everything `--scenario NAME` can select: the suite, and the deliberately broken self-tests. */
const SELECTABLE: readonly Scenario[] = [...SCENARIOS, ...SELFTESTS.map((t) => t.scenario)];

export interface SuiteReport {
  readonly suite: string;
  readonly passed: boolean;
  readonly startedAt: string;
  readonly durationMs: number;
  readonly machine: { readonly cpus: number; readonly node: string; readonly platform: string };
  readonly scenarios: readonly ScenarioReport[];
}

const USAGE = `usage: npm run chaos -- (--quick | --all | --scenario NAME ...) [--out DIR] [--list]
  --quick          the quick suite (CI): ${SCENARIOS.filter((s) => s.quick).map((s) => s.name).join(', ')}
  --all            every scenario
  --scenario NAME  one scenario (repeatable); also the self-tests, broken on purpose (see --list)
  --out DIR        where report.json, report.html (and logs of failed scenarios) go (default chaos-report)
  --list           list the scenarios and exit
`;

function progress(): (line: string, final?: boolean) => void {
  if (!process.stderr.isTTY) return () => undefined;
  return (line, final) => process.stderr.write(`\r\x1b[2K${line}${final ? '\n' : ''}`);
}

export async function runSuite(scenarios: readonly Scenario[], suite: string, outDir: string): Promise<SuiteReport> {
  const show = progress();
  const started = Date.now();
  const reports: ScenarioReport[] = [];
  await mkdir(outDir, { recursive: true });
  for (const [i, s] of scenarios.entries()) {
    const head = `chaos [${i + 1}/${scenarios.length}] ${s.name}`;
    const report = await runScenario(s, {
      outDir,
      onTick: (p) => show(p.phase === 'running' || p.phase === 'draining'
        ? `${head}: ${p.phase} ${(p.elapsedMs / 1000).toFixed(0)}s/${(p.durationMs / 1000).toFixed(0)}s  sent ${p.sent}  failed ${p.failed}`
        : `${head}: ${p.phase} the topology`),
    });
    reports.push(report);
    const failedNames = report.invariants.filter((x) => !x.passed).map((x) => x.name);
    show(`${head}: ${report.passed ? 'passed' : `FAILED (${failedNames.join('; ')})`}  ${report.requests} requests  ${(report.durationMs / 1000).toFixed(1)}s`, true);
    if (!process.stderr.isTTY) process.stderr.write(`chaos: ${s.name} ${report.passed ? 'passed' : `FAILED: ${failedNames.join('; ')}`} (${report.requests} requests, ${(report.durationMs / 1000).toFixed(1)} s)\n`);
  }
  const result: SuiteReport = {
    suite, passed: reports.every((r) => r.passed), startedAt: new Date(started).toISOString(), durationMs: Date.now() - started,
    machine: { cpus: cpus().length, node: process.version, platform: process.platform }, scenarios: reports,
  };
  await writeFile(join(outDir, 'report.json'), `${JSON.stringify(result, null, 2)}\n`);
  await writeFile(join(outDir, 'report.html'), renderHtml(result));
  return result;
}

export async function main(argv: readonly string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: { quick: { type: 'boolean' }, all: { type: 'boolean' }, scenario: { type: 'string', multiple: true }, out: { type: 'string' }, list: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
    }));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (values.list) {
    for (const s of SCENARIOS) process.stdout.write(`${s.name.padEnd(32)} ${s.quick ? 'quick' : '     '}  ${s.title}\n`);
    for (const t of SELFTESTS) process.stdout.write(`${t.scenario.name.padEnd(32)} self   ${t.scenario.title} (must fail: ${t.mustFail.join('; ')})\n`);
    return 0;
  }
  const names = values.scenario ?? [];
  const picked = values.all ? SCENARIOS : values.quick ? SCENARIOS.filter((s) => s.quick) : names.map((n) => SELECTABLE.find((s) => s.name === n));
  const unknown = names.filter((n) => !SELECTABLE.some((s) => s.name === n));
  if (unknown.length || picked.length === 0 || [values.all, values.quick, names.length > 0].filter(Boolean).length !== 1) {
    process.stderr.write(`${unknown.length ? `unknown scenario ${unknown.join(', ')} (see --list)\n` : ''}${USAGE}`);
    return 2;
  }
  const outDir = resolve(values.out ?? 'chaos-report');
  const suite = values.all ? 'all' : values.quick ? 'quick' : 'custom';
  const release = await acquireChaosLock(15 * 60_000, (pid) => process.stderr.write(`chaos: waiting for another chaos run (pid ${pid ?? '?'}) to finish\n`));
  let report: SuiteReport;
  try {
    report = await runSuite(picked as Scenario[], suite, outDir);
  } finally {
    await release();
  }
  const failed = report.scenarios.filter((s) => !s.passed);
  process.stderr.write(`chaos: ${report.scenarios.length - failed.length}/${report.scenarios.length} scenarios passed in ${(report.durationMs / 1000).toFixed(0)} s; report: ${join(outDir, 'report.html')}\n`);
  return failed.length ? 1 : 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`chaos: ${(err as Error).stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
