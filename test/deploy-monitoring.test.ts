// The Grafana dashboard and the Prometheus alert rules (deploy/grafana, deploy/prometheus).
// Every metric name in their PromQL is exported by a live `cellgate serve` (a real process
// on a file store with a table, after one request through it: its /metrics is scraped), or,
// for the autopilot's two metrics, is registered by the autopilot (src/autopilot/runner.ts;
// running one needs etcd). The rules pass
// `promtool check rules`, and `promtool test rules` runs unit tests in which every alert is
// seen firing and not firing; every runbook link is a heading of docs/operations.md. promtool
// comes from Debian's `prometheus` package (.ci/install-deps): missing, the test fails.
import test from 'ava';
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { parse } from 'yaml';
import { cellctl } from './helpers/cli';
import { send, startGatewayProcess, topologyYaml } from './helpers/e2e';
import { freePort } from './helpers/ports';
import { runCommand } from './helpers/run';

const ROOT = join(__dirname, '..', '..');
const PROM = join(ROOT, 'deploy', 'prometheus');
const AUTOPILOT_METRICS = ['cellgate_autopilot_leader', 'cellgate_autopilot_decisions_total'];
type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const dashboard = JSON.parse(readFileSync(join(ROOT, 'deploy', 'grafana', 'cellgate-dashboard.json'), 'utf8')) as Obj;
const rules = parse(readFileSync(join(PROM, 'cellgate-alerts.yaml'), 'utf8')) as Obj;
const alerts = (rules.groups as Obj[]).flatMap((g) => g.rules as Obj[]);

/** Metric names in a PromQL expression (ours all start cellgate_; histogram series names reduced to the family). */
function metricNames(expr: string): string[] {
  return [...expr.matchAll(/\b(cellgate_[a-z0-9_]+|process_[a-z0-9_]+|nodejs_[a-z0-9_]+)\b/g)].map((m) => m[1]!.replace(/_(bucket|sum|count)$/, ''));
}

const dashboardExprs = (): string[] => [
  ...(dashboard.panels as Obj[]).flatMap((p) => ((p.targets ?? []) as Obj[]).map((t) => t.expr as string)),
  ...(dashboard.templating.list as Obj[]).filter((v) => v.type === 'query').map((v) => v.query.query as string),
];

function promtool(): string {
  for (const d of [...(process.env.PATH ?? '').split(delimiter), '/usr/bin']) {
    try { accessSync(join(d, 'promtool'), constants.X_OK); return join(d, 'promtool'); } catch { /* not here */ }
  }
  throw new Error('promtool not found: install Debian\'s `prometheus` package (apt-get install -y prometheus), as .ci/install-deps does');
}

let exported: Set<string>;
test.before(async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cellgate-monitoring-'));
  try {
    // A zone whose endpoint refuses connections: one request gives request and error series.
    const dead = `http://127.0.0.1:${await freePort()}`;
    await writeFile(join(dir, 'topology.yaml'), topologyYaml([{ name: 'za', region: 'r1', city: 'c1', url: dead }], 4));
    const init = await cellctl(['init', '--topology', join(dir, 'topology.yaml'), '--file', join(dir, 'table.json')]);
    if (init.code !== 0) throw new Error(init.stderr);
    const gw = await startGatewayProcess(['--store', `file:${join(dir, 'table.json')}`, '--port', '0', '--admin-port', '0'], 'monitoring');
    try {
      await send(gw.traffic, '/x', { headers: { 'x-user-id': 'alice' } });
      const text = await (await fetch(`${gw.admin}/metrics`)).text();
      exported = new Set(text.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(l)![0].replace(/_(bucket|sum|count)$/, '')));
    } finally {
      await gw.stop();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

function checkNames(t: import('ava').ExecutionContext, exprs: string[], where: string): void {
  const names = new Set(exprs.flatMap(metricNames));
  t.true(names.size > 0, `${where}: metric names found`);
  // The autopilot needs etcd to run: its metric names are checked in the registry it builds.
  const autopilotSource = readFileSync(join(__dirname, '..', 'src', 'autopilot', 'runner.js'), 'utf8');
  for (const name of names) {
    if (AUTOPILOT_METRICS.includes(name)) t.true(autopilotSource.includes(`name: '${name}'`), `${where}: ${name} is registered by the autopilot`);
    else t.true(exported.has(name), `${where}: ${name} is exported by a live gateway`);
  }
  t.log(`${where}: ${[...names].filter((n) => !AUTOPILOT_METRICS.includes(n)).length} gateway metrics seen live; ${[...names].filter((n) => AUTOPILOT_METRICS.includes(n)).join(', ')} found in the autopilot's registry (src/autopilot/runner.ts)`);
}

test('dashboard: importable shape, datasource as a variable, every metric exported by a live gateway', (t) => {
  t.is(dashboard.uid, 'cellgate-overview');
  t.true(Number.isInteger(dashboard.schemaVersion));
  const ds = (dashboard.templating.list as Obj[]).find((v) => v.type === 'datasource');
  t.is(ds?.query, 'prometheus');
  const ids = new Set<number>();
  for (const panel of dashboard.panels as Obj[]) {
    t.false(ids.has(panel.id), `panel ids unique (${panel.id})`);
    ids.add(panel.id);
    t.truthy(panel.gridPos && panel.title);
    if (panel.type === 'row') continue;
    t.is(panel.datasource.uid, '${datasource}', `${panel.title}: datasource from the variable`);
    for (const target of panel.targets as Obj[]) t.is(target.datasource.uid, '${datasource}');
  }
  const titles = (dashboard.panels as Obj[]).map((p) => p.title as string).join('\n');
  for (const want of [/Request rate by zone and class/, /Error ratio/, /p50 \/ p99 by zone/, /Cells per zone/, /Zone status/, /Table revision per gateway/, /Table age per gateway/,
    /Control plane connected/, /Buffered requests/, /evictions/, /Ejected endpoints/, /Autopilot decisions/]) t.regex(titles, want);
  checkNames(t, dashboardExprs(), 'dashboard');
  t.true(AUTOPILOT_METRICS.every((m) => dashboardExprs().some((e) => e.includes(m))));
});

test('alert rules: every metric exported by a live gateway; every runbook link is a heading of docs/operations.md, whose links all resolve inside the repository', (t) => {
  checkNames(t, alerts.map((r) => r.expr as string), 'alerts');
  const docs = readFileSync(join(ROOT, 'docs', 'operations.md'), 'utf8');
  // GitHub's anchors: the heading text lower-cased, spaces to dashes, punctuation dropped.
  const anchors = new Set([...docs.matchAll(/^#{1,6} (.+)$/gm)].map((m) => m[1]!.trim().toLowerCase().replace(/[^\w\- ]/g, '').replace(/ /g, '-')));
  for (const rule of alerts) {
    const url = rule.annotations.runbook_url as string;
    t.regex(url, /^docs\/operations\.md#/);
    t.true(anchors.has(url.split('#')[1]!), `${rule.alert}: ${url} is a heading`);
  }
  t.is(alerts.length, 8);
  // Links stay inside the repository and resolve (files, and anchors of this document).
  for (const [, target] of docs.matchAll(/\]\(([^)]+)\)/g)) {
    t.false(/^[a-z]+:/.test(target!), `${target}: a link inside the repository`);
    const [file, anchor] = target!.split('#');
    if (file) t.true(existsSync(join(ROOT, 'docs', file)), `${target} exists`);
    else t.true(anchors.has(anchor!), `#${anchor} is a heading`);
  }
});

test('promtool check rules is clean and promtool test rules passes; every alert is tested firing and not firing', async (t) => {
  const bin = promtool();
  const check = await runCommand(bin, ['check', 'rules', join(PROM, 'cellgate-alerts.yaml')], { timeoutMs: 30_000 });
  t.is(check.code, 0, check.stdout + check.stderr);
  t.regex(check.stdout, /SUCCESS: 8 rules found/);
  const unit = await runCommand(bin, ['test', 'rules', join(PROM, 'cellgate-alerts.test.yaml')], { timeoutMs: 30_000 });
  t.is(unit.code, 0, unit.stdout + unit.stderr);
  t.regex(unit.stdout, /SUCCESS/);
  const cases = ((parse(readFileSync(join(PROM, 'cellgate-alerts.test.yaml'), 'utf8')) as Obj).tests as Obj[]).flatMap((c) => c.alert_rule_test as Obj[]);
  for (const rule of alerts) {
    const mine = cases.filter((c) => c.alertname === rule.alert);
    t.true(mine.some((c) => (c.exp_alerts as Obj[]).length > 0), `${rule.alert} tested firing`);
    t.true(mine.some((c) => (c.exp_alerts as Obj[]).length === 0), `${rule.alert} tested not firing`);
  }
});
