// Watching one key in etcd: what a registration uses to keep its own record in view. A read
// of the key, then a watcher from the next revision; every value seen (read or event) is
// handed to `onKey`, one at a time, in order. Any trouble — the watcher failing, compaction,
// `onKey` throwing (a write that did not go through) — drops the watcher and starts again
// from a fresh read after a back-off, so nothing missed meanwhile stays missed. A periodic
// read of the key (the store's watchdog interval) makes up for a watcher gone silent, as the
// table and prefix watches do.
import type { Watcher } from 'etcd3';
import { bounded, type EtcdContext } from './etcd-client';
import { confirmOrCancel, WakeableSleep, WatcherLiveness } from './etcd-watch-parts';

/** The key's value as seen now: its text, or null when it is absent. */
export type KeyObserver = (value: string | null) => Promise<void>;

export class EtcdKeyWatch {
  private closed = false;
  private readonly pause = new WakeableSleep();
  private handling: Promise<void> = Promise.resolve();
  private readonly loop: Promise<void>;
  /** Reads of the key made (the first, resyncs and periodic checks); for tests. */
  reads = 0;

  constructor(private readonly ctx: EtcdContext, private readonly key: string, private readonly noun: string, private readonly onKey: KeyObserver) {
    this.loop = this.run();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  async close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.pause.wake();
    }
    await this.loop;
  }

  private async run(): Promise<void> {
    const { retryMinMs, retryMaxMs, watchdogIntervalMs } = this.ctx.opts;
    let backoffMs = retryMinMs;
    while (!this.closed) {
      let watcher: Watcher | null = null;
      const failed = { now: false };
      const fail = () => {
        failed.now = true;
        this.pause.wake();
      };
      try {
        const revision = await this.read(fail);
        if (this.closed) break;
        if (failed.now) throw new Error(`${this.noun} key: handling what was read failed`);
        watcher = await this.createWatcher(revision + 1, fail);
        while (!this.closed && !failed.now) {
          await this.sleep(watchdogIntervalMs);
          if (!this.closed && !failed.now) await this.read(fail);
        }
        if (failed.now) throw new Error(`${this.noun} key watch failed`);
        backoffMs = retryMinMs;
      } catch {
        if (this.closed) break;
        await this.sleep(backoffMs);
        backoffMs = Math.min(backoffMs * 2, retryMaxMs);
      } finally {
        if (watcher) await bounded(watcher.cancel(), this.ctx.opts.callTimeoutMs, `cancel ${this.noun} key watcher`).catch(() => undefined);
      }
    }
    await this.handling;
  }

  /** A linearizable read of the key, handed over like an event; the read's revision. */
  private async read(fail: () => void): Promise<number> {
    const res = await this.ctx.call(`read ${this.noun}`, 'read', () => this.ctx.client.get(this.key).exec());
    this.reads += 1;
    const kv = res.kvs[0];
    this.observe(kv ? kv.value.toString('utf8') : null, fail);
    await this.handling;
    return Number(res.header.revision);
  }

  /** Hands `value` to onKey after what came before it; a throw is trouble (a fresh read follows). */
  private observe(value: string | null, fail: () => void): void {
    this.handling = this.handling.then(async () => {
      if (this.closed) return;
      try {
        await this.onKey(value);
      } catch {
        fail();
      }
    });
  }

  private async createWatcher(fromRevision: number, fail: () => void): Promise<Watcher> {
    await this.ctx.opts.testHooks.beforeWatchCreate?.(fromRevision);
    const watcher = this.ctx.client.watch().key(this.key).startRevision(String(fromRevision)).watcher();
    const liveness = new WatcherLiveness(watcher, fail);
    const hooks = this.ctx.opts.testHooks;
    watcher.on('put', (kv) => {
      if (liveness.live && !hooks.dropWatchEvents) this.observe(kv.value.toString('utf8'), liveness.fail);
    });
    watcher.on('delete', () => {
      if (liveness.live && !hooks.dropWatchEvents) this.observe(null, liveness.fail);
    });
    await confirmOrCancel(watcher, this.ctx.opts, liveness, `${this.noun} key watcher`);
    return watcher;
  }

  private sleep(ms: number): Promise<void> {
    return this.closed ? Promise.resolve() : this.pause.sleep(ms);
  }
}
