// Long-lived connections vs moves (issue 9): 100 WebSockets and 10 slow downloads on one
// cell while it is moved (planned) and then its new zone is taken down (unplanned). The
// gateway must close every socket of the cell with 1012 when it freezes or moves, the
// clients' reconnects must land on the new zone (held during the freeze), no message may
// reach the old zone after the flip, and the move must finish — open sockets and slow
// downloads never veto it.
import {
  cellctlExit, errorWindow, servedBy, standardInvariants,
} from '../invariants';
import { cellctlWithin, noClientPastDeadline } from '../invariants-clients';
import { noWsMessageAtOldZone, slowCutOnlyAfterGrace, wsClosedAndReconnected } from '../invariants-moves';
import { defineScenario } from '../scenario';
import { at, cellctl } from '../steps';
import { DEFAULT_TOPOLOGY } from '../topology';
import { FREEZE_MS, INFLIGHT_GRACE_MS } from '../moves';

const WS_USERS = Array.from({ length: 100 }, (_, i) => `ws-${String(i).padStart(3, '0')}`);
const SLOW_USERS = Array.from({ length: 10 }, (_, i) => `dl-${i}`);

export default defineScenario({
  name: 'websocket-clients-across-moves',
  title: 'WebSockets and slow downloads across a planned move and a zone down',
  description: '100 WebSockets (a message every 500 ms) and 10 slow downloads on c01, under closed-loop load; `cellctl cell move c01 sz-a`, then `cellctl zone down sz-a` with its servers alive. Every socket of c01 is closed 1012 by the gateway at each change and reconnects to the new zone; no message reaches the old zone after the flip; the move completes within the freeze window + 1 s.',
  quick: true,
  topology: { overrides: Object.fromEntries([...WS_USERS, ...SLOW_USERS].map((u) => [u, 'c01'])) },
  load: { mode: 'closed', workers: 16, thinkMs: 80 },
  // A frozen revision is acknowledged once the in-flight grace is over.
  convergeBoundMs: INFLIGHT_GRACE_MS + 3_000,
  clients: [
    { kind: 'websocket', users: WS_USERS, messageEveryMs: 500, echoDeadlineMs: 2_000, reconnectDeadlineMs: FREEZE_MS + 2_000 },
    // Longer than the freeze window: without the grace they would veto the move.
    { kind: 'slow-download', users: SLOW_USERS, lengthMs: 14_000, chunkMs: 200, deadlineMs: FREEZE_MS + 2_000 },
  ],
  durationMs: 16_000,
  timeline: [
    at(4_000, cellctl(['cell', 'move', 'c01', 'sz-a'], { label: 'move c01 to sz-a' })),
    at(10_000, cellctl(['zone', 'down', 'sz-a'], { label: 'zone down sz-a' }), { waitFor: 'move c01 to sz-a' }),
  ],
  invariants: [
    ...standardInvariants(),
    // Nothing fails through the planned move; the zone down may fence stale routes briefly.
    errorWindow({ fault: 'zone down sz-a', until: 'zone down sz-a', edge: 'end', boundMs: 1_000 }),
    cellctlExit('move c01 to sz-a', [0]),
    cellctlWithin('move c01 to sz-a', FREEZE_MS + 1_000),
    cellctlExit('zone down sz-a', [0]),
    servedBy({ cell: 'c01', zone: 'sz-a', after: 'move c01 to sz-a', edge: 'end', until: 'zone down sz-a' }),
    wsClosedAndReconnected('c01', ['move c01 to sz-a', 'zone down sz-a']),
    noWsMessageAtOldZone(),
    slowCutOnlyAfterGrace(INFLIGHT_GRACE_MS),
    noClientPastDeadline({ loadDeadlineMs: FREEZE_MS + DEFAULT_TOPOLOGY.gateway.requestTimeoutMs + 1_000 }),
  ],
});
