// The endpoint registry of the in-memory store: records are kept as stored text (so that a
// test can write a malformed one, as a foreign writer would) and validated on read like the
// real stores do. There is no TTL: a registration lives until close() or expire(). Records
// carry their registration's token and are claimed as the real stores claim them
// (claimRefusal); loseLease() plays a lost lease: the registration puts its record again. A
// record deleted (close, expire) while other registrations of its key are open is put again
// by one of them, as an etcd registration's key watch does.
import {
  checkRegistration, claimRefusal, decodeEndpoint, documentOf, endpointKey, newInstanceToken, registrySnapshotKey, registrySnapshotOf, YIELD, type ClaimMode,
} from '../../src/store/endpoint-record';
import type {
  EndpointRegistration, EndpointRegistrationRequest, EndpointRegistry, RegistryPriority, RegistrySnapshot, RegistryWatch, RegistryWatchEvents,
} from '../../src/store/types';
import { snapshotWatch } from './memory-watch';

/** What every MemoryStore opened over the same data shares. */
export class MemoryRegistryData {
  /** key below endpoints/ → stored text. */
  readonly records = new Map<string, string>();
  revision = 0;
  readonly watchers = new Set<() => void>();
  /** key → open registrations' "the key was deleted" handlers (etcd: each one's key watch). */
  readonly reputs = new Map<string, Set<() => void>>();

  changed(): void {
    this.revision += 1;
    for (const notify of this.watchers) setImmediate(notify);
  }
}

export class MemoryRegistry implements EndpointRegistry {
  private readonly closers = new Set<() => Promise<void>>();
  /** Live registrations by token: what loseLease() finds. */
  private readonly reclaims = new Map<string, { key: string; reclaim: () => void }>();

  constructor(private readonly data: MemoryRegistryData, private readonly assertReachable: () => void, private readonly reachable: () => boolean) {}

  /** Writes `text` at `key` (below endpoints/) around validation: a foreign or broken writer. */
  putRaw(key: string, text: string): void {
    this.data.records.set(key, text);
    this.data.changed();
  }

  /** The record's lease ran out (what a killed instance leads to); open registrations of the key that yielded to it put theirs again. */
  expire(key: string): void {
    if (!this.data.records.delete(key)) return;
    this.data.changed();
    for (const reput of this.data.reputs.get(key) ?? []) reput();
  }

  /** The registration whose record is at `key` now: its lease is lost (call the result to have it put its record again). */
  leaseOf(key: string): () => Promise<void> {
    const text = this.data.records.get(key);
    let token: unknown;
    try {
      token = text === undefined ? undefined : (JSON.parse(text) as { instance?: unknown }).instance;
    } catch { /* not ours */ }
    const found = typeof token === 'string' ? this.reclaims.get(token) : undefined;
    return async () => found?.reclaim();
  }

  async register(request: EndpointRegistrationRequest): Promise<EndpointRegistration> {
    this.assertReachable();
    const { endpoint } = checkRegistration(request, Date.now());
    const key = endpointKey(endpoint);
    const instance = newInstanceToken();
    const claim = (mode: ClaimMode) => {
      const existing = this.data.records.get(key);
      const refused = existing === undefined ? null : claimRefusal(key, existing, { endpoint, instance }, mode);
      if (refused === YIELD) return; // another registration of this URL holds it: put again when it goes
      if (refused) throw refused;
      this.putRaw(key, JSON.stringify(documentOf(endpoint, instance)));
    };
    claim('register');
    let open = true;
    let settleTaken: (err: Error) => void = () => undefined;
    const taken = new Promise<Error>((resolve) => { settleTaken = resolve; });
    const close = async () => {
      if (!open) return;
      open = false;
      this.closers.delete(close);
      this.data.reputs.get(key)?.delete(reput);
      this.reclaims.delete(instance);
      // Only its own record (a restarted instance may hold the key now).
      const text = this.data.records.get(key);
      if (text !== undefined && text.includes(`"instance":"${instance}"`)) this.expire(key);
    };
    this.reclaims.set(instance, {
      key,
      reclaim: () => {
        try {
          claim('reclaim');
        } catch (err) {
          void close();
          settleTaken(err as Error);
        }
      },
    });
    // As an etcd registration's key watch: the key deleted while open, the record is put again.
    const reput = () => setImmediate(() => {
      if (open && !this.data.records.has(key)) this.reclaims.get(instance)?.reclaim();
    });
    const reputs = this.data.reputs.get(key) ?? new Set();
    this.data.reputs.set(key, reputs.add(reput));
    this.closers.add(close);
    return { endpoint, taken, close };
  }

  async snapshot(priority?: RegistryPriority): Promise<RegistrySnapshot> {
    this.assertReachable();
    return this.read(priority);
  }

  watch(events: RegistryWatchEvents): RegistryWatch {
    return snapshotWatch(this.data.watchers, () => this.reachable(), () => this.read(events.priority), registrySnapshotKey, events, this.closers);
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.closers].map((c) => c()));
  }

  private read(priority?: RegistryPriority): RegistrySnapshot {
    return registrySnapshotOf([...this.data.records].map(([key, text]) => decodeEndpoint(key, text)), this.data.revision, priority);
  }
}
