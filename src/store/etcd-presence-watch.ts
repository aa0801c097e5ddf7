// Watching the gateways' presence records in etcd (`<prefix>/gateways/`), for cellctl's
// convergence wait. Same supervision as the table watch (etcd-watch.ts), smaller: a read of
// the whole prefix, then a watcher from the next revision that applies puts and deletes; a
// periodic re-read catches a watcher gone silent; any trouble drops the watcher and starts
// again from a fresh read (with back-off while etcd is unreachable), so a reconnect never
// resumes from a compacted revision. A snapshot is delivered only when it changed.
import type { IKeyValue, Watcher } from 'etcd3';
import { callSafely } from './delivery';
import { bounded, type EtcdContext } from './etcd-client';
import { decodePresenceText, snapshotKey, snapshotOf } from './presence-record';
import type { PresenceSnapshot, PresenceWatch, PresenceWatchEvents } from './types';

export class EtcdPresenceWatch implements PresenceWatch {
  private closed = false;
  private wake: (() => void) | null = null;
  private records = new Map<string, IKeyValue>();
  private lastKey: string | null = null;
  private failing = false;
  private readonly loop: Promise<void>;

  constructor(private readonly ctx: EtcdContext, private readonly events: PresenceWatchEvents, private readonly onClosed: (w: EtcdPresenceWatch) => void) {
    this.loop = this.run();
  }

  async close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.wake?.();
      this.onClosed(this);
    }
    await this.loop;
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
          this.wake?.();
        });
        backoffMs = retryMinMs;
        while (!this.closed && !failed.now) {
          await this.sleep(watchdogIntervalMs);
          if (!this.closed && !failed.now) await this.readAll();
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
    const res = await this.ctx.call('read gateways', 'read', () => this.ctx.client.getAll().prefix(this.ctx.keys.gatewaysPrefix).exec());
    this.failing = false;
    this.records = new Map(res.kvs.map((kv) => [kv.key.toString('utf8'), kv]));
    this.deliver();
    return Number(res.header.revision);
  }

  private async createWatcher(fromRevision: number, onFail: () => void): Promise<Watcher> {
    const watcher = this.ctx.client.watch().prefix(this.ctx.keys.gatewaysPrefix).startRevision(String(fromRevision)).watcher();
    let live = true;
    const fail = () => {
      if (!live) return;
      live = false;
      onFail();
    };
    watcher.on('error', fail);
    watcher.on('disconnected', fail);
    watcher.on('put', (kv) => {
      if (!live) return;
      this.records.set(kv.key.toString('utf8'), kv);
      this.deliver();
    });
    watcher.on('delete', (kv) => {
      if (!live) return;
      this.records.delete(kv.key.toString('utf8'));
      this.deliver();
    });
    const created = new Promise<void>((resolve, reject) => {
      watcher.once('connected', () => resolve());
      watcher.once('error', (err) => reject(err));
      watcher.once('disconnected', (err) => reject(err));
    });
    try {
      await bounded(created, this.ctx.opts.watchCreateTimeoutMs, 'create presence watcher');
    } catch (err) {
      live = false;
      await bounded(watcher.cancel(), this.ctx.opts.callTimeoutMs, 'cancel watcher').catch(() => undefined);
      throw err;
    }
    return watcher;
  }

  private deliver(): void {
    if (this.closed) return;
    const snapshot = decodeAll(this.records.values(), this.ctx.keys.gatewaysPrefix);
    const key = snapshotKey(snapshot);
    if (key === this.lastKey) return;
    this.lastKey = key;
    callSafely(() => this.events.onSnapshot(snapshot));
  }

  private sleep(ms: number): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const self = this;
      function done(): void {
        clearTimeout(timer);
        self.wake = null;
        resolve();
      }
      this.wake = done;
    });
  }
}

/** The records under `prefix`, validated; a key names its gateway when the record cannot. */
export function decodeAll(kvs: Iterable<IKeyValue>, prefix: string): PresenceSnapshot {
  return snapshotOf([...kvs].map((kv) => {
    const rawId = kv.key.toString('utf8').slice(prefix.length);
    let keyId = rawId;
    try {
      keyId = decodeURIComponent(rawId);
    } catch { /* not encoded by us: the raw key names it */ }
    return decodePresenceText(kv.value.toString('utf8'), keyId);
  }));
}
