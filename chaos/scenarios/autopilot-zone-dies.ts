// Unplanned, no operator: both servers of sh-a die; the autopilot (defaults: down-after 5 s)
// sees every gateway report sh-a unhealthy and takes it down by itself.
import { errorWindow, noCellOnDownZone, standardInvariants } from '../invariants';
import { autopilotTookDown, onlyFailedZonesActedOn, startAutopilot } from '../autopilot';
import { defineScenario } from '../scenario';
import { at, killZone } from '../steps';

export default defineScenario({
  name: 'autopilot-zone-dies',
  title: 'Autopilot: a zone dies, nobody types anything',
  description: 'kill -9 both servers of sh-a with an autopilot running: within down-after (5 s) + 5 s sh-a is down in the table, its cells served elsewhere, no other zone touched.',
  quick: false,
  load: { mode: 'rate', ratePerSec: 150 },
  durationMs: 20_000,
  timeline: [
    at(0, startAutopilot('ap-1', [], true)),
    at(3_000, killZone('sh-a'), { waitFor: 'start autopilot ap-1' }),
  ],
  invariants: [
    ...standardInvariants(),
    autopilotTookDown('sh-a', 'kill -9 sh-a', 10_000),
    errorWindow({ fault: 'kill -9 sh-a', until: 'kill -9 sh-a', edge: 'start', boundMs: 11_000 }),
    onlyFailedZonesActedOn(['sh-a'], 60_000),
    noCellOnDownZone(),
  ],
});
