// The harness's own view of the control plane, straight from etcd (not through any gateway
// proxy): every routing-table revision and every gateway presence record, with the time
// the harness saw it — the gateway's own record and the one a presence relay wrote for it
// (`via`), each as its own stream of events: a gateway's proof is the first of either. A watch gives the times; a slow poll fills any gap a watcher
// reconnect may leave (e.g. while the etcd leader is being replaced).
import { Etcd3, type IKeyValue, type Watcher } from 'etcd3';
import { tableChecksum } from '../src/cells/checksum';
import { validateTable } from '../src/cells/table';
import { parseTableValue } from '../src/store/table-encoding';
import type { RoutingTable } from '../src/cells/types';

export interface TableEvent {
  readonly t: number;
  readonly version: number;
  /** null when the document in etcd is not a valid table. */
  readonly table: RoutingTable | null;
  readonly checksum: string | null;
  readonly error?: string;
}

export interface PresenceEvent {
  readonly t: number;
  readonly id: string;
  readonly appliedVersion: number;
  readonly checksum: string;
  readonly deleted: boolean;
  /** Which key: the gateway's own (`<prefix>/gateways/ID`) or a relay's (`<prefix>/gateways-relayed/ID`). */
  readonly via: PresenceVia;
}

export type PresenceVia = 'direct' | 'relayed';

const POLL_MS = 1_000;

export class Recorder {
  readonly tables: TableEvent[] = [];
  readonly presence: PresenceEvent[] = [];
  readonly client: Etcd3;
  private watcher: Watcher | null = null;
  private poller: NodeJS.Timeout | null = null;
  private readonly seenTable = new Set<number>();
  private readonly lastPresence = new Map<string, string>();
  private readonly listeners = new Set<() => void>();
  private closed = false;

  constructor(endpoints: readonly string[], readonly prefix: string) {
    this.client = new Etcd3({ hosts: endpoints.map((e) => `http://${e}`), defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + 3_000 }) });
  }

  get tableKey(): string {
    return `${this.prefix}/table`;
  }

  async start(): Promise<void> {
    await this.poll();
    this.watcher = await this.client.watch().prefix(`${this.prefix}/`).create();
    this.watcher.on('put', (kv) => this.onKv(kv, false));
    this.watcher.on('delete', (kv) => this.onKv(kv, true));
    this.watcher.on('error', () => undefined);
    this.poller = setInterval(() => void this.poll().catch(() => undefined), POLL_MS);
  }

  /** The latest valid table seen. */
  latest(): TableEvent | null {
    for (let i = this.tables.length - 1; i >= 0; i--) if (this.tables[i]!.table) return this.tables[i]!;
    return null;
  }

  /** Resolves with the first table event (already seen or to come) matching `pred`. */
  waitForTable(pred: (e: TableEvent) => boolean, timeoutMs: number): Promise<TableEvent> {
    return this.waitFor(this.tables, pred, timeoutMs, 'routing table');
  }

  /** Resolves with the first presence event (already seen or to come) matching `pred`. */
  waitForPresence(pred: (e: PresenceEvent) => boolean, timeoutMs: number): Promise<PresenceEvent> {
    return this.waitFor(this.presence, pred, timeoutMs, 'presence record');
  }

  private waitFor<T>(list: readonly T[], pred: (e: T) => boolean, timeoutMs: number, what: string): Promise<T> {
    const found = list.find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const check = () => {
        const e = list.find(pred);
        if (!e) return;
        cleanup();
        resolve(e);
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`no matching ${what} within ${timeoutMs} ms`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.listeners.delete(check);
      };
      this.listeners.add(check);
    });
  }

  /** Writes a document straight into the table key, bypassing cellctl and every check. */
  async writeRawTable(text: string): Promise<void> {
    await this.client.put(this.tableKey).value(text).exec();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.poller) clearInterval(this.poller);
    await this.watcher?.cancel().catch(() => undefined);
    this.client.close();
  }

  private async poll(): Promise<void> {
    if (this.closed) return;
    const res = await this.client.getAll().prefix(`${this.prefix}/`).exec();
    const livePresence = new Set<string>();
    for (const kv of res.kvs) {
      const key = kv.key.toString('utf8');
      if (this.presenceKey(key)) livePresence.add(key);
      this.onKv(kv, false);
    }
    for (const key of [...this.lastPresence.keys()]) {
      if (!livePresence.has(key) && this.lastPresence.get(key) !== 'deleted') {
        this.onKv({ key: Buffer.from(key), value: Buffer.alloc(0), mod_revision: '0' } as unknown as IKeyValue, true);
      }
    }
  }

  /** The gateway and kind of a presence key; null for any other key. */
  private presenceKey(key: string): { id: string; via: PresenceVia } | null {
    for (const [dir, via] of [['gateways', 'direct'], ['gateways-relayed', 'relayed']] as const) {
      const head = `${this.prefix}/${dir}/`;
      if (key.startsWith(head)) return { id: key.slice(head.length), via };
    }
    return null;
  }

  private onKv(kv: IKeyValue, deleted: boolean): void {
    const key = kv.key.toString('utf8');
    const t = Date.now();
    if (key === this.tableKey) {
      if (deleted) return;
      const version = Number(kv.mod_revision);
      if (this.seenTable.has(version)) return;
      this.seenTable.add(version);
      let event: TableEvent;
      try {
        const table = validateTable(parseTableValue(kv.value, key, version));
        event = { t, version, table, checksum: tableChecksum(table) };
      } catch (err) {
        event = { t, version, table: null, checksum: null, error: (err as Error).message.slice(0, 300) };
      }
      // The poll may see a version after the watch saw a later one: keep the list sorted.
      this.tables.push(event);
      this.tables.sort((a, b) => a.version - b.version);
    } else if (this.presenceKey(key)) {
      const { id, via } = this.presenceKey(key)!;
      const value = deleted ? 'deleted' : kv.value.toString('utf8');
      if (this.lastPresence.get(key) === value) return;
      this.lastPresence.set(key, value);
      if (deleted) {
        this.presence.push({ t, id, appliedVersion: 0, checksum: '', deleted: true, via });
      } else {
        try {
          const rec = JSON.parse(value) as { appliedVersion: number; checksum: string };
          this.presence.push({ t, id, appliedVersion: rec.appliedVersion, checksum: rec.checksum, deleted: false, via });
        } catch { /* not a presence record */ }
      }
    } else {
      return;
    }
    for (const l of [...this.listeners]) l();
  }
}
