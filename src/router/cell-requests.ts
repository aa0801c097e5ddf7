// Plain requests that are with an upstream right now, per cell: a registry keyed by what
// moves (the cell), so that a freeze can wait for exactly its cells' requests — an event at
// zero, not a poll — and, when its grace ends, cut what is left. Upgraded connections
// (WebSockets) are never entered here: they live in the WebSocket registry.
//
// Counters: entered = left + size (every entered request leaves once: its response closed).

/** How an aborted request ended for its client. */
export type CutKind = 'awaiting_response' | 'mid_response';

/** One request with an upstream; `cut()` ends its client connection and says how far it got. */
export interface TrackedRequest {
  readonly cell: string;
  cut(): CutKind;
}

interface IdleWaiter {
  readonly cells: ReadonlySet<string>;
  readonly resolve: () => void;
}

export class CellRequests {
  private readonly byCell = new Map<string, Set<TrackedRequest>>();
  private readonly waiters = new Set<IdleWaiter>();
  entered = 0;
  left = 0;

  /** Requests with an upstream right now (all cells). */
  get size(): number {
    return this.entered - this.left;
  }

  enter(request: TrackedRequest): void {
    let set = this.byCell.get(request.cell);
    if (!set) this.byCell.set(request.cell, (set = new Set()));
    set.add(request);
    this.entered += 1;
  }

  /** The request's response closed (answered, cut, or the client went away). Idempotent. */
  leave(request: TrackedRequest): void {
    const set = this.byCell.get(request.cell);
    if (!set || !set.delete(request)) return;
    this.left += 1;
    if (set.size > 0) return;
    this.byCell.delete(request.cell);
    for (const w of [...this.waiters]) {
      if (this.idle(w.cells)) {
        this.waiters.delete(w);
        w.resolve();
      }
    }
  }

  idle(cells: Iterable<string>): boolean {
    for (const c of cells) if (this.byCell.has(c)) return false;
    return true;
  }

  /** Calls `resolve` once none of `cells` has a request left (at once if none has). Returns a cancel function. */
  whenIdle(cells: Iterable<string>, resolve: () => void): () => void {
    const waiter: IdleWaiter = { cells: new Set(cells), resolve };
    if (this.idle(waiter.cells)) {
      resolve();
      return () => undefined;
    }
    this.waiters.add(waiter);
    return () => this.waiters.delete(waiter);
  }

  /** Cuts every request of `cells`; returns how many of each kind. Their responses close (and leave) by themselves. */
  cut(cells: Iterable<string>): Record<CutKind, number> {
    const out: Record<CutKind, number> = { awaiting_response: 0, mid_response: 0 };
    for (const c of cells) {
      for (const r of [...(this.byCell.get(c) ?? [])]) out[r.cut()] += 1;
    }
    return out;
  }

  /** Drops every waiter (shutdown). */
  clearWaiters(): void {
    this.waiters.clear();
  }
}
