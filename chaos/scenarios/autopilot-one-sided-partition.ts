// One gateway (gw-0) cannot reach sh-a's servers; the others can. One witness of three is
// no majority: the autopilot reports the evidence and does nothing (a person would look
// at gw-0's network, not fail the zone over).
import { standardInvariants } from '../invariants';
import { expectAutopilotView, onlyFailedZonesActedOn, startAutopilot, zoneUnreachableFrom } from '../autopilot';
import { defineScenario } from '../scenario';
import { at } from '../steps';

export default defineScenario({
  name: 'autopilot-one-sided-partition',
  title: 'Autopilot: a zone unreachable from one gateway only is not failed over',
  description: "sh-a's servers refuse gw-0's health probes (gw-0 sees sh-a dead, gw-1 and gw-2 see it healthy) for 10 s, with an autopilot running: it sees one witness of three and changes nothing.",
  quick: false,
  load: { mode: 'rate', ratePerSec: 150 },
  durationMs: 16_000,
  timeline: [
    at(0, startAutopilot('ap-1', [], true)),
    at(2_000, zoneUnreachableFrom('sh-a', ['gw-0']), { waitFor: 'start autopilot ap-1' }),
    at(9_000, expectAutopilotView('ap-1', 'sh-a', 'autopilot sees 1 witness, no action', (z) => z.unhealthy === 1 && z.result === 'no_evidence')),
    at(13_000, zoneUnreachableFrom('sh-a', [])),
  ],
  invariants: [
    ...standardInvariants(),
    onlyFailedZonesActedOn([], 60_000),
  ],
});
