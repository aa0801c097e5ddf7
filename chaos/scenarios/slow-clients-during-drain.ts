// Slow clients vs a drain (issue 9): slow downloads and long polls are open on every cell
// of hz-a when it is drained. In-flight requests of a freezing cell get the gateway's grace
// (freeze.inflightGraceMs), then what is left is cut and the freeze acknowledged, so the
// drain completes within the freeze window + grace + margin. Nothing else fails; no slow
// response keeps streaming from hz-a after its cell's flip.
import { tableFromTopologyText } from '../../src/cells/topology';
import {
  cellctlExit, finalTable, standardInvariants, zeroFailed,
} from '../invariants';
import { cellctlWithin, noClientPastDeadline } from '../invariants-clients';
import { noSlowResponseAfterFlip, slowCutOnlyAfterGrace } from '../invariants-moves';
import { FREEZE_MS, INFLIGHT_GRACE_MS } from '../moves';
import { defineScenario } from '../scenario';
import { at, cellctl } from '../steps';
import { DEFAULT_TOPOLOGY, topologyYaml } from '../topology';

/** The cells hz-a serves in the harness's table (homes are spread deterministically by capacity). */
const HZ_CELLS = tableFromTopologyText(topologyYaml(DEFAULT_TOPOLOGY, new Map(DEFAULT_TOPOLOGY.zones.map((z) => [z.name, ['http://127.0.0.1:1']]))))
  .cells.filter((c) => c.zone === 'hz-a').map((c) => c.name);
const DOWNLOADS = HZ_CELLS.flatMap((c) => [`dl-${c}-a`, `dl-${c}-b`]);
const POLLS = HZ_CELLS.map((c) => `poll-${c}`);
const PINNED = Object.fromEntries([...DOWNLOADS.map((u) => [u, u.split('-')[1]]), ...POLLS.map((u) => [u, u.split('-')[1]])]);

export default defineScenario({
  name: 'slow-clients-during-drain',
  title: 'Slow downloads and long polls while their zone is drained',
  description: `Two slow downloads (14 s, a chunk every 200 ms) and a long poll (12 s) open on each of hz-a's ${HZ_CELLS.length} cells, again and again, under closed-loop load; \`cellctl zone drain hz-a\`. The drain completes within the freeze window + grace + 2 s; only slow requests in flight at their cell's freeze fail, and not before the grace; no slow response streams from hz-a after the flip.`,
  quick: false,
  // Long polls must outlive the freeze's grace; the gateway's upstream timeout is set for them
  // as it would be on a long-poll route. A frozen revision is acknowledged after the grace.
  topology: { overrides: PINNED, gateway: { requestTimeoutMs: 20_000 } },
  convergeBoundMs: INFLIGHT_GRACE_MS + 3_000,
  load: { mode: 'closed', workers: 20, thinkMs: 80 },
  clients: [
    // Longer than the freeze window: without the grace they would veto the drain.
    // (None starts after 8 s, so that the run does not wait long for the last ones.)
    { kind: 'slow-download', users: DOWNLOADS, lengthMs: 14_000, chunkMs: 200, deadlineMs: FREEZE_MS + 2_000, untilMs: 8_000 },
    { kind: 'long-poll', users: POLLS, lengthMs: 12_000, deadlineMs: FREEZE_MS + 2_000, untilMs: 8_000 },
  ],
  durationMs: 14_000,
  timeline: [
    at(3_000, cellctl(['zone', 'drain', 'hz-a'], { label: 'drain hz-a' })),
  ],
  invariants: [
    ...standardInvariants(),
    zeroFailed(),
    cellctlExit('drain hz-a', [0]),
    cellctlWithin('drain hz-a', FREEZE_MS + INFLIGHT_GRACE_MS + 2_000),
    slowCutOnlyAfterGrace(INFLIGHT_GRACE_MS),
    noSlowResponseAfterFlip(),
    noClientPastDeadline({ loadDeadlineMs: FREEZE_MS + DEFAULT_TOPOLOGY.gateway.requestTimeoutMs + 1_000 }),
    finalTable('no cell on hz-a', (t) => {
      const left = [...t.cells, t.global].filter((c) => c.zone === 'hz-a');
      return left.length ? `${left.length} cells still on hz-a: ${left.map((c) => c.name).join(', ')}` : null;
    }),
  ],
});
