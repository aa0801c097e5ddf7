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
 * Watches presence until every live gateway is on `version`, or the deadline passes; returns
 * the last status observed. Throws STORE_UNAVAILABLE when the store could not be read at all
 * before the deadline (nothing was observed, so nothing is reported).
 */
export function waitForConvergence(presence: PresenceStore, version: number, checksum: string, opts: WaitOptions): Promise<ConvergenceStatus> {
  return new Promise((resolve, reject) => {
    let last: ConvergenceStatus | null = null;
    let lastError: Error | null = null;
    let settled = false;
    let watch: PresenceWatch | null = null;
    let closeRequested = false;
    const settle = (outcome: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      closeRequested = true;
      // Resolve only once the watch is gone: no stream or timer outlives the wait.
      (watch ? watch.close() : Promise.resolve()).then(outcome, outcome);
    };
    const timer = setTimeout(() => settle(() => {
      if (last) resolve(last);
      else reject(lastError ?? cgError('STORE_UNAVAILABLE', `no presence records could be read within ${opts.timeoutMs} ms`));
    }), Math.max(0, opts.timeoutMs));
    let lastKey = '';
    watch = presence.watch({
      onSnapshot: (snapshot) => {
        if (settled) return;
        const status = convergenceOf(snapshot, version, checksum);
        last = status;
        const key = `${laggards(status).join(',')}/${status.gateways.length}`;
        if (key !== lastKey) opts.onProgress?.(status);
        lastKey = key;
        if (status.converged) settle(() => resolve(status));
      },
      onError: (err) => {
        lastError = err;
      },
    });
    if (closeRequested) void watch.close();
  });
}
