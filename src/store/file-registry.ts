// The endpoint registry for the file store: one heartbeat file per endpoint in
// `<table>.endpoints/`, named `<zone>@<service>@<id, URI-encoded>.json` and holding the
// record plus its TTL. The file is written once; the heartbeat (every ttl/3) only touches
// its mtime. An endpoint is live while its mtime is within its TTL, so a killed instance
// disappears by itself; close() deletes the file at once. Watches reuse presence's
// fs.watch + poll (file-presence-watch.ts). Reading is bounded, and dead or invalid files take
// no slot of the registry's bound (file-registry-read.ts); files dead for many TTLs (a killed
// instance's) are swept by readers, as etcd's lease expiry removes such a record.
//
// The record carries its registration's token. Writing it (the first time, or again when
// the file went away) and deleting it happen under the directory's lock, after reading
// what is there: another live instance's record (another URL) is never written over, and a
// registration only ever deletes its own. A beat that finds another instance's record (another
// URL: someone took the id) stops claiming it; one that finds another registration of its own
// URL (a restart whose old process still runs) leaves it alone and writes its record again
// once that one's file is gone or expired.
import { mkdir, unlink, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import {
  checkRegistration, claimRefusal, documentOf, endpointKey, MAX_RECORD_BYTES, newInstanceToken, YIELD, registrySnapshotKey, registrySnapshotOf, type ClaimMode,
} from './endpoint-record';
import { cgError, isCellgateError } from '../errors';
import { errnoCode, readBoundedRegularFile, storeUnavailable, writeFileAtomic } from './file-io';
import { isLongDead, readRegistryFiles, SEPARATOR, ttlOfRecord, withOverLimit } from './file-registry-read';
import { withFileLock } from './file-lock';
import { FilePollWatch, type FilePresenceWatchOptions } from './file-presence-watch';
import type {
  EndpointRegistration, EndpointRegistrationRequest, EndpointRegistry, RegisteredEndpoint, RegistryPriority, RegistrySnapshot, RegistryWatch,
  RegistryWatchEvents,
} from './types';

/**
 * A file name's bytes (255 on every common file system) less writeFileAtomic's temporary
 * suffix (`.<name>.<pid ≤ 7>.<8 hex>.tmp`: 22): longer ids cannot be written at all.
 */
const MAX_FILE_NAME_BYTES = 255 - 22;
/** The directory's lock, held for a read and a write of one record (milliseconds). */
const LOCK_NAME = '.register.lock';
const LOCK_OPTIONS = { acquireTimeoutMs: 5_000, staleLockMs: 10_000 };
/** Long-dead heartbeat files removed per sweep (each a read and an unlink under the lock). */
const MAX_SWEPT_PER_PASS = 256;

/** The text of a live record file; null when it is gone, expired, or not a record file (all replaceable). */
async function liveRecordText(file: string, now: number): Promise<string | null> {
  const read = await readBoundedRegularFile(file, MAX_RECORD_BYTES);
  if (read === null || read.text === null) return null;
  return now - read.mtimeMs > ttlOfRecord(read.text) ? null : read.text;
}

function tokenOf(text: string | null): unknown {
  try {
    return text === null ? undefined : (JSON.parse(text) as { instance?: unknown }).instance;
  } catch {
    return undefined;
  }
}

function fileNameOf(e: RegisteredEndpoint): string {
  return `${e.zone}${SEPARATOR}${e.service}${SEPARATOR}${encodeURIComponent(e.id)}.json`;
}

class FileEndpointRegistration implements EndpointRegistration {
  private readonly heartbeat: NodeJS.Timeout;
  private beats: Promise<void> = Promise.resolve();
  private closed = false;
  /** A record of this registration may be on disk (a write got as far as the file). */
  private wrote = false;
  private readonly instance = newInstanceToken();
  private settleTaken: (err: Error) => void = () => undefined;
  readonly taken = new Promise<Error>((resolve) => { this.settleTaken = resolve; });

  constructor(
    private readonly dir: string,
    private readonly file: string,
    readonly endpoint: RegisteredEndpoint,
    private readonly ttlMs: number,
    private readonly onClosed: (r: FileEndpointRegistration) => void,
  ) {
    this.heartbeat = setInterval(() => {
      this.beats = this.beats.then(() => this.beat()).catch(() => undefined); // a missed beat is retried at the next one
    }, ttlMs / 3);
  }

  /** Writes the record unless another live instance's is there (ENDPOINT_TAKEN). */
  async write(mode: ClaimMode): Promise<void> {
    await mkdir(this.dir, { recursive: true }).catch((err: unknown) => {
      throw storeUnavailable(`cannot create ${this.dir}`, err);
    });
    await withFileLock(join(this.dir, LOCK_NAME), LOCK_OPTIONS, async () => {
      const existing = await liveRecordText(this.file, Date.now());
      const refused = existing === null ? null : claimRefusal(endpointKey(this.endpoint), existing, { endpoint: this.endpoint, instance: this.instance }, mode);
      // Another registration of this URL holds it (routes to the same place): left alone; the
      // next beat writes it again once that one's file is gone or expired.
      if (refused === YIELD) return;
      if (refused) throw refused;
      this.wrote = true;
      await writeFileAtomic(this.file, JSON.stringify({ ...documentOf(this.endpoint, this.instance), ttlMs: this.ttlMs }));
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.stop();
    await this.beats;
    this.onClosed(this);
    // Never written (refused, or the lock could not be had): nothing of ours to delete, and no
    // second wait for a lock that just failed.
    if (!this.wrote) return;
    // Only its own record: a restarted instance may have taken the file over.
    await withFileLock(join(this.dir, LOCK_NAME), LOCK_OPTIONS, async () => {
      const read = await readBoundedRegularFile(this.file, MAX_RECORD_BYTES);
      if (read === null || read.text === null || tokenOf(read.text) !== this.instance) return;
      await unlink(this.file).catch((err: unknown) => {
        if (errnoCode(err) !== 'ENOENT') throw storeUnavailable(`cannot remove ${this.file}`, err);
      });
    });
  }

  private stop(): void {
    this.closed = true;
    clearInterval(this.heartbeat);
  }

  /** Touches its own file; writes it again when it is gone or expired; stops when another instance holds it. */
  private async beat(): Promise<void> {
    if (this.closed) return;
    const now = new Date();
    const text = await liveRecordText(this.file, now.getTime());
    if (tokenOf(text) === this.instance) return void (await utimes(this.file, now, now));
    // Another registration of this URL holds a live record: quiet (no lock taken) until it goes.
    if (text !== null && claimRefusal(endpointKey(this.endpoint), text, { endpoint: this.endpoint, instance: this.instance }, 'reclaim') === YIELD) return;
    if (this.closed) return;
    try {
      await this.write('reclaim');
    } catch (err) {
      if (!isCellgateError(err, 'ENDPOINT_TAKEN')) throw err;
      this.stop();
      this.onClosed(this);
      this.settleTaken(err);
    }
  }
}

export class FileRegistry implements EndpointRegistry {
  private readonly registrations = new Set<FileEndpointRegistration>();
  private readonly watches = new Set<FilePollWatch<RegistrySnapshot>>();
  /** A sweep of long-dead heartbeat files under way (one at a time). */
  private sweeping: Promise<void> | null = null;

  constructor(private readonly dir: string, private readonly assertOpen: () => void, private readonly watchOpts: FilePresenceWatchOptions) {}

  async register(request: EndpointRegistrationRequest): Promise<EndpointRegistration> {
    this.assertOpen();
    const { endpoint, ttlMs } = checkRegistration(request, Date.now());
    const name = fileNameOf(endpoint);
    const bytes = Buffer.byteLength(name);
    if (bytes > MAX_FILE_NAME_BYTES) {
      throw cgError('USAGE', `bad endpoint registration: id is too long for the file store (its heartbeat file name, zone@service@id URI-encoded, would be ${bytes} bytes; at most ${MAX_FILE_NAME_BYTES})`);
    }
    const file = join(this.dir, name);
    const registration = new FileEndpointRegistration(this.dir, file, endpoint, ttlMs, (r) => this.registrations.delete(r));
    this.registrations.add(registration);
    try {
      await registration.write('register');
    } catch (err) {
      await registration.close().catch(() => undefined);
      throw err;
    }
    return registration;
  }

  async snapshot(priority?: RegistryPriority): Promise<RegistrySnapshot> {
    this.assertOpen();
    const now = Date.now();
    const files = await readRegistryFiles(this.dir, priority, now);
    if (files === null) return registrySnapshotOf([], 0);
    if (files.longDead.length > 0) this.sweep(files.longDead);
    const snapshot = registrySnapshotOf(files.decoded, 0, priority);
    return files.unread.length === 0 ? snapshot : withOverLimit(snapshot, files.unread);
  }

  watch(events: RegistryWatchEvents): RegistryWatch {
    this.assertOpen();
    const w = new FilePollWatch<RegistrySnapshot>(this.dir, this.watchOpts, () => this.snapshot(events.priority), registrySnapshotKey, events, (closed) => this.watches.delete(closed));
    this.watches.add(w);
    return w;
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.watches].map((w) => w.close()));
    await this.sweeping;
    await Promise.all([...this.registrations].map((r) => r.close().catch(() => undefined)));
  }

  /**
   * Removes heartbeat files dead for SWEEP_AFTER_TTLS of their TTL (what etcd's lease expiry
   * does to a killed instance's record), at most MAX_SWEPT_PER_PASS per pass, in the
   * background. Under the directory's lock, each is read again first (without following a
   * symlink): only a regular record file still that dead is removed, so a registration that
   * writes its file again meanwhile keeps it. A reader without write access sweeps nothing.
   */
  private sweep(names: readonly string[]): void {
    if (this.sweeping) return;
    this.sweeping = withFileLock(join(this.dir, LOCK_NAME), LOCK_OPTIONS, async () => {
      for (const name of names.slice(0, MAX_SWEPT_PER_PASS)) {
        const file = join(this.dir, name);
        const read = await readBoundedRegularFile(file, MAX_RECORD_BYTES);
        if (read === null || read.text === null || !isLongDead(read.text, read.mtimeMs, Date.now())) continue;
        await unlink(file).catch((err: unknown) => {
          if (errnoCode(err) !== 'ENOENT') throw err;
        });
      }
    }).catch(() => undefined).finally(() => {
      this.sweeping = null;
    });
  }
}
