// `cellgate register` sidecars as real processes, for the registry end-to-end tests. Every
// one started is killed at exit if a test forgot it (tests stop them in teardown).
import { spawn, type ChildProcess } from 'node:child_process';
import { CELLGATE } from './cli';
import { inheritedEnv } from './run';

export interface RegistrarProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  stderr(): string;
  /** Resolves when the sidecar logs that the endpoint is registered and it has started (rejects after timeoutMs or on exit). */
  registered(timeoutMs?: number): Promise<void>;
  /** SIGTERM; resolves with the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL (kill -9): nothing is withdrawn, the lease runs out. */
  kill(): void;
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) try { c.kill('SIGKILL'); } catch { /* gone */ }
});

export function startRegistrar(args: readonly string[]): RegistrarProcess {
  const child = spawn(process.execPath, [CELLGATE, 'register', ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...inheritedEnv(), CELLGATE_STORE: '' } });
  live.add(child);
  let stderr = '';
  const listeners = new Set<() => void>();
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
    for (const l of listeners) l();
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => {
    live.delete(child);
    for (const l of listeners) l();
    resolve(code);
  }));
  return {
    child, exited,
    stderr: () => stderr,
    registered: (timeoutMs = 15_000) => new Promise<void>((resolve, reject) => {
      const check = () => {
        // Started too: its signal handlers are in place (a SIGTERM before would kill it outright).
        if (stderr.includes('"event":"register.registered"') && stderr.includes('"event":"register.started"')) return finish(null);
        if (child.exitCode !== null || child.signalCode !== null) return finish(new Error(`cellgate register exited (${child.exitCode}) before registering: ${stderr}`));
      };
      const timer = setTimeout(() => finish(new Error(`cellgate register did not register within ${timeoutMs} ms: ${stderr}`)), timeoutMs);
      function finish(err: Error | null): void {
        clearTimeout(timer);
        listeners.delete(check);
        if (err) reject(err);
        else resolve();
      }
      listeners.add(check);
      check();
    }),
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}
