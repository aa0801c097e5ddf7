// Convergence: has every live gateway applied a table version? Gateways publish the version
// and checksum they route with in their presence records (etcd lease / heartbeat file);
// cellctl watches those records (no polling) until all are on the version or the deadline
// passes. A malformed record proves nothing: it counts as not converged, by name.
import { cgError } from '../errors';
import type { MalformedPresence, PresenceRecord, PresenceSnapshot, PresenceStore, PresenceWatch } from '../store/types';

export interface ConvergenceStatus {
  readonly version: number;
  /** Live gateways with a valid record. */
  readonly gateways: readonly PresenceRecord[];
  /** Live gateways not yet on `version` (or on it with another checksum). */
  readonly behind: readonly PresenceRecord[];
  /** Live records that could not be read: never counted as converged. */
  readonly malformed: readonly MalformedPresence[];
  readonly converged: boolean;
}

/** A gateway is on `version` once it applied it or anything later; on `version` itself the checksum must match. */
export function convergenceOf(snapshot: PresenceSnapshot, version: number, checksum: string): ConvergenceStatus {
  const gateways = snapshot.records;
  const behind = gateways.filter((g) => g.appliedVersion < version || (g.appliedVersion === version && g.checksum !== checksum));
  const malformed = snapshot.malformed;
  return { version, gateways, behind, malformed, converged: behind.length === 0 && malformed.length === 0 };
}

/** How many laggards a progress line or an error names; the rest are counted (1,000 gateways make one line each otherwise). */
export const LAGGARDS_NAMED = 20;

/**
 * Names of the gateways that keep `status` from converging, with why: the first `limit`,
 * then "and N more". The full lists stay in `status`. Gateway ids come from presence records,
 * which any process can write: the CLI escapes them on a terminal (escapeForTerminal).
 */
export function laggards(status: ConvergenceStatus, limit = LAGGARDS_NAMED): string[] {
  const all = status.behind.length + status.malformed.length;
  const names = [
    ...status.behind.slice(0, limit).map((g) => `${g.id} (on ${g.appliedVersion})`),
    ...status.malformed.slice(0, Math.max(0, limit - status.behind.length)).map((m) => `${m.id} (malformed presence record: ${m.problem})`),
  ];
  return all > names.length ? [...names, `and ${all - names.length} more`] : names;
}

export interface WaitOptions {
  /** The wait's deadline: the last status observed is returned when it passes. */
  readonly timeoutMs: number;
  readonly onProgress?: (status: ConvergenceStatus) => void;
}

/**
 * One presence watch for the waits of one change. Opened before the change is written, its
 * first read of every record happens then, not while the gateways apply the new version;
 * each wait (the freeze's acknowledgements, then the flip) only looks at what the watch
 * delivers. close() ends the watch; no stream or timer outlives it.
 */
export class PresenceTracker {
  private readonly watch: PresenceWatch;
  private latest: PresenceSnapshot | null = null;
  /** Snapshots delivered so far: a wait counts only those delivered after it began. */
  private delivered = 0;
  private lastError: Error | null = null;
  private readonly waiters = new Set<() => void>();

  constructor(private readonly presence: PresenceStore) {
    this.watch = presence.watch({
      onSnapshot: (snapshot) => {
        this.latest = snapshot;
        this.delivered += 1;
        for (const check of [...this.waiters]) check();
      },
      onError: (err) => {
        this.lastError = err;
        for (const check of [...this.waiters]) check();
      },
    });
  }

  /**
   * Resolves once the watch delivered its first snapshot or reported an error, or after
   * `timeoutMs`: the read of every record is then done before the change is written, instead
   * of competing with the gateways applying it. Never rejects: a wait reports what it saw.
   */
  ready(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const check = () => {
        if (this.latest === null && this.lastError === null) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        resolve();
      }, Math.max(0, timeoutMs));
      this.waiters.add(check);
      check();
    });
  }

  /**
   * Resolves once every live gateway is on `version`, or with the last status observed when
   * the deadline passes. Throws STORE_UNAVAILABLE when nothing could be read before the
   * deadline (nothing was observed, so nothing is reported).
   */
  waitFor(version: number, checksum: string, opts: WaitOptions): Promise<ConvergenceStatus> {
    return new Promise((resolve, reject) => {
      let last: ConvergenceStatus | null = null;
      let lastKey = '';
      let done = false;
      const finish = (outcome: () => void) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.waiters.delete(check);
        outcome();
      };
      const observe = (snapshot: PresenceSnapshot) => {
        const status = convergenceOf(snapshot, version, checksum);
        last = status;
        const key = `${laggards(status).join(',')}/${status.gateways.length}`;
        if (key !== lastKey) opts.onProgress?.(status);
        lastKey = key;
        if (status.converged) finish(() => resolve(status));
      };
      // Deliveries after the wait began show the gateways' writes since; a snapshot from
      // before it proves convergence only when a fresh read agrees (e.g. no live gateway:
      // then nothing announces anything, and a store gone since must not pass for "all").
      const startedAt = this.delivered;
      const check = () => {
        if (this.latest && this.delivered > startedAt) observe(this.latest);
      };
      const timer = setTimeout(() => finish(() => {
        if (last) resolve(last);
        else reject(this.lastError ?? cgError('STORE_UNAVAILABLE', `no presence records could be read within ${opts.timeoutMs} ms`));
      }), Math.max(0, opts.timeoutMs));
      const before = this.latest === null ? null : convergenceOf(this.latest, version, checksum);
      this.waiters.add(check);
      if (before === null) return;
      if (!before.converged) return observe(this.latest!);
      this.presence.snapshot().then((fresh) => {
        if (!done) observe(fresh);
      }, (err: Error) => {
        this.lastError = err;
      });
    });
  }

  close(): Promise<void> {
    return this.watch.close();
  }
}

/** One wait on a watch of its own (PresenceTracker, opened and closed around it). */
export async function waitForConvergence(presence: PresenceStore, version: number, checksum: string, opts: WaitOptions): Promise<ConvergenceStatus> {
  const tracker = new PresenceTracker(presence);
  try {
    return await tracker.waitFor(version, checksum, opts);
  } finally {
    await tracker.close();
  }
}
