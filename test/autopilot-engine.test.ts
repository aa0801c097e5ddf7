// The autopilot's decision engine (src/autopilot): pure, driven by an injected clock (nowMs).
import test from 'ava';
import { AutopilotEngine, type EvaluationInput } from '../src/autopilot/engine';
import { zoneEvidence } from '../src/autopilot/evidence';
import type { RoutingTable } from '../src/cells/types';
import type { PresenceRecord, ZoneHealthReport } from '../src/store/types';
import { setZoneStatus, tableFor } from './helpers/router-fixture';

const ZONES = ['a', 'b', 'c'];
const TABLE = tableFor(ZONES.map((name) => ({ name, upstreams: [`http://127.0.0.1:${name.charCodeAt(0)}`] })));
const T0 = 1_800_000_000_000;

function zh(healthy: boolean): ZoneHealthReport {
  return { healthy, failingSince: healthy ? null : new Date(T0).toISOString(), lastOk: null, endpointsUp: healthy ? 1 : 0, endpointsTotal: 1 };
}

/** A gateway in `zone` that sees the zones in `bad` unhealthy, the others healthy. */
function gw(id: string, zone: string | null, bad: readonly string[]): PresenceRecord {
  const zoneHealth = Object.fromEntries(ZONES.map((z) => [z, zh(!bad.includes(z))]));
  return { id, zone, appliedVersion: 1, checksum: 'x', inFlight: 0, startedAt: '', updatedAt: '', pid: 1, host: 'h', zoneHealth };
}

function input(nowMs: number, records: PresenceRecord[], extra: Partial<EvaluationInput> = {}): EvaluationInput {
  return { nowMs, table: TABLE, records, storeFresh: true, paused: false, downByAutopilot: new Set(), lastActionMs: null, ...extra };
}

const zoneADead = [gw('g1', 'a', ['a']), gw('g2', 'b', ['a']), gw('g3', 'c', ['a'])];

test('zone down after the rule held continuously for downAfterMs, not before; a break restarts the timer', (t) => {
  const e = new AutopilotEngine();
  t.is(e.evaluate(input(T0, zoneADead)).act, null);
  const waiting = e.evaluate(input(T0 + 4_999, zoneADead));
  t.is(waiting.act, null);
  t.is(waiting.decisions.find((d) => d.zone === 'a')!.result, 'waiting');
  // One evaluation where only one gateway sees it: the rule broke.
  t.is(e.evaluate(input(T0 + 4_999, [gw('g1', 'a', ['a']), gw('g2', 'b', []), gw('g3', 'c', [])])).act, null);
  t.is(e.evaluate(input(T0 + 6_000, zoneADead)).act, null, 'timer restarted');
  const acted = e.evaluate(input(T0 + 11_000, zoneADead)).act;
  t.is(acted?.zone, 'a');
  t.is(acted?.action, 'zone_down');
  t.regex(acted!.why, /3 of 3 live gateways .* g1@a since/);
  t.deepEqual(acted!.evidence.witnessZones, ['a', 'b', 'c']);
});

test('no action on one-sided evidence: one gateway, gateways of one zone only, or gateways that see every zone fail', (t) => {
  const cases: [string, PresenceRecord[]][] = [
    ['one gateway of three', [gw('g1', 'a', ['a']), gw('g2', 'b', []), gw('g3', 'c', [])]],
    ['a majority, all in one zone', [gw('g1', 'b', ['a']), gw('g2', 'b', ['a']), gw('g3', 'c', [])]],
    ['isolated gateways are not witnesses', [gw('g1', 'b', ZONES), gw('g2', 'c', ZONES), gw('g3', 'a', [])]],
    ['half is not a strict majority', [gw('g1', 'b', ['a']), gw('g2', 'c', ['a']), gw('g3', 'a', []), gw('g4', 'b', [])]],
    ['gateways without reports weigh against', [gw('g1', 'b', ['a']), { ...gw('g2', 'c', []), zoneHealth: undefined }, { ...gw('g3', 'a', []), zoneHealth: undefined }]],
  ];
  for (const [what, records] of cases) {
    const e = new AutopilotEngine();
    for (const ms of [0, 10_000, 100_000]) t.is(e.evaluate(input(T0 + ms, records)).act, null, what);
    t.false(zoneEvidence('a', records).down, what);
  }
  // All the gateways there are, even in one zone, may decide.
  t.true(zoneEvidence('a', [gw('g1', 'b', ['a']), gw('g2', 'b', ['a'])]).down);
});

test('rails: paused, stale, cooldown inherited from history, dry run', (t) => {
  const run = (extra: Partial<EvaluationInput>, dryRun = false) => {
    const e = new AutopilotEngine({ dryRun });
    e.evaluate(input(T0, zoneADead, extra));
    return e.evaluate(input(T0 + 5_000, zoneADead, extra));
  };
  const result = (ev: ReturnType<typeof run>) => ev.decisions.find((d) => d.zone === 'a')!.result;
  t.is(result(run({ paused: true })), 'paused');
  t.is(result(run({ storeFresh: false })), 'stale');
  const cooled = run({ lastActionMs: T0 - 30_000 });
  t.is(result(cooled), 'cooldown');
  t.is(cooled.act, null);
  t.is(result(run({ lastActionMs: T0 - 60_000 })), 'taken');
  const dry = run({}, true);
  t.is(result(dry), 'dry_run');
  t.is(dry.act, null, 'dry run never acts');
});

test('two zones die at once: max-down-share lets one go, the other is reported; never the last up zone', (t) => {
  const both = [gw('g1', 'a', ['a', 'b']), gw('g2', 'b', ['a', 'b']), gw('g3', 'c', ['a', 'b'])];
  const e = new AutopilotEngine();
  e.evaluate(input(T0, both));
  const ev = e.evaluate(input(T0 + 5_000, both));
  t.is(ev.act?.zone, 'a');
  t.is(ev.decisions.find((d) => d.zone === 'b')!.result, 'max_down_share');
  // Even with no share limit, the last up zone is never taken down.
  const later = new AutopilotEngine({ maxDownShare: 1 });
  const lastUp = setZoneStatus(setZoneStatus(TABLE, 'b', 'down'), 'c', 'down') as RoutingTable;
  later.evaluate(input(T0, zoneADead, { table: lastUp }));
  t.is(later.evaluate(input(T0 + 5_000, zoneADead, { table: lastUp })).decisions.find((d) => d.zone === 'a')!.result, 'last_up_zone');
});

test('auto-failback: only with the flag, only a zone the autopilot took down, after upAfterMs healthy', (t) => {
  const down = setZoneStatus(TABLE, 'a', 'down') as RoutingTable;
  const allHealthy = [gw('g1', 'a', []), gw('g2', 'b', []), gw('g3', 'c', [])];
  const manual = new AutopilotEngine();
  t.deepEqual(manual.evaluate(input(T0, allHealthy, { table: down, downByAutopilot: new Set(['a']) })).decisions.filter((d) => d.zone === 'a'), []);
  const auto = new AutopilotEngine({ autoFailback: true });
  const opts = { table: down, downByAutopilot: new Set(['a']) };
  auto.evaluate(input(T0, allHealthy, opts));
  t.is(auto.evaluate(input(T0 + 119_000, allHealthy, opts)).act, null);
  const up = auto.evaluate(input(T0 + 120_000, allHealthy, opts)).act;
  t.is(up?.action, 'zone_up');
  // A zone an operator took down stays down.
  const other = new AutopilotEngine({ autoFailback: true });
  other.evaluate(input(T0, allHealthy, { table: down }));
  t.is(other.evaluate(input(T0 + 200_000, allHealthy, { table: down })).act, null);
});

test('decisions are marked changed only when the verdict changes (a steady state logs once)', (t) => {
  const e = new AutopilotEngine();
  const first = e.evaluate(input(T0, zoneADead)).decisions.find((d) => d.zone === 'a')!;
  t.true(first.changed);
  t.false(e.evaluate(input(T0 + 100, zoneADead)).decisions.find((d) => d.zone === 'a')!.changed);
  t.true(e.evaluate(input(T0 + 5_000, zoneADead)).decisions.find((d) => d.zone === 'a')!.changed);
});
