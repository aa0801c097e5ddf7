// Someone writes garbage into the routing-table key (bypassing cellctl): first bytes that
// are not JSON, then JSON that is not a valid table. Every gateway must reject both, keep
// routing with its last good table (no request fails) and count the rejections; `cellctl
// status` must refuse to report a corrupt table as fine. After the table is restored, a
// planned move works and everybody converges.
import { cellctlExit, corruptTableRejected, standardInvariants, zeroFailed } from '../invariants';
import { defineScenario } from '../scenario';
import { at, cellctl, restoreLastGoodTable, writeTable } from '../steps';

export default defineScenario({
  name: 'corrupted-table',
  title: 'Corrupted routing table written into etcd',
  description: 'Raw writes into the table key: truncated JSON, then a table whose cells point at a zone that does not exist. Gateways reject both and keep routing; `cellctl status` fails loudly; the last good table is restored and a planned move converges.',
  quick: true,
  load: { mode: 'rate', ratePerSec: 200 },
  durationMs: 14_000,
  timeline: [
    at(2_500, writeTable('write truncated JSON', (t) => JSON.stringify(t).slice(0, 200))),
    at(4_000, writeTable('write a table naming a missing zone', (t) => ({ ...t, cells: t.cells.map((c, i) => (i === 0 ? { ...c, zone: 'atlantis' } : c)) }))),
    at(4_300, cellctl(['status'], { label: 'status while corrupt', kind: 'mark' })),
    at(6_000, restoreLastGoodTable(), { waitFor: 'status while corrupt' }),
    at(8_000, cellctl(['cell', 'move', 'c07', 'sh-a'], { label: 'move c07 after repair' }), { waitFor: 'restore last good table' }),
  ],
  invariants: [
    ...standardInvariants(),
    zeroFailed(),
    corruptTableRejected(),
    cellctlExit('status while corrupt', [1, 3], 'INVALID_TABLE'),
    cellctlExit('move c07 after repair', [0]),
  ],
});
