// One key kept in etcd on its own lease while its owner lives: a gateway's presence record, a
// registered endpoint. etcd3 keeps the lease alive; if the owner dies the keep-alives stop and
// the key goes when the lease expires, and close() revokes the lease, which deletes the key at
// once. When the lease is lost while the owner lives (etcd was away longer than the TTL, or the
// lease was revoked), a new one is granted and the latest value put again, with back-off until
// etcd answers. Puts are serialized, so an older value never lands after a newer one.
import type { Lease } from 'etcd3';
import { cgError } from '../errors';
import type { EtcdContext } from './etcd-client';

export class EtcdLeasedRecord {
  private lease: Lease | null = null;
  private closed = false;
  private reattaching: Promise<void> | null = null;
  private stopWaiting: (() => void) | null = null;
  private puts: Promise<void> = Promise.resolve();
  /** The value last written to etcd. */
  private published: string | null = null;

  /** `noun` names the record in error messages ("presence", "endpoint"). */
  constructor(
    private readonly ctx: EtcdContext,
    private readonly key: string,
    private value: string,
    private readonly ttlSeconds: number,
    private readonly noun: string,
  ) {}

  get isClosed(): boolean {
    return this.closed;
  }

  /** The first put: fails (STORE_UNAVAILABLE) rather than retrying, so the caller knows. */
  start(): Promise<void> {
    return this.attach();
  }

  /** Writes `value`; while a lost lease is being replaced, the re-attach publishes the latest one. */
  async set(value: string): Promise<void> {
    this.value = value;
    const lease = this.lease;
    if (lease && !this.reattaching) await this.put(lease);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stopWaiting?.();
    await this.reattaching;
    const lease = this.lease;
    this.lease = null;
    if (!lease) return;
    try {
      // Revoking deletes the key at once; if etcd is away, the lease expires by itself.
      await this.ctx.call(`revoke ${this.noun} lease`, 'write', () => lease.revoke());
    } catch {
      lease.release();
    }
  }

  private async attach(): Promise<void> {
    const lease = this.ctx.client.lease(this.ttlSeconds, { autoKeepAlive: true });
    this.lease = lease;
    try {
      await this.ctx.call(`grant ${this.noun} lease`, 'write', () => lease.grant());
      await this.put(lease);
      // Only a published lease is re-granted when lost; a failed attach is the caller's to retry.
      if (lease.revoked()) throw cgError('STORE_UNAVAILABLE', `${this.noun} lease lost while publishing`);
      lease.on('lost', () => this.onLost(lease));
    } catch (err) {
      if (this.lease === lease) this.lease = null;
      lease.release();
      throw err;
    }
  }

  private put(lease: Lease): Promise<void> {
    const next = this.puts.then(async () => {
      const value = this.value;
      await this.ctx.call(`publish ${this.noun}`, 'write', () => lease.put(this.key).value(value).exec());
      this.published = value;
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
        // set() calls made meanwhile only changed this.value.
        while (this.published !== this.value && this.lease && !this.closed) await this.put(this.lease);
        return;
      } catch {
        const halfAttached = this.lease; // granted, but the value could not be published on it
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
