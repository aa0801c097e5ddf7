// Invariants of presence through a relay (issue 15), judged from the presence events the
// recorder saw in etcd: each gateway's own record (`via: 'direct'`) and the one a relay
// wrote for it (`via: 'relayed'`). A planned move's revisions are proven by presence; these
// say which kind of record proved them — the relay's while it lived, the gateway's own once
// it was killed, the relay's again once it was back.
import { stepByLabel, validTables } from './analysis';
import type { PresenceEvent, PresenceVia } from './recorder';
import type { Invariant, RunData } from './scenario';
import type { StepOutcome } from './steps';

const ms = (a: number, b: number) => `${Math.round(a - b)} ms`;

/** The live record of kind `via` of gateway `id` at time t (null: none, or deleted). */
function liveAt(run: RunData, id: string, via: PresenceVia, t: number): PresenceEvent | null {
  let last: PresenceEvent | null = null;
  for (const p of run.presence) if (p.id === id && p.via === via && p.t <= t) last = p;
  return last && !last.deleted ? last : null;
}

/** The first record of kind `via` of `id` proving `version` (or later), seen in [from, to]. */
function proofOf(run: RunData, id: string, via: PresenceVia, version: number, from: number, to: number): PresenceEvent | null {
  return run.presence.find((p) => p.id === id && p.via === via && !p.deleted && p.appliedVersion >= version && p.t >= from && p.t <= to) ?? null;
}

/** The revision a cellctl step ended on (its flip), or an explanation of why there is none. */
function flipOf(step: StepOutcome): number | string {
  if (!step.cellctl) return `step "${step.label}" did not run cellctl`;
  return step.cellctl.versionAfter ?? `cellctl "${step.label}" reported no versionAfter (exit ${step.cellctl.code})`;
}

/** The first revision written after `from` (and up to `flip`) that shows `cell` frozen. */
function freezeOf(run: RunData, cell: string, from: number, flip: number): number | null {
  const e = validTables(run).find((x) => x.t >= from && x.version < flip && x.table.cells.some((c) => c.name === cell && c.state === 'frozen'));
  return e?.version ?? null;
}

const describe = (p: PresenceEvent | null) => (p ? `r${p.appliedVersion}` : 'none');

/**
 * Every gateway was on the relay alone when it was killed (a relayed record, none of its
 * own); each proved the move's freeze (through the relay or by its own record) before the
 * flip was written, and the flip by its own record, written after the kill; the dead relay
 * proved nothing newer than the freeze.
 */
export const presenceFellBack = (o: { kill: string; move: string; cell: string; restart: string }): Invariant => ({
  name: `gateways relayed until "${o.kill}", then proved "${o.move}" by their own records`,
  check(run) {
    const kill = stepByLabel(run, o.kill);
    const move = stepByLabel(run, o.move);
    const restart = stepByLabel(run, o.restart);
    const flip = flipOf(move);
    if (typeof flip === 'string') return { passed: false, detail: flip };
    const freeze = freezeOf(run, o.cell, move.t0, flip);
    const flippedAt = validTables(run).find((e) => e.version === flip)?.t ?? null;
    const problems: string[] = [];
    if (freeze === null || flippedAt === null) problems.push(`no freeze of ${o.cell} or no flip r${flip} recorded`);
    const notes: string[] = [];
    for (const id of run.gatewayIds) {
      const relayed = liveAt(run, id, 'relayed', kill.t0);
      const own = liveAt(run, id, 'direct', kill.t0);
      if (!relayed || own) problems.push(`${id} at the kill: relayed ${describe(relayed)}, own ${describe(own)}`);
      const direct = proofOf(run, id, 'direct', flip, kill.t0, restart.t0);
      if (!direct) problems.push(`${id} wrote no record of its own proving r${flip} between the kill and the restart`);
      const ghost = proofOf(run, id, 'relayed', flip, 0, restart.t0);
      if (ghost) problems.push(`${id}: a relayed record proved r${flip} ${ms(ghost.t, kill.t0)} after the relay was killed`);
      const firstOwn = run.presence.find((p) => p.id === id && p.via === 'direct' && !p.deleted && p.t >= kill.t0);
      const before = flippedAt ?? Number.NEGATIVE_INFINITY;
      const freezeVia = freeze === null ? 'none' : proofOf(run, id, 'relayed', freeze, move.t0, before) ? 'relay' : proofOf(run, id, 'direct', freeze, move.t0, before) ? 'own' : 'none';
      if (freezeVia === 'none') problems.push(`${id} proved the freeze r${freeze ?? '?'} by no record before the flip was written`);
      notes.push(`${id}: own record ${firstOwn ? `${ms(firstOwn.t, kill.t0)} after the kill` : 'never'}, freeze r${freeze ?? '?'} proven by ${freezeVia}, flip r${flip} by ${direct ? 'own' : 'none'}`);
    }
    return { passed: problems.length === 0, detail: [...problems, ...notes].join('; ') };
  },
});

/**
 * After the relay's restart every gateway went back to it: its own record withdrawn (after
 * the relay committed), and the next move's flip proven by relayed records only.
 */
export const presenceBackOnRelay = (o: { restart: string; move: string }): Invariant => ({
  name: `gateways back on the relay after "${o.restart}", "${o.move}" proven through it`,
  check(run) {
    const restart = stepByLabel(run, o.restart);
    const move = stepByLabel(run, o.move);
    const flip = flipOf(move);
    if (typeof flip === 'string') return { passed: false, detail: flip };
    const problems: string[] = [];
    const notes: string[] = [];
    for (const id of run.gatewayIds) {
      const withdrawn = run.presence.find((p) => p.id === id && p.via === 'direct' && p.deleted && p.t >= restart.t0 && p.t <= move.t0);
      if (!withdrawn) problems.push(`${id} did not withdraw its own record between the restart and "${o.move}"`);
      const own = liveAt(run, id, 'direct', move.t0);
      if (own) problems.push(`${id} still had its own record (r${own.appliedVersion}) when "${o.move}" began`);
      const relayed = proofOf(run, id, 'relayed', flip, move.t0, Number.POSITIVE_INFINITY);
      if (!relayed) problems.push(`no relayed record of ${id} proved r${flip}`);
      const direct = proofOf(run, id, 'direct', flip, 0, Number.POSITIVE_INFINITY);
      if (direct) problems.push(`${id} proved r${flip} by a record of its own`);
      notes.push(`${id}: own record withdrawn ${withdrawn ? `${ms(withdrawn.t, restart.t0)} after the restart began` : 'never'}, flip r${flip} by ${relayed ? 'relay' : 'none'}`);
    }
    return { passed: problems.length === 0, detail: [...problems, ...notes].join('; ') };
  },
});

/** The cellctl step's JSON says it converged and names every gateway of the run on its revision. */
export const cellctlSawEveryGateway = (label: string): Invariant => ({
  name: `cellctl "${label}" saw every gateway on its revision`,
  check(run) {
    const c = stepByLabel(run, label).cellctl;
    const json = (c?.json ?? null) as { converged?: unknown; gatewaysOnRevision?: unknown } | null;
    const on = Array.isArray(json?.gatewaysOnRevision) ? (json.gatewaysOnRevision as unknown[]).map(String) : [];
    const missing = run.gatewayIds.filter((id) => !on.includes(id));
    return {
      passed: json?.converged === true && missing.length === 0,
      detail: `converged ${String(json?.converged)}; on its revision: ${on.join(', ') || 'none'}${missing.length ? `; missing ${missing.join(', ')}` : ''}`,
    };
  },
});

/**
 * Once every gateway was back on the restarted relay (the `back` step), its relayed record
 * is on the live relay's lease: the killed relay's lease expiring must not take it (none
 * deleted from then on), and every one is live at the end. Records still on the dead lease
 * before the gateways came back may go with it: they are put again.
 */
export const relayedOutliveDeadLease = (o: { back: string; expired: string }): Invariant => ({
  name: `relayed records outlive the killed relay's lease ("${o.expired}")`,
  check(run) {
    const back = stepByLabel(run, o.back);
    const expired = stepByLabel(run, o.expired);
    const problems: string[] = [];
    if (!expired.ok || expired.t1 > run.tLoadEnd) problems.push(`the lease was not seen expiring before the end of the load (${expired.detail})`);
    for (const id of run.gatewayIds) {
      const deleted = run.presence.find((p) => p.id === id && p.via === 'relayed' && p.deleted && p.t >= back.t1);
      if (deleted) problems.push(`${id}'s relayed record deleted ${ms(deleted.t, back.t1)} after "${o.back}" (the lease expired ${ms(expired.t1, back.t1)} after it)`);
      if (!liveAt(run, id, 'relayed', run.tLoadEnd)) problems.push(`${id} has no relayed record at the end`);
    }
    const order = expired.t1 >= back.t1 ? `${ms(expired.t1, back.t1)} after` : `${ms(back.t1, expired.t1)} before`;
    return {
      passed: problems.length === 0,
      detail: problems.length ? problems.join('; ') : `${run.gatewayIds.length} relayed records live at the end, none deleted once the gateways were back; the lease expired ${order} "${o.back}" ended; ${expired.detail}`,
    };
  },
});
