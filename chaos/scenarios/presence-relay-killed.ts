// Presence through a relay (issue 15): the relay that writes the three gateways' presence
// records is killed -9 while a planned move waits on those records. Each gateway must fall
// back to its own leased record at once, so that the move's freeze and flip are still
// proven by presence and the move finishes; once the relay is back (same port), the
// gateways must return to it, and the move back is proven through it.
import { cellctlSawEveryGateway, presenceBackOnRelay, presenceFellBack, relayedOutliveDeadLease } from '../invariants-relay';
import { cellctlExit, servedBy, standardInvariants, zeroFailed } from '../invariants';
import { killRelay, startRelay, waitFreezeAckRelayed, waitLeaseExpired, waitRelayed } from '../relay';
import { defineScenario } from '../scenario';
import { at, cellctl } from '../steps';

const HOT = Array.from({ length: 20 }, (_, i) => `vip-${String(i).padStart(2, '0')}`);
const RELAY = 'relay-1';
const MOVE = 'move c01 to sz-a';
const BACK = 'move c01 back to sh-b';
const RESTART = `restart relay ${RELAY}`;

export default defineScenario({
  name: 'presence-relay-killed',
  title: 'Presence relay killed during a planned move',
  description: `three gateways send their presence to a relay (${RELAY}); \`cellctl cell move c01 sz-a\` under closed-loop load, with the relay killed -9 as soon as it wrote the first gateway's freeze ack (the others on their way): every gateway falls back to its own record and the move still finishes, zero failed requests; the relay restarts on its port, the gateways go back to it, the move back is proven through it, and their records outlive the killed relay's lease.`,
  quick: false,
  topology: { overrides: Object.fromEntries(HOT.map((u) => [u, 'c01'])), presenceRelays: [RELAY] },
  load: { mode: 'closed', workers: 24, thinkMs: 80, hotUsers: HOT, hotShare: 0.25 },
  durationMs: 12_000,
  timeline: [
    at(0, startRelay(RELAY)),
    at(0, waitRelayed(RELAY), { waitFor: `start relay ${RELAY}` }),
    at(2_000, cellctl(['cell', 'move', 'c01', 'sz-a'], { label: MOVE }), { waitFor: `gateways relayed by ${RELAY}` }),
    at(2_000, waitFreezeAckRelayed('c01'), { waitFor: `gateways relayed by ${RELAY}` }),
    at(2_000, killRelay(RELAY), { waitFor: 'first c01 freeze ack through the relay' }),
    at(4_000, startRelay(RELAY, { label: RESTART, kind: 'heal' }), { waitFor: MOVE }),
    at(4_000, waitLeaseExpired(RELAY), { waitFor: `kill -9 relay ${RELAY}` }),
    at(4_000, waitRelayed(RELAY, 'gateways relayed again'), { waitFor: RESTART }),
    at(6_000, cellctl(['cell', 'move', 'c01', 'sh-b'], { label: BACK }), { waitFor: 'gateways relayed again' }),
  ],
  invariants: [
    ...standardInvariants(),
    zeroFailed(),
    cellctlExit(MOVE, [0]),
    cellctlExit(BACK, [0]),
    cellctlSawEveryGateway(MOVE),
    cellctlSawEveryGateway(BACK),
    presenceFellBack({ kill: `kill -9 relay ${RELAY}`, move: MOVE, cell: 'c01', restart: RESTART }),
    presenceBackOnRelay({ restart: RESTART, move: BACK }),
    relayedOutliveDeadLease({ back: 'gateways relayed again', expired: `lease of the killed ${RELAY} expired` }),
    servedBy({ cell: 'c01', zone: 'sz-a', after: MOVE, edge: 'end', until: BACK }),
    servedBy({ cell: 'c01', zone: 'sh-b', after: BACK, edge: 'end' }),
  ],
});
