// Presence for the file store: one JSON file per gateway in `<table>.gateways/`, rewritten
// every ttl/3 as a heartbeat. A gateway is live while its file's mtime is within its TTL,
// so a crashed gateway disappears by itself; close() deletes the file at once.
import { mkdir, readdir, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { cgError } from '../errors';
import { errnoCode, readTextOrNull, storeUnavailable, writeFileAtomic } from './file-io';
import { checkPresenceArgs, DEFAULT_PRESENCE_TTL_SECONDS } from './presence-args';
import type { PresenceRecord, PresenceRegistration, PresenceStore } from './types';

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

  constructor(private readonly dir: string, private readonly assertOpen: () => void) {}

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
    this.assertOpen();
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return [];
      throw storeUnavailable(`cannot list ${this.dir}`, err);
    }
    const now = Date.now();
    const found = await Promise.all(
      names.filter((n) => n.endsWith('.json') && !n.startsWith('.')).map((n) => this.readLive(join(this.dir, n), now)),
    );
    return found.filter((r): r is PresenceRecord => r !== null).sort((a, b) => a.id.localeCompare(b.id));
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.registrations].map((r) => r.close().catch(() => undefined)));
  }

  private async readLive(file: string, now: number): Promise<PresenceRecord | null> {
    try {
      const [text, st] = await Promise.all([readTextOrNull(file), stat(file)]);
      if (text === null) return null;
      const content = JSON.parse(text) as PresenceFile;
      const ttlMs = (content.ttlSeconds ?? DEFAULT_PRESENCE_TTL_SECONDS) * 1000;
      return now - st.mtimeMs <= ttlMs ? content.record : null;
    } catch {
      return null; // removed meanwhile, or garbage: not a live gateway
    }
  }
}
