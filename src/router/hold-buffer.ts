// The hold buffer for frozen cells (a planned move in progress), after Vitess's
// vtgate/buffer: requests for a frozen cell wait here until a newer table unfreezes the cell
// (they go to its new zone), until the freeze deadline passes (they resume to the old zone:
// the operator that froze the cell may have died), or until they have waited `windowMs`
// (504 BUFFER_TIMEOUT). The buffer holds at most `maxRequests`; a new request arriving when
// it is full evicts the OLDEST held one (504 BUFFER_TIMEOUT) first. Held bodies are bounded
// in bytes too: each request's body by `maxBodyBytes` (413 BODY_TOO_LARGE as soon as it is
// crossed) and all of them together by `maxTotalBytes` (held-body.ts's ByteBudget; a request that
// does not fit is refused 503 ZONE_OVERLOADED — it never pushes an older one out).
//
// Each held request is a tiny state machine: `holding` and four terminal states. Every
// (state, input) pair is decided in `transition`, an exhaustive switch; late inputs to a
// settled request (the client hanging up after its release, say) are ignored there.
//
// Counters (every request that entered is accounted for exactly once):
//   held = released + evicted.overflow + evicted.bodyTooLarge + evicted.shutdown + evicted.budget
//          + timedOut + aborted + size (still holding)
// and, by the outcome names of the metric (`outcomeCounts`):
//   held = released + evicted + timeout + tooLarge + clientGone + overflow + shutdown + size
import type { Route } from '../cells/lookup';
import type { ErrorName } from '../errors';
import { ByteBudget } from './held-body';
import type { Clock, TimerHandle } from '../clock';

export type HeldState = 'holding' | 'released' | 'evicted' | 'timedOut' | 'aborted';
/**
 * Why a held request left without being released: `overflow` — pushed out as the oldest when
 * `maxRequests` were held; `bodyTooLarge` — its body is over `maxBodyBytes`; `shutdown`;
 * `budget` — its body does not fit in `maxTotalBytes` (refused, nothing else is evicted).
 */
export const EVICT_REASONS = ['overflow', 'bodyTooLarge', 'shutdown', 'budget'] as const;
export type EvictReason = (typeof EVICT_REASONS)[number];

/** The answer a held request gets when it is evicted for `reason`. */
export type RejectError = Extract<ErrorName, 'BUFFER_TIMEOUT' | 'BODY_TOO_LARGE' | 'ZONE_OVERLOADED'>;

export function rejectErrorOf(reason: EvictReason | 'window'): RejectError {
  switch (reason) {
    case 'window':
    case 'overflow':
    case 'shutdown':
      return 'BUFFER_TIMEOUT';
    case 'bodyTooLarge':
      return 'BODY_TOO_LARGE';
    case 'budget':
      return 'ZONE_OVERLOADED';
    default:
      return unreachable(reason);
  }
}

export type HeldInput =
  /** A newer table, or the freeze deadline, gave the request this route (computed at `nowMs`). */
  | { readonly kind: 'rerouted'; readonly route: Route; readonly nowMs: number }
  | { readonly kind: 'windowElapsed' }
  | { readonly kind: 'evict'; readonly reason: EvictReason }
  | { readonly kind: 'clientGone' };

/** How a held request leaves the buffer. `release` carries the route to use (it may be an error route). */
export type Settlement =
  | { readonly kind: 'release'; readonly route: Route }
  | { readonly kind: 'reject'; readonly error: RejectError; readonly reason: EvictReason | 'window' }
  | { readonly kind: 'aborted' };

type Decision =
  | { readonly kind: 'ignore' }
  | { readonly kind: 'keep'; readonly frozenUntilMs: number }
  | { readonly kind: 'settle'; readonly next: Exclude<HeldState, 'holding'>; readonly settlement: Settlement };

const IGNORE: Decision = { kind: 'ignore' };

/** The one place where a held request's fate is decided. */
export function transition(state: HeldState, input: HeldInput): Decision {
  switch (state) {
    case 'holding':
      switch (input.kind) {
        case 'rerouted': {
          const r = input.route;
          // Still frozen with a deadline in the future (possibly a new one): keep holding.
          if (r.ok && r.frozenUntilMs !== null && r.frozenUntilMs > input.nowMs) return { kind: 'keep', frozenUntilMs: r.frozenUntilMs };
          return { kind: 'settle', next: 'released', settlement: { kind: 'release', route: r } };
        }
        case 'windowElapsed':
          return { kind: 'settle', next: 'timedOut', settlement: { kind: 'reject', error: 'BUFFER_TIMEOUT', reason: 'window' } };
        case 'evict':
          return { kind: 'settle', next: 'evicted', settlement: { kind: 'reject', error: rejectErrorOf(input.reason), reason: input.reason } };
        case 'clientGone':
          return { kind: 'settle', next: 'aborted', settlement: { kind: 'aborted' } };
        default:
          return unreachable(input);
      }
    case 'released':
    case 'evicted':
    case 'timedOut':
    case 'aborted':
      return IGNORE;
    default:
      return unreachable(state);
  }
}

function unreachable(x: never): never {
  throw new Error(`hold buffer: unhandled ${JSON.stringify(x)}`);
}

export interface HoldBufferOptions {
  readonly windowMs: number;
  readonly maxRequests: number;
  /** Most body bytes held at once (default: no limit). */
  readonly maxTotalBytes?: number;
  readonly clock: Clock;
}

/** The buffer's outcomes as the metric names them (a fixed list; see `outcomeCounts`). */
export const BUFFER_OUTCOMES = ['released', 'evicted', 'timeout', 'tooLarge', 'clientGone', 'overflow', 'shutdown'] as const;
export type BufferOutcome = (typeof BUFFER_OUTCOMES)[number];

/** The counters by outcome: `evicted` = pushed out as the oldest, `overflow` = refused for bytes. */
export function outcomeCounts(c: HoldCounters): Record<BufferOutcome, number> {
  return {
    released: c.released,
    evicted: c.evicted.overflow,
    timeout: c.timedOut,
    tooLarge: c.evicted.bodyTooLarge,
    clientGone: c.aborted,
    overflow: c.evicted.budget,
    shutdown: c.evicted.shutdown,
  };
}

export interface HoldCounters {
  held: number;
  released: number;
  evicted: Record<EvictReason, number>;
  timedOut: number;
  aborted: number;
}

/** What the caller keeps for one held request. */
export interface HeldTicket {
  readonly settled: Promise<Settlement>;
  /** The client went away (its body failed or its socket closed). */
  clientGone(): void;
  /** The request cannot be held (e.g. its body is too large to keep). */
  evict(reason: EvictReason): void;
}

interface Entry {
  state: HeldState;
  readonly heldAtMs: number;
  frozenUntilMs: number;
  readonly reroute: (nowMs: number) => Route;
  readonly resolve: (s: Settlement) => void;
}

export class HoldBuffer {
  private readonly options: HoldBufferOptions;
  /** Insertion order = age order: the first entry is the oldest. */
  private readonly entries = new Set<Entry>();
  private timer: TimerHandle | null = null;
  private timerDueMs = Infinity;
  readonly counters: HoldCounters = {
    held: 0, released: 0, evicted: { overflow: 0, bodyTooLarge: 0, shutdown: 0, budget: 0 }, timedOut: 0, aborted: 0,
  };
  readonly bytes: ByteBudget;

  constructor(options: HoldBufferOptions) {
    this.options = options;
    this.bytes = new ByteBudget(options.maxTotalBytes ?? Infinity);
  }

  get size(): number {
    return this.entries.size;
  }

  /**
   * Holds a request of a cell frozen until `frozenUntilMs`. `reroute(nowMs)` recomputes its
   * route with whatever table is current when the buffer asks. `refuse` settles it at once
   * (counted, nothing else evicted): the caller knows already that it cannot be held.
   */
  hold(frozenUntilMs: number, reroute: (nowMs: number) => Route, refuse: EvictReason | null = null): HeldTicket {
    let resolve!: (s: Settlement) => void;
    const settled = new Promise<Settlement>((r) => (resolve = r));
    const entry: Entry = { state: 'holding', heldAtMs: this.options.clock.now(), frozenUntilMs, reroute, resolve };
    const ticket: HeldTicket = {
      settled,
      clientGone: () => this.apply(entry, { kind: 'clientGone' }),
      evict: (reason) => this.apply(entry, { kind: 'evict', reason }),
    };
    this.counters.held += 1;
    if (refuse !== null) {
      this.apply(entry, { kind: 'evict', reason: refuse });
      return ticket;
    }
    while (this.entries.size >= this.options.maxRequests && this.entries.size > 0) {
      this.apply(this.entries.values().next().value as Entry, { kind: 'evict', reason: 'overflow' });
    }
    if (this.options.maxRequests === 0) {
      this.apply(entry, { kind: 'evict', reason: 'overflow' });
    } else {
      this.entries.add(entry);
      this.schedule(Math.min(entry.heldAtMs + this.options.windowMs, frozenUntilMs));
    }
    return ticket;
  }

  /** A new table was applied: every held request looks at its route again. */
  reroute(): void {
    const now = this.options.clock.now();
    for (const e of [...this.entries]) this.apply(e, { kind: 'rerouted', route: e.reroute(now), nowMs: now });
    this.reschedule();
  }

  /** Answers every held request (504 BUFFER_TIMEOUT) and stops the timer. */
  shutdown(): void {
    for (const e of [...this.entries]) this.apply(e, { kind: 'evict', reason: 'shutdown' });
    this.reschedule();
  }

  private apply(entry: Entry, input: HeldInput): void {
    const d = transition(entry.state, input);
    switch (d.kind) {
      case 'ignore':
        return;
      case 'keep':
        entry.frozenUntilMs = d.frozenUntilMs;
        return;
      case 'settle':
        entry.state = d.next;
        this.entries.delete(entry);
        this.count(d.next, input);
        entry.resolve(d.settlement);
        return;
      default:
        unreachable(d);
    }
  }

  private count(next: Exclude<HeldState, 'holding'>, input: HeldInput): void {
    switch (next) {
      case 'released':
        this.counters.released += 1;
        return;
      case 'evicted':
        if (input.kind === 'evict') this.counters.evicted[input.reason] += 1;
        return;
      case 'timedOut':
        this.counters.timedOut += 1;
        return;
      case 'aborted':
        this.counters.aborted += 1;
        return;
      default:
        unreachable(next);
    }
  }

  /** The timeout loop: one timer for the earliest window end or freeze deadline. */
  private onTimer(): void {
    this.timer = null;
    this.timerDueMs = Infinity;
    const now = this.options.clock.now();
    for (const e of [...this.entries]) {
      if (now >= e.heldAtMs + this.options.windowMs) this.apply(e, { kind: 'windowElapsed' });
      else if (now >= e.frozenUntilMs) this.apply(e, { kind: 'rerouted', route: e.reroute(now), nowMs: now });
    }
    this.reschedule();
  }

  private reschedule(): void {
    let due = Infinity;
    for (const e of this.entries) due = Math.min(due, e.heldAtMs + this.options.windowMs, e.frozenUntilMs);
    if (due === Infinity) {
      if (this.timer) this.options.clock.clearTimer(this.timer);
      this.timer = null;
      this.timerDueMs = Infinity;
      return;
    }
    if (this.timer && this.timerDueMs === due) return;
    if (this.timer) this.options.clock.clearTimer(this.timer);
    this.timer = null;
    this.timerDueMs = Infinity;
    this.schedule(due);
  }

  private schedule(dueMs: number): void {
    if (this.timer && this.timerDueMs <= dueMs) return;
    if (this.timer) this.options.clock.clearTimer(this.timer);
    this.timerDueMs = dueMs;
    this.timer = this.options.clock.setTimer(() => this.onTimer(), dueMs - this.options.clock.now());
  }
}
