// Planned: move one cell across regions and back under closed-loop load (GET and POST,
// three gateways). The freeze protocol must hold the cell's requests and release them to
// the new zone: zero failed requests, every POST body delivered once, and once each
// command returns every request of the cell lands on the new zone.
import { cellctlExit, servedBy, standardInvariants, zeroFailed } from '../invariants';
import { defineScenario } from '../scenario';
import { at, cellctl } from '../steps';

// Pinned users make c01 hot (a quarter of the traffic), so that the move holds many requests.
const HOT = Array.from({ length: 20 }, (_, i) => `vip-${String(i).padStart(2, '0')}`);

export default defineScenario({
  name: 'planned-cell-move',
  title: 'Planned cell move there and back, zero failed requests',
  description: '`cellctl cell move c01 sz-a` (sh-b → sz-a, cross-region) and later back to sh-b, under closed-loop load through three gateways: no request may fail, held requests go to the new zone, POST bodies arrive once and intact.',
  quick: true,
  topology: { overrides: Object.fromEntries(HOT.map((u) => [u, 'c01'])) },
  load: { mode: 'closed', workers: 24, thinkMs: 80, hotUsers: HOT, hotShare: 0.25 },
  durationMs: 13_000,
  timeline: [
    at(3_000, cellctl(['cell', 'move', 'c01', 'sz-a'], { label: 'move c01 to sz-a' })),
    at(8_000, cellctl(['cell', 'move', 'c01', 'sh-b'], { label: 'move c01 back to sh-b' }), { waitFor: 'move c01 to sz-a' }),
  ],
  invariants: [
    ...standardInvariants(),
    zeroFailed(),
    cellctlExit('move c01 to sz-a', [0]),
    cellctlExit('move c01 back to sh-b', [0]),
    servedBy({ cell: 'c01', zone: 'sz-a', after: 'move c01 to sz-a', edge: 'end', until: 'move c01 back to sh-b' }),
    servedBy({ cell: 'c01', zone: 'sh-b', after: 'move c01 back to sh-b', edge: 'end' }),
  ],
});
