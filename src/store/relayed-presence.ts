// A gateway's presence through a presence relay (src/relay/): the gateway sends its record
// to a relay over HTTP, and the relay writes the records of many gateways to etcd in one
// transaction, so that a table version costs etcd a few requests instead of one put per
// gateway. The proof of convergence is unchanged: each record is the gateway's own, with the
// version and checksum it applied, and the relay answers only once the record is committed.
//
// A relay that fails (an error, no answer within the request deadline) never costs the
// gateway its presence: the registration falls back to the gateway's own leased record
// (the direct store), at once, with the record it was sending, and tries the relays again
// every heartbeat interval. Back on a relay, the direct record is withdrawn only after the
// relay committed the record. While both exist, readers keep the newer one (presence-record.ts).
//
//   starting ──(a relay committed)──▶ relayed ──(every relay fails)──▶ direct
//      └──────────(no relay answered)──────────────────────────────────▶ direct
//   direct ──(a relay answers again)──▶ relayed;   any state ──close()──▶ closed
//
// In the relayed state the record is sent again every ttl/3 (the relay's heartbeat: an
// unchanged record costs the relay no write), as etcd3 sends lease keep-alives.
import { Client } from 'undici';
import { cgError } from '../errors';
import { checkPresenceArgs, DEFAULT_PRESENCE_TTL_SECONDS } from './presence-args';
import type { PresenceRecord, PresenceRegistration, PresenceStore } from './types';

export interface RelayOptions {
  /** Relay base URLs (http://host:port), tried in order. */
  readonly relays: readonly string[];
  /** The relay's shared bearer token, when it has one. */
  readonly token?: string;
  /** The deadline of one request to a relay (default 2,000 ms). */
  readonly requestTimeoutMs?: number;
  /** Told when the registration changes state (the gateway logs it). */
  readonly onState?: (id: string, state: RelayedState, detail: { relay?: string; error?: string }) => void;
}

export const STARTING = 'starting';
export const RELAYED = 'relayed';
export const DIRECT = 'direct';
export const CLOSED = 'closed';
export type RelayedState = typeof STARTING | typeof RELAYED | typeof DIRECT | typeof CLOSED;

const DEFAULT_REQUEST_TIMEOUT_MS = 2_000;

/** One keep-alive connection per relay, shared by the registrations of a process. */
class RelayLink {
  private readonly client: Client;
  private readonly headers: Record<string, string>;

  constructor(readonly url: string, token: string | undefined, private readonly timeoutMs: number) {
    this.client = new Client(new URL(url).origin, { keepAliveTimeout: 60_000, connect: { timeout: timeoutMs } });
    this.headers = { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) };
  }

  put(record: PresenceRecord, ttlSeconds: number): Promise<void> {
    return this.send('PUT', record.id, JSON.stringify({ record, ttlSeconds }));
  }

  remove(id: string): Promise<void> {
    return this.send('DELETE', id, undefined);
  }

  close(): Promise<void> {
    return this.client.close();
  }

  private async send(method: 'PUT' | 'DELETE', id: string, body: string | undefined): Promise<void> {
    const res = await this.client.request({
      // undici's own timers bound each step (connect, answer head, answer body): no AbortSignal
      // and its timer per request, which a thousand gateways would pay on every version.
      method, path: `/v1/gateways/${encodeURIComponent(id)}`, headers: this.headers, body,
      headersTimeout: this.timeoutMs, bodyTimeout: this.timeoutMs,
    });
    const text = await res.body.text();
    if (res.statusCode !== 204) {
      const code = /"error"\s*:\s*"([A-Z_]+)"/.exec(text)?.[1] ?? `HTTP ${res.statusCode}`;
      throw cgError('STORE_UNAVAILABLE', `presence relay ${this.url} refused ${id}: ${code}`);
    }
  }
}

class RelayedRegistration implements PresenceRegistration {
  private state: RelayedState = STARTING;
  private direct: PresenceRegistration | null = null;
  private timer: NodeJS.Timeout | null = null;
  /** Sends are serialized: an older record never lands after a newer one. */
  private sending: Promise<void> = Promise.resolve();
  /** The relay that committed the last record: tried first next time. */
  private active: RelayLink | null = null;
  private lastError = '';

  constructor(
    private record: PresenceRecord,
    private readonly ttlSeconds: number,
    private readonly links: readonly RelayLink[],
    private readonly directStore: PresenceStore,
    private readonly opts: RelayOptions,
  ) {}

  get current(): RelayedState {
    return this.state;
  }

  /** Throws only when neither a relay nor the direct store took the record. */
  async start(): Promise<void> {
    if (!(await this.tryRelays())) await this.fallBack('no relay answered');
    this.schedule();
  }

  update(record: PresenceRecord): Promise<void> {
    if (record.id !== this.record.id) return Promise.reject(cgError('USAGE', `cannot change a registration's id (${this.record.id} -> ${record.id})`));
    this.record = record;
    return this.serialized(() => this.publish());
  }

  async close(): Promise<void> {
    if (this.state === CLOSED) return;
    const was = this.state;
    this.enter(CLOSED, {});
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.sending.catch(() => undefined);
    const direct = this.direct;
    this.direct = null;
    // A relay that cannot be told lets the record expire after its TTL.
    if (was === RELAYED) await this.active?.remove(this.record.id).catch(() => undefined);
    await direct?.close();
  }

  private serialized(step: () => Promise<void>): Promise<void> {
    const next = this.sending.then(step);
    this.sending = next.catch(() => undefined);
    return next;
  }

  private async publish(): Promise<void> {
    switch (this.state) {
      case STARTING:
      case CLOSED:
        throw cgError('STORE_UNAVAILABLE', `presence registration ${this.record.id} is ${this.state}`);
      case RELAYED:
        if (await this.tryRelays()) return;
        return this.fallBack('the relay failed');
      case DIRECT:
        return this.direct!.update(this.record);
    }
  }

  /** True once a relay committed the record; the one that did is tried first next time. */
  private async tryRelays(): Promise<boolean> {
    const order = this.active ? [this.active, ...this.links.filter((l) => l !== this.active)] : this.links;
    for (const link of order) {
      try {
        await link.put(this.record, this.ttlSeconds);
        this.active = link;
        if (this.state !== CLOSED) this.enter(RELAYED, { relay: link.url });
        return true;
      } catch (err) {
        this.lastError = (err as Error).message;
      }
    }
    return false;
  }

  private async fallBack(why: string): Promise<void> {
    if (this.state === CLOSED) return;
    if (this.direct) await this.direct.update(this.record);
    else this.direct = await this.directStore.register(this.record, this.ttlSeconds);
    this.enter(DIRECT, { error: `${why}: ${this.lastError}` });
  }

  private enter(state: RelayedState, detail: { relay?: string; error?: string }): void {
    if (state === this.state) return;
    this.state = state;
    this.opts.onState?.(this.record.id, state, detail);
  }

  /** Every ttl/3: the heartbeat when relayed, another try of the relays when direct. */
  private schedule(): void {
    if (this.state === CLOSED) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.serialized(() => this.beat()).catch(() => undefined).finally(() => this.schedule());
    }, (this.ttlSeconds * 1000) / 3);
  }

  private async beat(): Promise<void> {
    if (this.state === RELAYED) return this.publish();
    if (this.state !== DIRECT || !(await this.tryRelays())) return;
    // Committed by a relay: the direct record is no longer needed.
    const direct = this.direct;
    this.direct = null;
    await direct?.close().catch(() => undefined);
  }
}

/**
 * The presence store a gateway registers with when it has relays: registrations go through
 * the relays, with `direct` as the fallback; reads and watches are `direct`'s (they see both
 * kinds of record).
 */
export class RelayedPresence implements PresenceStore {
  private readonly links: readonly RelayLink[];

  constructor(private readonly direct: PresenceStore, private readonly opts: RelayOptions) {
    if (opts.relays.length === 0) throw cgError('USAGE', 'a relayed presence needs at least one relay URL');
    const timeoutMs = opts.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.links = opts.relays.map((url) => new RelayLink(url, opts.token, timeoutMs));
  }

  async register(record: PresenceRecord, ttlSeconds = DEFAULT_PRESENCE_TTL_SECONDS): Promise<PresenceRegistration> {
    checkPresenceArgs(record, ttlSeconds);
    const registration = new RelayedRegistration(record, ttlSeconds, this.links, this.direct, this.opts);
    await registration.start();
    return registration;
  }

  list(): Promise<PresenceRecord[]> {
    return this.direct.list();
  }

  snapshot(): ReturnType<PresenceStore['snapshot']> {
    return this.direct.snapshot();
  }

  watch(events: Parameters<PresenceStore['watch']>[0]): ReturnType<PresenceStore['watch']> {
    return this.direct.watch(events);
  }

  /** Closes the relay connections (after the registrations are closed). */
  async close(): Promise<void> {
    await Promise.all(this.links.map((l) => l.close().catch(() => undefined)));
  }
}

/** Relay URLs checked at start: a typo is a USAGE error, not a silent fallback forever. */
export function checkRelayUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw cgError('USAGE', `presence relay ${JSON.stringify(url)} is not a URL (http://host:port)`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw cgError('USAGE', `presence relay ${JSON.stringify(url)} must be http:// or https://`);
  return url;
}
