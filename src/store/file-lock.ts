// An exclusive lock between processes on one machine (two `cellctl` at once), made of a
// lock file created with O_EXCL. The file holds who took it and when, so that a lock left
// behind by a crashed process can be broken: its pid is dead (same host) or it is older
// than `staleLockMs` (no holder keeps the lock for more than a few milliseconds).
//
// The lock path sits in a directory others write to (the endpoint registry's is written by
// every sidecar): what is found there is read like a record file, without following a
// symlink, without blocking (a FIFO would hang the read, and the lock, for good), and bounded.
// Whatever is not a regular lock file is garbage, judged stale by its own mtime (lstat). A
// time more than `staleLockMs` in the future is no holder's either (a broken clock, or a
// forged lock), so a lock can never be made unbreakable.
import { randomBytes } from 'node:crypto';
import { link, lstat, rename, unlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { cgError, isCellgateError } from '../errors';
import { errnoCode, readBoundedRegularFile } from './file-io';

export interface FileLockOptions {
  /** Give up (STORE_UNAVAILABLE) when the lock is still busy after this long. */
  readonly acquireTimeoutMs: number;
  /** A lock older than this may be broken even if its holder seems alive. */
  readonly staleLockMs: number;
}

interface LockInfo {
  readonly pid: number;
  readonly host: string;
  readonly acquiredAtMs: number;
  readonly nonce: string;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
/** A lock file holds one small JSON object; anything larger is garbage. */
const MAX_LOCK_BYTES = 4096;

function parseLock(text: string): LockInfo | null {
  try {
    const info = JSON.parse(text) as Partial<LockInfo>;
    if (typeof info.pid === 'number' && typeof info.host === 'string' && typeof info.acquiredAtMs === 'number' && typeof info.nonce === 'string') {
      return info as LockInfo;
    }
  } catch { /* a lock being written, or garbage */ }
  return null;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errnoCode(err) === 'EPERM'; // exists, owned by someone else
  }
}

/** Runs `fn` while holding the lock at `lockPath`; releases it whatever `fn` does. */
export async function withFileLock<T>(lockPath: string, opts: FileLockOptions, fn: () => Promise<T>): Promise<T> {
  const nonce = await acquire(lockPath, opts);
  try {
    return await fn();
  } finally {
    await release(lockPath, nonce);
  }
}

async function acquire(lockPath: string, opts: FileLockOptions): Promise<string> {
  const deadline = Date.now() + opts.acquireTimeoutMs;
  const nonce = randomBytes(8).toString('hex');
  let waitMs = 2;
  for (;;) {
    try {
      const mine: LockInfo = { pid: process.pid, host: hostname(), acquiredAtMs: Date.now(), nonce };
      await writeFile(lockPath, JSON.stringify(mine), { flag: 'wx' });
      return nonce;
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST') throw cgError('STORE_UNAVAILABLE', `cannot create lock ${lockPath}: ${(err as Error).message}`, { cause: err });
    }
    const holder = await inspect(lockPath);
    if (holder && isStale(holder, opts)) {
      await breakStale(lockPath, holder.text);
      continue;
    }
    if (Date.now() >= deadline) {
      const who = holder?.info ? `pid ${holder.info.pid} on ${holder.info.host}` : 'another process';
      throw cgError('STORE_UNAVAILABLE', `lock ${lockPath} is held by ${who}; gave up after ${opts.acquireTimeoutMs} ms`);
    }
    await sleep(waitMs + Math.random() * waitMs);
    waitMs = Math.min(waitMs * 2, 50);
  }
}

interface Holder {
  /** null: not a regular file of at most MAX_LOCK_BYTES (a symlink, a FIFO, a directory, garbage). */
  readonly text: string | null;
  readonly info: LockInfo | null;
  readonly mtimeMs: number;
}

/** What holds the lock now; null when nothing does (released meanwhile). */
async function inspect(lockPath: string): Promise<Holder | null> {
  try {
    const read = await readBoundedRegularFile(lockPath, MAX_LOCK_BYTES);
    if (read !== null) return { text: read.text, info: read.text === null ? null : parseLock(read.text), mtimeMs: read.mtimeMs };
    // Gone, or a symlink whose target is gone (O_EXCL still finds it in the way): judged by the link itself.
    const st = await lstat(lockPath);
    return { text: null, info: null, mtimeMs: st.mtimeMs };
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return null; // released meanwhile: try again at once
    if (isCellgateError(err)) throw err;
    throw cgError('STORE_UNAVAILABLE', `cannot read lock ${lockPath}: ${(err as Error).message}`, { cause: err });
  }
}

function isStale(holder: Holder, opts: FileLockOptions): boolean {
  const { info } = holder;
  if (info && info.host === hostname() && !pidAlive(info.pid)) return true;
  // An unreadable lock is one being written right now, unless it has been so for long.
  const since = info?.acquiredAtMs ?? holder.mtimeMs;
  return Math.abs(Date.now() - since) > opts.staleLockMs;
}

/**
 * Moves the stale lock aside. Two breakers may race: if what we moved is not the lock we
 * judged stale (someone broke it and took a fresh one in between), we put it back.
 */
async function breakStale(lockPath: string, staleText: string | null): Promise<void> {
  const aside = `${lockPath}.broken.${randomBytes(6).toString('hex')}`;
  try {
    await rename(lockPath, aside);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return;
    throw cgError('STORE_UNAVAILABLE', `cannot break stale lock ${lockPath}: ${(err as Error).message}`, { cause: err });
  }
  const moved = await readBoundedRegularFile(aside, MAX_LOCK_BYTES).then((r) => r?.text ?? null, () => staleText);
  if (moved !== staleText) await link(aside, lockPath).catch(() => undefined);
  await unlink(aside).catch(() => undefined);
}

/** Removes the lock only if it is still ours (it may have been broken as stale). */
async function release(lockPath: string, nonce: string): Promise<void> {
  try {
    const read = await readBoundedRegularFile(lockPath, MAX_LOCK_BYTES);
    if (read !== null && read.text !== null && parseLock(read.text)?.nonce === nonce) await unlink(lockPath);
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') throw cgError('STORE_UNAVAILABLE', `cannot release lock ${lockPath}: ${(err as Error).message}`, { cause: err });
  }
}
