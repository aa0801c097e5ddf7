// A whole region goes dark (every server of the south region killed) and the operator runs
// `region down south`: its cells cross to the east region, honouring capacity.
import { cellctlExit, errorWindow, finalTable, noCellOnDownZone, standardInvariants } from '../invariants';
import { defineScenario } from '../scenario';
import { at, cellctl, killZone } from '../steps';

export default defineScenario({
  name: 'region-down',
  title: 'Region down, cross-region failover',
  description: 'kill -9 every server of sz-a (the south region), then `cellctl region down south`: its cells must cross to east zones within capacity; errors only until the failover converged.',
  quick: false,
  load: { mode: 'rate', ratePerSec: 200 },
  durationMs: 12_000,
  timeline: [
    at(3_000, killZone('sz-a')),
    at(4_000, cellctl(['region', 'down', 'south'], { label: 'region down south' })),
  ],
  invariants: [
    ...standardInvariants(),
    errorWindow({ fault: 'kill -9 sz-a', until: 'region down south', edge: 'end', boundMs: 1_000 }),
    cellctlExit('region down south', [0]),
    noCellOnDownZone(),
    finalTable('south cells in the east region within capacity', (t) => {
      const east = new Set(t.zones.filter((z) => z.region === 'east').map((z) => z.name));
      const stray = t.cells.filter((c) => c.home === 'sz-a' && !east.has(c.zone));
      const over = t.zones.filter((z) => t.cells.filter((c) => c.zone === z.name).length > z.capacity);
      return stray.length || over.length ? `${stray.length} south cells outside east; over capacity: ${over.map((z) => z.name).join(', ') || 'none'}` : null;
    }),
  ],
});
