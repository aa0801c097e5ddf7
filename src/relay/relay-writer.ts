// The relay's writer: at most one etcd transaction in flight; whatever became dirty meanwhile
// goes in the next one, up to etcd's default --max-txn-ops (128) and well under its default
// --max-request-bytes (1.5 MiB). Records are put on the relay's lease. A deletion is a nested
// transaction guarded on that lease: a key another relay has written since (the gateway moved)
// is left alone. A failed transaction answers its waiters STORE_UNAVAILABLE and is tried
// again after a back-off; one sent on a lease since lost counts for nothing (everything is
// put again on the new lease).
import { CompareResult, CompareTarget, type IRequestOp } from 'etcd3';
import { cgError, isCellgateError } from '../errors';
import type { EtcdContext } from '../store/etcd-client';
import type { Clock, TimerHandle } from '../clock';
import type { RelayLog } from './log';
import { ENTRY_STATE, type BatchOp, type RelayEntries } from './relay-entries';
import type { RelayLease } from './relay-lease';

export const MAX_TXN_OPS = 128;
export const MAX_TXN_BYTES = 1024 * 1024;

export const WRITER_STATE = { IDLE: 'idle', SCHEDULED: 'scheduled', WRITING: 'writing', BACKING_OFF: 'backing-off', STOPPED: 'stopped' } as const;
export type WriterState = (typeof WRITER_STATE)[keyof typeof WRITER_STATE];

export interface WriterStats {
  /** Transactions committed. */
  readonly txns: number;
  /** Puts and deletes committed. */
  readonly ops: number;
  readonly failedTxns: number;
}

export class RelayWriter {
  private state: WriterState = WRITER_STATE.IDLE;
  private backoffMs: number;
  private timer: TimerHandle | null = null;
  private current: Promise<void> = Promise.resolve();
  private stats = { txns: 0, ops: 0, failedTxns: 0 };

  constructor(
    private readonly ctx: EtcdContext,
    private readonly entries: () => RelayEntries,
    private readonly lease: RelayLease,
    private readonly clock: Clock,
    private readonly log: RelayLog,
  ) {
    this.backoffMs = ctx.opts.retryMinMs;
  }

  get counts(): WriterStats {
    return { ...this.stats };
  }

  /** Something is dirty, or a lease was granted: write soon (requests of the same I/O turn join the batch). */
  kick(): void {
    switch (this.state) {
      case WRITER_STATE.IDLE:
        this.state = WRITER_STATE.SCHEDULED;
        setImmediate(() => this.run());
        return;
      case WRITER_STATE.SCHEDULED:
      case WRITER_STATE.WRITING:
      case WRITER_STATE.BACKING_OFF:
      case WRITER_STATE.STOPPED:
        return; // the end of the current step looks for dirty entries again
      default: {
        const never: never = this.state;
        throw new Error(`unknown writer state ${String(never)}`);
      }
    }
  }

  /** No more transactions; resolves once the one in flight has ended. */
  async stop(): Promise<void> {
    this.state = WRITER_STATE.STOPPED;
    if (this.timer) this.clock.clearTimer(this.timer);
    await this.current;
  }

  private run(): void {
    if (this.state !== WRITER_STATE.SCHEDULED) return;
    const leaseId = this.lease.id;
    const ops = leaseId === null ? [] : this.entries().takeBatch(MAX_TXN_OPS, MAX_TXN_BYTES);
    if (leaseId === null || ops.length === 0) {
      this.state = WRITER_STATE.IDLE; // a granted lease kicks again
      return;
    }
    this.state = WRITER_STATE.WRITING;
    this.current = this.write(leaseId, this.lease.currentEpoch, ops);
  }

  private async write(leaseId: string, epoch: number, ops: readonly BatchOp[]): Promise<void> {
    const request = { compare: [], success: ops.map((op) => requestOp(op, leaseId)), failure: [] };
    let failure: Error | null = null;
    try {
      await this.ctx.call('write relayed presence', 'write', () => this.ctx.client.kv.txn(request));
    } catch (err) {
      failure = err as Error;
    }
    const sameLease = this.lease.currentEpoch === epoch && this.lease.id === leaseId;
    if (failure === null) {
      this.stats.txns += 1;
      this.stats.ops += ops.length;
      this.backoffMs = this.ctx.opts.retryMinMs;
      if (sameLease) this.entries().committed(ops);
      this.next();
      return;
    }
    this.stats.failedTxns += 1;
    const err = isCellgateError(failure) ? failure : cgError('STORE_UNAVAILABLE', failure.message);
    if (sameLease) this.entries().failed(ops, err);
    this.log('relay.write_failed', { ops: ops.length, retryInMs: this.backoffMs, error: err.message });
    if (this.state === WRITER_STATE.STOPPED) return;
    this.state = WRITER_STATE.BACKING_OFF;
    this.timer = this.clock.setTimer(() => {
      this.timer = null;
      this.next();
    }, this.backoffMs);
    this.backoffMs = Math.min(this.backoffMs * 2, this.ctx.opts.retryMaxMs);
  }

  private next(): void {
    if (this.state === WRITER_STATE.STOPPED) return;
    this.state = WRITER_STATE.IDLE;
    if (this.entries().dirtyCount > 0) this.kick();
  }
}

function requestOp(op: BatchOp, leaseId: string): IRequestOp {
  const key = Buffer.from(op.entry.key);
  switch (op.state) {
    case ENTRY_STATE.LIVE:
      return { request_put: { key, value: Buffer.from(op.value), lease: leaseId } };
    case ENTRY_STATE.DELETING:
      return {
        request_txn: {
          compare: [{ key, target: CompareTarget.Lease, result: CompareResult.Equal, lease: leaseId }],
          success: [{ request_delete_range: { key } }],
          failure: [],
        },
      };
    default: {
      const never: never = op.state;
      throw new Error(`unknown entry state ${String(never)}`);
    }
  }
}
