// Reading the file store's endpoint registry (`<table>.endpoints/`) with bounded work. What
// takes one of the MAX_REGISTERED_ENDPOINTS slots is a live, valid record, as in etcd (where
// an expired lease is gone and a record that fails validation takes no slot): files are read
// in the reader's order (its priority of zone and service, then name) until the slots are
// full, and a dead heartbeat file (older than its TTL) or one that is not a valid record is
// passed over rather than filling a slot. The work is bounded: at most
// MAX_DIR_ENTRIES_EXAMINED names of the directory are looked at, and at most
// MAX_RECORD_FILES_READ files of at most MAX_RECORD_BYTES each are read; whatever is left
// unread is counted as over the limit. Heartbeat files dead for SWEEP_AFTER_TTLS of their TTL
// (instances killed with -9 leave theirs for good) are named for the registry to sweep, as
// etcd's lease expiry would remove them.
import { opendir } from 'node:fs/promises';
import {
  DEFAULT_ENDPOINT_TTL_MS, decodeEndpoint, MAX_ENDPOINT_TTL_MS, MAX_RECORD_BYTES, MAX_REFUSED_LISTED, MAX_REGISTERED_ENDPOINTS, MIN_ENDPOINT_TTL_MS, overLimitProblem,
  type DecodedEndpoint,
} from './endpoint-record';
import { errnoCode, readBoundedRegularFile, storeUnavailable } from './file-io';
import type { RefusedEndpoint, RegistryPriority, RegistrySnapshot } from './types';

export const SEPARATOR = '@'; // never in a zone or service name (NAME), always encoded in an id
/** Names of the directory looked at per snapshot (lock and temporary files included). */
export const MAX_DIR_ENTRIES_EXAMINED = 10 * MAX_REGISTERED_ENDPOINTS;
/** Record files read per snapshot: the slots, and as many again of dead or invalid ones to pass over. */
export const MAX_RECORD_FILES_READ = 2 * MAX_REGISTERED_ENDPOINTS;
/** A heartbeat this many TTLs old is an instance long gone: its file may be removed. */
export const SWEEP_AFTER_TTLS = 10;
/** Files read at once. */
const READ_BATCH = 256;

/** The TTL a record file states (the default when it states none or a bad one). */
export function ttlOfRecord(text: string): number {
  try {
    const t = (JSON.parse(text) as { ttlMs?: unknown }).ttlMs;
    if (typeof t === 'number' && t >= MIN_ENDPOINT_TTL_MS && t <= MAX_ENDPOINT_TTL_MS) return t;
  } catch { /* decodeEndpoint reports it */ }
  return DEFAULT_ENDPOINT_TTL_MS;
}

/** Dead for good: older than SWEEP_AFTER_TTLS of the TTL it states. */
export function isLongDead(text: string, mtimeMs: number, now: number): boolean {
  return now - mtimeMs > SWEEP_AFTER_TTLS * ttlOfRecord(text);
}

/** `<zone>/<service>/<encoded id>`, the key decodeEndpoint reads; null for a name that is not ours. */
export function keyOfFileName(name: string): string | null {
  if (!name.endsWith('.json') || name.startsWith('.')) return null;
  const parts = name.slice(0, -'.json'.length).split(SEPARATOR);
  return parts.length === 3 ? parts.join('/') : `${name} (not <zone>@<service>@<id>.json)`;
}

/** A record file's name (`zone@service@id.json`), not one merely ending in .json. */
export function isRecordName(name: string): boolean {
  return keyOfFileName(name)?.split('/').length === 3;
}

type Keyed = readonly [name: string, key: string];

export interface RegistryFiles {
  /** What the files read hold: live records, and refused ones (a dead file is neither). */
  readonly decoded: DecodedEndpoint[];
  /** Record files left unread over the bound (each an over-limit record). */
  readonly unread: RefusedEndpoint[];
  /** Regular record files dead for SWEEP_AFTER_TTLS of their TTL. */
  readonly longDead: string[];
}

/** The directory's record files, read in the reader's order up to the bounds; null when there is no directory. */
export async function readRegistryFiles(dir: string, priority: RegistryPriority | undefined, now: number): Promise<RegistryFiles | null> {
  const listed = await listRecordFiles(dir);
  if (listed === null) return null;
  const { keyed, unexamined } = listed;
  if (keyed.length > MAX_REGISTERED_ENDPOINTS || unexamined) sortByPriority(keyed, priority);
  const decoded: DecodedEndpoint[] = [];
  const longDead: string[] = [];
  let live = 0;
  let next = 0;
  const end = Math.min(keyed.length, MAX_RECORD_FILES_READ);
  while (next < end && live < MAX_REGISTERED_ENDPOINTS) {
    const batch = keyed.slice(next, Math.min(next + READ_BATCH, end));
    next += batch.length;
    for (const [i, found] of (await Promise.all(batch.map(([name, key]) => readRecordFile(dir, name, key, now)))).entries()) {
      if (found === 'long-dead') longDead.push(batch[i]![0]);
      else if (found !== null) {
        decoded.push(found);
        if (found.ok) live += 1;
      }
    }
  }
  const unread = keyed.slice(next).map(([, key]) => ({ key, problem: overLimitProblem() }));
  if (unexamined) unread.push({ key: '(directory)', problem: `more than ${MAX_DIR_ENTRIES_EXAMINED} entries; the rest were not looked at` });
  return { decoded, unread, longDead };
}

/** `snapshot` with the files left unread over the bound refused and counted too. */
export function withOverLimit(snapshot: RegistrySnapshot, over: RefusedEndpoint[]): RegistrySnapshot {
  const refused = [...snapshot.refused, ...over].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)).slice(0, MAX_REFUSED_LISTED);
  return { ...snapshot, refused, refusedCount: snapshot.refusedCount + over.length, overLimitCount: snapshot.overLimitCount + over.length };
}

/** The first MAX_DIR_ENTRIES_EXAMINED names, those that may be records kept. */
async function listRecordFiles(dir: string): Promise<{ keyed: Keyed[]; unexamined: boolean } | null> {
  const keyed: Keyed[] = [];
  let examined = 0;
  try {
    for await (const entry of await opendir(dir, { bufferSize: 256 })) {
      if (++examined > MAX_DIR_ENTRIES_EXAMINED) return { keyed, unexamined: true }; // leaving the loop closes the directory
      const key = keyOfFileName(entry.name);
      if (key !== null) keyed.push([entry.name, key]);
    }
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return null;
    throw storeUnavailable(`cannot list ${dir}`, err);
  }
  return { keyed, unexamined: false };
}

/** Names by the reader's priority of their zone and service (a name that is not ours last), then by name. */
function sortByPriority(keyed: Keyed[], priority: RegistryPriority | undefined): void {
  const rank = (key: string): number => {
    const [zone, service, id] = key.split('/');
    return id === undefined || priority === undefined ? (id === undefined ? Number.MAX_SAFE_INTEGER : 0) : priority(zone!, service!);
  };
  const ranks = new Map(keyed.map(([n, key]) => [n, rank(key)]));
  keyed.sort((a, b) => ranks.get(a[0])! - ranks.get(b[0])! || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

/** The decoded record of a live file; null when it expired or vanished meanwhile; 'long-dead' when it may be swept. */
async function readRecordFile(dir: string, name: string, key: string, now: number): Promise<DecodedEndpoint | null | 'long-dead'> {
  const read = await readBoundedRegularFile(`${dir}/${name}`, MAX_RECORD_BYTES);
  if (read === null) return null;
  const { mtimeMs } = read;
  if (read.text === null) {
    // Not a regular file, or too large: refused while it looks alive (a dead one is not even named; never swept).
    return now - mtimeMs > DEFAULT_ENDPOINT_TTL_MS ? null : { ok: false, refused: { key, problem: read.problem } };
  }
  const text = read.text;
  // A heartbeat older than its TTL is an instance that is gone, whatever the file says.
  if (now - mtimeMs > ttlOfRecord(text)) return isRecordName(name) && isLongDead(text, mtimeMs, now) ? 'long-dead' : null;
  return decodeEndpoint(key, text);
}
