// The gateway's presence record in the store (what `cellctl status` lists and what a change
// waits on to prove convergence). Registration must never hold up routing: when the store
// is unreachable the publisher keeps retrying in the background, and updates made while
// unregistered are carried by the next registration. Updates are serialized; only the
// newest record is written when several pile up.
import { hostname } from 'node:os';
import type { PresenceRecord, PresenceRegistration, PresenceStore, RegistryDigest, ZoneHealthReport } from '../store/types';
import type { Clock, TimerHandle } from '../clock';

export interface PresenceFacts {
  readonly id: string;
  readonly zone: string | null;
  readonly startedAt: string;
}

export interface PresenceOptions {
  readonly store: PresenceStore;
  readonly facts: PresenceFacts;
  readonly inFlight: () => number;
  readonly log: (event: string, fields?: Record<string, unknown>) => void;
  readonly retryMs?: number;
  readonly ttlSeconds?: number;
  /** The gateway's clock: the record's updatedAt, the retry timers. */
  readonly clock: Clock;
}

/** The shortest time between two publications of the registry digest. */
const DIGEST_INTERVAL_MS = 5_000;

export class PresencePublisher {
  private readonly o: PresenceOptions;
  /** Read once: os.hostname() is a system call, and the record is rebuilt on every applied version. */
  private readonly host = hostname();
  private applied = { version: 0, checksum: '' };
  private zoneHealth: Record<string, ZoneHealthReport> | null = null;
  private registryDigest: RegistryDigest | null = null;
  private digestTimer: TimerHandle | null = null;
  private digestPublishedAtMs = -Infinity;
  private registration: PresenceRegistration | null = null;
  private registering: Promise<void> | null = null;
  private writing: Promise<void> = Promise.resolve();
  private dirty = false;
  private retryTimer: TimerHandle | null = null;
  private flushRetryTimer: TimerHandle | null = null;
  private closed = false;

  constructor(options: PresenceOptions) {
    this.o = options;
  }

  start(): void {
    this.registering = this.register();
  }

  /** The gateway applied a new table. */
  tableApplied(version: number, checksum: string): void {
    this.applied = { version, checksum };
    if (!this.registration || this.closed) return;
    this.dirty = true;
    this.writing = this.writing.then(() => this.flush());
  }

  /** The gateway's view of the zones changed (probes.ts calls this only on a change). */
  zoneHealthChanged(report: Record<string, ZoneHealthReport>): void {
    this.zoneHealth = report;
    if (!this.registration || this.closed) return;
    this.dirty = true;
    this.writing = this.writing.then(() => this.flush());
  }

  /**
   * The gateway applied a new endpoint registry (registry-follower.ts). Instance churn can
   * change it many times a second on every gateway: the digest is published at most once per
   * DIGEST_INTERVAL_MS (the newest one), so that churn does not turn into presence writes
   * (1,000 gateways under continuous churn: 200 puts/s, not 1,000).
   */
  registryApplied(digest: RegistryDigest): void {
    this.registryDigest = digest;
    if (this.digestTimer || this.closed) return;
    const waitMs = this.digestPublishedAtMs + DIGEST_INTERVAL_MS - this.o.clock.now();
    if (waitMs <= 0) return this.publishDigest();
    this.digestTimer = this.o.clock.setTimer(() => {
      this.digestTimer = null;
      this.publishDigest();
    }, waitMs);
  }

  private publishDigest(): void {
    this.digestPublishedAtMs = this.o.clock.now();
    if (!this.registration || this.closed) return;
    this.dirty = true;
    this.writing = this.writing.then(() => this.flush());
  }

  /** Deregisters (removes the record, releases the lease); stops retrying. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.retryTimer) this.o.clock.clearTimer(this.retryTimer);
    if (this.flushRetryTimer) this.o.clock.clearTimer(this.flushRetryTimer);
    if (this.digestTimer) this.o.clock.clearTimer(this.digestTimer);
    this.digestTimer = null;
    this.retryTimer = null;
    this.flushRetryTimer = null;
    await this.registering;
    await this.writing;
    const reg = this.registration;
    this.registration = null;
    if (reg) await reg.close();
  }

  private record(): PresenceRecord {
    return {
      id: this.o.facts.id,
      zone: this.o.facts.zone,
      appliedVersion: this.applied.version,
      checksum: this.applied.checksum,
      inFlight: this.o.inFlight(),
      startedAt: this.o.facts.startedAt,
      updatedAt: new Date(this.o.clock.now()).toISOString(),
      pid: process.pid,
      host: this.host,
      ...(this.zoneHealth ? { zoneHealth: this.zoneHealth } : {}),
      ...(this.registryDigest ? { registry: this.registryDigest } : {}),
    };
  }

  private async register(): Promise<void> {
    if (this.closed) return;
    try {
      const reg = await this.o.store.register(this.record(), this.o.ttlSeconds);
      if (this.closed) {
        await reg.close().catch(() => undefined);
        return;
      }
      this.registration = reg;
      this.o.log('presence.registered', { id: this.o.facts.id });
      // A table applied while registering is published now.
      this.dirty = true;
      this.writing = this.writing.then(() => this.flush());
    } catch (err) {
      if (this.closed) return;
      this.o.log('presence.register_failed', { error: (err as Error).message });
      this.retryTimer = this.o.clock.setTimer(() => {
        this.retryTimer = null;
        this.registering = this.register();
      }, this.o.retryMs ?? 2000);
    }
  }

  private async flush(): Promise<void> {
    if (!this.dirty || !this.registration || this.closed) return;
    this.dirty = false;
    try {
      await this.registration.update(this.record());
    } catch (err) {
      this.o.log('presence.update_failed', { error: (err as Error).message });
      // Unpublished progress would make cellctl wait for this gateway in vain: try again.
      this.dirty = true;
      if (!this.closed && !this.flushRetryTimer) {
        this.flushRetryTimer = this.o.clock.setTimer(() => {
          this.flushRetryTimer = null;
          this.writing = this.writing.then(() => this.flush());
        }, Math.min(500, this.o.retryMs ?? 500));
      }
    }
  }
}
