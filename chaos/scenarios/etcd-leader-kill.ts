// The control plane loses its leader under load, then an operator drains a zone while only
// two of three etcd members run. Routing never depends on etcd: no request fails; the
// drain completes once a new leader is elected; the gateways converge; the member rejoins.
import { cellctlExit, noCellOnDownZone, standardInvariants, zeroFailed } from '../invariants';
import { defineScenario } from '../scenario';
import { at, cellctl, killEtcdLeader, restartKilledEtcd } from '../steps';

export default defineScenario({
  name: 'etcd-leader-kill',
  title: 'etcd leader killed, then a planned drain on the surviving quorum',
  description: 'kill -9 the etcd leader under load; 1.5 s later `cellctl zone drain hz-a` runs against the two surviving members; the killed member is restarted later. No request may fail and every gateway must follow every change.',
  quick: true,
  load: { mode: 'rate', ratePerSec: 200 },
  durationMs: 13_000,
  timeline: [
    at(2_500, killEtcdLeader()),
    at(4_000, cellctl(['zone', 'drain', 'hz-a'], { label: 'drain hz-a' })),
    at(9_000, restartKilledEtcd()),
  ],
  invariants: [
    ...standardInvariants(),
    zeroFailed(),
    cellctlExit('drain hz-a', [0]),
    noCellOnDownZone(),
  ],
});
