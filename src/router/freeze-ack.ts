// The freeze acknowledgement. cellctl flips a frozen cell only after every gateway has
// published (presence) that it applied the freezing table, so a gateway publishes a table
// that freezes cells only once no plain request of those cells is still with an upstream
// (new ones are held already). A request may not veto a move: it gets a bounded grace
// (`freeze.inflightGraceMs`), and what is left when the grace ends is cut, counted by kind,
// and the table acknowledged. Event-driven: the per-cell request registry calls back at zero.
//
// The grace of a cell is fixed when its freeze (cell, deadline) is first seen, so tables
// that arrive meanwhile do not extend it, and clamped to a quarter of the freeze window
// still left: the rest is for the acknowledgement to reach cellctl and for the flip (the
// executor waits for acknowledgements until 1 s, or half a short window, before the deadline).
import type { VersionedTable } from '../cells/types';
import type { CellRequests, CutKind } from './cell-requests';
import type { Clock, TimerHandle } from '../clock';

export interface FreezeAckOptions {
  readonly clock: Clock;
  readonly requests: CellRequests;
  readonly inflightGraceMs: number;
  /** Publishes `version` as applied (presence). */
  readonly publish: (version: number, checksum: string) => void;
  /** Requests cut when a grace ended. */
  readonly onCut: (counts: Record<CutKind, number>) => void;
}

/** The grace a freeze seen at `nowMs` with deadline `frozenUntilMs` gets. */
export function clampedGraceMs(inflightGraceMs: number, nowMs: number, frozenUntilMs: number): number {
  return Math.max(0, Math.min(inflightGraceMs, Math.floor((frozenUntilMs - nowMs) / 4)));
}

interface Wait {
  readonly vt: VersionedTable;
  readonly cells: readonly string[];
  cancelIdle: () => void;
  timer: TimerHandle | null;
}

export class FreezeAcknowledger {
  private readonly o: FreezeAckOptions;
  /** Per frozen cell: the deadline of its freeze and when its grace ends. */
  private readonly graces = new Map<string, { frozenUntilMs: number; graceEndsMs: number }>();
  private wait: Wait | null = null;

  constructor(options: FreezeAckOptions) {
    this.o = options;
  }

  /** Whether an acknowledgement is waiting for requests to finish. */
  get waiting(): boolean {
    return this.wait !== null;
  }

  /** `vt` was applied: acknowledge it now, or once its frozen cells' requests are done. A newer table supersedes the wait. */
  tableApplied(vt: VersionedTable): void {
    this.cancel();
    const now = this.o.clock.now();
    const frozen = [...vt.table.cells, vt.table.global].filter((c) => c.state === 'frozen' && (c.frozenUntilMs ?? 0) > now);
    const graces = new Map<string, { frozenUntilMs: number; graceEndsMs: number }>();
    for (const c of frozen) {
      const until = c.frozenUntilMs as number;
      const known = this.graces.get(c.name);
      graces.set(c.name, known && known.frozenUntilMs === until ? known : { frozenUntilMs: until, graceEndsMs: now + clampedGraceMs(this.o.inflightGraceMs, now, until) });
    }
    this.graces.clear();
    for (const [k, v] of graces) this.graces.set(k, v);
    const cells = frozen.map((c) => c.name);
    if (this.o.requests.idle(cells)) return this.o.publish(vt.version, vt.checksum);
    const wait: Wait = { vt, cells, cancelIdle: () => undefined, timer: null };
    this.wait = wait;
    wait.cancelIdle = this.o.requests.whenIdle(cells, () => this.finish(wait));
    const graceEndsMs = Math.min(...cells.map((c) => (graces.get(c) as { graceEndsMs: number }).graceEndsMs));
    wait.timer = this.o.clock.setTimer(() => this.graceOver(wait), graceEndsMs - now);
  }

  /** Drops a pending acknowledgement (shutdown). */
  cancel(): void {
    const w = this.wait;
    this.wait = null;
    if (!w) return;
    w.cancelIdle();
    if (w.timer) this.o.clock.clearTimer(w.timer);
    w.timer = null;
  }

  private finish(wait: Wait): void {
    if (this.wait !== wait) return;
    this.cancel();
    this.o.publish(wait.vt.version, wait.vt.checksum);
  }

  /** The grace is over: cut what is left; the acknowledgement follows when their responses have closed. */
  private graceOver(wait: Wait): void {
    if (this.wait !== wait) return;
    wait.timer = null;
    this.o.onCut(this.o.requests.cut(wait.cells));
    if (this.wait !== wait) return; // the cut emptied the cells synchronously: already acknowledged
    // A cut response closes on the next turn of the event loop; should one not, the freeze
    // deadline still bounds the wait (the acknowledgement is then moot but harmless).
    const now = this.o.clock.now();
    const deadline = Math.min(...wait.cells.map((c) => this.graces.get(c)?.frozenUntilMs ?? now));
    wait.timer = this.o.clock.setTimer(() => this.finish(wait), Math.max(0, deadline - now));
  }
}
