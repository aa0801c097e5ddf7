// The memory double's snapshot watch, shared by presence and the endpoint registry: on every
// poke, the current snapshot if its key changed; one STORE_UNAVAILABLE while unreachable.
import { cgError } from '../../src/errors';

export interface SnapshotEvents<S> {
  onSnapshot(snapshot: S): void;
  onError?(err: Error): void;
}

export function snapshotWatch<S>(
  watchers: Set<() => void>,
  reachable: () => boolean,
  read: () => S,
  keyOf: (snapshot: S) => string,
  events: SnapshotEvents<S>,
  closers: Set<() => Promise<void>>,
): { refresh(): void; close(): Promise<void> } {
  let lastKey: string | null = null;
  let failing = false;
  const notify = () => {
    if (!watchers.has(notify)) return;
    if (!reachable()) {
      if (!failing) events.onError?.(cgError('STORE_UNAVAILABLE', 'memory store is unreachable'));
      failing = true;
      lastKey = null;
      return;
    }
    failing = false;
    const s = read();
    const key = keyOf(s);
    if (key === lastKey) return;
    lastKey = key;
    events.onSnapshot(s);
  };
  watchers.add(notify);
  setImmediate(notify);
  const watch = { refresh: () => void setImmediate(notify), close: async () => void watchers.delete(notify) };
  closers.add(watch.close);
  return watch;
}
