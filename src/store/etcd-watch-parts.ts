// Two pieces every etcd watch loop here needs (the table watch, the prefix watches of presence
// and the registry, a registration's own key): waiting for etcd to confirm a new watcher,
// bounded, and a sleep between checks that close() or a failing watcher can cut short.
import type { Watcher } from 'etcd3';
import { bounded } from './etcd-client';

/**
 * Resolves once etcd confirmed `watcher`, within `ms`; rejects on its error or disconnection
 * first, or at the deadline. The caller cancels the watcher when this rejects.
 */
export function watcherConfirmed(watcher: Watcher, ms: number, what: string): Promise<void> {
  const confirmed = new Promise<void>((resolve, reject) => {
    watcher.once('connected', () => resolve());
    watcher.once('error', (err) => reject(err));
    watcher.once('disconnected', (err) => reject(err));
  });
  return bounded(confirmed, ms, what);
}

/** A sleep that wake() ends early: a watch loop's pause between checks, cut short by close() or trouble. */
export class WakeableSleep {
  private wakeUp: (() => void) | null = null;

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        if (this.wakeUp === done) this.wakeUp = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakeUp = done;
    });
  }

  /** Ends the sleep in progress, if any. */
  wake(): void {
    this.wakeUp?.();
  }
}

/**
 * Whether a watcher's events are still the caller's to apply: fail() (its first error or
 * disconnection, or the caller's own trouble with an event) tells the caller once; end() (a
 * watcher given up on) only stops the events.
 */
export class WatcherLiveness {
  private alive = true;

  constructor(watcher: Watcher, private readonly onFail: () => void) {
    // An 'error' without a listener would throw out of etcd3's stream handler: listen first.
    watcher.on('error', () => this.fail());
    watcher.on('disconnected', () => this.fail());
  }

  get live(): boolean {
    return this.alive;
  }

  readonly fail = (): void => {
    if (!this.alive) return;
    this.alive = false;
    this.onFail();
  };

  end(): void {
    this.alive = false;
  }
}

/** watcherConfirmed; when it fails, the watcher is given up on and cancelled (bounded) before the error is rethrown. */
export async function confirmOrCancel(
  watcher: Watcher, opts: { readonly watchCreateTimeoutMs: number; readonly callTimeoutMs: number }, liveness: WatcherLiveness, what: string,
): Promise<void> {
  try {
    await watcherConfirmed(watcher, opts.watchCreateTimeoutMs, `create ${what}`);
  } catch (err) {
    liveness.end();
    await bounded(watcher.cancel(), opts.callTimeoutMs, `cancel ${what}`).catch(() => undefined);
    throw err;
  }
}
