// Presence for the file store: one JSON file per gateway in `<table>.gateways/`, rewritten
// every ttl/3 as a heartbeat. A gateway is live while its file's mtime is within its TTL,
// so a crashed gateway disappears by itself; close() deletes the file at once.
import { mkdir, readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { cgError } from '../errors';
import { errnoCode, readBoundedRegularFile, storeUnavailable, writeFileAtomic } from './file-io';
import { FilePresenceWatch, type FilePresenceWatchOptions } from './file-presence-watch';
import { checkPresenceArgs, DEFAULT_PRESENCE_TTL_SECONDS } from './presence-args';
import { decodePresence, snapshotOf, type DecodedPresence } from './presence-record';
import type { PresenceRecord, PresenceRegistration, PresenceSnapshot, PresenceStore, PresenceWatch, PresenceWatchEvents } from './types';

/** Largest presence file read (a record is well under 2 KiB; the rest is room, not a limit anyone meets). */
const MAX_PRESENCE_FILE_BYTES = 64 * 1024;

interface PresenceFile {
  readonly ttlSeconds: number;
  readonly record: PresenceRecord;
}

class FilePresenceRegistration implements PresenceRegistration {
  private writes: Promise<void> = Promise.resolve();
  private readonly heartbeat: NodeJS.Timeout;
  private closed = false;

  constructor(
    private readonly dir: string,
    private readonly file: string,
    private record: PresenceRecord,
    private readonly ttlSeconds: number,
    private readonly onClosed: (r: FilePresenceRegistration) => void,
  ) {
    this.heartbeat = setInterval(() => {
      this.enqueueWrite().catch(() => undefined); // a missed beat is retried at the next one
    }, (ttlSeconds * 1000) / 3);
  }

  publish(): Promise<void> {
    return this.enqueueWrite();
  }

  async update(record: PresenceRecord): Promise<void> {
    if (this.closed) throw cgError('STORE_UNAVAILABLE', `presence registration ${this.record.id} is closed`);
    if (record.id !== this.record.id) throw cgError('USAGE', `cannot change a registration's id (${this.record.id} -> ${record.id})`);
    this.record = record;
    await this.enqueueWrite();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.heartbeat);
    await this.writes;
    this.onClosed(this);
    await unlink(this.file).catch((err: unknown) => {
      if (errnoCode(err) !== 'ENOENT') throw storeUnavailable(`cannot remove ${this.file}`, err);
    });
  }

  /** Writes never overlap, and none starts after close(). */
  private enqueueWrite(): Promise<void> {
    const next = this.writes.then(async () => {
      if (this.closed) return;
      await mkdir(this.dir, { recursive: true }).catch((err: unknown) => {
        throw storeUnavailable(`cannot create ${this.dir}`, err);
      });
      const content: PresenceFile = { ttlSeconds: this.ttlSeconds, record: this.record };
      await writeFileAtomic(this.file, JSON.stringify(content));
    });
    this.writes = next.catch(() => undefined);
    return next;
  }
}

export class FilePresence implements PresenceStore {
  private readonly registrations = new Set<FilePresenceRegistration>();
  private readonly watches = new Set<FilePresenceWatch>();

  constructor(private readonly dir: string, private readonly assertOpen: () => void, private readonly watchOpts: FilePresenceWatchOptions) {}

  async register(record: PresenceRecord, ttlSeconds = DEFAULT_PRESENCE_TTL_SECONDS): Promise<PresenceRegistration> {
    this.assertOpen();
    checkPresenceArgs(record, ttlSeconds);
    const file = join(this.dir, `${encodeURIComponent(record.id)}.json`);
    const registration = new FilePresenceRegistration(this.dir, file, record, ttlSeconds, (r) => this.registrations.delete(r));
    this.registrations.add(registration);
    try {
      await registration.publish();
    } catch (err) {
      await registration.close().catch(() => undefined);
      throw err;
    }
    return registration;
  }

  async list(): Promise<PresenceRecord[]> {
    return [...(await this.snapshot()).records];
  }

  async snapshot(): Promise<PresenceSnapshot> {
    this.assertOpen();
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return { records: [], malformed: [] };
      throw storeUnavailable(`cannot list ${this.dir}`, err);
    }
    const now = Date.now();
    const found = await Promise.all(
      names.filter((n) => n.endsWith('.json') && !n.startsWith('.')).map((n) => this.readLive(n, now)),
    );
    return snapshotOf(found.filter((r): r is DecodedPresence => r !== null));
  }

  watch(events: PresenceWatchEvents): PresenceWatch {
    this.assertOpen();
    const w = new FilePresenceWatch(this.dir, this.watchOpts, () => this.snapshot(), events, (closed) => this.watches.delete(closed));
    this.watches.add(w);
    return w;
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.watches].map((w) => w.close()));
    await Promise.all([...this.registrations].map((r) => r.close().catch(() => undefined)));
  }

  /** The decoded record of a live file; null when it expired or vanished meanwhile. */
  private async readLive(name: string, now: number): Promise<DecodedPresence | null> {
    const file = join(this.dir, name);
    let keyId = name.slice(0, -'.json'.length);
    try {
      keyId = decodeURIComponent(keyId);
    } catch { /* not an encoded id: the raw file name names it */ }
    // Bounded, regular files only: a FIFO or a symlink dropped in the directory is reported, never waited on.
    const read = await readBoundedRegularFile(file, MAX_PRESENCE_FILE_BYTES);
    if (read === null) return null;
    const { mtimeMs, text } = read;
    if (text === null) return now - mtimeMs > DEFAULT_PRESENCE_TTL_SECONDS * 1000 ? null : { ok: false, malformed: { id: keyId, problem: read.problem } };
    let content: Partial<PresenceFile> | null = null;
    try {
      content = JSON.parse(text) as Partial<PresenceFile>;
    } catch { /* reported below */ }
    const ttl = content && typeof content.ttlSeconds === 'number' && content.ttlSeconds > 0 ? content.ttlSeconds : DEFAULT_PRESENCE_TTL_SECONDS;
    // A heartbeat older than its TTL is a gateway that is gone, whatever the file says.
    if (now - mtimeMs > ttl * 1000) return null;
    if (content === null || typeof content !== 'object') return { ok: false, malformed: { id: keyId, problem: 'not JSON' } };
    return decodePresence(content.record, keyId);
  }
}
