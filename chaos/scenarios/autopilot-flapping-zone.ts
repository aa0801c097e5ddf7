// A zone that flaps (2 s down, 2.5 s up, 4 times) never stays unhealthy for down-after (5 s):
// the autopilot must not fail it over (a person would not either).
import { standardInvariants } from '../invariants';
import { onlyFailedZonesActedOn, startAutopilot } from '../autopilot';
import { defineScenario } from '../scenario';
import { at, flapZone } from '../steps';

export default defineScenario({
  name: 'autopilot-flapping-zone',
  title: 'Autopilot: a flapping zone is not failed over',
  description: 'sh-a servers killed for 2 s and restarted for 2.5 s, four times, with an autopilot running (down-after 5 s): no zone changes status.',
  quick: false,
  load: { mode: 'rate', ratePerSec: 150 },
  durationMs: 22_000,
  timeline: [
    at(0, startAutopilot('ap-1', [], true)),
    at(2_000, flapZone('sh-a', 4, 2_000, 2_500), { waitFor: 'start autopilot ap-1' }),
  ],
  invariants: [
    ...standardInvariants(),
    onlyFailedZonesActedOn([], 60_000),
  ],
});
