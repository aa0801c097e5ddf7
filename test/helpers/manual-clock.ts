// An injected clock that moves only when the test says so (timers fire in due order).
import type { Clock, TimerHandle } from '../../src/clock';

export class ManualClock implements Clock {
  private t: number;
  private timers: Array<{ due: number; fn: () => void; handle: TimerHandle }> = [];

  constructor(startMs = 1_700_000_000_000) {
    this.t = startMs;
  }

  now(): number {
    return this.t;
  }

  setTimer(fn: () => void, ms: number): TimerHandle {
    const handle = { id: Symbol('timer') };
    this.timers.push({ due: this.t + Math.max(0, ms), fn, handle });
    return handle;
  }

  clearTimer(h: TimerHandle): void {
    this.timers = this.timers.filter((x) => x.handle !== h);
  }

  get pending(): number {
    return this.timers.length;
  }

  /** Moves time forward, firing due timers in order. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      const next = this.timers.filter((x) => x.due <= end).sort((a, b) => a.due - b.due)[0];
      if (!next) break;
      this.timers = this.timers.filter((x) => x !== next);
      this.t = Math.max(this.t, next.due);
      next.fn();
    }
    this.t = end;
  }
}
