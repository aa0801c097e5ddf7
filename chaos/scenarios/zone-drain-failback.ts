// Maintenance: drain a zone (planned), bring it back with a batched failback (each batch a
// planned move). Zero failed requests throughout; every cell ends at home.
import { cellctlExit, finalTable, standardInvariants, zeroFailed } from '../invariants';
import { defineScenario } from '../scenario';
import { at, cellctl } from '../steps';

export default defineScenario({
  name: 'zone-drain-failback',
  title: 'Zone drain and batched failback',
  description: '`cellctl zone drain hz-a`, then `cellctl zone up hz-a --batch 3`: its 8 cells leave and come home in three planned batches, with no failed request.',
  quick: false,
  load: { mode: 'closed', workers: 24, thinkMs: 80 },
  durationMs: 15_000,
  timeline: [
    at(2_500, cellctl(['zone', 'drain', 'hz-a'], { label: 'drain hz-a' })),
    at(7_000, cellctl(['zone', 'up', 'hz-a', '--batch', '3'], { label: 'failback hz-a in batches of 3' }), { waitFor: 'drain hz-a' }),
  ],
  invariants: [
    ...standardInvariants(),
    zeroFailed(),
    cellctlExit('drain hz-a', [0]),
    cellctlExit('failback hz-a in batches of 3', [0]),
    finalTable('every cell at home, hz-a up', (t) => {
      const away = [...t.cells, t.global].filter((c) => c.zone !== c.home);
      const hz = t.zones.find((z) => z.name === 'hz-a');
      return away.length || hz?.status !== 'up' ? `${away.length} cells away from home; hz-a ${hz?.status}` : null;
    }),
  ],
});
