// Two operators change the table at the same moment: one drains hz-a, the other moves c03.
// The executor's compare-and-swap must never overwrite the other's change: both succeed
// (one re-plans after the conflict) or one is refused — and every change reported done is
// in the final table and in the history. Planned changes: no request fails.
import { stepByLabel } from '../analysis';
import { cellctlExit, finalTable, standardInvariants, zeroFailed } from '../invariants';
import { defineScenario, type Invariant } from '../scenario';
import { at, cellctl } from '../steps';

const DRAIN = 'operator A: drain hz-a';
const MOVE = 'operator B: move c03 to sh-b';

const historyHasBoth: Invariant = {
  name: 'history records every change reported done',
  check(run) {
    const h = stepByLabel(run, 'history').cellctl;
    const text = typeof h?.json === 'string' ? h.json : JSON.stringify(h?.json ?? '');
    const missing = [DRAIN, MOVE].filter((label) => stepByLabel(run, label).cellctl?.code === 0 && !text.includes(`chaos/${label}`));
    return { passed: h?.code === 0 && missing.length === 0, detail: missing.length ? `no history entry by ${missing.join(', ')}` : `history lists ${text.split('\n').filter(Boolean).length} entries, including every successful operator` };
  },
};

export default defineScenario({
  name: 'two-operators',
  title: 'Two operators at once',
  description: `"${DRAIN}" and "${MOVE}" start at the same instant. Neither may overwrite the other: every change that reports success is in the final table and the history; at least one succeeds; no request fails.`,
  quick: false,
  load: { mode: 'rate', ratePerSec: 200 },
  durationMs: 12_000,
  timeline: [
    at(3_000, cellctl(['zone', 'drain', 'hz-a'], { label: DRAIN })),
    at(3_000, cellctl(['cell', 'move', 'c03', 'sh-b'], { label: MOVE })),
    at(8_000, cellctl(['history'], { label: 'history', kind: 'mark' }), { waitFor: [DRAIN, MOVE] }),
  ],
  invariants: [
    ...standardInvariants(),
    zeroFailed(),
    cellctlExit(DRAIN, [0, 3]),
    cellctlExit(MOVE, [0, 3]),
    finalTable('every change reported done is in the table', (t, run) => {
      const drained = stepByLabel(run, DRAIN).cellctl?.code === 0;
      const moved = stepByLabel(run, MOVE).cellctl?.code === 0;
      if (!drained && !moved) return 'neither operator succeeded';
      const problems: string[] = [];
      if (drained && t.cells.some((c) => c.zone === 'hz-a')) problems.push('drain reported done but cells remain on hz-a');
      if (moved && t.cells.find((c) => c.name === 'c03')?.zone !== 'sh-b') problems.push('move reported done but c03 is not on sh-b');
      return problems.length ? problems.join('; ') : null;
    }),
    historyHasBoth,
  ],
});
