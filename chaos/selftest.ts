// Deliberately broken "builds" the harness must catch: each scenario swaps in a wrong
// planner output — a table written straight into etcd, bypassing cellctl and its planner —
// and names the invariants that must fail. They are not part of --quick or --all; the
// harness's own test (test/chaos-harness.test.ts) runs them, and an operator can run one
// with `npm run chaos -- --scenario NAME` to see a failing report.
import {
  errorWindow, noCellOnDownZone, noMisroute, oneOwnerPerEpoch, postsIntact, standardInvariants, zeroFailed,
} from './invariants';
import { defineScenario, type Scenario } from './scenario';
import { at, killZone, writeTable } from './steps';

export interface SelfTest {
  readonly scenario: Scenario;
  /** Invariants that must fail on this broken build. */
  readonly mustFail: readonly string[];
  /** Invariants that must still pass (the breakage is specific, not a harness crash). */
  readonly mustPass: readonly string[];
}

/**
 * A planner that sends cells to the wrong zone: sh-b's cells are routed to sh-a's servers
 * (the zone's endpoints swapped), and c03 is moved from sz-a to hz-a without its epoch
 * being increased, so two zones serve one (cell, epoch).
 */
const misroute = defineScenario({
  name: 'selftest-misroute',
  title: 'SELF-TEST: a planner that sends cells to the wrong zone',
  description: 'Broken on purpose: a table whose sh-b endpoints are sh-a\'s servers, and a move of c03 without an epoch increase, written straight into etcd. The oracle must report misrouted requests and a (cell, epoch) served by two zones.',
  quick: false,
  load: { mode: 'rate', ratePerSec: 150 },
  durationMs: 9_000,
  tailMs: 2_000,
  timeline: [
    at(2_500, writeTable('broken planner: c03 to hz-a, same epoch', (t) => ({ ...t, cells: t.cells.map((c) => (c.name === 'c03' ? { ...c, zone: 'hz-a' } : c)) }))),
    at(5_000, writeTable('broken planner: sh-b endpoints are sh-a servers', (t) => {
      const shA = t.zones.find((z) => z.name === 'sh-a')!;
      return { ...t, zones: t.zones.map((z) => (z.name === 'sh-b' ? { ...z, upstreams: shA.upstreams } : z)) };
    })),
  ],
  invariants: [...standardInvariants(), zeroFailed()],
});

/** A planner that marks a crashed zone down but leaves its cells on it. */
const cellsOnDownZone = defineScenario({
  name: 'selftest-cells-on-down-zone',
  title: 'SELF-TEST: a planner that leaves cells on a down zone',
  description: 'Broken on purpose: sh-a crashes and a "zone down" table marks it down but keeps its cells there (bumping their epochs). Requests of those cells keep failing: the error window and the table check must fail.',
  quick: false,
  load: { mode: 'rate', ratePerSec: 150 },
  durationMs: 9_000,
  tailMs: 3_000,
  timeline: [
    at(2_000, killZone('sh-a')),
    at(3_000, writeTable('broken zone down sh-a', (t) => ({
      ...t,
      zones: t.zones.map((z) => (z.name === 'sh-a' ? { ...z, status: 'down' } : z)),
      cells: t.cells.map((c) => (c.zone === 'sh-a' ? { ...c, epoch: c.epoch + 1 } : c)),
    }), 'op')),
  ],
  invariants: [...standardInvariants(), errorWindow({ fault: 'kill -9 sh-a', until: 'broken zone down sh-a', edge: 'end', boundMs: 1_000 }), noCellOnDownZone()],
});

export const SELFTESTS: readonly SelfTest[] = [
  {
    scenario: misroute,
    mustFail: [noMisroute().name, oneOwnerPerEpoch().name, zeroFailed().name],
    mustPass: ['harness ran the scenario', postsIntact().name],
  },
  {
    scenario: cellsOnDownZone,
    mustFail: ['bounded error window', 'no cell on a down zone'],
    mustPass: ['harness ran the scenario', noMisroute().name, postsIntact().name],
  },
];
