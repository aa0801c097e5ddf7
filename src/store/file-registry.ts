// The endpoint registry for the file store: one heartbeat file per endpoint in
// `<table>.endpoints/`, named `<zone>@<service>@<id, URI-encoded>.json` and holding the
// record plus its TTL. The file is written once; the heartbeat (every ttl/3) only touches
// its mtime. An endpoint is live while its mtime is within its TTL, so a killed instance
// disappears by itself; close() deletes the file at once. Watches reuse presence's
// fs.watch + poll (file-presence-watch.ts).
//
// The record carries its registration's token. Writing it (the first time, or again when
// the file went away) and deleting it happen under the directory's lock, after reading
// what is there: another live instance's record (another URL) is never written over, and a
// registration only ever deletes its own. A beat that finds another instance's record (another
// URL: someone took the id) stops claiming it; one that finds another registration of its own
// URL (a restart whose old process still runs) leaves it alone and writes its record again
// once that one's file is gone or expired.
import { mkdir, readdir, unlink, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import {
  checkRegistration, claimRefusal, DEFAULT_ENDPOINT_TTL_MS, decodeEndpoint, documentOf, endpointKey, MAX_ENDPOINT_TTL_MS, MAX_RECORD_BYTES, MAX_REGISTERED_ENDPOINTS,
  MIN_ENDPOINT_TTL_MS, MAX_REFUSED_LISTED, newInstanceToken, YIELD, overLimitProblem, registrySnapshotKey, registrySnapshotOf, type ClaimMode, type DecodedEndpoint,
} from './endpoint-record';
import { cgError, isCellgateError } from '../errors';
import { errnoCode, readBoundedRegularFile, storeUnavailable, writeFileAtomic } from './file-io';
import { withFileLock } from './file-lock';
import { FilePollWatch, type FilePresenceWatchOptions } from './file-presence-watch';
import type {
  EndpointRegistration, EndpointRegistrationRequest, EndpointRegistry, RefusedEndpoint, RegisteredEndpoint, RegistryPriority, RegistrySnapshot, RegistryWatch,
  RegistryWatchEvents,
} from './types';

const SEPARATOR = '@'; // never in a zone or service name (NAME), always encoded in an id
/**
 * A file name's bytes (255 on every common file system) less writeFileAtomic's temporary
 * suffix (`.<name>.<pid ≤ 7>.<8 hex>.tmp`: 22): longer ids cannot be written at all.
 */
const MAX_FILE_NAME_BYTES = 255 - 22;
/** The directory's lock, held for a read and a write of one record (milliseconds). */
const LOCK_NAME = '.register.lock';
const LOCK_OPTIONS = { acquireTimeoutMs: 5_000, staleLockMs: 10_000 };

/** The TTL a record file states (the default when it states none or a bad one). */
function ttlOfRecord(text: string): number {
  try {
    const t = (JSON.parse(text) as { ttlMs?: unknown }).ttlMs;
    if (typeof t === 'number' && t >= MIN_ENDPOINT_TTL_MS && t <= MAX_ENDPOINT_TTL_MS) return t;
  } catch { /* decodeEndpoint reports it */ }
  return DEFAULT_ENDPOINT_TTL_MS;
}

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

/** `<zone>/<service>/<encoded id>`, the key decodeEndpoint reads; null for a name that is not ours. */
function keyOfFileName(name: string): string | null {
  if (!name.endsWith('.json') || name.startsWith('.')) return null;
  const parts = name.slice(0, -'.json'.length).split(SEPARATOR);
  return parts.length === 3 ? parts.join('/') : `${name} (not <zone>@<service>@<id>.json)`;
}

/** Names by the reader's priority of their zone and service (a name that is not ours last), then by name. */
function sortByPriority(keyed: (readonly [string, string])[], priority: RegistryPriority | undefined): void {
  const rank = (key: string): number => {
    const [zone, service, id] = key.split('/');
    return id === undefined || priority === undefined ? (id === undefined ? Number.MAX_SAFE_INTEGER : 0) : priority(zone!, service!);
  };
  const ranks = new Map(keyed.map(([n, key]) => [n, rank(key)]));
  keyed.sort((a, b) => ranks.get(a[0])! - ranks.get(b[0])! || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

/** `snapshot` with the files left unread over the bound refused and counted too. */
function withOverLimit(snapshot: RegistrySnapshot, over: RefusedEndpoint[]): RegistrySnapshot {
  const refused = [...snapshot.refused, ...over].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)).slice(0, MAX_REFUSED_LISTED);
  return { ...snapshot, refused, refusedCount: snapshot.refusedCount + over.length, overLimitCount: snapshot.overLimitCount + over.length };
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
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return registrySnapshotOf([], 0);
      throw storeUnavailable(`cannot list ${this.dir}`, err);
    }
    const now = Date.now();
    // Files beyond the bound are not even read: each is one refused record. Which ones is
    // decided by the name (zone@service@id): those the reader routes to first.
    const keyed = names.map((n) => [n, keyOfFileName(n)] as const).filter((e): e is readonly [string, string] => e[1] !== null);
    if (keyed.length > MAX_REGISTERED_ENDPOINTS) sortByPriority(keyed, priority);
    const read = keyed.slice(0, MAX_REGISTERED_ENDPOINTS);
    const found = await Promise.all(read.map(([name, key]) => this.readLive(name, key, now)));
    const over = keyed.slice(MAX_REGISTERED_ENDPOINTS).map(([, key]) => ({ key, problem: overLimitProblem() }));
    const snapshot = registrySnapshotOf(found.filter((d): d is DecodedEndpoint => d !== null), 0, priority);
    return over.length === 0 ? snapshot : withOverLimit(snapshot, over);
  }

  watch(events: RegistryWatchEvents): RegistryWatch {
    this.assertOpen();
    const w = new FilePollWatch<RegistrySnapshot>(this.dir, this.watchOpts, () => this.snapshot(events.priority), registrySnapshotKey, events, (closed) => this.watches.delete(closed));
    this.watches.add(w);
    return w;
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.watches].map((w) => w.close()));
    await Promise.all([...this.registrations].map((r) => r.close().catch(() => undefined)));
  }

  /** The decoded record of a live file; null when it expired or vanished meanwhile. */
  private async readLive(name: string, key: string, now: number): Promise<DecodedEndpoint | null> {
    const file = join(this.dir, name);
    const read = await readBoundedRegularFile(file, MAX_RECORD_BYTES);
    if (read === null) return null;
    const { mtimeMs } = read;
    if (read.text === null) {
      // Not a regular file, or too large: refused while it looks alive (a dead one is not even named).
      return now - mtimeMs > DEFAULT_ENDPOINT_TTL_MS ? null : { ok: false, refused: { key, problem: read.problem } };
    }
    const text = read.text;
    // A heartbeat older than its TTL is an instance that is gone, whatever the file says.
    if (now - mtimeMs > ttlOfRecord(text)) return null;
    return decodeEndpoint(key, text);
  }
}

