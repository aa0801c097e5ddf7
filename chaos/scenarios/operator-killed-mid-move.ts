// Planned move whose operator dies: cellctl is SIGKILLed as soon as the table shows the
// cell frozen. The gateways hold the cell's requests until the freeze deadline, then route
// them to the old zone by themselves — no request fails, none is lost. A second operator
// later completes the move.
import { cellctlExit, servedBy, standardInvariants, zeroFailed } from '../invariants';
import { defineScenario } from '../scenario';
import { at, cellctl } from '../steps';

const FREEZE_MS = 2_500;

export default defineScenario({
  name: 'operator-killed-mid-move',
  title: 'Operator killed half-way through a planned move',
  description: `\`cellctl cell move c02 sz-a --freeze-ms ${FREEZE_MS}\` is killed with SIGKILL once c02 is frozen. Within the freeze deadline every gateway must route c02 again — to its old zone hz-a — with no failed or lost request; a second operator then completes the move.`,
  quick: true,
  load: { mode: 'rate', ratePerSec: 200 },
  durationMs: 14_000,
  timeline: [
    at(3_000, cellctl(['cell', 'move', 'c02', 'sz-a', '--freeze-ms', String(FREEZE_MS)], { label: 'move c02 (operator killed)', killWhenFrozen: 'c02' })),
    at(9_000, cellctl(['cell', 'move', 'c02', 'sz-a'], { label: 'move c02 again' })),
  ],
  invariants: [
    ...standardInvariants(),
    zeroFailed(),
    servedBy({ cell: 'c02', zone: 'hz-a', after: 'move c02 (operator killed)', delayMs: 1_000 + FREEZE_MS + 500, until: 'move c02 again' }),
    cellctlExit('move c02 again', [0]),
    servedBy({ cell: 'c02', zone: 'sz-a', after: 'move c02 again', edge: 'end' }),
  ],
});
