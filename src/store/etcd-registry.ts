// The endpoint registry in etcd: `<prefix>/endpoints/<zone>/<service>/<id>` → {url, weight, instance,
// registeredAt}, each on its own lease kept alive by etcd3 (TTL = the record's ttl, whole
// seconds). An instance that dies stops the keep-alives and its record goes when the lease
// expires; close() revokes the lease, which deletes the record at once. When the lease is
// lost while the process lives, it is put again on a new one: a leased record
// (etcd-leased-record.ts), as presence is, but guarded: written by a transaction that
// never writes over another live instance's record (claimRefusal in endpoint-record.ts).
import type { EtcdContext } from './etcd-client';
import { EtcdLeasedRecord } from './etcd-leased-record';
import {
  checkRegistration, claimRefusal, decodeEndpoint, documentOf, endpointKey, newInstanceToken, registrySnapshotKey, registrySnapshotOf, type DecodedEndpoint,
} from './endpoint-record';
import { EtcdPrefixWatch } from './etcd-presence-watch';
import type {
  EndpointRegistration, EndpointRegistrationRequest, EndpointRegistry, RegisteredEndpoint, RegistryPriority, RegistrySnapshot, RegistryWatch, RegistryWatchEvents,
} from './types';

class EtcdEndpointRegistration implements EndpointRegistration {
  private readonly leased: EtcdLeasedRecord;
  readonly taken: Promise<Error>;

  constructor(ctx: EtcdContext, key: string, readonly endpoint: RegisteredEndpoint, ttlSeconds: number, private readonly onClosed: (r: EtcdEndpointRegistration) => void) {
    const mine = { endpoint, instance: newInstanceToken() };
    const recordKey = endpointKey(endpoint);
    let settle: (err: Error) => void = () => undefined;
    this.taken = new Promise<Error>((resolve) => { settle = resolve; });
    // Its own record, or the same instance restarted, may be written over; another instance's may not.
    const guard = {
      refusal: (existing: string, again: boolean) => claimRefusal(recordKey, existing, mine, again ? 'reclaim' : 'register'),
      taken: (err: Error) => {
        this.onClosed(this);
        settle(err);
      },
    };
    this.leased = new EtcdLeasedRecord(ctx, key, JSON.stringify(documentOf(endpoint, mine.instance)), ttlSeconds, 'endpoint', guard);
  }

  /** The first registration fails (STORE_UNAVAILABLE) rather than retrying, so the caller knows. */
  start(): Promise<void> {
    return this.leased.start();
  }

  async close(): Promise<void> {
    if (this.leased.isClosed) return;
    this.onClosed(this);
    await this.leased.close();
  }
}

type RegistryPrefixWatch = EtcdPrefixWatch<DecodedEndpoint, RegistrySnapshot>;

export class EtcdRegistry implements EndpointRegistry {
  private readonly registrations = new Set<EtcdEndpointRegistration>();
  private readonly watches = new Set<RegistryPrefixWatch>();

  constructor(private readonly ctx: EtcdContext, private readonly assertOpen: () => void) {}

  async register(request: EndpointRegistrationRequest): Promise<EndpointRegistration> {
    this.assertOpen();
    const { endpoint, ttlMs } = checkRegistration(request, Date.now());
    const key = `${this.ctx.keys.endpointsPrefix}${endpointKey(endpoint)}`;
    const ttlSeconds = Math.ceil(ttlMs / 1000);
    const registration = new EtcdEndpointRegistration(this.ctx, key, endpoint, ttlSeconds, (r) => this.registrations.delete(r));
    await registration.start();
    this.registrations.add(registration);
    return registration;
  }

  async snapshot(priority?: RegistryPriority): Promise<RegistrySnapshot> {
    this.assertOpen();
    const prefix = this.ctx.keys.endpointsPrefix;
    const res = await this.ctx.call('list endpoints', 'read', () => this.ctx.client.getAll().prefix(prefix).exec());
    return registrySnapshotOf(res.kvs.map((kv) => decodeEndpoint(kv.key.toString('utf8').slice(prefix.length), kv.value.toString('utf8'))), Number(res.header.revision), priority);
  }

  watch(events: RegistryWatchEvents): RegistryWatch {
    this.assertOpen();
    const prefix = this.ctx.keys.endpointsPrefix;
    const w: RegistryPrefixWatch = new EtcdPrefixWatch(this.ctx, {
      prefix,
      noun: 'endpoints',
      decode: (kv) => decodeEndpoint(kv.key.toString('utf8').slice(prefix.length), kv.value.toString('utf8')),
      snapshot: (decoded, revision) => registrySnapshotOf(decoded, revision, events.priority),
      key: registrySnapshotKey,
    }, events, (closed) => this.watches.delete(closed));
    this.watches.add(w);
    return w;
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.watches].map((w) => w.close()));
    await Promise.all([...this.registrations].map((r) => r.close().catch(() => undefined)));
  }
}
