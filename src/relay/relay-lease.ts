// The relay's own etcd lease: every relayed record is attached to it, so the records go
// when the relay dies (the lease expires) or stops (close() revokes it). When the lease is
// lost while the relay lives, a new one is granted with back-off until etcd answers, and
// the owner is told (onGranted) so that it puts every current record again.
import type { Lease } from 'etcd3';
import type { EtcdContext } from '../store/etcd-client';
import type { Clock, TimerHandle } from '../clock';
import type { RelayLog } from './log';

export const LEASE_STATE = { GRANTING: 'granting', HELD: 'held', CLOSED: 'closed' } as const;
export type LeaseState = (typeof LEASE_STATE)[keyof typeof LEASE_STATE];

export interface RelayLeaseEvents {
  /** A lease is held; `epoch` grows by one per grant (a batch on an older epoch committed nothing that lasts). */
  granted(leaseId: string, epoch: number): void;
  /** The held lease is gone: etcd deleted every key on it. */
  lost(): void;
}

export class RelayLease {
  private state: LeaseState = LEASE_STATE.GRANTING;
  private lease: Lease | null = null;
  private leaseId: string | null = null;
  private epoch = 0;
  private retryTimer: TimerHandle | null = null;

  constructor(
    private readonly ctx: EtcdContext,
    private readonly ttlSeconds: number,
    private readonly clock: Clock,
    private readonly log: RelayLog,
    private readonly events: RelayLeaseEvents,
  ) {}

  /** The lease id while one is held, else null. */
  get id(): string | null {
    return this.state === LEASE_STATE.HELD ? this.leaseId : null;
  }

  get currentEpoch(): number {
    return this.epoch;
  }

  /** The first grant: rejects (STORE_UNAVAILABLE) rather than retrying, so the command can say etcd is away. */
  start(): Promise<void> {
    return this.grant();
  }

  /** Revokes the lease (etcd deletes every relayed key at once); if etcd is away, it expires by itself. */
  async close(): Promise<void> {
    const lease = this.lease;
    this.state = LEASE_STATE.CLOSED;
    this.lease = null;
    if (this.retryTimer) this.clock.clearTimer(this.retryTimer);
    if (!lease) return;
    try {
      await this.ctx.call('revoke relay lease', 'write', () => lease.revoke());
    } catch {
      lease.release();
    }
  }

  private async grant(): Promise<void> {
    const lease = this.ctx.client.lease(this.ttlSeconds, { autoKeepAlive: true });
    try {
      const id = await this.ctx.call('grant relay lease', 'write', () => lease.grant());
      if (this.state === LEASE_STATE.CLOSED) {
        void lease.revoke().catch(() => undefined);
        return;
      }
      this.lease = lease;
      this.leaseId = id;
      this.epoch += 1;
      this.state = LEASE_STATE.HELD;
      lease.on('lost', () => this.onLost(lease));
      this.log('relay.lease.granted', { lease: id, epoch: this.epoch, ttlSeconds: this.ttlSeconds });
      this.events.granted(id, this.epoch);
    } catch (err) {
      lease.release();
      throw err;
    }
  }

  private onLost(lease: Lease): void {
    if (this.state !== LEASE_STATE.HELD || this.lease !== lease) return;
    this.state = LEASE_STATE.GRANTING;
    this.lease = null;
    this.log('relay.lease.lost', { lease: this.leaseId });
    // Should the lease still exist on etcd's side, its keys must not outlive it: revoke it.
    void this.ctx.call('revoke lost relay lease', 'write', () => lease.revoke()).catch(() => lease.release());
    this.events.lost();
    this.regrant(this.ctx.opts.retryMinMs);
  }

  private regrant(backoffMs: number): void {
    if (this.state !== LEASE_STATE.GRANTING) return;
    this.grant().catch((err: Error) => {
      if (this.state !== LEASE_STATE.GRANTING) return;
      this.log('relay.lease.grant_failed', { inMs: backoffMs, error: err.message });
      this.retryTimer = this.clock.setTimer(() => {
        this.retryTimer = null;
        this.regrant(Math.min(backoffMs * 2, this.ctx.opts.retryMaxMs));
      }, backoffMs);
    });
  }
}
