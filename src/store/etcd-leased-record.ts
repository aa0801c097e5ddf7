// One key kept in etcd on its own lease while its owner lives: a gateway's presence record, a
// registered endpoint. etcd3 keeps the lease alive; if the owner dies the keep-alives stop and
// the key goes when the lease expires, and close() revokes the lease, which deletes the key at
// once. When the lease is lost while the owner lives (etcd was away longer than the TTL, or the
// lease was revoked), a new one is granted and the latest value put again, with back-off until
// etcd answers. Puts are serialized, so an older value never lands after a newer one.
//
// A guarded record (a registered endpoint) is written by a transaction instead of a plain
// put: created if absent, or written over the stored record only when the guard allows it
// (an endpoint's own record, or the same instance restarted); otherwise the first write
// fails with the guard's error, and a re-put after a lost lease stops claiming the key for
// good and tells the guard (someone else took it meanwhile: reported, not fought over). A
// re-put the guard says to yield on (another registration of the same endpoint holds the key)
// writes nothing and keeps the lease: reclaim() puts the record once the key is empty again.
import type { IKeyValue, Lease } from 'etcd3';
import { cgError } from '../errors';
import type { EtcdContext } from './etcd-client';

/** A guard's answer: leave the stored record alone, without giving up the key. */
export const YIELD_KEY = 'yield';

export interface LeasedRecordGuard {
  /**
   * null if the record may replace the stored text `existing`, YIELD_KEY to leave it alone for
   * now, else why not (the key is someone else's). `again`: a re-put, not the first write.
   */
  refusal(existing: string, again: boolean): Error | typeof YIELD_KEY | null;
  /** A re-put was refused: the record no longer claims its key. */
  taken(err: Error): void;
}

/** Compare-and-put rounds before giving up on a key that keeps changing under us. */
const MAX_CLAIM_ROUNDS = 5;

export class EtcdLeasedRecord {
  private lease: Lease | null = null;
  private closed = false;
  private reattaching: Promise<void> | null = null;
  private stopWaiting: (() => void) | null = null;
  private puts: Promise<void> = Promise.resolve();
  /** The value last written to etcd. */
  private published: string | null = null;
  /** A guarded re-put was refused: the key is someone else's now. */
  private taken = false;

  /** `noun` names the record in error messages ("presence", "endpoint"). */
  constructor(
    private readonly ctx: EtcdContext,
    private readonly key: string,
    private value: string,
    private readonly ttlSeconds: number,
    private readonly noun: string,
    private readonly guard: LeasedRecordGuard | null = null,
  ) {}

  get isClosed(): boolean {
    return this.closed;
  }

  /** The first put: fails (STORE_UNAVAILABLE) rather than retrying, so the caller knows. */
  start(): Promise<void> {
    return this.attach(false);
  }

  /** Writes `value`; while a lost lease is being replaced, the re-attach publishes the latest one. */
  async set(value: string): Promise<void> {
    this.value = value;
    const lease = this.lease;
    if (lease && !this.reattaching) await this.put(lease);
  }

  /**
   * Guarded records: puts the record again on the current lease if the key is empty (or holds
   * a record the guard lets it replace) — its key was deleted while it is open. Waits for a
   * lease being re-granted (whose attach claims the key itself). Throws what a failed write
   * throws; a key found taken ends the record (the guard is told).
   */
  async reclaim(): Promise<void> {
    await this.reattaching;
    const lease = this.lease;
    const guard = this.guard;
    if (this.closed || this.taken || !lease || !guard) return;
    const leaseId = await this.ctx.call(`grant ${this.noun} lease`, 'write', () => lease.grant());
    try {
      await this.claim(guard, leaseId, true);
    } catch (err) {
      if (!this.taken) throw err;
      if (this.lease === lease) this.lease = null;
      lease.release(); // it holds nothing: the key is another's
      guard.taken(err as Error);
    }
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

  private async attach(again: boolean): Promise<void> {
    const lease = this.ctx.client.lease(this.ttlSeconds, { autoKeepAlive: true });
    this.lease = lease;
    try {
      const leaseId = await this.ctx.call(`grant ${this.noun} lease`, 'write', () => lease.grant());
      await (this.guard ? this.claim(this.guard, leaseId, again) : this.put(lease));
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

  /**
   * The guarded write: create the key, or replace what is there if the guard allows, each a
   * transaction on what was read (a write in between is read again, a few times). Resolves
   * false when the guard yields (nothing written). Its own value already on this lease is
   * not written again.
   */
  private claim(guard: LeasedRecordGuard, leaseId: string, again: boolean): Promise<boolean> {
    const { client } = this.ctx;
    const next = this.puts.then(async () => {
      const value = this.value;
      let seen: number | null = null; // mod revision of the record in the way; null: none
      for (let round = 0; round < MAX_CLAIM_ROUNDS; round++) {
        const guarded = seen === null ? client.if(this.key, 'Create', '==', 0) : client.if(this.key, 'Mod', '==', seen);
        const res: { succeeded: boolean; kv: IKeyValue | undefined } = await this.ctx.call(`publish ${this.noun}`, 'write', async () => {
          const r = await guarded.then(client.put(this.key).value(value).lease(leaseId)).else(client.get(this.key)).commit();
          return { succeeded: r.succeeded, kv: r.responses[0]?.response_range?.kvs[0] };
        });
        if (res.succeeded) {
          this.published = value;
          return true;
        }
        const kv = res.kv;
        if (!kv) {
          seen = null; // deleted meanwhile
          continue;
        }
        const text = kv.value.toString('utf8');
        if (text === value && String(kv.lease) === leaseId) return true;
        const refused = guard.refusal(text, again);
        if (refused === YIELD_KEY) return false;
        if (refused) {
          this.taken = again;
          throw refused;
        }
        seen = Number(kv.mod_revision);
      }
      throw cgError('STORE_UNAVAILABLE', `${this.noun} ${this.key} kept changing while it was being written (${MAX_CLAIM_ROUNDS} tries)`);
    });
    this.puts = next.then(() => undefined, () => undefined);
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
        await this.attach(true);
        // set() calls made meanwhile only changed this.value (a guarded record is claimed, never put plainly).
        while (!this.guard && this.published !== this.value && this.lease && !this.closed) await this.put(this.lease);
        return;
      } catch (err) {
        const halfAttached = this.lease; // granted, but the value could not be published on it
        this.lease = null;
        halfAttached?.release();
        if (this.taken) return this.guard?.taken(err as Error);
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
