// Child processes of the harness: each in its own process group (so a signal reaches the
// process and anything it started), its output in a log file, and every one of them known
// to one registry that kills them all when the harness exits — normally, on failure, or on
// Ctrl-C. Nothing the harness starts may outlive it.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';

export interface ProcSpec {
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  /** stdout and stderr go here (appended). */
  readonly logFile: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Keep stdout as a pipe (read with `stdout()`), e.g. for cellctl --json. */
  readonly captureStdout?: boolean;
}

export class Proc {
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exitInfo: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  private out = '';

  constructor(readonly spec: ProcSpec, readonly child: ChildProcess) {
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (this.out += d));
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exitInfo = { code, signal };
        resolve(this.exitInfo);
      });
      child.once('error', () => {
        this.exitInfo = { code: null, signal: null };
        resolve(this.exitInfo);
      });
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get running(): boolean {
    return this.exitInfo === null;
  }

  stdout(): string {
    return this.out;
  }

  log(): string {
    try {
      return readFileSync(this.spec.logFile, 'utf8');
    } catch {
      return '';
    }
  }

  /** Signals the whole process group (the process and its children). */
  signal(sig: NodeJS.Signals): void {
    if (!this.running) return;
    try {
      process.kill(-this.pid, sig);
    } catch {
      try { this.child.kill(sig); } catch { /* already gone */ }
    }
  }

  /** SIGKILL and wait for the exit. */
  async kill(): Promise<void> {
    this.signal('SIGCONT');
    this.signal('SIGKILL');
    await this.exited;
  }

  /** SIGTERM, SIGKILL after graceMs; resolves once exited. */
  async stop(graceMs = 3_000): Promise<void> {
    if (!this.running) return;
    this.signal('SIGCONT'); // a stopped process cannot act on SIGTERM
    this.signal('SIGTERM');
    const timer = setTimeout(() => this.signal('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

/** Every process the harness started and has not yet seen exit. */
const live = new Set<Proc>();
let handlersInstalled = false;
const cleanups = new Set<() => Promise<void>>();

function killAllNow(): void {
  for (const p of live) {
    try { process.kill(-p.pid, 'SIGCONT'); } catch { /* gone */ }
    try { process.kill(-p.pid, 'SIGKILL'); } catch { /* gone */ }
  }
}

/**
 * Last-resort cleanup: on exit every live child group is SIGKILLed; on SIGINT/SIGTERM the
 * registered cleanups (which also remove temp dirs) run first, then the process exits 130.
 */
function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', killAllNow);
  const onSignal = (sig: NodeJS.Signals) => {
    process.stderr.write(`\nchaos: ${sig}: stopping every process the harness started\n`);
    const bound = setTimeout(() => {
      killAllNow();
      process.exit(130);
    }, 8_000);
    Promise.allSettled([...cleanups].map((c) => c())).finally(() => {
      clearTimeout(bound);
      killAllNow();
      process.exit(130);
    });
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
}

/** Runs `fn` (e.g. stop a topology) when the harness is interrupted; returns an unregister function. */
export function onInterrupt(fn: () => Promise<void>): () => void {
  installHandlers();
  cleanups.add(fn);
  return () => cleanups.delete(fn);
}

export function startProc(spec: ProcSpec): Proc {
  installHandlers();
  const fd = openSync(spec.logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(spec.command, [...spec.args], {
      detached: true, // its own process group: signals reach its children, Ctrl-C does not
      stdio: ['ignore', spec.captureStdout ? 'pipe' : fd, fd],
      env: { ...process.env, ...spec.env },
    });
  } finally {
    closeSync(fd);
  }
  const proc = new Proc(spec, child);
  live.add(proc);
  void proc.exited.then(() => live.delete(proc));
  return proc;
}

export function liveProcs(): number {
  return live.size;
}
