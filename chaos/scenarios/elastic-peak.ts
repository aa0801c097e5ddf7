// Elastic peak: an elastic zone is added for a peak, takes a quarter of the cells with
// batched planned moves, gives them back and is removed, all under closed-loop load. The
// invariants of planned moves hold throughout: no failed request, one zone per cell epoch,
// POST bodies once and intact, no misroute; the elastic zone alone serves the lent cells,
// and nothing once they went home.
import { elasticCarried, elasticReleased } from '../invariants-elastic';
import { cellctlExit, finalTable, standardInvariants, zeroFailed } from '../invariants';
import { defineScenario } from '../scenario';
import { at, cellctl } from '../steps';
import { DEFAULT_TOPOLOGY, zoneAddArgs, type ZoneSpec } from '../topology';

const PEAK: ZoneSpec = { name: 'pk-a', region: 'east', city: 'shanghai', capacity: 10, elastic: true, addedLater: true };
const ADD = 'zone add pk-a --elastic';
const ONTO = 'rebalance --onto-elastic 0.25';
const OFF = 'rebalance --off-elastic';
const REMOVE = 'zone remove pk-a';

export default defineScenario({
  name: 'elastic-peak',
  title: 'Elastic peak: onto an elastic zone and off it, zero failed requests',
  description: '`cellctl zone add pk-a --elastic` (Shanghai), `rebalance --onto-elastic 0.25 --batch 4` (8 of 32 cells, two from each zone, Shanghai\'s first), '
    + '`rebalance --off-elastic --batch 4`, `zone remove pk-a`, under closed-loop load through three gateways: each batch is a planned move, no request fails.',
  quick: false,
  topology: { zones: [...DEFAULT_TOPOLOGY.zones, PEAK] },
  load: { mode: 'closed', workers: 24, thinkMs: 80 },
  durationMs: 16_000,
  timeline: [
    at(1_500, cellctl(({ cluster }) => zoneAddArgs(PEAK, cluster.servers(PEAK.name).map((s) => s.url)), { label: ADD })),
    at(3_000, cellctl(['rebalance', '--onto-elastic', '0.25', '--batch', '4'], { label: ONTO }), { waitFor: ADD }),
    at(8_000, cellctl(['rebalance', '--off-elastic', '--batch', '4'], { label: OFF }), { waitFor: ONTO }),
    at(12_000, cellctl(['zone', 'remove', PEAK.name], { label: REMOVE }), { waitFor: OFF }),
  ],
  invariants: [
    ...standardInvariants(),
    zeroFailed(),
    cellctlExit(ADD, [0]),
    cellctlExit(ONTO, [0]),
    cellctlExit(OFF, [0]),
    cellctlExit(REMOVE, [0]),
    elasticCarried({ zone: PEAK.name, cells: 8, onto: ONTO, off: OFF }),
    elasticReleased({ zone: PEAK.name, off: OFF }),
    finalTable('every cell at home, pk-a removed', (t) => {
      const away = [...t.cells, t.global].filter((c) => c.zone !== c.home || c.state !== 'active');
      const peak = t.zones.some((z) => z.name === PEAK.name);
      return away.length || peak ? `${away.length} cells away from home or frozen; pk-a ${peak ? 'still in the table' : 'removed'}` : null;
    }),
  ],
});
