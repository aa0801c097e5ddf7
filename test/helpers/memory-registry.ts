// The endpoint registry of the in-memory store: records are kept as stored text (so that a
// test can write a malformed one, as a foreign writer would) and validated on read like the
// real stores do. There is no TTL: a registration lives until close() or expire().
import { checkRegistration, decodeEndpoint, documentOf, endpointKey, registrySnapshotKey, registrySnapshotOf } from '../../src/store/endpoint-record';
import type { EndpointRegistration, EndpointRegistrationRequest, EndpointRegistry, RegistrySnapshot, RegistryWatch, RegistryWatchEvents } from '../../src/store/types';
import { snapshotWatch } from './memory-watch';

/** What every MemoryStore opened over the same data shares. */
export class MemoryRegistryData {
  /** key below endpoints/ → stored text. */
  readonly records = new Map<string, string>();
  revision = 0;
  readonly watchers = new Set<() => void>();

  changed(): void {
    this.revision += 1;
    for (const notify of this.watchers) setImmediate(notify);
  }
}

export class MemoryRegistry implements EndpointRegistry {
  private readonly closers = new Set<() => Promise<void>>();

  constructor(private readonly data: MemoryRegistryData, private readonly assertReachable: () => void, private readonly reachable: () => boolean) {}

  /** Writes `text` at `key` (below endpoints/) around validation: a foreign or broken writer. */
  putRaw(key: string, text: string): void {
    this.data.records.set(key, text);
    this.data.changed();
  }

  /** The record's lease ran out (what a killed instance leads to). */
  expire(key: string): void {
    if (this.data.records.delete(key)) this.data.changed();
  }

  async register(request: EndpointRegistrationRequest): Promise<EndpointRegistration> {
    this.assertReachable();
    const { endpoint } = checkRegistration(request, Date.now());
    const key = endpointKey(endpoint);
    this.putRaw(key, JSON.stringify(documentOf(endpoint)));
    let open = true;
    const close = async () => {
      if (!open) return;
      open = false;
      this.closers.delete(close);
      this.expire(key);
    };
    this.closers.add(close);
    return { endpoint, close };
  }

  async snapshot(): Promise<RegistrySnapshot> {
    this.assertReachable();
    return this.read();
  }

  watch(events: RegistryWatchEvents): RegistryWatch {
    return snapshotWatch(this.data.watchers, () => this.reachable(), () => this.read(), registrySnapshotKey, events, this.closers);
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.closers].map((c) => c()));
  }

  private read(): RegistrySnapshot {
    return registrySnapshotOf([...this.data.records].map(([key, text]) => decodeEndpoint(key, text)), this.data.revision);
  }
}
