// The autopilot leader dies (kill -9); then sh-a dies. The standby's campaign wins once the
// leader's 2 s lease ends, and it takes sh-a down.
import { noCellOnDownZone, standardInvariants } from '../invariants';
import { autopilotTookDown, killAutopilot, onlyFailedZonesActedOn, startAutopilot } from '../autopilot';
import { defineScenario } from '../scenario';
import { at, killZone } from '../steps';

export default defineScenario({
  name: 'autopilot-leader-killed',
  title: 'Autopilot: the leader is killed, the standby acts',
  description: 'two autopilot replicas; kill -9 the leader, then both servers of sh-a: the standby takes over (lease 2 s) and takes sh-a down within lease + down-after + 5 s.',
  quick: false,
  load: { mode: 'rate', ratePerSec: 150 },
  durationMs: 22_000,
  timeline: [
    at(0, startAutopilot('ap-1', [], true)),
    at(500, startAutopilot('ap-2'), { waitFor: 'start autopilot ap-1' }),
    at(3_000, killAutopilot('ap-1'), { waitFor: 'start autopilot ap-2' }),
    at(3_500, killZone('sh-a'), { waitFor: 'kill -9 autopilot ap-1' }),
  ],
  invariants: [
    ...standardInvariants(),
    autopilotTookDown('sh-a', 'kill -9 sh-a', 12_000),
    onlyFailedZonesActedOn(['sh-a'], 60_000),
    noCellOnDownZone(),
  ],
});
