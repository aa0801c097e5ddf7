// Convergence: has every live gateway applied a table version? Gateways publish the version
// and checksum they route with in their presence records (etcd lease / heartbeat file).
import { isCellgateError } from '../errors';
import type { PresenceRecord, PresenceStore } from '../store/types';

export interface ConvergenceStatus {
  readonly version: number;
  readonly gateways: readonly PresenceRecord[];
  /** Live gateways not yet on `version` (or on it with another checksum). */
  readonly behind: readonly PresenceRecord[];
  readonly converged: boolean;
}

/** A gateway is on `version` once it applied it or anything later; on `version` itself the checksum must match. */
export function convergenceOf(gateways: readonly PresenceRecord[], version: number, checksum: string): ConvergenceStatus {
  const behind = gateways.filter((g) => g.appliedVersion < version || (g.appliedVersion === version && g.checksum !== checksum));
  return { version, gateways, behind, converged: behind.length === 0 };
}

export interface WaitOptions {
  readonly timeoutMs: number;
  /** Poll interval; presence changes are small reads. */
  readonly intervalMs?: number;
  readonly onProgress?: (status: ConvergenceStatus) => void;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly now?: () => number;
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls presence until every live gateway is on `version` or the timeout passes; returns the last status. */
export async function waitForConvergence(presence: PresenceStore, version: number, checksum: string, opts: WaitOptions): Promise<ConvergenceStatus> {
  const now = opts.now ?? Date.now;
  const sleep = opts.sleep ?? defaultSleep;
  const deadline = now() + opts.timeoutMs;
  let last = '';
  for (;;) {
    let gateways: PresenceRecord[];
    try {
      gateways = await presence.list();
    } catch (err) {
      // The change is written already: a store hiccup while watching it land is retried until the deadline.
      if (!isCellgateError(err) || !err.retryable || now() >= deadline) throw err;
      await sleep(Math.min(100, Math.max(1, deadline - now())));
      continue;
    }
    const status = convergenceOf(gateways, version, checksum);
    const key = status.behind.map((g) => g.id).join(',') + '/' + status.gateways.length;
    if (key !== last) opts.onProgress?.(status);
    last = key;
    if (status.converged || now() >= deadline) return status;
    await sleep(Math.min(opts.intervalMs ?? 10, Math.max(1, deadline - now())));
  }
}
