// Presence in etcd: `<prefix>/gateways/<id>` attached to a lease kept alive by etcd3. When
// the lease is lost (etcd was away for longer than the TTL, or the lease was revoked), a
// new one is granted and the record put again, with back-off until etcd answers.
import type { Lease } from 'etcd3';
import { cgError } from '../errors';
import type { EtcdContext } from './etcd-client';
import { checkPresenceArgs, DEFAULT_PRESENCE_TTL_SECONDS } from './presence-args';
import { decodeAll, EtcdPresenceWatch } from './etcd-presence-watch';
import type { PresenceRecord, PresenceRegistration, PresenceSnapshot, PresenceStore, PresenceWatch, PresenceWatchEvents } from './types';

class EtcdPresenceRegistration implements PresenceRegistration {
  private lease: Lease | null = null;
  private closed = false;
  private reattaching: Promise<void> | null = null;
  private stopWaiting: (() => void) | null = null;
  private puts: Promise<void> = Promise.resolve();
  /** The record last written to etcd. */
  private published: PresenceRecord | null = null;

  constructor(
    private readonly ctx: EtcdContext,
    private readonly key: string,
    private record: PresenceRecord,
    private readonly ttlSeconds: number,
    private readonly onClosed: (r: EtcdPresenceRegistration) => void,
  ) {}

  /** First publication: fails (STORE_UNAVAILABLE) rather than retrying, so the caller knows. */
  async start(): Promise<void> {
    await this.attach();
  }

  async update(record: PresenceRecord): Promise<void> {
    if (this.closed) throw cgError('STORE_UNAVAILABLE', `presence registration ${this.record.id} is closed`);
    if (record.id !== this.record.id) throw cgError('USAGE', `cannot change a registration's id (${this.record.id} -> ${record.id})`);
    this.record = record;
    // While a lost lease is being replaced, the re-attach publishes the latest record.
    const lease = this.lease;
    if (lease && !this.reattaching) await this.put(lease);
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
      // Revoking deletes the key at once; if etcd is away, the lease expires by itself.
      await this.ctx.call('revoke presence lease', 'write', () => lease.revoke());
    } catch {
      lease.release();
    }
  }

  private async attach(): Promise<void> {
    const lease = this.ctx.client.lease(this.ttlSeconds, { autoKeepAlive: true });
    this.lease = lease;
    try {
      await this.ctx.call('grant presence lease', 'write', () => lease.grant());
      await this.put(lease);
      // Only a published lease is re-granted when lost; a failed attach is the caller's to retry.
      if (lease.revoked()) throw cgError('STORE_UNAVAILABLE', 'presence lease lost while publishing');
      lease.on('lost', () => this.onLost(lease));
    } catch (err) {
      if (this.lease === lease) this.lease = null;
      lease.release();
      throw err;
    }
  }

  /** Puts are serialized, so that an older record never lands after a newer one. */
  private put(lease: Lease): Promise<void> {
    const next = this.puts.then(async () => {
      const record = this.record;
      await this.ctx.call('publish presence', 'write', () => lease.put(this.key).value(JSON.stringify(record)).exec());
      this.published = record;
    });
    this.puts = next.catch(() => undefined);
    return next;
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
        // update() calls made meanwhile only changed this.record.
        while (this.published !== this.record && this.lease && !this.closed) await this.put(this.lease);
        return;
      } catch {
        const halfAttached = this.lease; // granted, but the record could not be published on it
        this.lease = null;
        halfAttached?.release();
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

export class EtcdPresence implements PresenceStore {
  private readonly registrations = new Set<EtcdPresenceRegistration>();
  private readonly watches = new Set<EtcdPresenceWatch>();

  constructor(private readonly ctx: EtcdContext, private readonly assertOpen: () => void) {}

  async register(record: PresenceRecord, ttlSeconds = DEFAULT_PRESENCE_TTL_SECONDS): Promise<PresenceRegistration> {
    this.assertOpen();
    checkPresenceArgs(record, ttlSeconds);
    const key = `${this.ctx.keys.gatewaysPrefix}${encodeURIComponent(record.id)}`;
    const registration = new EtcdPresenceRegistration(this.ctx, key, record, ttlSeconds, (r) => this.registrations.delete(r));
    await registration.start();
    this.registrations.add(registration);
    return registration;
  }

  async list(): Promise<PresenceRecord[]> {
    return [...(await this.snapshot()).records];
  }

  async snapshot(): Promise<PresenceSnapshot> {
    this.assertOpen();
    const res = await this.ctx.call('list gateways', 'read', () => this.ctx.client.getAll().prefix(this.ctx.keys.gatewaysPrefix).exec());
    return decodeAll(res.kvs, this.ctx.keys.gatewaysPrefix);
  }

  watch(events: PresenceWatchEvents): PresenceWatch {
    this.assertOpen();
    const w = new EtcdPresenceWatch(this.ctx, events, (closed) => this.watches.delete(closed));
    this.watches.add(w);
    return w;
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.watches].map((w) => w.close()));
    await Promise.all([...this.registrations].map((r) => r.close().catch(() => undefined)));
  }
}
