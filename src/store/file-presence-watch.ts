// Watching the file store's presence directory: fs.watch on the directory is the fast path,
// a poll every `pollIntervalMs` the safety net (fs events are unreliable on some file
// systems, and a heartbeat that goes stale changes the set of live gateways without any
// event). Both only poke one serialized re-read; a snapshot is delivered when it differs.
import { watch, type FSWatcher } from 'node:fs';
import { callSafely } from './delivery';
import { snapshotKey } from './presence-record';
import type { PresenceSnapshot, PresenceWatch, PresenceWatchEvents } from './types';

export interface FilePresenceWatchOptions {
  readonly pollIntervalMs: number;
  readonly useFsWatch: boolean;
}

export interface PollWatchEvents<S> {
  onSnapshot(snapshot: S): void;
  onError?(err: Error): void;
}

/** A directory of heartbeat files (presence, the endpoint registry), re-read on fs events and every poll. */
export class FilePollWatch<S> {
  private lastKey: string | null = null;
  private running: Promise<void> | null = null;
  private pokedWhileRunning = false;
  private closed = false;
  private failing = false;
  private readonly pollTimer: NodeJS.Timeout;
  private fsWatcher: FSWatcher | null = null;

  constructor(
    private readonly dir: string,
    private readonly opts: FilePresenceWatchOptions,
    private readonly read: () => Promise<S>,
    private readonly keyOf: (snapshot: S) => string,
    private readonly events: PollWatchEvents<S>,
    private readonly onClosed: (w: FilePollWatch<S>) => void,
  ) {
    this.startFsWatch();
    this.pollTimer = setInterval(() => {
      // The directory may appear after the watch started (the first gateway creates it).
      if (!this.fsWatcher) this.startFsWatch();
      this.poke();
    }, opts.pollIntervalMs);
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
    if (!this.opts.useFsWatch || this.closed) return;
    try {
      this.fsWatcher = watch(this.dir, { persistent: true }, () => this.poke());
      this.fsWatcher.on('error', () => {
        this.fsWatcher?.close();
        this.fsWatcher = null; // polling carries on, and tries fs.watch again
      });
    } catch {
      this.fsWatcher = null; // e.g. no gateway has created the directory yet
    }
  }

  /** Reads again now (what the snapshot is made of changed, e.g. a reader's priority). */
  refresh(): void {
    this.poke();
  }

  private poke(): void {
    if (this.closed) return;
    if (this.running) {
      this.pokedWhileRunning = true;
      return;
    }
    this.running = this.readUntilQuiet().finally(() => {
      this.running = null;
    });
  }

  private async readUntilQuiet(): Promise<void> {
    do {
      this.pokedWhileRunning = false;
      await this.readOnce();
    } while (this.pokedWhileRunning && !this.closed);
  }

  private async readOnce(): Promise<void> {
    let snapshot: S;
    try {
      snapshot = await this.read();
    } catch (err) {
      if (this.closed) return;
      const onError = this.events.onError;
      if (!this.failing && onError) callSafely(() => onError.call(this.events, err as Error));
      this.failing = true;
      this.lastKey = null; // after the trouble, the next good read is delivered whatever it holds
      return;
    }
    this.failing = false;
    const key = this.keyOf(snapshot);
    if (this.closed || key === this.lastKey) return;
    this.lastKey = key;
    callSafely(() => this.events.onSnapshot(snapshot));
  }
}

/** The gateways' presence directory. */
export class FilePresenceWatch extends FilePollWatch<PresenceSnapshot> implements PresenceWatch {
  constructor(dir: string, opts: FilePresenceWatchOptions, read: () => Promise<PresenceSnapshot>, events: PresenceWatchEvents, onClosed: (w: FilePresenceWatch) => void) {
    super(dir, opts, read, snapshotKey, events, (w) => onClosed(w as FilePresenceWatch));
  }
}
