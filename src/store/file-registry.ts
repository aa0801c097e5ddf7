// The endpoint registry for the file store: one heartbeat file per endpoint in
// `<table>.endpoints/`, named `<zone>@<service>@<id, URI-encoded>.json` and holding the
// record plus its TTL. The file is written once; the heartbeat (every ttl/3) only touches
// its mtime. An endpoint is live while its mtime is within its TTL, so a killed instance
// disappears by itself; close() deletes the file at once. Watches reuse presence's
// fs.watch + poll (file-presence-watch.ts).
import { mkdir, readdir, unlink, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import {
  checkRegistration, DEFAULT_ENDPOINT_TTL_MS, decodeEndpoint, documentOf, MAX_ENDPOINT_TTL_MS, MAX_RECORD_BYTES, MAX_REGISTERED_ENDPOINTS,
  MIN_ENDPOINT_TTL_MS, registrySnapshotKey, registrySnapshotOf, type DecodedEndpoint,
} from './endpoint-record';
import { cgError } from '../errors';
import { errnoCode, readBoundedRegularFile, storeUnavailable, writeFileAtomic } from './file-io';
import { FilePollWatch, type FilePresenceWatchOptions } from './file-presence-watch';
import type {
  EndpointRegistration, EndpointRegistrationRequest, EndpointRegistry, RegisteredEndpoint, RegistrySnapshot, RegistryWatch, RegistryWatchEvents,
} from './types';

const SEPARATOR = '@'; // never in a zone or service name (NAME), always encoded in an id
/**
 * A file name's bytes (255 on every common file system) less writeFileAtomic's temporary
 * suffix (`.<name>.<pid ≤ 7>.<8 hex>.tmp`: 22): longer ids cannot be written at all.
 */
const MAX_FILE_NAME_BYTES = 255 - 22;

function fileNameOf(e: RegisteredEndpoint): string {
  return `${e.zone}${SEPARATOR}${e.service}${SEPARATOR}${encodeURIComponent(e.id)}.json`;
}

/** `<zone>/<service>/<encoded id>`, the key decodeEndpoint reads; null for a name that is not ours. */
function keyOfFileName(name: string): string | null {
  if (!name.endsWith('.json') || name.startsWith('.')) return null;
  const parts = name.slice(0, -'.json'.length).split(SEPARATOR);
  return parts.length === 3 ? parts.join('/') : `${name} (not <zone>@<service>@<id>.json)`;
}

class FileEndpointRegistration implements EndpointRegistration {
  private readonly heartbeat: NodeJS.Timeout;
  private beats: Promise<void> = Promise.resolve();
  private closed = false;

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

  async write(): Promise<void> {
    await mkdir(this.dir, { recursive: true }).catch((err: unknown) => {
      throw storeUnavailable(`cannot create ${this.dir}`, err);
    });
    await writeFileAtomic(this.file, JSON.stringify({ ...documentOf(this.endpoint), ttlMs: this.ttlMs }));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.heartbeat);
    await this.beats;
    this.onClosed(this);
    await unlink(this.file).catch((err: unknown) => {
      if (errnoCode(err) !== 'ENOENT') throw storeUnavailable(`cannot remove ${this.file}`, err);
    });
  }

  /** Touches the file; writes it again when it is gone (deleted by hand, or expired and swept). */
  private async beat(): Promise<void> {
    if (this.closed) return;
    const now = new Date();
    try {
      await utimes(this.file, now, now);
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
      if (!this.closed) await this.write();
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
      await registration.write();
    } catch (err) {
      await registration.close().catch(() => undefined);
      throw err;
    }
    return registration;
  }

  async snapshot(): Promise<RegistrySnapshot> {
    this.assertOpen();
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return registrySnapshotOf([], 0);
      throw storeUnavailable(`cannot list ${this.dir}`, err);
    }
    const now = Date.now();
    // Files beyond the bound are not even read: each is one refused record.
    const keyed = names.map((n) => [n, keyOfFileName(n)] as const).filter((e): e is readonly [string, string] => e[1] !== null);
    const read = keyed.slice(0, MAX_REGISTERED_ENDPOINTS);
    const found = await Promise.all(read.map(([name, key]) => this.readLive(name, key, now)));
    const over: DecodedEndpoint[] = keyed.slice(MAX_REGISTERED_ENDPOINTS).map(([, key]) => ({ ok: false, refused: { key, problem: `over the limit of ${MAX_REGISTERED_ENDPOINTS} registered endpoints` } }));
    return registrySnapshotOf([...found.filter((d): d is DecodedEndpoint => d !== null), ...over], 0);
  }

  watch(events: RegistryWatchEvents): RegistryWatch {
    this.assertOpen();
    const w = new FilePollWatch<RegistrySnapshot>(this.dir, this.watchOpts, () => this.snapshot(), registrySnapshotKey, events, (closed) => this.watches.delete(closed));
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
    let ttlMs = DEFAULT_ENDPOINT_TTL_MS;
    try {
      const t = (JSON.parse(text) as { ttlMs?: unknown }).ttlMs;
      if (typeof t === 'number' && t >= MIN_ENDPOINT_TTL_MS && t <= MAX_ENDPOINT_TTL_MS) ttlMs = t;
    } catch { /* decodeEndpoint reports it */ }
    // A heartbeat older than its TTL is an instance that is gone, whatever the file says.
    if (now - mtimeMs > ttlMs) return null;
    return decodeEndpoint(key, text);
  }
}

