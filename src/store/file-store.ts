// The embedded store for one machine: the routing table in a JSON file
// (`{ version, table }`), history as JSON lines beside it, presence as one heartbeat file
// per gateway. Safe against several processes (two `cellctl`, many gateways) at once:
// writes replace the file atomically, and compare-and-swap re-reads the version under an
// exclusive lock file.
import { mkdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { tableChecksum } from '../cells/checksum';
import type { RoutingTable, VersionedTable } from '../cells/types';
import { cgError } from '../errors';
import { encodeTableFile, parseTableFile } from './file-doc';
import { appendLine, readTextOrNull, storeUnavailable, writeFileAtomic } from './file-io';
import { withFileLock } from './file-lock';
import { FilePresence } from './file-presence';
import { FileTableWatch } from './file-watch';
import { casInput, decodeTable } from './table-doc';
import type { CasResult, HistoryEntry, TableStore, TableWatch, TableWatchEvents } from './types';

export interface FileStoreOptions {
  /** Stat poll period of watches: the safety net under fs.watch. */
  readonly pollIntervalMs?: number;
  /** fs.watch fast path (off where fs events are known not to work). */
  readonly useFsWatch?: boolean;
  /** How long compareAndSwap waits for another writer's lock. */
  readonly lockTimeoutMs?: number;
  /** A lock older than this is considered left by a crashed process. */
  readonly staleLockMs?: number;
}

const DEFAULTS = Object.freeze({ pollIntervalMs: 250, useFsWatch: true, lockTimeoutMs: 5_000, staleLockMs: 10_000 });

function checkOptions(opts: FileStoreOptions): Required<FileStoreOptions> {
  const merged = { ...DEFAULTS, ...opts };
  for (const key of ['pollIntervalMs', 'lockTimeoutMs', 'staleLockMs'] as const) {
    const v = merged[key];
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw cgError('USAGE', `file store option ${key} must be a positive number of ms, got ${String(v)}`);
  }
  return Object.freeze(merged);
}

export class FileStore implements TableStore {
  readonly description: string;
  readonly presence: FilePresence;
  private readonly tablePath: string;
  private readonly lockPath: string;
  private readonly historyPath: string;
  private readonly opts: Required<FileStoreOptions>;
  private readonly watches = new Set<FileTableWatch>();
  private closed = false;

  constructor(path: string, opts: FileStoreOptions = {}) {
    this.opts = checkOptions(opts);
    this.tablePath = resolve(path);
    this.lockPath = `${this.tablePath}.lock`;
    this.historyPath = `${this.tablePath}.history.jsonl`;
    this.description = `file:${this.tablePath}`;
    this.presence = new FilePresence(`${this.tablePath}.gateways`, () => this.assertOpen());
  }

  async load(): Promise<VersionedTable | null> {
    this.assertOpen();
    return this.readCurrent();
  }

  watch(events: TableWatchEvents): TableWatch {
    this.assertOpen();
    const w = new FileTableWatch(this.tablePath, this.opts, events, (closed) => this.watches.delete(closed));
    this.watches.add(w);
    return w;
  }

  async compareAndSwap(expectedVersion: number, table: RoutingTable): Promise<CasResult> {
    this.assertOpen();
    const valid = casInput(expectedVersion, table);
    await this.ensureDir();
    const lockOpts = { acquireTimeoutMs: this.opts.lockTimeoutMs, staleLockMs: this.opts.staleLockMs };
    return withFileLock(this.lockPath, lockOpts, async (): Promise<CasResult> => {
      const text = await readTextOrNull(this.tablePath);
      // The version is read from the envelope alone, so that a bad table can still be replaced.
      const currentVersion = text === null ? 0 : parseTableFile(text, this.tablePath).version;
      if (currentVersion !== expectedVersion) {
        return { ok: false, current: text === null ? null : this.decode(text) };
      }
      const version = currentVersion + 1;
      await writeFileAtomic(this.tablePath, encodeTableFile(version, valid));
      return { ok: true, version, checksum: tableChecksum(valid) };
    });
  }

  async appendHistory(entry: HistoryEntry): Promise<void> {
    this.assertOpen();
    await this.ensureDir();
    await appendLine(this.historyPath, JSON.stringify(entry));
  }

  async listHistory(): Promise<HistoryEntry[]> {
    this.assertOpen();
    const text = await readTextOrNull(this.historyPath);
    if (text === null) return [];
    // Every entry ends with a newline: the last piece is either '' or an append cut short
    // by a crash, and neither is an entry.
    const complete = text.split('\n').slice(0, -1);
    return complete.flatMap((line, i) => {
      if (line.trim() === '') return [];
      try {
        return [JSON.parse(line) as HistoryEntry];
      } catch (err) {
        throw storeUnavailable(`${this.historyPath} line ${i + 1} is not JSON`, err);
      }
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.watches].map((w) => w.close()));
    await this.presence.closeAll();
  }

  private assertOpen(): void {
    if (this.closed) throw cgError('STORE_UNAVAILABLE', `${this.description} is closed`);
  }

  private async readCurrent(): Promise<VersionedTable | null> {
    const text = await readTextOrNull(this.tablePath);
    return text === null ? null : this.decode(text);
  }

  private decode(text: string): VersionedTable {
    const doc = parseTableFile(text, this.tablePath);
    return decodeTable(doc.table, doc.version, this.tablePath);
  }

  private async ensureDir(): Promise<void> {
    await mkdir(dirname(this.tablePath), { recursive: true }).catch((err: unknown) => {
      throw storeUnavailable(`cannot create ${dirname(this.tablePath)}`, err);
    });
  }
}

export function createFileStore(path: string, opts: FileStoreOptions = {}): FileStore {
  return new FileStore(path, opts);
}
