// The etcd store's watch: one supervisor loop that never trusts a single mechanism.
//
//   resync:    linearizable read of the table key -> offer it -> watch from revision + 1
//   supervise: events arrive on the watcher; every watchdogIntervalMs a linearizable
//              read of anything newer than what was delivered (a watcher can go silent
//              without an error; the read returns nothing when it did not)
//   on trouble (watcher error, e.g. its start revision was compacted; disconnection;
//              a failed read; a create() that never settles): drop the watcher and resync,
//              with back-off while etcd is unreachable.
//
// etcd3's own watcher reconnects by itself from its last revision, but when that revision
// was compacted meanwhile it is cancelled with an 'error' and never resyncs; so we never
// let it reconnect: any disconnection goes back through a fresh read.
import type { IKeyValue, Watcher } from 'etcd3';
import { TableDecoder } from '../cells/table-decoder';
import { TableDelivery } from './delivery';
import { bounded, type EtcdContext } from './etcd-client';
import { watcherConfirmed } from './etcd-watch-parts';
import { decodeTableValue } from './table-encoding';
import type { TableWatch, TableWatchEvents } from './types';

type Wake = 'tick' | 'watcher-failed' | 'closed';

interface WatcherState {
  readonly watcher: Watcher;
  /** etcd3 already removed it after an 'error' (cancelling it again would never settle). */
  errored: boolean;
  failed: boolean;
  dropped: boolean;
}

export class EtcdTableWatch implements TableWatch {
  private readonly delivery: TableDelivery;
  private readonly decoder = new TableDecoder();
  private closed = false;
  private wakeUp: ((why: Wake) => void) | null = null;
  private current: WatcherState | null = null;
  private readonly loop: Promise<void>;

  constructor(private readonly ctx: EtcdContext, events: TableWatchEvents, private readonly onClosed: (w: EtcdTableWatch) => void) {
    this.delivery = new TableDelivery(events);
    this.loop = this.run();
  }

  async close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.wakeUp?.('closed');
      this.onClosed(this);
    }
    await this.loop;
  }

  private async run(): Promise<void> {
    const { retryMinMs, retryMaxMs } = this.ctx.opts;
    let backoffMs = retryMinMs;
    while (!this.closed) {
      try {
        const { revision } = await this.readAndOffer();
        if (this.closed) break;
        this.current = await this.createWatcher(revision + 1);
        this.delivery.connection(true);
        backoffMs = retryMinMs;
        await this.supervise(this.current);
        // The watcher failed or went silent but etcd answered: resync promptly.
        await this.sleep(retryMinMs);
      } catch {
        if (this.closed) break;
        this.delivery.connection(false);
        await this.sleep(backoffMs);
        backoffMs = Math.min(backoffMs * 2, retryMaxMs);
      } finally {
        if (this.current) await this.dropWatcher(this.current);
        this.current = null;
      }
    }
  }

  /** Returns when the watcher fails, is found silent, or the watch closes; throws when etcd stops answering. */
  private async supervise(state: WatcherState): Promise<void> {
    for (;;) {
      if (state.failed || this.closed) return;
      const why = await this.sleep(this.ctx.opts.watchdogIntervalMs);
      if (why !== 'tick' || state.failed || this.closed) return;
      const { delivered } = await this.readAndOffer(this.delivery.lastVersion + 1);
      if (delivered) return; // the read found what the watcher should have told us
    }
  }

  /**
   * A linearizable read of the table key; offers what it finds. The watchdog's reads pass
   * `newerThan`: etcd then returns the table only when it is newer than the one delivered,
   * so that a thousand gateways checking their watchers do not each re-read the whole table.
   */
  private async readAndOffer(newerThan?: number): Promise<{ revision: number; delivered: boolean }> {
    const res = await this.ctx.call('read table', 'read', () => {
      const get = this.ctx.client.get(this.ctx.keys.table);
      return (newerThan === undefined ? get : get.minModRevision(newerThan)).exec();
    });
    const kv = res.kvs[0];
    const delivered = kv !== undefined && this.offer(kv);
    return { revision: Number(res.header.revision), delivered };
  }

  private offer(kv: IKeyValue): boolean {
    if (this.closed) return false;
    const version = Number(kv.mod_revision);
    const where = `${this.ctx.description}${this.ctx.keys.table}`;
    return this.delivery.offer(version, () => decodeTableValue(kv.value, where, version, this.decoder));
  }

  private async createWatcher(fromRevision: number): Promise<WatcherState> {
    await this.ctx.opts.testHooks.beforeWatchCreate?.(fromRevision);
    const watcher = this.ctx.client.watch().key(this.ctx.keys.table).startRevision(String(fromRevision)).watcher();
    const state: WatcherState = { watcher, errored: false, failed: false, dropped: false };
    const fail = () => {
      state.failed = true;
      if (this.current === state) this.wakeUp?.('watcher-failed');
    };
    // An 'error' without a listener would throw out of etcd3's stream handler: listen first.
    watcher.on('error', () => {
      state.errored = true;
      fail();
    });
    watcher.on('disconnected', fail);
    watcher.on('put', (kv) => {
      if (!state.dropped && !this.ctx.opts.testHooks.dropWatchEvents) this.offer(kv);
    });
    try {
      await watcherConfirmed(watcher, this.ctx.opts.watchCreateTimeoutMs, 'create watcher');
    } catch (err) {
      await this.dropWatcher(state);
      throw err;
    }
    return state;
  }

  private async dropWatcher(state: WatcherState): Promise<void> {
    if (state.dropped) return;
    state.dropped = true;
    if (state.errored) return;
    // cancel() waits for etcd to confirm; never wait for that longer than a call.
    await bounded(state.watcher.cancel(), this.ctx.opts.callTimeoutMs, 'cancel watcher').catch(() => undefined);
  }

  /** Waits `ms`, or less when woken (the watcher failed, or the watch closed). */
  private sleep(ms: number): Promise<Wake> {
    if (this.closed) return Promise.resolve('closed');
    return new Promise((resolve) => {
      const timer = setTimeout(() => finish('tick'), ms);
      const finish = (why: Wake) => {
        clearTimeout(timer);
        this.wakeUp = null;
        resolve(why);
      };
      this.wakeUp = finish;
    });
  }
}
