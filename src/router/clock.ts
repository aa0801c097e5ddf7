// The clock the gateway's timed machinery (the hold buffer, endpoint ejection) reads,
// injected so tests move time instead of sleeping. Wall-clock milliseconds, because freeze
// deadlines in the routing table are wall-clock times written by another process.

export interface Clock {
  now(): number;
  setTimer(fn: () => void, ms: number): TimerHandle;
  clearTimer(handle: TimerHandle): void;
}

export type TimerHandle = { readonly id: unknown };

export const systemClock: Clock = Object.freeze({
  now: () => Date.now(),
  setTimer: (fn: () => void, ms: number): TimerHandle => ({ id: setTimeout(fn, Math.max(0, ms)) }),
  clearTimer: (h: TimerHandle) => clearTimeout(h.id as NodeJS.Timeout),
});
