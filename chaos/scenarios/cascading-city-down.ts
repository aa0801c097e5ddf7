// A cascading failure: sh-a dies and fails over to its same-city peer sh-b; then sh-b dies
// too. The second `zone down` must cross the city (hangzhou) up to its capacity and spill
// over to the other region, never onto a down zone.
import { cellctlExit, errorWindow, finalTable, noCellOnDownZone, standardInvariants } from '../invariants';
import { defineScenario } from '../scenario';
import { at, cellctl, killZone } from '../steps';

export default defineScenario({
  name: 'cascading-city-down',
  title: 'Cascading failure: the whole city down, cross-city and cross-region',
  description: 'kill sh-a, `zone down sh-a` (→ sh-b); then kill sh-b, `zone down sh-b`: the 16 Shanghai cells and the global zone must go to hangzhou up to its capacity (20) and the rest to shenzhen.',
  quick: false,
  load: { mode: 'rate', ratePerSec: 200 },
  durationMs: 15_000,
  timeline: [
    at(2_000, killZone('sh-a')),
    at(3_000, cellctl(['zone', 'down', 'sh-a'], { label: 'zone down sh-a' })),
    at(7_000, killZone('sh-b'), { waitFor: 'zone down sh-a' }),
    at(8_000, cellctl(['zone', 'down', 'sh-b'], { label: 'zone down sh-b' })),
  ],
  invariants: [
    ...standardInvariants(),
    errorWindow({ fault: 'kill -9 sh-a', until: 'zone down sh-b', edge: 'end', boundMs: 1_000 }),
    cellctlExit('zone down sh-a', [0]),
    cellctlExit('zone down sh-b', [0]),
    noCellOnDownZone(),
    finalTable('Shanghai cells fill hangzhou to capacity, then shenzhen', (t) => {
      const count = (z: string) => t.cells.filter((c) => c.zone === z).length;
      const hz = t.zones.find((z) => z.name === 'hz-a')!;
      const sz = t.zones.find((z) => z.name === 'sz-a')!;
      if (count('hz-a') > hz.capacity || count('sz-a') > sz.capacity) return `over capacity: hz-a ${count('hz-a')}/${hz.capacity}, sz-a ${count('sz-a')}/${sz.capacity}`;
      if (count('hz-a') < hz.capacity) return `hz-a (same region) has room left (${count('hz-a')}/${hz.capacity}) while cells crossed regions`;
      return null;
    }),
  ],
});
