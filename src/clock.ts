// The clock every timed part reads (the gateway's hold buffer and endpoint ejection, the
// presence relay's expiries), injected so tests move time instead of sleeping. It sits beside
// errors.ts, under every layer, because both src/router and src/relay use it. Wall-clock milliseconds, because freeze
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
