// The failover executor: applies a plan to the store with compare-and-swap, never over
// another operator's change, and proves that every live gateway followed.
//
// Unplanned plans flip in one CAS. Planned plans use the freeze protocol (docs/design.md §2):
//   1. CAS: moving cells frozen (deadline now + freezeMs), still on their old zone;
//   2. wait until every live gateway applied that revision (they now hold the cells' requests);
//   3. CAS: flip zone + epoch and unfreeze, in one write;
//   4. wait until every live gateway applied it (held requests go to the new zone).
// Every write carries its history entry (the store writes both at once), so a crash at any
// point leaves no version without history. If this process dies between 1 and 3, the
// deadline passes and gateways resume the old zone by themselves. If gateways do not acknowledge the freeze in time, the freeze is
// withdrawn (the cells stay where they are) and the change fails as NOT_CONVERGED.
import type { RoutingTable, VersionedTable } from '../cells/types';
import { validateTable, withEpochHighWater } from '../cells/table';
import { cgError, isCellgateError, type CellgateError } from '../errors';
import type { ChangeNote, TableStore } from '../store/types';
import { laggards, PresenceTracker, type ConvergenceStatus } from './convergence';
import { enforceGuard, frozenTable, type Plan, type PlannerOptions } from './planner';

export type ExecutorEvent =
  | { type: 'plan'; plan: Plan; version: number }
  | { type: 'replan'; plan: Plan; version: number; reason: string }
  | { type: 'written'; phase: 'change' | 'freeze' | 'flip' | 'unfreeze'; version: number }
  | { type: 'converging'; phase: 'freeze' | 'change'; status: ConvergenceStatus };

export interface ExecuteOptions extends PlannerOptions {
  readonly store: TableStore;
  /** Makes the plan from the current table; called again after a conflict. */
  readonly makePlan: (table: RoutingTable) => Plan;
  readonly actor: string;
  readonly reason: string;
  /** How long cells stay frozen at most (gateways resume the old zone after it). */
  readonly freezeMs?: number;
  /** Bound of each convergence wait. */
  readonly convergeTimeoutMs?: number;
  /** Asked before writing (and again when a re-plan differs); false cancels. */
  readonly confirm?: (plan: Plan, replanned: boolean) => Promise<boolean>;
  readonly onEvent?: (e: ExecutorEvent) => void;
  readonly maxAttempts?: number;
  readonly now?: () => number;
  /**
   * Reads the table to plan on (default: the store's current table). `rollback` uses it to
   * plan over an invalid document: the last good table, at the invalid document's version.
   */
  readonly loadBase?: () => Promise<VersionedTable>;
  /** Write the plan's result even when it changes nothing (a repair of an invalid document). */
  readonly alwaysWrite?: boolean;
}

export interface ExecuteResult {
  readonly plans: readonly Plan[];
  readonly versionBefore: number;
  readonly versionAfter: number;
  readonly convergence: ConvergenceStatus | null;
  readonly cancelled: boolean;
}

const DEFAULT_FREEZE_MS = 8_000;
/** A version this change wrote, with the checksum the store computed for it. */
interface Written {
  readonly version: number;
  readonly checksum: string;
}
const DEFAULT_CONVERGE_TIMEOUT_MS = 10_000;
/** How long a change waits for its presence watch's first read before writing (presence.ready). */
const PRESENCE_READY_MS = 2_000;

function sameMoves(a: Plan, b: Plan): boolean {
  const key = (p: Plan) => JSON.stringify([p.moves.map((m) => [m.cell, m.to]), p.zoneStatus]);
  return key(a) === key(b);
}

/** Planned plans that move cells go through the freeze protocol; status-only changes need none. */
function usesFreeze(plan: Plan): boolean {
  return plan.kind === 'planned' && plan.moves.length > 0;
}

export function planIsEmpty(plan: Plan): boolean {
  return !plan.changed;
}

export async function mustLoad(store: TableStore): Promise<VersionedTable> {
  const vt = await store.load();
  if (!vt) throw cgError('NOT_INITIALIZED', `${store.description} holds no routing table (run cellctl init)`);
  return vt;
}

function cellZone(table: RoutingTable, cell: string): string | undefined {
  return (cell === table.global.name ? table.global : table.cells.find((c) => c.name === cell))?.zone;
}

function notConverged(status: ConvergenceStatus, what: string): CellgateError {
  const names = laggards(status);
  const live = status.gateways.length + status.malformed.length;
  return cgError('NOT_CONVERGED', `${status.behind.length + status.malformed.length} of ${live} gateway(s) did not apply ${what} revision ${status.version} in time: ${names.join(', ')}`, {
    detail: { behind: status.behind, malformed: status.malformed, version: status.version },
  });
}

type Phase = 'change' | 'freeze' | 'flip' | 'unfreeze';

/** What the history says about one write of `plan` (`written` = the table being written). */
function summaryOf(plan: Plan, phase: Phase, written: RoutingTable, frozenUntilMs = 0): string[] {
  const statuses = plan.zoneStatus.map((s) => `zone ${s.zone} ${s.from}->${s.to}`);
  const move = (m: Plan['moves'][number]) => `${m.cell} ${m.from}->${m.to} (${m.scope})`;
  switch (phase) {
    case 'change':
      return [...(plan.notes ?? []), ...statuses, ...plan.moves.map(move)];
    case 'freeze':
      return [`planned move, phase 1: ${plan.moves.length} cell(s) frozen until ${new Date(frozenUntilMs).toISOString()}`, ...(plan.notes ?? []), ...statuses, ...plan.moves.map((m) => `${move(m)} frozen`)];
    case 'flip':
      // Only the moves that took effect: another change may have cancelled some planned ones.
      return ['planned move, phase 2: flip', ...plan.moves.filter((m) => cellZone(written, m.cell) === m.to).map(move)];
    case 'unfreeze':
      return ['planned move withdrawn: the freeze is lifted, the cells stay where they were'];
    default: {
      const never: never = phase;
      return [String(never)];
    }
  }
}

/**
 * The current table with our frozen cells flipped to their targets (cells others changed are left alone).
 * Throws CONFLICT when another change cancelled every one of our moves: there is nothing to flip,
 * and reporting (and recording) the change as done would be a lie.
 */
function flipFrozen(current: RoutingTable, plan: Plan, flipBeforeMs: number): RoutingTable {
  const ours = new Map(plan.moves.map((m) => [m.cell, m.to]));
  const homes = new Map(plan.moves.map((m) => [m.cell, m.homeAfter]));
  let flipped = 0;
  const flip = <C extends RoutingTable['cells'][number]>(c: C): C => {
    if (c.state !== 'frozen' || ours.get(c.name) !== c.movingTo || c.movingTo === undefined) return c;
    // Past (or too near) the deadline, gateways resume the old zone by themselves: a flip now
    // would have two zones serving the cell. The freeze is withdrawn instead.
    if ((c.frozenUntilMs ?? 0) <= flipBeforeMs) throw new FreezeExpired();
    flipped++;
    // A rebalance moves the home with the flip: a withdrawn freeze leaves the home untouched.
    return { name: c.name, home: homes.get(c.name) ?? c.home, zone: c.movingTo, epoch: c.epoch + 1, state: 'active' } as C;
  };
  const next = validateTable(withEpochHighWater({ ...current, cells: current.cells.map(flip), global: flip(current.global) }));
  if (flipped === 0) {
    throw cgError('CONFLICT', `another change cancelled this planned move before the flip (${[...ours.keys()].slice(0, 8).join(', ')}${ours.size > 8 ? ', …' : ''} no longer frozen for it): nothing flipped`);
  }
  return next;
}

/** The freeze deadline is (nearly) over before the flip could be written. */
class FreezeExpired extends Error {}

/**
 * The current table with our frozen cells back to active on their old zone, and the zone
 * statuses the freeze set (a drain's 'draining') back as they were, unless someone changed
 * them since: a withdrawn freeze leaves the table as the change found it. A zone is never set
 * back to `down` while cells are active on it (someone may have moved one there meanwhile).
 */
function unfreeze(current: RoutingTable, plan: Plan): RoutingTable {
  const ours = new Map(plan.moves.map((m) => [m.cell, m.to]));
  const thaw = <C extends RoutingTable['cells'][number]>(c: C): C => (c.state === 'frozen' && ours.get(c.name) === c.movingTo
    ? ({ name: c.name, home: c.home, zone: c.zone, epoch: c.epoch, state: 'active' } as C) : c);
  const setByUs = new Map(plan.zoneStatus.map((s) => [s.zone, s]));
  const zones = current.zones.map((z) => {
    const s = setByUs.get(z.name);
    if (!s || z.status !== s.to) return z;
    const occupied = [...current.cells, current.global].some((c) => c.zone === z.name && !ours.has(c.name));
    return s.from === 'down' && occupied ? z : { ...z, status: s.from };
  });
  return validateTable({ ...current, zones, cells: current.cells.map(thaw), global: thaw(current.global) });
}

export class FailoverExecutor {
  private readonly now: () => number;

  constructor(private readonly opts: ExecuteOptions) {
    this.now = opts.now ?? Date.now;
  }

  /** Plans, confirms and writes one plan (re-planning after conflicts); returns the plan, base and new version. */
  private async writeFirstPhase(): Promise<{ plan: Plan; base: VersionedTable; written: Written } | null> {
    const { store, makePlan, confirm, onEvent } = this.opts;
    let confirmed: Plan | null = null;
    for (let attempt = 0; attempt < (this.opts.maxAttempts ?? 5); attempt++) {
      const base = await (this.opts.loadBase ?? (() => mustLoad(store)))();
      const plan = makePlan(base.table);
      enforceGuard(plan, this.opts);
      onEvent?.(confirmed ? { type: 'replan', plan, version: base.version, reason: 'the table changed meanwhile' } : { type: 'plan', plan, version: base.version });
      if (planIsEmpty(plan) && !this.opts.alwaysWrite) return { plan, base, written: { version: base.version, checksum: base.checksum } };
      if (confirm && (!confirmed || !sameMoves(confirmed, plan)) && !(await confirm(plan, confirmed !== null))) return null;
      confirmed = plan;
      const frozenUntilMs = this.now() + (this.opts.freezeMs ?? DEFAULT_FREEZE_MS);
      const phase = usesFreeze(plan) ? 'freeze' : 'change';
      const next = phase === 'freeze' ? frozenTable(base.table, plan, frozenUntilMs) : plan.result;
      const cas = await store.compareAndSwap(base.version, next, this.note(plan, phase, next, frozenUntilMs));
      if (cas.ok) {
        onEvent?.({ type: 'written', phase, version: cas.version });
        return { plan, base, written: { version: cas.version, checksum: cas.checksum } };
      }
    }
    throw cgError('CONFLICT', 'the routing table kept changing under this change; nothing was written');
  }

  private note(plan: Plan, phase: Phase, written: RoutingTable, frozenUntilMs?: number): ChangeNote {
    return { actor: this.opts.actor, at: new Date(this.now()).toISOString(), reason: this.opts.reason, action: plan.action, summary: summaryOf(plan, phase, written, frozenUntilMs) };
  }

  /** Writes `update(current)` with CAS, re-reading on conflict (our frozen cells are ours alone). */
  private async casLoop(plan: Plan, update: (t: RoutingTable) => RoutingTable, phase: 'flip' | 'unfreeze'): Promise<Written> {
    for (let attempt = 0; attempt < (this.opts.maxAttempts ?? 5); attempt++) {
      const current = await mustLoad(this.opts.store);
      const next = update(current.table);
      const cas = await this.opts.store.compareAndSwap(current.version, next, this.note(plan, phase, next));
      if (cas.ok) {
        this.opts.onEvent?.({ type: 'written', phase, version: cas.version });
        return { version: cas.version, checksum: cas.checksum };
      }
    }
    throw cgError('CONFLICT', `could not ${phase} the moving cells: the table kept changing`);
  }

  private converge(tracker: PresenceTracker, { version, checksum }: Written, phase: 'freeze' | 'change', timeoutMs: number): Promise<ConvergenceStatus> {
    return tracker.waitFor(version, checksum, {
      timeoutMs,
      onProgress: (status) => this.opts.onEvent?.({ type: 'converging', phase, status }),
    });
  }

  /** Runs one plan to the end. Throws NOT_CONVERGED (exit 4) when gateways did not follow. */
  async runOnce(): Promise<ExecuteResult> {
    // Watching presence from before the first write: the waits below find every record
    // already read, instead of reading them all while the gateways apply the change.
    const tracker = new PresenceTracker(this.opts.store.presence);
    try {
      return await this.runWith(tracker);
    } finally {
      await tracker.close();
    }
  }

  private async runWith(tracker: PresenceTracker): Promise<ExecuteResult> {
    // Not a condition of the change, only of its speed: a store slow to answer delays the write by at most this.
    await tracker.ready(PRESENCE_READY_MS);
    const first = await this.writeFirstPhase();
    if (!first) return { plans: [], versionBefore: 0, versionAfter: 0, convergence: null, cancelled: true };
    const { plan, base } = first;
    if (first.written.version === base.version) return { plans: [plan], versionBefore: base.version, versionAfter: base.version, convergence: null, cancelled: false };
    const timeoutMs = this.opts.convergeTimeoutMs ?? DEFAULT_CONVERGE_TIMEOUT_MS;
    let written = first.written;
    if (usesFreeze(plan)) {
      // Leave time before the deadline for the flip itself (at most half of a short freeze,
      // or a freeze of 1 s or less would leave no time at all to wait for the gateways).
      const freezeMs = this.opts.freezeMs ?? DEFAULT_FREEZE_MS;
      const freezeBudget = Math.min(timeoutMs, freezeMs - Math.min(1_000, freezeMs / 2));
      const frozen = await this.converge(tracker, written, 'freeze', freezeBudget).catch((err: unknown) => {
        if (isCellgateError(err, 'STORE_UNAVAILABLE')) return err;
        throw err;
      });
      if (!('converged' in frozen) || !frozen.converged) await this.withdraw(plan, frozen, written.version);
      // The flip must reach the gateways before the deadline: keep a margin for that.
      const flipMarginMs = Math.min(500, freezeMs / 4);
      try {
        written = await this.casLoop(plan, (t) => flipFrozen(t, plan, this.now() + flipMarginMs), 'flip');
      } catch (err) {
        if (!(err instanceof FreezeExpired)) throw err;
        await this.casLoop(plan, (t) => unfreeze(t, plan), 'unfreeze');
        throw cgError('NOT_CONVERGED', 'the freeze deadline passed before the flip could be written; the freeze was withdrawn and the cells stay where they were');
      }
    }
    const done = await this.converge(tracker, written, 'change', timeoutMs);
    if (!done.converged) throw notConverged(done, 'the change at');
    return { plans: [plan], versionBefore: base.version, versionAfter: written.version, convergence: done, cancelled: false };
  }

  /**
   * The gateways were not seen holding the frozen cells (some did not follow, or presence
   * could not be read at all): the freeze is withdrawn, and the error says what was seen.
   */
  private async withdraw(plan: Plan, frozen: ConvergenceStatus | CellgateError, version: number): Promise<never> {
    const why = 'converged' in frozen ? notConverged(frozen, 'the freeze of')
      : cgError('NOT_CONVERGED', `could not read the gateways' presence to see them hold the frozen cells of revision ${version} (${frozen.message})`);
    try {
      await this.casLoop(plan, (t) => unfreeze(t, plan), 'unfreeze');
    } catch (err) {
      throw cgError('NOT_CONVERGED', `${why.message}; the freeze could not be withdrawn either (${(err as Error).message}): gateways resume the old zone at its deadline`, { cause: err, detail: (why as CellgateError).detail });
    }
    throw why;
  }

  /** Runs plans until nothing remains (batched failback); one plan otherwise. */
  async run(): Promise<ExecuteResult> {
    const plans: Plan[] = [];
    let result = await this.runOnce();
    plans.push(...result.plans);
    const versionBefore = result.versionBefore;
    while (!result.cancelled && result.plans[0] && result.plans[0].remaining > 0 && !planIsEmpty(result.plans[0])) {
      result = await this.runOnce();
      plans.push(...result.plans);
    }
    return { ...result, plans, versionBefore };
  }
}
