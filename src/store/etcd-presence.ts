// Presence in etcd: `<prefix>/gateways/<id>`, a leased record (etcd-leased-record.ts): gone
// when the gateway dies or closes, put again when its lease is lost while it lives. Reads
// also see the records presence relays write (`<prefix>/gateways-relayed/<id>`).
import { cgError } from '../errors';
import type { EtcdContext } from './etcd-client';
import { EtcdLeasedRecord } from './etcd-leased-record';
import { checkPresenceArgs, DEFAULT_PRESENCE_TTL_SECONDS } from './presence-args';
import { decodeAll, EtcdPresenceWatch, presencePrefix } from './etcd-presence-watch';
import type { PresenceRecord, PresenceRegistration, PresenceSnapshot, PresenceStore, PresenceWatch, PresenceWatchEvents } from './types';

class EtcdPresenceRegistration implements PresenceRegistration {
  private readonly leased: EtcdLeasedRecord;

  constructor(ctx: EtcdContext, key: string, private record: PresenceRecord, ttlSeconds: number, private readonly onClosed: (r: EtcdPresenceRegistration) => void) {
    this.leased = new EtcdLeasedRecord(ctx, key, JSON.stringify(record), ttlSeconds, 'presence');
  }

  start(): Promise<void> {
    return this.leased.start();
  }

  async update(record: PresenceRecord): Promise<void> {
    if (this.leased.isClosed) throw cgError('STORE_UNAVAILABLE', `presence registration ${this.record.id} is closed`);
    if (record.id !== this.record.id) throw cgError('USAGE', `cannot change a registration's id (${this.record.id} -> ${record.id})`);
    this.record = record;
    await this.leased.set(JSON.stringify(record));
  }

  async close(): Promise<void> {
    if (this.leased.isClosed) return;
    this.onClosed(this);
    await this.leased.close();
  }
}

export class EtcdPresence implements PresenceStore {
  private readonly registrations = new Set<EtcdPresenceRegistration>();
  private readonly watches = new Set<EtcdPresenceWatch>();

  constructor(private readonly ctx: EtcdContext, private readonly assertOpen: () => void) {}

  async register(record: PresenceRecord, ttlSeconds = DEFAULT_PRESENCE_TTL_SECONDS): Promise<PresenceRegistration> {
    this.assertOpen();
    checkPresenceArgs(record, ttlSeconds);
    const key = `${this.ctx.keys.gatewaysPrefix}${encodeURIComponent(record.id)}`;
    const registration = new EtcdPresenceRegistration(this.ctx, key, record, ttlSeconds, (r) => this.registrations.delete(r));
    await registration.start();
    this.registrations.add(registration);
    return registration;
  }

  async list(): Promise<PresenceRecord[]> {
    return [...(await this.snapshot()).records];
  }

  async snapshot(): Promise<PresenceSnapshot> {
    this.assertOpen();
    const res = await this.ctx.call('list gateways', 'read', () => this.ctx.client.getAll().prefix(presencePrefix(this.ctx.keys)).exec());
    return decodeAll(res.kvs, this.ctx.keys);
  }

  watch(events: PresenceWatchEvents): PresenceWatch {
    this.assertOpen();
    const w = new EtcdPresenceWatch(this.ctx, events, (closed) => this.watches.delete(closed));
    this.watches.add(w);
    return w;
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.watches].map((w) => w.close()));
    await Promise.all([...this.registrations].map((r) => r.close().catch(() => undefined)));
  }
}
