// What both stores' watches promise their listener, kept in one place: versions strictly
// increase, an invalid document is never delivered and is reported once, and the
// connection flag is reported only when it changes.
import type { VersionedTable } from '../cells/types';
import type { TableWatchEvents } from './types';

/** Listener code runs outside the store's state machine: its exceptions surface, but cannot wedge the watch. */
export function callSafely(fn: () => void): void {
  try {
    fn();
  } catch (err) {
    setImmediate(() => {
      throw err;
    });
  }
}

export class TableDelivery {
  private delivered = 0;
  private lastRejectedKey: string | null = null;
  private connected: boolean | null = null;

  constructor(private readonly events: TableWatchEvents) {}

  /** The last version handed to onTable (0 = none yet). */
  get lastVersion(): number {
    return this.delivered;
  }

  /**
   * Offers the document stored at `version`: `decode` runs only if the version is new;
   * it either returns the table (delivered) or throws (reported once for that version).
   * Returns true when a table was delivered.
   */
  offer(version: number, decode: () => VersionedTable): boolean {
    if (version <= this.delivered) return false;
    const key = `v${version}`;
    if (key === this.lastRejectedKey) return false;
    let vt: VersionedTable;
    try {
      vt = decode();
    } catch (err) {
      this.reject(err as Error, version, key);
      return false;
    }
    this.delivered = version;
    callSafely(() => this.events.onTable(vt));
    return true;
  }

  /** Reports a document that will not be applied; `key` identifies it so it is reported once. */
  reject(err: Error, version: number, key = `v${version}`): void {
    if (key === this.lastRejectedKey) return;
    this.lastRejectedKey = key;
    const onRejected = this.events.onRejected;
    if (onRejected) callSafely(() => onRejected.call(this.events, err, version));
  }

  connection(connected: boolean): void {
    if (connected === this.connected) return;
    this.connected = connected;
    const onConnection = this.events.onConnection;
    if (onConnection) callSafely(() => onConnection.call(this.events, connected));
  }
}
