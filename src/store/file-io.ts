// Small file-system steps the file store is built from: crash-safe replacement of a file
// and reads that tell "absent" from "broken". Failures become STORE_UNAVAILABLE here.
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { lstat, open, readFile, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { cgError } from '../errors';

export function errnoCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

export function storeUnavailable(what: string, err: unknown) {
  return cgError('STORE_UNAVAILABLE', `${what}: ${(err as Error).message}`, { cause: err });
}

/**
 * Replaces `path` with `data` so that a reader (or a crash) sees either the old or the new
 * content, never a mix: write a temp file in the same directory, fsync it, rename it over
 * `path`, fsync the directory so the rename itself survives a power cut.
 */
export async function writeFileAtomic(path: string, data: string): Promise<void> {
  const dir = dirname(path);
  // Dot-prefixed so that watchers and presence listings skip it.
  const temp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    const fh = await open(temp, 'wx', 0o644);
    try {
      await fh.writeFile(data, 'utf8');
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(temp, path);
  } catch (err) {
    await unlink(temp).catch(() => undefined);
    throw storeUnavailable(`cannot write ${path}`, err);
  }
  await syncDir(dir);
}

async function syncDir(dir: string): Promise<void> {
  try {
    const fh = await open(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch {
    // Some file systems refuse fsync on a directory; the rename is still atomic.
  }
}

/** Appends one line with a single write (O_APPEND keeps concurrent appenders' lines whole) and fsyncs. */
export async function appendLine(path: string, line: string): Promise<void> {
  try {
    const fh = await open(path, 'a', 0o644);
    try {
      await fh.write(line.endsWith('\n') ? line : `${line}\n`);
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch (err) {
    throw storeUnavailable(`cannot append to ${path}`, err);
  }
}

/** The file's text, or null when it does not exist. */
export async function readTextOrNull(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return null;
    throw storeUnavailable(`cannot read ${path}`, err);
  }
}

export type BoundedRead = { readonly mtimeMs: number } & ({ readonly text: string } | { readonly text: null; readonly problem: string });

/**
 * At most `maxBytes` of a regular file, with its mtime; null when it is gone. Opened without
 * following a symlink and without blocking (a FIFO dropped in the directory would otherwise
 * hang every snapshot until someone writes to it), and read from the open descriptor (a file
 * growing after a stat cannot make the read unbounded).
 */
export async function readBoundedRegularFile(file: string, maxBytes: number): Promise<BoundedRead | null> {
  let fh;
  try {
    fh = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT') return null;
    if (code === 'ELOOP') return { mtimeMs: (await lstat(file).catch(() => null))?.mtimeMs ?? 0, text: null, problem: 'a symbolic link, not a record file' };
    throw storeUnavailable(`cannot read ${file}`, err);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) return { mtimeMs: st.mtimeMs, text: null, problem: 'not a regular file' };
    const buf = Buffer.alloc(maxBytes + 1);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    if (bytesRead > maxBytes) return { mtimeMs: st.mtimeMs, text: null, problem: `record is larger than ${maxBytes} bytes` };
    return { mtimeMs: st.mtimeMs, text: buf.toString('utf8', 0, bytesRead) };
  } catch (err) {
    throw storeUnavailable(`cannot read ${file}`, err);
  } finally {
    await fh.close().catch(() => undefined);
  }
}
