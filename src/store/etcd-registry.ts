// The endpoint registry in etcd: `<prefix>/endpoints/<zone>/<service>/<id>` → {url, weight,
// registeredAt}, each on its own lease kept alive by etcd3 (TTL = the record's ttl, whole
// seconds). An instance that dies stops the keep-alives and its record goes when the lease
// expires; close() revokes the lease, which deletes the record at once. When the lease is
// lost while the process lives (etcd was away longer than the TTL), a new one is granted and
// the record put again, with back-off until etcd answers — as presence does.
import type { Lease } from 'etcd3';
import { cgError } from '../errors';
import type { EtcdContext } from './etcd-client';
import { checkRegistration, decodeEndpoint, documentOf, endpointKey, registrySnapshotKey, registrySnapshotOf, type DecodedEndpoint } from './endpoint-record';
import { EtcdPrefixWatch } from './etcd-presence-watch';
import type {
  EndpointRegistration, EndpointRegistrationRequest, EndpointRegistry, RegisteredEndpoint, RegistrySnapshot, RegistryWatch, RegistryWatchEvents,
} from './types';

class EtcdEndpointRegistration implements EndpointRegistration {
  private lease: Lease | null = null;
  private closed = false;
  private reattaching: Promise<void> | null = null;
  private stopWaiting: (() => void) | null = null;

  constructor(
    private readonly ctx: EtcdContext,
    private readonly key: string,
    readonly endpoint: RegisteredEndpoint,
    private readonly ttlSeconds: number,
    private readonly onClosed: (r: EtcdEndpointRegistration) => void,
  ) {}

  /** The first registration fails (STORE_UNAVAILABLE) rather than retrying, so the caller knows. */
  async start(): Promise<void> {
    await this.attach();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.onClosed(this);
    this.stopWaiting?.();
    await this.reattaching;
    const lease = this.lease;
    this.lease = null;
    if (!lease) return;
    try {
      await this.ctx.call('revoke endpoint lease', 'write', () => lease.revoke());
    } catch {
      lease.release(); // etcd is away: the lease expires by itself within its TTL
    }
  }

  private async attach(): Promise<void> {
    const lease = this.ctx.client.lease(this.ttlSeconds, { autoKeepAlive: true });
    this.lease = lease;
    try {
      await this.ctx.call('grant endpoint lease', 'write', () => lease.grant());
      const value = JSON.stringify(documentOf(this.endpoint));
      await this.ctx.call('register endpoint', 'write', () => lease.put(this.key).value(value).exec());
      if (lease.revoked()) throw cgError('STORE_UNAVAILABLE', 'endpoint lease lost while registering');
      lease.on('lost', () => this.onLost(lease));
    } catch (err) {
      if (this.lease === lease) this.lease = null;
      lease.release();
      throw err;
    }
  }

  private onLost(lease: Lease): void {
    if (this.closed || this.lease !== lease || this.reattaching) return;
    this.lease = null;
    lease.release();
    this.reattaching = this.reattach().finally(() => {
      this.reattaching = null;
    });
  }

  private async reattach(): Promise<void> {
    const { retryMinMs, retryMaxMs } = this.ctx.opts;
    let backoffMs = retryMinMs;
    while (!this.closed) {
      try {
        await this.attach();
        return;
      } catch {
        await this.wait(backoffMs);
        backoffMs = Math.min(backoffMs * 2, retryMaxMs);
      }
    }
  }

  /** A back-off pause that close() cuts short. */
  private wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.stopWaiting = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.stopWaiting = done;
    });
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

  async snapshot(): Promise<RegistrySnapshot> {
    this.assertOpen();
    const prefix = this.ctx.keys.endpointsPrefix;
    const res = await this.ctx.call('list endpoints', 'read', () => this.ctx.client.getAll().prefix(prefix).exec());
    return registrySnapshotOf(res.kvs.map((kv) => decodeEndpoint(kv.key.toString('utf8').slice(prefix.length), kv.value.toString('utf8'))), Number(res.header.revision));
  }

  watch(events: RegistryWatchEvents): RegistryWatch {
    this.assertOpen();
    const prefix = this.ctx.keys.endpointsPrefix;
    const w: RegistryPrefixWatch = new EtcdPrefixWatch(this.ctx, {
      prefix,
      noun: 'endpoints',
      decode: (kv) => decodeEndpoint(kv.key.toString('utf8').slice(prefix.length), kv.value.toString('utf8')),
      snapshot: registrySnapshotOf,
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
