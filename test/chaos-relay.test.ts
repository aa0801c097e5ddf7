// The chaos harness's presence-relay parts without processes of cellgate: the recorder
// tells a relay's record from a gateway's own (a real etcd), and the relay invariants tell
// a gateway that fell back to its own record and came back to the relay from one that did
// not (made-up runs).
import test from 'ava';
import { tableFromTopologyText } from '../src/cells/topology';
import type { RoutingTable } from '../src/cells/types';
import { cellctlSawEveryGateway, presenceBackOnRelay, presenceFellBack, relayedOutliveDeadLease } from '../chaos/invariants-relay';
import { Recorder, type PresenceEvent } from '../chaos/recorder';
import { defineScenario, type RunData } from '../chaos/scenario';
import type { CellctlOutcome, StepOutcome } from '../chaos/steps';
import { startEtcd } from './helpers/etcd';
import { until } from './helpers/wait';
import { twoZoneTopologyYaml } from './helpers/fixtures';

const record = (id: string, appliedVersion: number) => JSON.stringify({
  id, zone: 'sh-a', appliedVersion, checksum: `c${appliedVersion}`, inFlight: 0, startedAt: '2026-11-30T00:00:00.000Z',
  updatedAt: '2026-11-30T00:00:00.000Z', pid: 1, host: 'h',
});

test('the recorder tells a relay\'s presence record from the gateway\'s own, and waits for one', async (t) => {
  const etcd = await startEtcd();
  const recorder = new Recorder(etcd.endpoints, '/rec');
  t.teardown(async () => {
    await recorder.close();
    await etcd.stop();
  });
  await recorder.start();
  const relayedAck = recorder.waitForPresence((p) => p.via === 'relayed' && p.appliedVersion >= 7, 10_000);
  await recorder.client.put('/rec/gateways/gw-0').value(record('gw-0', 5)).exec();
  await recorder.client.put('/rec/gateways-relayed/gw-0').value(record('gw-0', 7)).exec();
  await recorder.client.delete().key('/rec/gateways/gw-0').exec();
  t.like(await relayedAck, { id: 'gw-0', via: 'relayed', appliedVersion: 7, deleted: false });
  await until('three presence events', () => recorder.presence.length >= 3, 10_000);
  t.deepEqual(recorder.presence.map((p) => [p.id, p.via, p.appliedVersion, p.deleted]), [
    ['gw-0', 'direct', 5, false], ['gw-0', 'relayed', 7, false], ['gw-0', 'direct', 0, true],
  ]);
  await t.throwsAsync(recorder.waitForPresence((p) => p.id === 'gw-9', 50), { message: /no matching presence record within 50 ms/ });
});

const MOVE = 'move';
const BACK = 'back';

function step(label: string, t0: number, t1: number, versionAfter?: number): StepOutcome {
  const cellctl: CellctlOutcome | undefined = versionAfter === undefined ? undefined : {
    args: [], code: 0, signal: null, stderr: '', versionAfter, startedAt: t0, endedAt: t1,
    json: { converged: true, gatewaysOnRevision: ['gw-0', 'gw-1'], versionAfter },
  };
  return { label, kind: 'op', t0, t1, ok: true, detail: '', ...(cellctl ? { cellctl } : {}) };
}

/**
 * Relayed from the start (records at r1), the relay killed at 2,000 during the move (freeze
 * r10 at 1,500, flip r20), restarted at 4,000; the move back (freeze r30, flip r40) from 6,000.
 */
function fakeRun(presence: PresenceEvent[]): RunData {
  const t1 = tableFromTopologyText(twoZoneTopologyYaml);
  const frozen: RoutingTable = { ...t1, cells: t1.cells.map((c) => (c.name === 'c01' ? { ...c, state: 'frozen', frozenUntilMs: 1e13 } : c)) };
  const scenario = defineScenario({ name: 'fake', title: 'fake', description: 'fake', quick: false, load: { mode: 'rate' }, durationMs: 1, timeline: [], invariants: [] });
  return {
    scenario, t0: 0, tLoadEnd: 10_000, gatewayIds: ['gw-0', 'gw-1'], skipped: 0, requests: [], zoneLog: [], streamLog: [], clients: [],
    ws: { sessions: [], messages: [] }, ejections: [],
    steps: [step(MOVE, 1_000, 3_000, 20), step('kill', 2_000, 2_010), step('restart', 4_000, 4_500), step(BACK, 6_000, 7_000, 40), step('expired', 2_100, 9_000), step('relayed again', 4_500, 5_100)],
    tables: [
      { t: 0, version: 1, table: t1, checksum: 'a' }, { t: 1_500, version: 10, table: frozen, checksum: 'b' },
      { t: 2_500, version: 20, table: t1, checksum: 'c' }, { t: 6_100, version: 30, table: frozen, checksum: 'd' },
      { t: 6_500, version: 40, table: t1, checksum: 'e' },
    ],
    presence,
    final: { store: { version: 40, checksum: 'e' }, gateways: [], convergedAt: 0 },
  };
}

const ev = (t: number, id: string, via: 'direct' | 'relayed', appliedVersion: number, deleted = false): PresenceEvent => (
  { t, id, via, appliedVersion, checksum: '', deleted }
);

/**
 * What a gateway that behaves does: relayed (its freeze ack through the relay, or not sent
 * before the kill), its own record after the kill, back on the relay after the restart.
 */
function good(id: string, freezeVia: 'direct' | 'relayed'): PresenceEvent[] {
  return [
    ev(100, id, 'relayed', 1), ...(freezeVia === 'relayed' ? [ev(1_600, id, 'relayed', 10)] : []), ev(2_050, id, 'direct', 10), ev(2_600, id, 'direct', 20),
    ev(5_000, id, 'relayed', 20), ev(5_010, id, 'direct', 0, true), ev(6_200, id, 'relayed', 30), ev(6_600, id, 'relayed', 40),
  ];
}

const fell = presenceFellBack({ kill: 'kill', move: MOVE, cell: 'c01', restart: 'restart' });
const back = presenceBackOnRelay({ restart: 'restart', move: BACK });

test('the relay invariants pass a gateway that fell back to its own record and came back to the relay', (t) => {
  const run = fakeRun([...good('gw-0', 'relayed'), ...good('gw-1', 'direct')].sort((a, b) => a.t - b.t));
  const f = fell.check(run);
  t.true(f.passed, f.detail);
  t.regex(f.detail, /gw-0: own record 50 ms after the kill, freeze r10 proven by relay, flip r20 by own/);
  t.regex(f.detail, /gw-1: own record 50 ms after the kill, freeze r10 proven by own, flip r20 by own/);
  const b = back.check(run);
  t.true(b.passed, b.detail);
  t.regex(b.detail, /gw-0: own record withdrawn 1010 ms after the restart began, flip r40 by relay/);
  t.true(cellctlSawEveryGateway(MOVE).check(run).passed);
});

test('the relay invariants fail a gateway that never fell back, one that stayed on its own record, one not relayed at the kill', (t) => {
  // gw-1 kept sending to the relay: a relayed record proves the flip, none of its own.
  const stuck = [ev(100, 'gw-1', 'relayed', 1), ev(1_600, 'gw-1', 'relayed', 10), ev(2_600, 'gw-1', 'relayed', 20)];
  const noFallback = fell.check(fakeRun([...good('gw-0', 'relayed'), ...stuck]));
  t.false(noFallback.passed);
  t.regex(noFallback.detail, /gw-1 wrote no record of its own proving r20/);
  t.regex(noFallback.detail, /gw-1: a relayed record proved r20/);

  // gw-1 proved the flip, but not the freeze before the flip was written (no presence at all meanwhile).
  const noFreeze = good('gw-1', 'direct').filter((p) => p.t !== 2_050);
  const unproven = fell.check(fakeRun([...good('gw-0', 'relayed'), ...noFreeze]));
  t.false(unproven.passed);
  t.regex(unproven.detail, /gw-1 proved the freeze r10 by no record before the flip was written/);

  // gw-1 never went back: its own record lives on and proves the move back.
  const direct = good('gw-1', 'direct').filter((p) => p.t < 4_000).concat([ev(6_200, 'gw-1', 'direct', 30), ev(6_600, 'gw-1', 'direct', 40)]);
  const notBack = back.check(fakeRun([...good('gw-0', 'direct'), ...direct]));
  t.false(notBack.passed);
  t.regex(notBack.detail, /gw-1 did not withdraw its own record/);
  t.regex(notBack.detail, /gw-1 proved r40 by a record of its own/);

  // gw-1 had its own record already when the relay died (it was never on the relay alone).
  const early = [ev(100, 'gw-1', 'direct', 1), ...good('gw-1', 'relayed')];
  const notRelayed = fell.check(fakeRun([...good('gw-0', 'direct'), ...early]));
  t.false(notRelayed.passed);
  t.regex(notRelayed.detail, /gw-1 at the kill: relayed r10, own r1/);
});

test('cellctlSawEveryGateway fails a move that saw only some gateways', (t) => {
  const run = fakeRun([]);
  const partial = run.steps.map((s) => (s.label === MOVE ? { ...s, cellctl: { ...s.cellctl!, json: { converged: true, gatewaysOnRevision: ['gw-0'] } } } : s));
  const r = cellctlSawEveryGateway(MOVE).check({ ...run, steps: partial });
  t.false(r.passed);
  t.regex(r.detail, /missing gw-1/);
});

test('relayedOutliveDeadLease fails when the killed relay\'s lease took a gateway\'s record with it', (t) => {
  const outlive = relayedOutliveDeadLease({ back: 'relayed again', expired: 'expired' });
  const fine = fakeRun([...good('gw-0', 'relayed'), ...good('gw-1', 'direct')].sort((a, b) => a.t - b.t));
  t.true(outlive.check(fine).passed, outlive.check(fine).detail);
  // Deleted with the dead lease before the gateway came back, then put again: fine.
  const putAgain = fakeRun([...good('gw-0', 'relayed'), ...good('gw-1', 'direct'), ev(4_800, 'gw-1', 'relayed', 0, true), ev(4_900, 'gw-1', 'relayed', 20)].sort((a, b) => a.t - b.t));
  t.true(outlive.check(putAgain).passed, outlive.check(putAgain).detail);
  const lost = fakeRun([...good('gw-0', 'relayed'), ...good('gw-1', 'direct'), ev(9_000, 'gw-1', 'relayed', 0, true)].sort((a, b) => a.t - b.t));
  const r = outlive.check(lost);
  t.false(r.passed);
  t.regex(r.detail, /gw-1's relayed record deleted 3900 ms after "relayed again" \(the lease expired 3900 ms after it\); gw-1 has no relayed record at the end/);
});
