// Runs the compiled CLIs as real child processes.
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestFn } from 'ava';
import { startEtcd, type EtcdHandle } from './etcd';
import { demoTopologyYaml } from './fixtures';
import { inheritedEnv } from './run';

export const CELLCTL = join(__dirname, '..', '..', 'src', 'cli', 'cellctl.js');
export const CELLGATE = join(__dirname, '..', '..', 'src', 'cli', 'cellgate.js');

export interface RunResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a CLI to completion (bounded: killed after timeoutMs). */
export function runCli(script: string, args: readonly string[], opts: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...args], {
      // The CLI sees only the CELLGATE_* variables a test gives it, never the runner's own.
      env: { ...inheritedEnv(), CELLGATE_ETCD: '', ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(opts.input ?? '');
  });
}

export const cellctl = (args: readonly string[], opts?: Parameters<typeof runCli>[2]) => runCli(CELLCTL, args, opts);

/** What a CLI test file shares: a temp dir with the demo topology in it, and one etcd. */
export interface CliWorld {
  dir: string;
  topologyPath: string;
  etcd: EtcdHandle;
}

/** Registers the file's before/after hooks that make (and always remove) a CliWorld. */
export function useCliWorld(test: TestFn, name: string): CliWorld {
  const world = {} as CliWorld;
  test.before(async () => {
    world.dir = await mkdtemp(join(tmpdir(), `cellgate-${name}-`));
    world.topologyPath = join(world.dir, 'topology.yaml');
    await writeFile(world.topologyPath, demoTopologyYaml);
    world.etcd = await startEtcd();
  });
  test.after.always(async () => {
    await world.etcd?.stop();
    if (world.dir) await rm(world.dir, { recursive: true, force: true });
  });
  return world;
}
