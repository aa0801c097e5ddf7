// The embedded store for one machine: the routing table in a JSON file
// (`{ version, table }`), history as JSON lines beside it, presence as one heartbeat file
// per gateway, the endpoint registry as one heartbeat file per endpoint (file-registry.ts).
// Safe against several processes (two `cellctl`, many gateways) at once: writes replace the file atomically, and compare-and-swap re-reads the version under an
// exclusive lock file.
import { mkdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { tableChecksum } from '../cells/checksum';
import type { RoutingTable, VersionedTable } from '../cells/types';
import { cgError } from '../errors';
import { encodeTableFile, parseTableFile } from './file-doc';
import { appendLine, readTextOrNull, storeUnavailable, writeFileAtomic } from './file-io';
import { historyEntry } from './history';
import { withFileLock } from './file-lock';
import { FilePresence } from './file-presence';
import { FileRegistry } from './file-registry';
import { FileTableWatch } from './file-watch';
import { casInput, decodeTable } from './table-doc';
import type { CasResult, ChangeNote, HistoryEntry, TableStore, TableWatch, TableWatchEvents } from './types';

export interface FileStoreOptions {
  /** Stat poll period of watches: the safety net under fs.watch. */
  readonly pollIntervalMs?: number;
  /** fs.watch fast path (off where fs events are known not to work). */
  readonly useFsWatch?: boolean;
  /** How long compareAndSwap waits for another writer's lock. */
  readonly lockTimeoutMs?: number;
  /** A lock older than this is considered left by a crashed process. */
  readonly staleLockMs?: number;
  readonly testHooks?: FileStoreTestHooks;
}

export interface FileStoreTestHooks {
  /** Awaited after a write's history entry is appended and before its table is written: throw to crash there. */
  afterHistoryAppend?(entry: HistoryEntry): Promise<void> | void;
}

const DEFAULTS = Object.freeze({ pollIntervalMs: 250, useFsWatch: true, lockTimeoutMs: 5_000, staleLockMs: 10_000, testHooks: {} });

function checkOptions(opts: FileStoreOptions): Required<FileStoreOptions> {
  const merged = { ...DEFAULTS, ...stripUndefined(opts) };
  for (const key of ['pollIntervalMs', 'lockTimeoutMs', 'staleLockMs'] as const) {
    const v = merged[key];
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw cgError('USAGE', `file store option ${key} must be a positive number of ms, got ${String(v)}`);
  }
  return Object.freeze(merged);
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

export class FileStore implements TableStore {
  readonly description: string;
  readonly presence: FilePresence;
  readonly registry: FileRegistry;
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
    this.presence = new FilePresence(`${this.tablePath}.gateways`, () => this.assertOpen(), this.opts);
    this.registry = new FileRegistry(`${this.tablePath}.endpoints`, () => this.assertOpen(), this.opts);
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

  /**
   * Under the lock: the history entry is appended first (write-ahead), then the table is
   * replaced. A crash in between leaves an entry for a version that was never written,
   * which listHistory drops (or a later write of that version supersedes); a table version
   * without its entry cannot happen.
   */
  async compareAndSwap(expectedVersion: number, table: RoutingTable, note?: ChangeNote): Promise<CasResult> {
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
      // Versions never repeat, even over a deleted table file: gateways refuse to go back.
      const version = currentVersion === 0 ? (await this.lastHistoryVersion()) + 1 : currentVersion + 1;
      const entry = historyEntry(note, expectedVersion, version, valid);
      await appendLine(this.historyPath, JSON.stringify(entry));
      await this.opts.testHooks.afterHistoryAppend?.(entry);
      await writeFileAtomic(this.tablePath, encodeTableFile(version, valid));
      return { ok: true, version, checksum: tableChecksum(valid) };
    });
  }

  async listHistory(): Promise<HistoryEntry[]> {
    this.assertOpen();
    const entries = await this.readHistory();
    const current = await this.currentVersionOrNull();
    // The last entry of a version wins (an earlier one was written ahead of a crash); entries
    // ahead of the table were never written.
    const lastOf = new Map(entries.map((e, i) => [e.versionAfter, i]));
    return entries.filter((e, i) => lastOf.get(e.versionAfter) === i && (current === null || e.versionAfter <= current));
  }

  private async readHistory(): Promise<HistoryEntry[]> {
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

  private async lastHistoryVersion(): Promise<number> {
    return (await this.readHistory()).reduce((max, e) => Math.max(max, Number(e.versionAfter) || 0), 0);
  }

  /** The table file's version (even when its table is invalid); null when there is no readable file. */
  private async currentVersionOrNull(): Promise<number | null> {
    const text = await readTextOrNull(this.tablePath);
    if (text === null) return null;
    try {
      return parseTableFile(text, this.tablePath).version;
    } catch {
      return null;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.watches].map((w) => w.close()));
    await this.presence.closeAll();
    await this.registry.closeAll();
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
