// The freeze acknowledgement with an injected clock and the real per-cell request registry:
// published at once when the frozen cells are idle, at the moment their last request leaves
// (an event, no polling), or when the grace ends and what is left has been cut; the grace is
// clamped inside the freeze window and not extended by tables that arrive meanwhile.
import test from 'ava';
import { versioned } from '../src/cells/table';
import type { RoutingTable, VersionedTable } from '../src/cells/types';
import { CellRequests, type CutKind, type TrackedRequest } from '../src/router/cell-requests';
import { parseGatewayConfig } from '../src/router/config';
import { clampedGraceMs, FreezeAcknowledger } from '../src/router/freeze-ack';
import { ManualClock } from './helpers/manual-clock';
import { freezeCell, moveCell, tableFor } from './helpers/router-fixture';

const base: RoutingTable = tableFor([{ name: 'za', upstreams: ['http://127.0.0.1:1'] }, { name: 'zb', upstreams: ['http://127.0.0.1:2'] }], { cells: 4 });

function env(graceMs = 2000) {
  const clock = new ManualClock();
  const requests = new CellRequests();
  const published: number[] = [];
  const cuts: Record<CutKind, number>[] = [];
  const ack = new FreezeAcknowledger({ clock, requests, inflightGraceMs: graceMs, publish: (v) => published.push(v), onCut: (c) => cuts.push(c) });
  /** A request of `cell` with an upstream; its cut closes the response later (`closeCut`). */
  const cutOnes: TrackedRequest[] = [];
  const request = (cell: string, started = true): TrackedRequest => {
    const r: TrackedRequest = {
      cell,
      cut: () => {
        cutOnes.push(r);
        return started ? 'mid_response' : 'awaiting_response';
      },
    };
    requests.enter(r);
    return r;
  };
  const closeCut = () => {
    for (const r of cutOnes.splice(0)) requests.leave(r);
  };
  return { clock, requests, published, cuts, ack, request, closeCut };
}

const frozen = (clock: ManualClock, version: number, cell = 'c00', windowMs = 8000): VersionedTable =>
  versioned(freezeCell(base, cell, clock.now() + windowMs, 'zb'), version);

test('the grace is at most a quarter of the freeze window left', (t) => {
  t.is(clampedGraceMs(2000, 0, 8000), 2000);
  t.is(clampedGraceMs(2000, 0, 2000), 500);
  t.is(clampedGraceMs(2000, 5000, 4000), 0);
  t.is(clampedGraceMs(0, 0, 8000), 0);
});

test('published at once when the frozen cells have no request with an upstream', (t) => {
  const e = env();
  e.request('c01'); // another cell's request does not matter
  e.ack.tableApplied(frozen(e.clock, 2));
  t.deepEqual(e.published, [2]);
  t.false(e.ack.waiting);
  t.is(e.clock.pending, 0, 'no timer');
});

test('published the moment the cell\'s last request leaves, without time passing', (t) => {
  const e = env();
  const r1 = e.request('c00');
  const r2 = e.request('c00');
  e.ack.tableApplied(frozen(e.clock, 2));
  t.deepEqual(e.published, []);
  t.true(e.ack.waiting);
  e.requests.leave(r1);
  t.deepEqual(e.published, []);
  e.requests.leave(r2);
  t.deepEqual(e.published, [2]);
  t.is(e.clock.pending, 0, 'the grace timer is gone');
  t.deepEqual(e.cuts, []);
});

test('when the grace ends, what is left is cut (counted by kind) and the table published once the cut responses closed', (t) => {
  const e = env(2000);
  e.request('c00', true);
  e.request('c00', false);
  e.ack.tableApplied(frozen(e.clock, 2));
  e.clock.advance(1999);
  t.deepEqual(e.cuts, []);
  e.clock.advance(1);
  t.deepEqual(e.cuts, [{ mid_response: 1, awaiting_response: 1 }]);
  t.deepEqual(e.published, [], 'not before the cut responses have closed');
  e.closeCut();
  t.deepEqual(e.published, [2]);
  t.is(e.requests.size, 0);
  t.is(e.requests.entered, e.requests.left + e.requests.size);
});

test('a cut response that never closes holds the acknowledgement at most until the freeze deadline', (t) => {
  const e = env(2000);
  e.request('c00');
  e.ack.tableApplied(frozen(e.clock, 2, 'c00', 8000));
  e.clock.advance(2000);
  t.is(e.cuts.length, 1);
  e.clock.advance(5999);
  t.deepEqual(e.published, []);
  e.clock.advance(1);
  t.deepEqual(e.published, [2]);
});

test('a newer table with the same freeze does not extend the grace; it is the one published', (t) => {
  const e = env(2000);
  e.request('c00');
  const v2 = frozen(e.clock, 2);
  e.ack.tableApplied(v2);
  e.clock.advance(1500);
  // Another change elsewhere; c00 still frozen with the same deadline.
  e.ack.tableApplied(versioned(moveCell(v2.table, 'c03', 'zb'), 3));
  e.clock.advance(499);
  t.deepEqual(e.cuts, []);
  e.clock.advance(1);
  t.is(e.cuts.length, 1, 'cut 2000 ms after the freeze was first seen');
  e.closeCut();
  t.deepEqual(e.published, [3]);
});

test('a table that unfreezes the cell while its requests run is published at once', (t) => {
  const e = env();
  e.request('c00');
  const v2 = frozen(e.clock, 2);
  e.ack.tableApplied(v2);
  e.ack.tableApplied(versioned(moveCell(v2.table, 'c00', 'za'), 3));
  t.deepEqual(e.published, [3]);
  t.false(e.ack.waiting);
  t.is(e.clock.pending, 0);
});

test('a short freeze window clamps the grace', (t) => {
  const e = env(2000);
  e.request('c00');
  e.ack.tableApplied(frozen(e.clock, 2, 'c00', 1000));
  e.clock.advance(249);
  t.deepEqual(e.cuts, []);
  e.clock.advance(1);
  t.is(e.cuts.length, 1, 'cut after a quarter of the 1 s window');
});

test('config: freeze.inflightGraceMs defaults to 2 s, stays below the hold window, unknown keys refused', (t) => {
  t.is(parseGatewayConfig({}).freeze.inflightGraceMs, 2000);
  t.is(parseGatewayConfig({ freeze: { inflightGraceMs: 0 } }).freeze.inflightGraceMs, 0);
  t.is(parseGatewayConfig({ buffer: { windowMs: 1000 } }).freeze.inflightGraceMs, 500, 'the default fits a short window');
  const tooLong = t.throws(() => parseGatewayConfig({ buffer: { windowMs: 3000 }, freeze: { inflightGraceMs: 3000 } }));
  t.regex(tooLong.message, /freeze\.inflightGraceMs: must be less than buffer\.windowMs \(3000\)/);
  t.is((tooLong as { code?: string }).code, 'CG_ERR_INVALID_CONFIG');
  t.regex(t.throws(() => parseGatewayConfig({ freeze: { graceMs: 1 } })).message, /freeze\.graceMs/);
  t.regex(t.throws(() => parseGatewayConfig({ freeze: { inflightGraceMs: -1 } })).message, /freeze\.inflightGraceMs/);
  t.true(Object.isFrozen(parseGatewayConfig({}).freeze));
});
