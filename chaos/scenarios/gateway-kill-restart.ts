// A gateway process crashes (kill -9) and comes back. Only the requests in flight on it at
// that instant may fail (the load balancer sends new connections to the other gateways);
// restarted, it routes at once from its snapshot and the store, registers again, and
// follows the next change like the others.
import { cellctlExit, errorWindow, servedBy, standardInvariants, zeroFailed } from '../invariants';
import { defineScenario } from '../scenario';
import { at, cellctl, killGateway, startGateway } from '../steps';

export default defineScenario({
  name: 'gateway-kill-restart',
  title: 'Gateway crash and restart',
  description: 'kill -9 gw-1 under load and start it again 3 s later; then a planned move must converge on all three gateways. Only requests in flight on gw-1 when it died may fail.',
  quick: false,
  load: { mode: 'rate', ratePerSec: 200 },
  durationMs: 14_000,
  timeline: [
    at(3_000, killGateway('gw-1')),
    at(6_000, startGateway('gw-1')),
    at(9_000, cellctl(['cell', 'move', 'c05', 'hz-a'], { label: 'move c05 to hz-a' }), { waitFor: 'start gw-1' }),
  ],
  invariants: [
    ...standardInvariants(),
    errorWindow({ fault: 'kill -9 gw-1', until: 'kill -9 gw-1', edge: 'end', boundMs: 300 }),
    zeroFailed({ from: 'start gw-1' }),
    cellctlExit('move c05 to hz-a', [0]),
    servedBy({ cell: 'c05', zone: 'hz-a', after: 'move c05 to hz-a', edge: 'end' }),
  ],
});
