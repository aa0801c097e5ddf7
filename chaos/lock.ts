// One chaos run at a time per machine: two harness runs at once (two test files, two
// people) would each measure the other's load, and their timing invariants would mean
// nothing. The lock is a directory (mkdir is atomic) holding the owner's pid; a lock whose
// owner is dead is taken over.
import { rmSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const LOCK_DIR = join(tmpdir(), 'cellgate-chaos.lock');

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function ownerOf(): Promise<number | null> {
  const text = await readFile(join(LOCK_DIR, 'pid'), 'utf8').catch(() => '');
  const pid = Number(text.trim());
  return Number.isInteger(pid) && pid > 0 ? pid : null;
}

/** Waits (bounded) for the machine-wide chaos lock; returns its release function. */
export async function acquireChaosLock(timeoutMs: number, onWait?: (ownerPid: number | null) => void): Promise<() => Promise<void>> {
  const deadline = Date.now() + timeoutMs;
  let told = false;
  for (;;) {
    try {
      await mkdir(LOCK_DIR);
      await writeFile(join(LOCK_DIR, 'pid'), String(process.pid));
      let released = false;
      const releaseSync = () => {
        if (!released) rmSync(LOCK_DIR, { recursive: true, force: true });
      };
      process.once('exit', releaseSync);
      return async () => {
        released = true;
        process.off('exit', releaseSync);
        await rm(LOCK_DIR, { recursive: true, force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const owner = await ownerOf();
    // A lock without a pid yet is being created right now; give its owner a moment.
    if (owner !== null && !alive(owner)) {
      await rm(LOCK_DIR, { recursive: true, force: true });
      continue;
    }
    if (Date.now() > deadline) throw new Error(`another chaos run (pid ${owner ?? '?'}) holds ${LOCK_DIR}`);
    if (!told) {
      onWait?.(owner);
      told = true;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}
