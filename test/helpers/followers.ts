// A minimal stand-in for a gateway's control-plane side, for failover tests: it follows the
// store's table and publishes the version + checksum it applied in its presence record, the
// way a gateway does. `freeze()` makes it stop following (its record stays live, but stale):
// a gateway that does not follow. The real gateway is used by the end-to-end tests.
import { hostname } from 'node:os';
import type { VersionedTable } from '../../src/cells/types';
import type { PresenceRecord, PresenceRegistration, TableStore } from '../../src/store/types';

export interface Follower {
  readonly id: string;
  /** The table it routes with. */
  readonly applied: VersionedTable;
  /** Every table it applied, oldest first. */
  readonly seen: readonly VersionedTable[];
  /** Stop applying tables (and so stop updating presence); the presence record stays live. */
  freeze(): void;
  /** Resolves once it applied `version` or later (bounded). */
  waitFor(version: number, timeoutMs?: number): Promise<void>;
  /** Closes the watch and removes the presence record. Idempotent. */
  stop(): Promise<void>;
}

export interface FollowerOptions {
  /** Apply the first table, then stop following. */
  readonly frozen?: boolean;
  readonly ttlSeconds?: number;
  /** Apply each table this long after it arrives: a slower gateway (or network). */
  readonly applyDelayMs?: number;
  /** How long to wait for the first table. */
  readonly startTimeoutMs?: number;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function until(what: string, condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
}

/** Starts following `store` as gateway `id`; resolves once the first table is applied and published. */
export async function startFollower(store: TableStore, id: string, opts: FollowerOptions = {}): Promise<Follower> {
  const seen: VersionedTable[] = [];
  const startedAt = new Date().toISOString();
  let frozen = false;
  let stopped = false;
  let registration: PresenceRegistration | null = null;
  let writes: Promise<void> = Promise.resolve();
  const delayed: NodeJS.Timeout[] = [];

  const record = (vt: VersionedTable): PresenceRecord => ({
    id, zone: null, appliedVersion: vt.version, checksum: vt.checksum, inFlight: 0,
    startedAt, updatedAt: new Date().toISOString(), pid: process.pid, host: hostname(),
  });
  const publish = () => {
    // Serialized, and always the newest table: like the gateway's presence publisher.
    writes = writes.then(() => (registration && !stopped ? registration.update(record(seen[seen.length - 1])) : undefined)).catch(() => undefined);
  };
  const watch = store.watch({
    onTable: (vt) => {
      const apply = () => {
        if (frozen || stopped) return;
        seen.push(vt);
        publish();
      };
      if (opts.applyDelayMs) delayed.push(setTimeout(apply, opts.applyDelayMs));
      else apply();
    },
  });
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    delayed.forEach(clearTimeout);
    await watch.close();
    await writes;
    await registration?.close();
  };
  try {
    await until(`${id}'s first table`, () => seen.length > 0, opts.startTimeoutMs ?? 10_000);
    registration = await store.presence.register(record(seen[seen.length - 1]), opts.ttlSeconds);
    publish(); // in case a newer table arrived while registering
    await writes;
  } catch (err) {
    await stop();
    throw err;
  }
  if (opts.frozen) frozen = true;
  return {
    id,
    get applied() { return seen[seen.length - 1]; },
    seen,
    freeze: () => { frozen = true; },
    waitFor: (version, timeoutMs = 10_000) => until(`${id} on version ${version}`, () => seen[seen.length - 1].version >= version, timeoutMs),
    stop,
  };
}
