// The production store: the routing table is one JSON document under `<prefix>/table`,
// and its version is that key's mod revision, so compare-and-swap is one etcd transaction
// comparing it. History under `<prefix>/history/<versionAfter, zero-padded>`, presence
// under `<prefix>/gateways/<id>` on leases. Every etcd call is bounded in time and its
// errors become STORE_UNAVAILABLE (etcd-client.ts).
import type { IKeyValue } from 'etcd3';
import { tableChecksum } from '../cells/checksum';
import type { RoutingTable, VersionedTable } from '../cells/types';
import { cgError } from '../errors';
import { createEtcdClient, EtcdContext, resolveEtcdOptions, type EtcdStoreOptions } from './etcd-client';
import { EtcdPresence } from './etcd-presence';
import { EtcdTableWatch } from './etcd-watch';
import { casInput, decodeTable, parseJsonDocument } from './table-doc';
import type { CasResult, HistoryEntry, TableStore, TableWatch, TableWatchEvents } from './types';

export type { EtcdStoreOptions, EtcdStoreTestHooks } from './etcd-client';

/** Wide enough for any etcd revision (int64), so that keys sort in version order. */
const HISTORY_KEY_DIGITS = 20;

export class EtcdStore implements TableStore {
  readonly description: string;
  readonly presence: EtcdPresence;
  private readonly ctx: EtcdContext;
  private readonly watches = new Set<EtcdTableWatch>();
  private closed = false;

  constructor(options: EtcdStoreOptions) {
    const opts = resolveEtcdOptions(options);
    this.description = `etcd:${opts.endpoints.join(',')}${opts.prefix}`;
    this.ctx = new EtcdContext(createEtcdClient(opts), opts, `etcd:${opts.endpoints.join(',')}`);
    this.presence = new EtcdPresence(this.ctx, () => this.assertOpen());
  }

  async load(): Promise<VersionedTable | null> {
    this.assertOpen();
    const res = await this.ctx.call('load table', () => this.ctx.client.get(this.ctx.keys.table).exec());
    const kv = res.kvs[0];
    return kv ? this.decode(kv) : null;
  }

  watch(events: TableWatchEvents): TableWatch {
    this.assertOpen();
    const w = new EtcdTableWatch(this.ctx, events, (closed) => this.watches.delete(closed));
    this.watches.add(w);
    return w;
  }

  async compareAndSwap(expectedVersion: number, table: RoutingTable): Promise<CasResult> {
    this.assertOpen();
    const valid = casInput(expectedVersion, table);
    const { client, keys } = this.ctx;
    // Version 0 = "no table": a key that does not exist has create revision 0.
    const guard = expectedVersion === 0 ? client.if(keys.table, 'Create', '==', 0) : client.if(keys.table, 'Mod', '==', expectedVersion);
    const res = await this.ctx.call('compare-and-swap table', () =>
      guard.then(client.put(keys.table).value(JSON.stringify(valid))).else(client.get(keys.table)).commit(),
    );
    const checksum = tableChecksum(valid);
    if (res.succeeded) return { ok: true, version: Number(res.header.revision), checksum };
    const kv = res.responses[0]?.response_range?.kvs[0];
    const current = kv ? this.decode(kv) : null;
    // etcd3 re-sends a call whose reply was lost (its global retry policy): the first attempt
    // may have committed, and the re-sent compare then fails on our own write. The table we
    // wanted is in place at a later version: that is a success, not a conflict. (Not for a
    // create: a second `init` of the same topology must still be refused.)
    if (expectedVersion > 0 && current && current.version > expectedVersion && current.checksum === checksum) {
      return { ok: true, version: current.version, checksum };
    }
    return { ok: false, current };
  }

  async appendHistory(entry: HistoryEntry): Promise<void> {
    this.assertOpen();
    const key = `${this.ctx.keys.historyPrefix}${String(entry.versionAfter).padStart(HISTORY_KEY_DIGITS, '0')}`;
    await this.ctx.call('append history', () => this.ctx.client.put(key).value(JSON.stringify(entry)).exec());
  }

  async listHistory(): Promise<HistoryEntry[]> {
    this.assertOpen();
    const res = await this.ctx.call('list history', () =>
      this.ctx.client.getAll().prefix(this.ctx.keys.historyPrefix).sort('Key', 'Ascend').exec(),
    );
    return res.kvs.map((kv) => {
      try {
        return JSON.parse(kv.value.toString('utf8')) as HistoryEntry;
      } catch (err) {
        throw cgError('STORE_UNAVAILABLE', `history entry ${kv.key.toString('utf8')} is not JSON`, { cause: err });
      }
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.watches].map((w) => w.close()));
    await this.presence.closeAll();
    this.ctx.client.close();
  }

  private assertOpen(): void {
    if (this.closed) throw cgError('STORE_UNAVAILABLE', `${this.description} is closed`);
  }

  private decode(kv: IKeyValue): VersionedTable {
    const version = Number(kv.mod_revision);
    const where = `${this.description}/table`;
    return decodeTable(parseJsonDocument(kv.value.toString('utf8'), where, version), version, where);
  }
}

export function createEtcdStore(options: EtcdStoreOptions): EtcdStore {
  return new EtcdStore(options);
}
