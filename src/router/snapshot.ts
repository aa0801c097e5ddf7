// The fail-static snapshot: the last good table, kept on local disk so that a gateway that
// restarts while the store is unreachable still routes. Written atomically (temp file,
// fsync, rename) so a crash mid-write leaves the previous snapshot, never half of one; read
// back through the same validation as a table from the store.
import { randomBytes } from 'node:crypto';
import { open, readFile, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { tableChecksum } from '../cells/checksum';
import { validateTable, versioned } from '../cells/table';
import type { VersionedTable } from '../cells/types';
import { cgError } from '../errors';

interface SnapshotDoc {
  readonly format: 1;
  readonly version: number;
  readonly checksum: string;
  readonly savedAt: string;
  readonly table: unknown;
}

export interface LoadedSnapshot {
  readonly vt: VersionedTable;
  readonly savedAtMs: number;
}

/** Saves `vt` at `path`; `nowMs` (the gateway's clock) is recorded as when it was saved. */
export async function writeSnapshot(path: string, vt: VersionedTable, nowMs: number): Promise<void> {
  const doc: SnapshotDoc = { format: 1, version: vt.version, checksum: vt.checksum, savedAt: new Date(nowMs).toISOString(), table: vt.table };
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const fh = await open(tmp, 'w', 0o644);
  try {
    await fh.writeFile(JSON.stringify(doc));
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  // Make the rename itself durable; not every platform lets a directory be fsynced.
  const dir = await open(dirname(path), 'r').catch(() => null);
  if (dir) await dir.sync().catch(() => undefined).finally(() => dir.close());
}

/** The snapshot at `path`, or null when there is none. Throws INVALID_TABLE for a corrupt one. */
export async function readSnapshot(path: string): Promise<LoadedSnapshot | null> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  let doc: SnapshotDoc;
  try {
    doc = JSON.parse(text) as SnapshotDoc;
  } catch {
    throw cgError('INVALID_TABLE', `snapshot ${path} is not JSON`);
  }
  if (!doc || doc.format !== 1 || !Number.isInteger(doc.version) || doc.version < 1 || typeof doc.checksum !== 'string') {
    throw cgError('INVALID_TABLE', `snapshot ${path} is not a cellgate snapshot`);
  }
  const table = validateTable(doc.table);
  if (tableChecksum(table) !== doc.checksum) throw cgError('INVALID_TABLE', `snapshot ${path} does not match its checksum`);
  const savedAtMs = Date.parse(doc.savedAt);
  return { vt: versioned(table, doc.version), savedAtMs: Number.isFinite(savedAtMs) ? savedAtMs : 0 };
}
