// What the relay holds per gateway: the value etcd should hold for it (its record plus the
// relay's id) or that its key should be deleted, numbered by generation; which generation
// etcd holds; when it expires; and the requests waiting for a generation to be committed.
// The writer (relay-writer.ts) takes the dirty entries in batches and reports back.
import { cgError, type CellgateError } from '../errors';
import type { Clock, TimerHandle } from '../clock';

export const ENTRY_STATE = { LIVE: 'live', DELETING: 'deleting' } as const;
export type EntryState = (typeof ENTRY_STATE)[keyof typeof ENTRY_STATE];

/** A request waiting for its generation to be committed: answered once, by commit, failure or deadline. */
interface Waiter {
  readonly generation: number;
  readonly done: (err: CellgateError | null) => void;
  timer: TimerHandle | null;
}

export interface Entry {
  readonly id: string;
  readonly key: string;
  state: EntryState;
  /** What etcd should hold (LIVE), and its size in UTF-8 bytes ('' and 0 while DELETING). */
  value: string;
  bytes: number;
  /** Bumped per new value, per expiry and per delete request. */
  generation: number;
  /** The generation etcd holds on the current lease (0: none). */
  committed: number;
  /** A write of it was sent on the current lease: its key may exist, even if no commit was seen. */
  sent: boolean;
  /** Wall-clock ms after which a LIVE entry is deleted unless a PUT refreshes it. */
  expiresAt: number;
  waiters: Waiter[];
}

/** One operation of a batch, as the writer sends it. */
export interface BatchOp {
  readonly entry: Entry;
  readonly generation: number;
  readonly state: EntryState;
  readonly value: string;
}

export interface EntryLimits {
  readonly maxGateways: number;
  /** Bound on the bytes of all values held. */
  readonly maxTotalBytes: number;
  /** A request not answered within this long gets STORE_UNAVAILABLE. */
  readonly commitDeadlineMs: number;
  /** Requests of one gateway waiting at once (a newer PUT supersedes; the older still gets its answer). */
  readonly maxWaitersPerGateway: number;
}

export type Outcome = { readonly kind: 'now' } | { readonly kind: 'wait'; readonly answer: Promise<CellgateError | null> };
const NOW: Outcome = { kind: 'now' };

export class RelayEntries {
  private readonly entries = new Map<string, Entry>();
  /** Ids whose generation etcd does not hold yet, in the order they became dirty. */
  private readonly dirty = new Set<string>();
  private totalBytes = 0;

  constructor(
    private readonly keyPrefix: string,
    private readonly limits: EntryLimits,
    private readonly clock: Clock,
    /** Called when something became dirty (the writer starts a batch if idle). */
    private readonly onDirty: () => void,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  get dirtyCount(): number {
    return this.dirty.size;
  }

  /**
   * A gateway's PUT: `value` is what etcd should hold. The same value already committed is a
   * heartbeat: answered now, nothing written. Every PUT moves the expiry.
   */
  put(id: string, value: string, ttlSeconds: number): Outcome {
    const expiresAt = this.clock.now() + ttlSeconds * 1000;
    let entry = this.entries.get(id);
    if (!entry) {
      if (this.entries.size >= this.limits.maxGateways) throw cgError('RELAY_FULL', `the relay holds ${this.entries.size} gateways, its limit (--max-gateways)`);
      const bytes = Buffer.byteLength(value);
      this.admitBytes(bytes);
      entry = { id, key: `${this.keyPrefix}${encodeURIComponent(id)}`, state: ENTRY_STATE.LIVE, value, bytes, generation: 1, committed: 0, sent: false, expiresAt, waiters: [] };
      this.entries.set(id, entry);
      this.totalBytes += bytes;
      this.markDirty(entry);
      return this.wait(entry);
    }
    entry.expiresAt = expiresAt;
    if (entry.state === ENTRY_STATE.LIVE && entry.value === value) {
      return entry.committed === entry.generation ? NOW : this.wait(entry);
    }
    const bytes = Buffer.byteLength(value);
    this.admitBytes(bytes - entry.bytes);
    this.totalBytes += bytes - entry.bytes;
    if (entry.state !== ENTRY_STATE.LIVE) this.failWaiters(entry, 'a newer PUT of the same gateway superseded its DELETE');
    entry.state = ENTRY_STATE.LIVE;
    entry.value = value;
    entry.bytes = bytes;
    entry.generation += 1;
    this.markDirty(entry);
    return this.wait(entry);
  }

  /** A gateway's DELETE: answered once its key is deleted (now, if the relay holds nothing for it). */
  remove(id: string): Outcome {
    const entry = this.entries.get(id);
    if (!entry) return NOW;
    if (entry.state !== ENTRY_STATE.DELETING) this.toDeleting(entry, 'a DELETE of the same gateway superseded its PUT');
    return this.entries.get(id) === entry ? this.wait(entry) : NOW;
  }

  /** Entries not refreshed within their TTL become deletions; returns how many. */
  expire(): number {
    const now = this.clock.now();
    let expired = 0;
    for (const entry of this.entries.values()) {
      if (entry.state === ENTRY_STATE.LIVE && entry.expiresAt <= now) {
        this.toDeleting(entry, `gateway ${entry.id} expired before its record was committed`);
        expired += 1;
      }
    }
    return expired;
  }

  /** Up to `maxOps` dirty entries, at most `maxBytes` of values (at least one), taken off the dirty set. */
  takeBatch(maxOps: number, maxBytes: number): BatchOp[] {
    const ops: BatchOp[] = [];
    let bytes = 0;
    for (const id of this.dirty) {
      const entry = this.entries.get(id);
      this.dirty.delete(id);
      if (!entry || entry.committed === entry.generation) continue;
      const size = entry.key.length + entry.bytes;
      if (ops.length > 0 && bytes + size > maxBytes) {
        this.dirty.add(id); // back at the end: the next batch takes it
        break;
      }
      ops.push({ entry, generation: entry.generation, state: entry.state, value: entry.value });
      entry.sent = true;
      bytes += size;
      if (ops.length >= maxOps) break;
    }
    return ops;
  }

  /** The batch is in etcd: waiters of those generations are answered, deleted entries forgotten. */
  committed(ops: readonly BatchOp[]): void {
    for (const op of ops) {
      const entry = op.entry;
      if (this.entries.get(entry.id) !== entry) continue;
      entry.committed = Math.max(entry.committed, op.generation);
      this.answer(entry, (w) => w.generation <= entry.committed, null);
      if (entry.state === ENTRY_STATE.DELETING && entry.committed === entry.generation) this.forget(entry);
    }
  }

  /** The batch failed (or its lease is gone): its waiters get `err`; the entries stay dirty for the next try. */
  failed(ops: readonly BatchOp[], err: CellgateError): void {
    for (const op of ops) {
      const entry = op.entry;
      if (this.entries.get(entry.id) !== entry) continue;
      this.answer(entry, (w) => w.generation <= op.generation, err);
      this.markDirty(entry);
    }
  }

  /**
   * The relay's lease is gone, and every key on it: every live record is to be put again;
   * deletions are done (their keys went with the lease).
   */
  leaseLost(): void {
    for (const entry of [...this.entries.values()]) {
      entry.committed = 0;
      entry.sent = false;
      if (entry.state === ENTRY_STATE.DELETING) {
        this.answer(entry, () => true, null);
        this.forget(entry);
      } else {
        this.markDirty(entry);
      }
    }
  }

  /** Stopping: every waiting request gets `err`. */
  failAll(err: CellgateError): void {
    for (const entry of this.entries.values()) this.answer(entry, () => true, err);
  }

  private toDeleting(entry: Entry, why: string): void {
    this.failWaiters(entry, why);
    this.totalBytes -= entry.bytes;
    entry.value = '';
    entry.bytes = 0;
    entry.state = ENTRY_STATE.DELETING;
    entry.generation += 1;
    if (!entry.sent) {
      // Nothing of it was sent on this lease: there is no key to delete.
      this.forget(entry);
      return;
    }
    this.markDirty(entry);
  }

  private forget(entry: Entry): void {
    this.entries.delete(entry.id);
    this.dirty.delete(entry.id);
    this.totalBytes -= entry.bytes;
    entry.value = '';
    entry.bytes = 0;
  }

  private markDirty(entry: Entry): void {
    this.dirty.add(entry.id);
    this.onDirty();
  }

  private admitBytes(extra: number): void {
    if (extra > 0 && this.totalBytes + extra > this.limits.maxTotalBytes) {
      throw cgError('RELAY_FULL', `the relay holds ${this.totalBytes} bytes of records, its limit is ${this.limits.maxTotalBytes}`);
    }
  }

  private failWaiters(entry: Entry, why: string): void {
    this.answer(entry, () => true, cgError('STORE_UNAVAILABLE', why));
  }

  private wait(entry: Entry): Outcome {
    if (entry.waiters.length >= this.limits.maxWaitersPerGateway) {
      // The oldest waiter asked for an older generation: the newest answers the same question.
      this.answerOne(entry, entry.waiters[0]!, cgError('STORE_UNAVAILABLE', `gateway ${entry.id} sent newer requests before this one was committed`));
    }
    const answer = new Promise<CellgateError | null>((resolve) => {
      const waiter: Waiter = { generation: entry.generation, done: resolve, timer: null };
      waiter.timer = this.clock.setTimer(() => {
        waiter.timer = null;
        this.answerOne(entry, waiter, cgError('STORE_UNAVAILABLE', `the record of gateway ${entry.id} was not committed to etcd within ${this.limits.commitDeadlineMs} ms`));
      }, this.limits.commitDeadlineMs);
      entry.waiters.push(waiter);
    });
    return { kind: 'wait', answer };
  }

  private answer(entry: Entry, which: (w: Waiter) => boolean, err: CellgateError | null): void {
    for (const w of entry.waiters.filter(which)) this.answerOne(entry, w, err);
  }

  private answerOne(entry: Entry, waiter: Waiter, err: CellgateError | null): void {
    const i = entry.waiters.indexOf(waiter);
    if (i < 0) return;
    entry.waiters.splice(i, 1);
    if (waiter.timer) this.clock.clearTimer(waiter.timer);
    waiter.done(err);
  }
}
