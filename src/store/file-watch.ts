// Change notification for the file store. fs.watch on the directory is the fast path
// (milliseconds), but it is unreliable on network and container file systems, so a stat
// poll every `pollIntervalMs` is the safety net. Both only "poke" one serialized check,
// which reads the file when its identity (inode, size, times) changed.
import { createHash } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { cgError } from '../errors';
import { TableDelivery } from './delivery';
import { errnoCode, readTextOrNull } from './file-io';
import { parseTableFile, type TableFileDoc } from './file-doc';
import { TableDecoder } from '../cells/table-decoder';
import { decodeTable } from './table-doc';
import type { TableWatch, TableWatchEvents } from './types';

export interface FileWatchOptions {
  readonly pollIntervalMs: number;
  readonly useFsWatch: boolean;
}

export class FileTableWatch implements TableWatch {
  private readonly delivery: TableDelivery;
  private readonly decoder = new TableDecoder();
  private lastSignature: string | null = null;
  private running: Promise<void> | null = null;
  private pokedWhileRunning = false;
  private closed = false;
  private readonly pollTimer: NodeJS.Timeout;
  private fsWatcher: FSWatcher | null = null;

  constructor(
    private readonly path: string,
    opts: FileWatchOptions,
    events: TableWatchEvents,
    private readonly onClosed: (w: FileTableWatch) => void,
  ) {
    this.delivery = new TableDelivery(events);
    if (opts.useFsWatch) this.startFsWatch();
    this.pollTimer = setInterval(() => this.poke(), opts.pollIntervalMs);
    this.poke();
  }

  async close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      clearInterval(this.pollTimer);
      this.fsWatcher?.close();
      this.fsWatcher = null;
      this.onClosed(this);
    }
    await this.running;
  }

  private startFsWatch(): void {
    const base = basename(this.path);
    try {
      // The directory, not the file: writes replace the file by rename, which ends a file watch.
      this.fsWatcher = watch(dirname(this.path), { persistent: true }, (_event, filename) => {
        if (filename === null || filename === base) this.poke();
      });
      this.fsWatcher.on('error', () => {
        this.fsWatcher?.close();
        this.fsWatcher = null; // polling carries on alone
      });
    } catch {
      this.fsWatcher = null; // e.g. the directory does not exist yet: polling will see the file appear
    }
  }

  /** Asks for a check; checks never overlap, and a poke during one causes one more. */
  private poke(): void {
    if (this.closed) return;
    if (this.running) {
      this.pokedWhileRunning = true;
      return;
    }
    this.running = this.checkUntilQuiet().finally(() => {
      this.running = null;
    });
  }

  private async checkUntilQuiet(): Promise<void> {
    do {
      this.pokedWhileRunning = false;
      try {
        await this.checkOnce();
      } catch {
        this.delivery.connection(false);
      }
    } while (this.pokedWhileRunning && !this.closed);
  }

  private async checkOnce(): Promise<void> {
    let signature: string;
    try {
      const st = await stat(this.path);
      signature = `${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw err;
      this.delivery.connection(true);
      this.lastSignature = null; // no table yet (or removed): keep the last good one
      return;
    }
    if (signature === this.lastSignature) return;
    // Read after stat: if the file is replaced in between, the next check sees a new signature.
    const text = await readTextOrNull(this.path);
    if (this.closed) return;
    this.delivery.connection(true);
    this.lastSignature = signature;
    if (text !== null) this.consider(text);
  }

  private consider(text: string): void {
    let doc: TableFileDoc;
    try {
      doc = parseTableFile(text, this.path);
    } catch (err) {
      const key = `raw:${createHash('sha256').update(text).digest('hex')}`;
      const version = (err as { detail?: { version?: number } }).detail?.version ?? -1;
      this.delivery.reject(err as Error, version, key);
      return;
    }
    if (doc.version < this.delivery.lastVersion) {
      // E.g. an old backup copied over the file: never go back silently.
      const err = cgError('INVALID_TABLE', `${this.path} version ${doc.version} is older than the applied version ${this.delivery.lastVersion}: ignored`, {
        detail: { version: doc.version },
      });
      this.delivery.reject(err, doc.version, `older:v${doc.version}`);
      return;
    }
    this.delivery.offer(doc.version, () => decodeTable(doc.table, doc.version, this.path, this.decoder));
  }
}
