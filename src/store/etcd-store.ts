// The production store: the routing table is one document under `<prefix>/table` (its JSON,
// compressed: table-encoding.ts),
// and its version is that key's mod revision, so compare-and-swap is one etcd transaction
// comparing it, which also writes the history entry under `<prefix>/history/<versionBefore,
// zero-padded>-<nonce>` (its mod revision is the version it recorded). Presence
// under `<prefix>/gateways/<id>` and the endpoint registry under `<prefix>/endpoints/` on leases. Every etcd call is bounded in time and its
// errors become STORE_UNAVAILABLE (etcd-client.ts).
import { randomBytes } from 'node:crypto';
import type { Etcd3, IKeyValue } from 'etcd3';
import { tableChecksum } from '../cells/checksum';
import type { RoutingTable, VersionedTable } from '../cells/types';
import { cgError } from '../errors';
import { createEtcdClient, EtcdContext, resolveEtcdOptions, type EtcdStoreOptions } from './etcd-client';
import { EtcdPresence } from './etcd-presence';
import { EtcdRegistry } from './etcd-registry';
import { historyEntry } from './history';
import { EtcdTableWatch } from './etcd-watch';
import { casInput, decodeTable } from './table-doc';
import { encodeTableValue, parseTableValue } from './table-encoding';
import type { CasResult, ChangeNote, HistoryEntry, TableStore, TableWatch, TableWatchEvents } from './types';

export type { EtcdStoreOptions, EtcdStoreTestHooks } from './etcd-client';

/** Wide enough for any etcd revision (int64), so that keys sort in version order. */
const HISTORY_KEY_DIGITS = 20;

export class EtcdStore implements TableStore {
  readonly description: string;
  readonly presence: EtcdPresence;
  readonly registry: EtcdRegistry;
  private readonly ctx: EtcdContext;
  private readonly watches = new Set<EtcdTableWatch>();
  private closed = false;
  /** A client handed in (the scale benchmark's per-process client) is its owner's to close. */
  private readonly sharedClient: boolean;

  constructor(options: EtcdStoreOptions & { readonly sharedClient?: Etcd3 }) {
    const opts = resolveEtcdOptions(options);
    this.description = `etcd:${opts.endpoints.join(',')}${opts.prefix}`;
    this.sharedClient = options.sharedClient !== undefined;
    this.ctx = new EtcdContext(options.sharedClient ?? createEtcdClient(opts), opts, `etcd:${opts.endpoints.join(',')}`);
    this.presence = new EtcdPresence(this.ctx, () => this.assertOpen());
    this.registry = new EtcdRegistry(this.ctx, () => this.assertOpen());
  }

  /** The client and key prefix, for the autopilot's leader election and pause flag (src/autopilot). */
  get etcd(): { readonly client: EtcdContext['client']; readonly prefix: string } {
    return { client: this.ctx.client, prefix: this.ctx.opts.prefix };
  }

  async load(): Promise<VersionedTable | null> {
    this.assertOpen();
    const res = await this.ctx.call('load table', 'read', () => this.ctx.client.get(this.ctx.keys.table).exec());
    const kv = res.kvs[0];
    return kv ? this.decode(kv) : null;
  }

  watch(events: TableWatchEvents): TableWatch {
    this.assertOpen();
    const w = new EtcdTableWatch(this.ctx, events, (closed) => this.watches.delete(closed));
    this.watches.add(w);
    return w;
  }

  /**
   * One transaction: compare the table's mod revision, put the table and its history entry.
   * The entry's key is new for this attempt (versionBefore + a nonce); its versionAfter is
   * its own mod revision, which is the table's new one (one transaction, one revision).
   * The transaction is sent once; if its reply is lost, reconcile() finds out what happened.
   */
  async compareAndSwap(expectedVersion: number, table: RoutingTable, note?: ChangeNote): Promise<CasResult> {
    this.assertOpen();
    const valid = casInput(expectedVersion, table);
    const { client, keys } = this.ctx;
    const historyKey = `${keys.historyPrefix}${String(expectedVersion).padStart(HISTORY_KEY_DIGITS, '0')}-${randomBytes(6).toString('hex')}`;
    const { versionAfter: _unknownYet, ...entry } = historyEntry(note, expectedVersion, 0, valid);
    // Version 0 = "no table": a key that does not exist has create revision 0.
    const guard = expectedVersion === 0 ? client.if(keys.table, 'Create', '==', 0) : client.if(keys.table, 'Mod', '==', expectedVersion);
    const checksum = tableChecksum(valid);
    let res: Awaited<ReturnType<ReturnType<typeof client.if>['commit']>>;
    try {
      res = await this.ctx.call('compare-and-swap table', 'write', () =>
        guard.then(client.put(keys.table).value(encodeTableValue(valid, this.ctx.opts.tableEncoding)), client.put(historyKey).value(JSON.stringify(entry)))
          .else(client.get(keys.table)).commit(),
      );
    } catch (err) {
      return this.reconcile(err as Error, expectedVersion, historyKey, checksum);
    }
    if (res.succeeded) return { ok: true, version: Number(res.header.revision), checksum };
    const kv = res.responses[0]?.response_range?.kvs[0];
    return { ok: false, current: kv ? this.decode(kv) : null };
  }

  /**
   * The write's outcome is unknown (no reply): one re-read says what happened. Our history
   * key exists only if our transaction committed; a table at another version means it can
   * no longer commit (a conflict). A table still at `expected` is reported as unavailable
   * with its outcome unknown: the transaction may still be in flight and commit later (a
   * re-read cannot rule that out), and it is never re-sent.
   */
  private async reconcile(cause: Error, expected: number, historyKey: string, checksum: string): Promise<CasResult> {
    const { client, keys } = this.ctx;
    let ours: IKeyValue | undefined;
    let tableKv: IKeyValue | undefined;
    try {
      [ours, tableKv] = await this.ctx.call('re-read after a write with no reply', 'read', async () => {
        const [h, tb] = await Promise.all([client.get(historyKey).exec(), client.get(keys.table).exec()]);
        return [h.kvs[0], tb.kvs[0]] as const;
      });
    } catch (err) {
      throw cgError('STORE_UNAVAILABLE', `compare-and-swap outcome unknown (${cause.message}), and the re-read failed too (${(err as Error).message}); it was not re-sent`, { cause });
    }
    if (ours) return { ok: true, version: Number(ours.mod_revision), checksum };
    const current = tableKv ? Number(tableKv.mod_revision) : 0;
    if (current !== expected) return { ok: false, current: tableKv ? this.decode(tableKv) : null };
    throw cgError('STORE_UNAVAILABLE', `compare-and-swap got no answer (${cause.message}); a re-read shows it has not landed yet (table still at version ${expected}), but it may still commit: its outcome is unknown and it was not re-sent; check \`cellctl status\` and \`cellctl history\` before trying again`, { cause });
  }

  /** Oldest first. An entry's version is its key's mod revision (entries written before that carry their own). */
  async listHistory(): Promise<HistoryEntry[]> {
    this.assertOpen();
    const res = await this.ctx.call('list history', 'read', () =>
      this.ctx.client.getAll().prefix(this.ctx.keys.historyPrefix).sort('Mod', 'Ascend').exec(),
    );
    return res.kvs.map((kv) => {
      let stored: Omit<HistoryEntry, 'versionAfter'> & { versionAfter?: unknown };
      try {
        stored = JSON.parse(kv.value.toString('utf8')) as typeof stored;
      } catch (err) {
        throw cgError('STORE_UNAVAILABLE', `history entry ${kv.key.toString('utf8')} is not JSON`, { cause: err });
      }
      const versionAfter = typeof stored.versionAfter === 'number' ? stored.versionAfter : Number(kv.mod_revision);
      return { ...stored, versionAfter };
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.watches].map((w) => w.close()));
    await this.presence.closeAll();
    await this.registry.closeAll();
    if (!this.sharedClient) this.ctx.client.close();
  }

  private assertOpen(): void {
    if (this.closed) throw cgError('STORE_UNAVAILABLE', `${this.description} is closed`);
  }

  private decode(kv: IKeyValue): VersionedTable {
    const version = Number(kv.mod_revision);
    const where = `${this.description}/table`;
    return decodeTable(parseTableValue(kv.value, where, version), version, where);
  }
}

export function createEtcdStore(options: EtcdStoreOptions & { readonly sharedClient?: Etcd3 }): EtcdStore {
  return new EtcdStore(options);
}
