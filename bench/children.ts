// Child processes of the benchmarks (upstream, proxies, gateways, nginx): each runs in its
// own process group, so stopping it also stops what it forked (cluster workers, nginx
// workers). Every child is tracked until it exits; whatever is still running when the bench
// process exits — normally, on an uncaught error, or on SIGINT/SIGTERM — is killed, and the
// temp dirs made here are removed.
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const READY_TIMEOUT_MS = 20_000;
const STOP_GRACE_MS = 5_000;
/** How much of a child's output is kept to explain a failed start. */
const LOG_KEEP_CHARS = 8_000;

const live = new Set<BenchChild>();
const liveDirs = new Set<string>();
let handlersInstalled = false;

function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch { /* the group is gone */ }
}

function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', () => {
    for (const child of live) killGroup(child.pid, 'SIGKILL');
    for (const dir of liveDirs) {
      try { rmSync(dir, { recursive: true, force: true }); } catch { /* best effort */ }
    }
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      process.stderr.write(`\nbench: ${signal}, stopping child processes\n`);
      process.exit(130); // the exit handler kills the children
    });
  }
}

/** A fresh temp dir, removed on exit if removeTempDir() was not called before. */
export async function makeTempDir(prefix: string): Promise<string> {
  installHandlers();
  const dir = await mkdtemp(join(tmpdir(), prefix));
  liveDirs.add(dir);
  return dir;
}

export async function removeTempDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  liveDirs.delete(dir);
}

/** The compiled script of a bench helper, e.g. script('upstream-server'). */
export function benchScript(name: string): string {
  return join(__dirname, `${name}.js`);
}

/** The compiled CLIs. */
export const CELLGATE_JS = join(__dirname, '..', 'src', 'cli', 'cellgate.js');
export const CELLCTL_JS = join(__dirname, '..', 'src', 'cli', 'cellctl.js');

export class BenchChild {
  private output = '';
  private readonly exited: Promise<number | null>;
  private exitCode: number | null | undefined = undefined;
  private readonly lineWaiters: { test: (line: string) => boolean; resolve: (line: string) => void }[] = [];

  constructor(readonly name: string, private readonly child: ChildProcess) {
    live.add(this);
    this.exited = new Promise((resolve) => {
      const done = (code: number | null) => {
        if (this.exitCode !== undefined) return;
        this.exitCode = code;
        live.delete(this);
        resolve(code);
      };
      child.once('exit', (code) => done(code));
      child.once('error', (err) => {
        this.output += `\n(spawn failed: ${err.message})`;
        done(null);
      });
    });
    let partial = '';
    const onData = (chunk: string) => {
      this.output = (this.output + chunk).slice(-LOG_KEEP_CHARS);
      partial += chunk;
      const lines = partial.split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        for (const w of [...this.lineWaiters]) {
          if (w.test(line)) {
            this.lineWaiters.splice(this.lineWaiters.indexOf(w), 1);
            w.resolve(line);
          }
        }
      }
    };
    child.stdout?.setEncoding('utf8').on('data', onData);
    child.stderr?.setEncoding('utf8').on('data', onData);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.exitCode === undefined;
  }

  /** Resolves with the exit code once the child has exited. */
  waitExit(): Promise<number | null> {
    return this.exited;
  }

  /** The last lines the child printed (stdout and stderr together). */
  tail(lines = 20): string {
    return this.output.trimEnd().split('\n').slice(-lines).join('\n');
  }

  /** Resolves with the first line (stdout or stderr) that passes `test`; rejects if the child exits first or the bound passes. */
  waitForLine(test: (line: string) => boolean, timeoutMs = READY_TIMEOUT_MS): Promise<string> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => fail(new Error(`${this.name}: not ready within ${timeoutMs} ms\n${this.tail()}`)), timeoutMs);
      const waiter = {
        test,
        resolve: (line: string) => {
          clearTimeout(timer);
          resolve(line);
        },
      };
      const fail = (err: Error) => {
        clearTimeout(timer);
        const i = this.lineWaiters.indexOf(waiter);
        if (i >= 0) this.lineWaiters.splice(i, 1);
        reject(err);
      };
      this.lineWaiters.push(waiter);
      void this.exited.then((code) => fail(new Error(`${this.name} exited (code ${code}) during start-up\n${this.tail()}`)));
    });
  }

  /** SIGTERM to the child (it stops what it started), SIGKILL to its whole group after a grace period, then a sweep of the group. */
  async stop(graceMs = STOP_GRACE_MS): Promise<void> {
    const pid = this.child.pid;
    if (this.running) {
      try { this.child.kill('SIGTERM'); } catch { /* gone */ }
      const timer = setTimeout(() => killGroup(pid, 'SIGKILL'), graceMs);
      await this.exited;
      clearTimeout(timer);
    }
    // Anything the child forked and left behind (an nginx worker, a cluster worker).
    killGroup(pid, 'SIGKILL');
  }
}

/** Starts `command args…` in its own process group, tracked until it exits. */
export function startChild(name: string, command: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): BenchChild {
  installHandlers();
  const child = spawn(command, args, {
    detached: true, // its own process group: stop() reaches its children too
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  return new BenchChild(name, child);
}

/** Starts a node script (compiled JavaScript) as a tracked child. */
export function startNode(name: string, script: string, args: readonly string[], env?: NodeJS.ProcessEnv): BenchChild {
  return startChild(name, process.execPath, [script, ...args], env);
}

/** Stops every child given (in parallel), ignoring the ones that are null or already gone. */
export async function stopAll(children: readonly (BenchChild | null | undefined)[]): Promise<void> {
  await Promise.all(children.map((c) => c?.stop()));
}

/** Parses the JSON object printed on a ready line, e.g. {"event":"listening","port":…}. */
export function jsonLine(line: string): Record<string, unknown> {
  const start = line.indexOf('{');
  return JSON.parse(line.slice(start)) as Record<string, unknown>;
}

/** User + system CPU ms of one process so far, from /proc/PID/stat (10 ms ticks); 0 without a pid. */
export function procCpuMs(pid: number | undefined): number {
  if (pid === undefined) return 0;
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/**
 * CPU time (user + system, ms) used so far by the live processes of a process group (a child
 * and what it forked), from /proc; null where /proc is not there. Steadier than requests/s on
 * a shared machine: what another process steals shows in wall time, much less in CPU time.
 */
export function groupCpuMs(pgid: number | undefined): number | null {
  if (pgid === undefined) return null;
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((name) => /^\d+$/.test(name));
  } catch {
    return null;
  }
  let ticks = 0;
  for (const pid of pids) {
    try {
      // Fields after "(comm) ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime …
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      if (Number(fields[2]) === pgid) ticks += Number(fields[11]) + Number(fields[12]);
    } catch { /* the process ended meanwhile */ }
  }
  return ticks * (1000 / CLOCK_TICKS_PER_S);
}

/** USER_HZ: 100 on every Linux that node runs on. */
const CLOCK_TICKS_PER_S = 100;
