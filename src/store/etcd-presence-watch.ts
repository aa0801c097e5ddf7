// Watching a prefix of records in etcd: the gateways' presence records (`<prefix>/gateways/`
// and `<prefix>/gateways-relayed/`),
// for cellctl's convergence wait, and the endpoint registry (`<prefix>/endpoints/`). Same supervision as the table watch (etcd-watch.ts), smaller: a read of
// the whole prefix, then a watcher from the next revision that applies puts and deletes; any
// trouble drops the watcher and starts again from a fresh read (with back-off while etcd is
// unreachable), so a reconnect never resumes from a compacted revision.
//
// Built for a thousand gateways: each record is decoded once, when it arrives; snapshots are
// delivered once per turn of the event loop (a watch response carries many events) and only
// when they changed; and the periodic check for a watcher gone silent reads only what changed
// since the last revision known (etcd's min_mod_revision) plus a count of the records, not
// the records themselves. Only a count that disagrees (a missed delete, or one still in
// flight) costs a full re-read, at most one per check.
import type { IKeyValue, Watcher } from 'etcd3';
import { callSafely } from './delivery';
import { bounded, type EtcdContext } from './etcd-client';
import { confirmOrCancel, WakeableSleep, WatcherLiveness } from './etcd-watch-parts';
import { decodePresenceText, snapshotKey, snapshotOf, type DecodedPresence } from './presence-record';
import type { PresenceSnapshot, PresenceWatch, PresenceWatchEvents } from './types';

interface Held<D> {
  readonly modRevision: number;
  readonly decoded: D;
}

/** What a prefix watch holds and delivers: the gateways' presence, or the endpoint registry. */
export interface PrefixWatchSpec<D, S> {
  readonly prefix: string;
  /** For error messages: "gateways", "endpoints". */
  readonly noun: string;
  decode(kv: IKeyValue): D;
  /** The snapshot of every record held, at `revision` (the newest one reflected). */
  snapshot(decoded: D[], revision: number): S;
  /** Equal keys = nothing to deliver. */
  key(snapshot: S): string;
}

export interface PrefixWatchEvents<S> {
  onSnapshot(snapshot: S): void;
  onError?(err: Error): void;
}

export class EtcdPrefixWatch<D, S> {
  private closed = false;
  private readonly pause = new WakeableSleep();
  private records = new Map<string, Held<D>>();
  /** Every put up to this revision is reflected in `records` (reads and watch events). */
  private seenRevision = 0;
  private lastKey: string | null = null;
  private deliveryScheduled = false;
  private failing = false;
  private readonly loop: Promise<void>;
  /** Full reads of the prefix made (the first and any after trouble or a count that disagreed). */
  fullReads = 0;
  /** Periodic checks made (for tests). */
  checks = 0;

  constructor(
    private readonly ctx: EtcdContext,
    private readonly spec: PrefixWatchSpec<D, S>,
    private readonly events: PrefixWatchEvents<S>,
    private readonly onClosed: (w: EtcdPrefixWatch<D, S>) => void,
  ) {
    this.loop = this.run();
  }

  async close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.pause.wake();
      this.onClosed(this);
    }
    await this.loop;
  }

  /**
   * Makes the snapshot again from what is held (what it is made of changed, e.g. a reader's
   * priority); delivered if it differs. Before the first read nothing is held, and nothing is
   * delivered: an empty snapshot at revision 0 was never observed (the first read delivers).
   */
  refresh(): void {
    if (this.fullReads > 0) this.deliver();
  }

  private async run(): Promise<void> {
    const { retryMinMs, retryMaxMs, watchdogIntervalMs } = this.ctx.opts;
    let backoffMs = retryMinMs;
    while (!this.closed) {
      let watcher: Watcher | null = null;
      try {
        const revision = await this.readAll();
        if (this.closed) break;
        const failed = { now: false };
        watcher = await this.createWatcher(revision + 1, () => {
          failed.now = true;
          this.pause.wake();
        });
        backoffMs = retryMinMs;
        while (!this.closed && !failed.now) {
          await this.sleep(watchdogIntervalMs);
          if (!this.closed && !failed.now) await this.check();
        }
      } catch (err) {
        if (this.closed) break;
        const onError = this.events.onError;
        if (!this.failing && onError) callSafely(() => onError.call(this.events, err as Error));
        this.failing = true;
        await this.sleep(backoffMs);
        backoffMs = Math.min(backoffMs * 2, retryMaxMs);
      } finally {
        if (watcher) await bounded(watcher.cancel(), this.ctx.opts.callTimeoutMs, 'cancel watcher').catch(() => undefined);
      }
    }
  }

  /** A linearizable read of every record; replaces what the watch knows. Returns the read's revision. */
  private async readAll(): Promise<number> {
    const res = await this.ctx.call(`read ${this.spec.noun}`, 'read', () => this.ctx.client.getAll().prefix(this.spec.prefix).exec());
    this.failing = false;
    this.fullReads += 1;
    this.records = new Map();
    for (const kv of res.kvs) this.records.set(kv.key.toString('utf8'), this.decode(kv));
    this.seenRevision = Number(res.header.revision);
    this.deliver();
    return this.seenRevision;
  }

  /**
   * What a silent watcher would have missed: the records written since the last revision
   * known (normally none: the watcher delivered them), then the number of records, which
   * only a missed delete makes disagree; then, and only then, a full re-read.
   */
  private async check(): Promise<void> {
    const prefix = this.spec.prefix;
    const newer = await this.ctx.call(`read changed ${this.spec.noun}`, 'read', () =>
      this.ctx.client.getAll().prefix(prefix).minModRevision(this.seenRevision + 1).exec());
    for (const kv of newer.kvs) this.put(kv);
    this.seenRevision = Math.max(this.seenRevision, Number(newer.header.revision));
    const count = await this.ctx.call(`count ${this.spec.noun}`, 'read', () => this.ctx.client.getAll().prefix(prefix).count());
    if (count !== this.records.size) await this.readAll();
    this.checks += 1;
  }

  private decode(kv: IKeyValue): Held<D> {
    return { modRevision: Number(kv.mod_revision), decoded: this.spec.decode(kv) };
  }

  /** A record written at kv.mod_revision; an older write arriving late changes nothing. */
  private put(kv: IKeyValue): void {
    const key = kv.key.toString('utf8');
    const held = this.records.get(key);
    if (held && held.modRevision >= Number(kv.mod_revision)) return;
    this.records.set(key, this.decode(kv));
    this.deliver();
  }

  private remove(kv: IKeyValue): void {
    const key = kv.key.toString('utf8');
    const held = this.records.get(key);
    if (!held || held.modRevision >= Number(kv.mod_revision)) return;
    this.records.delete(key);
    this.deliver();
  }

  private async createWatcher(fromRevision: number, onFail: () => void): Promise<Watcher> {
    const watcher = this.ctx.client.watch().prefix(this.spec.prefix).startRevision(String(fromRevision)).watcher();
    const liveness = new WatcherLiveness(watcher, onFail);
    // Events come in revision order: once one at revision r is in, so is every earlier
    // one, and the next check need only read from r + 1 (what a silent watcher would miss).
    watcher.on('put', (kv) => {
      if (!liveness.live) return;
      this.put(kv);
      this.seenRevision = Math.max(this.seenRevision, Number(kv.mod_revision));
    });
    watcher.on('delete', (kv) => {
      if (!liveness.live) return;
      this.remove(kv);
      this.seenRevision = Math.max(this.seenRevision, Number(kv.mod_revision));
    });
    await confirmOrCancel(watcher, this.ctx.opts, liveness, `${this.spec.noun} watcher`);
    return watcher;
  }

  /** Delivers the snapshot once the current burst of events is in (next turn of the event loop). */
  private deliver(): void {
    if (this.closed || this.deliveryScheduled) return;
    this.deliveryScheduled = true;
    setImmediate(() => {
      this.deliveryScheduled = false;
      if (this.closed) return;
      const snapshot = this.spec.snapshot([...this.records.values()].map((h) => h.decoded), this.seenRevision);
      const key = this.spec.key(snapshot);
      if (key === this.lastKey) return;
      this.lastKey = key;
      callSafely(() => this.events.onSnapshot(snapshot));
    });
  }

  private sleep(ms: number): Promise<void> {
    return this.closed ? Promise.resolve() : this.pause.sleep(ms);
  }
}

/**
 * Where presence records live: the gateways' own (`<prefix>/gateways/<id>`) and those a
 * presence relay writes for them (`<prefix>/gateways-relayed/<id>`). One prefix covers both,
 * so one read and one watcher see them together.
 */
export function presencePrefix(keys: EtcdContext['keys']): string {
  return keys.gatewaysPrefix.slice(0, -1);
}

/** The gateways' presence records, direct and relayed. */
export class EtcdPresenceWatch extends EtcdPrefixWatch<DecodedPresence | null, PresenceSnapshot> implements PresenceWatch {
  constructor(ctx: EtcdContext, events: PresenceWatchEvents, onClosed: (w: EtcdPresenceWatch) => void) {
    const { keys } = ctx;
    super(ctx, {
      prefix: presencePrefix(keys), noun: 'gateways', decode: (kv) => decodeOne(kv, keys), snapshot: (d) => snapshotOf(d), key: snapshotKey,
    }, events, (w) => onClosed(w as EtcdPresenceWatch));
  }
}

/** A record under either presence prefix; null for any other key the shared prefix covers. */
function decodeOne(kv: IKeyValue, keys: EtcdContext['keys']): DecodedPresence | null {
  const key = kv.key.toString('utf8');
  const prefix = [keys.gatewaysPrefix, keys.relayedGatewaysPrefix].find((p) => key.startsWith(p));
  if (prefix === undefined) return null;
  const rawId = key.slice(prefix.length);
  let keyId = rawId;
  try {
    keyId = decodeURIComponent(rawId);
  } catch { /* not encoded by us: the raw key names it */ }
  return decodePresenceText(kv.value.toString('utf8'), keyId);
}

/** The presence records among `kvs`, validated; a key names its gateway when the record cannot. */
export function decodeAll(kvs: Iterable<IKeyValue>, keys: EtcdContext['keys']): PresenceSnapshot {
  return snapshotOf([...kvs].map((kv) => decodeOne(kv, keys)));
}
