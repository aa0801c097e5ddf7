// The endpoint registry in etcd: `<prefix>/endpoints/<zone>/<service>/<id>` → {url, weight, instance,
// registeredAt}, each on its own lease kept alive by etcd3 (TTL = the record's ttl, whole
// seconds). An instance that dies stops the keep-alives and its record goes when the lease
// expires; close() revokes the lease, which deletes the record at once. When the lease is
// lost while the process lives, it is put again on a new one: a leased record
// (etcd-leased-record.ts), as presence is, but guarded: written by a transaction that
// never writes over another live instance's record (claimRefusal in endpoint-record.ts).
//
// Each registration also watches its own key (etcd-key-watch.ts), because its record can go
// while its lease lives: another registration of the same endpoint (same id and URL: a
// restart whose old process still runs, a second registrar) may take the record over, and
// when that one withdraws or dies the key is deleted. On a delete (or a read finding the key
// empty) the registration puts its record again on its own lease; while another registration
// of its URL holds the key it stays quiet (both route to the same place); another URL holding
// it means the id was taken (ENDPOINT_TAKEN, as after a lost lease). Puts happen only on a
// delete or an empty read, never in answer to another's put: two registrations never fight.
import type { EtcdContext } from './etcd-client';
import { EtcdKeyWatch } from './etcd-key-watch';
import { EtcdLeasedRecord } from './etcd-leased-record';
import {
  checkRegistration, claimRefusal, decodeEndpoint, documentOf, endpointKey, endpointTaken, holderOf, newInstanceToken, registrySnapshotKey, registrySnapshotOf,
  type Claimant, type DecodedEndpoint,
} from './endpoint-record';
import { EtcdPrefixWatch } from './etcd-presence-watch';
import type {
  EndpointRegistration, EndpointRegistrationRequest, EndpointRegistry, RegisteredEndpoint, RegistryPriority, RegistrySnapshot, RegistryWatch, RegistryWatchEvents,
} from './types';

class EtcdEndpointRegistration implements EndpointRegistration {
  private readonly leased: EtcdLeasedRecord;
  private readonly mine: Claimant;
  private readonly recordKey: string;
  private keyWatch: EtcdKeyWatch | null = null;
  private settleTaken: (err: Error) => void = () => undefined;
  readonly taken = new Promise<Error>((resolve) => { this.settleTaken = resolve; });

  constructor(private readonly ctx: EtcdContext, private readonly key: string, readonly endpoint: RegisteredEndpoint, ttlSeconds: number, private readonly onClosed: (r: EtcdEndpointRegistration) => void) {
    this.mine = { endpoint, instance: newInstanceToken() };
    this.recordKey = endpointKey(endpoint);
    // Its own record, or the same instance restarted, may be written over; another instance's may not.
    const guard = {
      refusal: (existing: string, again: boolean) => claimRefusal(this.recordKey, existing, this.mine, again ? 'reclaim' : 'register'),
      taken: (err: Error) => this.stopTaken(err),
    };
    this.leased = new EtcdLeasedRecord(ctx, key, JSON.stringify(documentOf(endpoint, this.mine.instance)), ttlSeconds, 'endpoint', guard);
  }

  /** The first registration fails (STORE_UNAVAILABLE) rather than retrying, so the caller knows. */
  async start(): Promise<void> {
    await this.leased.start();
    this.keyWatch = new EtcdKeyWatch(this.ctx, this.key, 'endpoint', (value) => this.onKey(value));
  }

  async close(): Promise<void> {
    if (this.leased.isClosed) return;
    this.onClosed(this);
    // The key watch stops first (synchronously), so the revoke's delete is not answered by a put.
    const watchClosed = this.keyWatch?.close();
    await this.leased.close();
    await watchClosed;
  }

  /** What the key holds now: put the record again when it is empty; give up only to another URL. */
  private async onKey(value: string | null): Promise<void> {
    if (this.leased.isClosed) return;
    if (value === null) return this.leased.reclaim();
    const holder = holderOf(this.recordKey, value, this.mine);
    switch (holder.kind) {
      case 'mine':
      case 'same-url': // the same endpoint: routes where this one would; its record is put again when that one goes
      case 'invalid': // routes nowhere; answered only by a delete (never a put against a writer)
        return;
      case 'other':
        this.stopTaken(endpointTaken(this.endpoint, holder.url, 'reclaim'));
        await this.leased.close(); // its lease holds nothing: the key is another's
        return;
      default: {
        const never: never = holder;
        throw new Error(`unknown holder ${JSON.stringify(never)}`);
      }
    }
  }

  private stopTaken(err: Error): void {
    this.onClosed(this);
    void this.keyWatch?.close();
    this.settleTaken(err);
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
