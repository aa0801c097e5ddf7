// A zone flaps: both its servers die and come back three times in a row, with nobody
// touching the table. The gateways' passive health must stop the errors soon after the
// last recovery (bounded by the ejection back-off), and nothing is misrouted meanwhile.
import { errorWindow, standardInvariants } from '../invariants';
import { defineScenario } from '../scenario';
import { at, flapZone } from '../steps';

export default defineScenario({
  name: 'zone-flap',
  title: 'Zone flapping (crash / restart ×3)',
  description: 'Both servers of hz-a are killed and restarted three times (1 s down, 1.5 s up). Errors are confined to the flapping and at most the ejection back-off after it.',
  quick: false,
  load: { mode: 'rate', ratePerSec: 200 },
  durationMs: 16_000,
  timeline: [
    at(2_000, flapZone('hz-a', 3, 1_000, 1_500)),
  ],
  invariants: [
    ...standardInvariants(),
    // ejectMaxMs is 4 s in the harness's gateway configuration.
    errorWindow({ fault: 'flap hz-a ×3', until: 'flap hz-a ×3', edge: 'end', boundMs: 4_500 }),
  ],
});
