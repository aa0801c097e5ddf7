// The relay's clock: the same shape as the gateway's (src/router/clock.ts), declared here
// because src/relay may not import from src/router. Tests move time instead of sleeping.

export interface RelayClock {
  now(): number;
  setTimer(fn: () => void, ms: number): RelayTimer;
  clearTimer(handle: RelayTimer): void;
}

export type RelayTimer = { readonly id: unknown };

export const systemClock: RelayClock = Object.freeze({
  now: () => Date.now(),
  setTimer: (fn: () => void, ms: number): RelayTimer => ({ id: setTimeout(fn, Math.max(0, ms)) }),
  clearTimer: (h: RelayTimer) => clearTimeout(h.id as NodeJS.Timeout),
});

/** The relay's event sink (JSON log lines in the CLI). */
export type RelayLog = (event: string, fields?: Record<string, unknown>) => void;
