// One gateway loses the control plane (its etcd connections are blackholed by the harness)
// while the others stay connected. It keeps routing with its last good table (fail-static).
// A planned move while it is cut off cannot prove convergence: cellctl must exit 4 naming
// it and withdraw the freeze — and no request fails. Once reconnected it catches up and a
// second attempt succeeds.
import { cellctlExit, servedBy, standardInvariants, zeroFailed } from '../invariants';
import { defineScenario } from '../scenario';
import { at, cellctl, cutGateway, healGateway } from '../steps';

export default defineScenario({
  name: 'gateway-cut-off',
  title: 'One gateway cut off etcd: fail-static routing, cellctl names it',
  description: 'gw-2 is cut off every etcd member (blackhole). `cellctl cell move c03 sh-b --timeout 2` must exit 4 naming gw-2 and leave c03 where it was, with no failed request; after gw-2 is reconnected it catches up and the same move succeeds.',
  quick: true,
  load: { mode: 'rate', ratePerSec: 200 },
  durationMs: 15_000,
  convergeBoundMs: 5_000,
  timeline: [
    at(2_000, cutGateway('gw-2')),
    at(3_500, cellctl(['cell', 'move', 'c03', 'sh-b', '--timeout', '2'], { label: 'move c03 while gw-2 is cut off' })),
    at(8_000, healGateway('gw-2'), { waitFor: 'move c03 while gw-2 is cut off' }),
    at(10_500, cellctl(['cell', 'move', 'c03', 'sh-b'], { label: 'move c03 after reconnect' })),
  ],
  invariants: [
    ...standardInvariants(),
    zeroFailed(),
    cellctlExit('move c03 while gw-2 is cut off', [4], 'gw-2'),
    servedBy({ cell: 'c03', zone: 'sz-a', after: 'move c03 while gw-2 is cut off', edge: 'end', until: 'move c03 after reconnect' }),
    cellctlExit('move c03 after reconnect', [0]),
    servedBy({ cell: 'c03', zone: 'sh-b', after: 'move c03 after reconnect', edge: 'end' }),
  ],
});
