// Unplanned: both servers of sh-a die (kill -9); the operator runs `zone down sh-a`.
// Expected: sh-a's cells (and the global zone) go to the same-city peer sh-b in one CAS;
// errors only between the crash and the failover, bounded; nothing misrouted after it.
import { cellctlExit, errorWindow, finalTable, noCellOnDownZone, standardInvariants } from '../invariants';
import { defineScenario } from '../scenario';
import { at, cellctl, killZone } from '../steps';

export default defineScenario({
  name: 'zone-down-same-city',
  title: 'Zone crash, failover to the same-city peer',
  description: 'kill -9 both upstream servers of sh-a under load, then `cellctl zone down sh-a`: its cells and the global zone must move to sh-b (same city) at once, with errors only until the failover has converged.',
  quick: true,
  load: { mode: 'rate', ratePerSec: 200 },
  durationMs: 12_000,
  timeline: [
    at(3_000, killZone('sh-a')),
    at(4_000, cellctl(['zone', 'down', 'sh-a'], { label: 'zone down sh-a' })),
  ],
  invariants: [
    ...standardInvariants(),
    errorWindow({ fault: 'kill -9 sh-a', until: 'zone down sh-a', edge: 'end', boundMs: 1_000 }),
    cellctlExit('zone down sh-a', [0]),
    noCellOnDownZone(),
    finalTable('sh-a cells on the same-city peer sh-b', (t) => {
      const away = [...t.cells, t.global].filter((c) => c.home === 'sh-a' && c.zone !== 'sh-b');
      return away.length ? `${away.length} of sh-a's cells not on sh-b: ${away.slice(0, 4).map((c) => `${c.name}@${c.zone}`).join(', ')}` : null;
    }),
  ],
});
