// The timeline vocabulary of scenarios: faults (what breaks), heals, and operator actions
// (cellctl as a real process, or a table written straight into etcd, bypassing cellctl).
// Each step runs at its time `at` (ms after the load started) and its outcome is recorded
// with its start and end times, which the report draws as markers.
import type { RoutingTable } from '../src/cells/types';
import type { Cluster } from './launcher';
import type { Recorder, TableEvent } from './recorder';
import type { ProxyMode } from './tcp-proxy';

export type StepKind = 'fault' | 'heal' | 'op' | 'mark';

export interface CellctlOutcome {
  readonly args: readonly string[];
  readonly code: number | null;
  readonly signal: string | null;
  readonly json: unknown;
  readonly stderr: string;
  readonly versionAfter: number | null;
  readonly startedAt: number;
  readonly endedAt: number;
}

export interface StepContext {
  readonly cluster: Cluster;
  readonly recorder: Recorder;
  /** Values steps pass to later steps (e.g. which etcd member was killed). */
  readonly memo: Map<string, unknown>;
  /** Outcomes of earlier steps, by label. */
  readonly outcomes: Map<string, StepOutcome>;
}

export interface StepOutcome {
  readonly label: string;
  readonly kind: StepKind;
  readonly t0: number;
  t1: number;
  ok: boolean;
  detail: string;
  cellctl?: CellctlOutcome;
  /** Set by gateway steps: this gateway stops (true) or starts again (false) following the table. */
  readonly gateway?: { readonly id: string; readonly impaired: boolean };
}

export interface Step {
  /** ms after the load started. */
  readonly at: number;
  readonly label: string;
  readonly kind: StepKind;
  readonly gateway?: { readonly id: string; readonly impaired: boolean };
  /** Also wait (after `at`) until the steps with these labels have finished. */
  readonly waitFor?: readonly string[];
  run(ctx: StepContext): Promise<string | CellctlOutcome | void>;
}

function pick<T>(list: readonly T[], which?: readonly number[]): T[] {
  return which ? which.map((i) => list[i] as T) : [...list];
}

/** `step` at `ms` after the load started — and, with `waitFor`, not before those steps have finished. */
export function at(ms: number, step: Omit<Step, 'at'>, opts: { waitFor?: string | readonly string[] } = {}): Step {
  const waitFor = opts.waitFor === undefined ? undefined : typeof opts.waitFor === 'string' ? [opts.waitFor] : opts.waitFor;
  return { ...step, at: ms, ...(waitFor ? { waitFor } : {}) };
}

export const mark = (label: string): Omit<Step, 'at'> => ({ label, kind: 'mark', run: async () => undefined });

/** kill -9 the servers of a zone (all, or the given indexes). */
export const killZone = (zone: string, servers?: readonly number[]): Omit<Step, 'at'> => ({
  label: `kill -9 ${zone}${servers ? ` servers ${servers.map((i) => i + 1).join(',')}` : ''}`,
  kind: 'fault',
  run: async ({ cluster }) => {
    const list = pick(cluster.servers(zone), servers);
    await Promise.all(list.map((s) => s.kill()));
    return `killed ${list.map((s) => s.name).join(', ')}`;
  },
});

export const restartZone = (zone: string, servers?: readonly number[]): Omit<Step, 'at'> => ({
  label: `restart ${zone}${servers ? ` servers ${servers.map((i) => i + 1).join(',')}` : ''}`,
  kind: 'heal',
  run: async ({ cluster }) => {
    const list = pick(cluster.servers(zone), servers);
    await Promise.all(list.map((s) => s.start()));
    return `started ${list.map((s) => s.name).join(', ')}`;
  },
});

export const pauseZone = (zone: string, servers?: readonly number[]): Omit<Step, 'at'> => ({
  label: `SIGSTOP ${zone}${servers ? ` servers ${servers.map((i) => i + 1).join(',')}` : ''}`,
  kind: 'fault',
  run: async ({ cluster }) => {
    const list = pick(cluster.servers(zone), servers);
    for (const s of list) s.pause();
    return `stopped ${list.map((s) => s.name).join(', ')}`;
  },
});

export const resumeZone = (zone: string, servers?: readonly number[]): Omit<Step, 'at'> => ({
  label: `SIGCONT ${zone}${servers ? ` servers ${servers.map((i) => i + 1).join(',')}` : ''}`,
  kind: 'heal',
  run: async ({ cluster }) => {
    const list = pick(cluster.servers(zone), servers);
    for (const s of list) s.resume();
    return `continued ${list.map((s) => s.name).join(', ')}`;
  },
});

/** Latency or drops on a proxied zone's connections (the zone must be `proxied` in the topology). */
export const zoneNetwork = (zone: string, mode: ProxyMode, label?: string): Omit<Step, 'at'> => ({
  label: label ?? `${zone} network ${describeMode(mode)}`,
  kind: mode.kind === 'pass' && !mode.latencyMs && !mode.dropRate ? 'heal' : 'fault',
  run: async ({ cluster }) => {
    for (const s of cluster.servers(zone)) {
      if (!s.proxy) throw new Error(`zone ${zone} is not proxied in this topology`);
      s.proxy.setMode(mode);
    }
    return describeMode(mode);
  },
});

function describeMode(mode: ProxyMode): string {
  if (mode.kind !== 'pass') return mode.kind;
  const parts = [mode.latencyMs ? `+${mode.latencyMs} ms` : '', mode.dropRate ? `drop ${Math.round(mode.dropRate * 100)}%` : ''].filter(Boolean);
  return parts.length ? parts.join(', ') : 'healed';
}

/** Kills and restarts every server of a zone `times` times. */
export const flapZone = (zone: string, times: number, downMs: number, upMs: number): Omit<Step, 'at'> => ({
  label: `flap ${zone} ×${times}`,
  kind: 'fault',
  run: async ({ cluster }) => {
    for (let i = 0; i < times; i++) {
      await Promise.all(cluster.servers(zone).map((s) => s.kill()));
      await new Promise((r) => setTimeout(r, downMs));
      await Promise.all(cluster.servers(zone).map((s) => s.start()));
      if (i < times - 1) await new Promise((r) => setTimeout(r, upMs));
    }
    return `${times} flaps, ${downMs} ms down, ${upMs} ms up`;
  },
});

export const killEtcdLeader = (): Omit<Step, 'at'> => ({
  label: 'kill -9 etcd leader',
  kind: 'fault',
  run: async ({ cluster, memo }) => {
    const leader = await cluster.etcd.leader();
    await leader.kill();
    memo.set('killedEtcd', leader);
    return `killed ${leader.name}`;
  },
});

export const restartKilledEtcd = (): Omit<Step, 'at'> => ({
  label: 'restart etcd member',
  kind: 'heal',
  run: async ({ memo }) => {
    const member = memo.get('killedEtcd') as { name: string; restart(): Promise<void> } | undefined;
    if (!member) throw new Error('no etcd member was killed');
    await member.restart();
    return `restarted ${member.name}`;
  },
});

export const killGateway = (id: string): Omit<Step, 'at'> => ({
  label: `kill -9 ${id}`,
  kind: 'fault',
  gateway: { id, impaired: true },
  run: async ({ cluster }) => {
    await cluster.gateway(id).kill();
    return `killed ${id}`;
  },
});

export const startGateway = (id: string): Omit<Step, 'at'> => ({
  label: `start ${id}`,
  kind: 'heal',
  gateway: { id, impaired: false },
  run: async ({ cluster }) => {
    await cluster.gateway(id).start();
    return `started ${id} (ready)`;
  },
});

/** Cuts a gateway off every etcd member through its proxies (blackhole: a partition; refuse: RSTs). */
export const cutGateway = (id: string, mode: 'blackhole' | 'refuse' = 'blackhole'): Omit<Step, 'at'> => ({
  label: `cut ${id} off etcd`,
  kind: 'fault',
  gateway: { id, impaired: true },
  run: async ({ cluster }) => {
    cluster.gateway(id).setControlPlane({ kind: mode });
    return `${id} ↔ etcd: ${mode}`;
  },
});

export const healGateway = (id: string): Omit<Step, 'at'> => ({
  label: `reconnect ${id}`,
  kind: 'heal',
  gateway: { id, impaired: false },
  run: async ({ cluster }) => {
    cluster.gateway(id).setControlPlane({ kind: 'pass' });
    return `${id} ↔ etcd: pass`;
  },
});

const CHANGES = new Set(['zone', 'cell', 'region', 'rollback', 'rebalance']);

export interface CellctlStepOptions {
  readonly label?: string;
  /** SIGKILL the cellctl process once the table shows `cell` frozen (an operator dying mid-move). */
  readonly killWhenFrozen?: string;
  readonly kind?: StepKind;
}

/** Runs cellctl as a real process (store flags, --json, and for changes --yes/--reason/--actor added). */
export const cellctl = (argsOf: readonly string[] | ((ctx: StepContext) => readonly string[]), opts: CellctlStepOptions = {}): Omit<Step, 'at'> => {
  const label = opts.label ?? (typeof argsOf === 'function' ? 'cellctl' : `cellctl ${argsOf.filter((a) => !a.startsWith('--')).slice(0, 4).join(' ')}`);
  return {
    label,
    kind: opts.kind ?? 'op',
    run: async (ctx) => {
      const { cluster, recorder } = ctx;
      const args = typeof argsOf === 'function' ? argsOf(ctx) : argsOf;
      const full = [...args, '--json'];
      if (CHANGES.has(args[0] ?? '')) full.push('--yes', '--reason', `chaos: ${label}`, '--actor', `chaos/${label}`);
      const run = cluster.cellctl(full, label);
      let killer: Promise<void> = Promise.resolve();
      if (opts.killWhenFrozen) {
        const cell = opts.killWhenFrozen;
        const since = recorder.latest()?.version ?? 0;
        killer = recorder.waitForTable((e) => e.version > since && isFrozen(e, cell), 15_000)
          .then(() => run.proc.kill())
          .catch(() => undefined);
      }
      const done = await run.done;
      await killer;
      let json: unknown = null;
      try { json = JSON.parse(done.stdout); } catch { json = done.stdout.trim() || null; }
      const after = (json as { versionAfter?: unknown } | null)?.versionAfter;
      return {
        args: full, code: done.code, signal: done.signal, json, stderr: done.stderr.slice(-4000),
        versionAfter: typeof after === 'number' ? after : null, startedAt: run.startedAt, endedAt: done.endedAt,
      } satisfies CellctlOutcome;
    },
  };
};

/** The table of `e` shows `cell` frozen (a planned move under way). */
export function isFrozen(e: TableEvent, cell: string): boolean {
  const c = e.table?.cells.find((x) => x.name === cell) ?? (cell === 'global' ? e.table?.global : undefined);
  return c?.state === 'frozen';
}

/** Writes a table straight into etcd (no planner, no CAS, no history): a broken operator or tool. */
export const writeTable = (label: string, mutate: (t: RoutingTable) => unknown, kind: StepKind = 'fault'): Omit<Step, 'at'> => ({
  label,
  kind,
  run: async ({ recorder }) => {
    const cur = recorder.latest();
    if (!cur?.table) throw new Error('no valid table to start from');
    const next = mutate(structuredClone(cur.table) as RoutingTable);
    await recorder.writeRawTable(typeof next === 'string' ? next : JSON.stringify(next));
    return `wrote over revision ${cur.version}`;
  },
});

/** Writes the last valid table again (a repair after corruption), through the raw key. */
export const restoreLastGoodTable = (label = 'restore last good table'): Omit<Step, 'at'> => ({
  label,
  kind: 'heal',
  run: async ({ recorder }) => {
    const good = recorder.latest();
    if (!good?.table) throw new Error('no valid table to restore');
    await recorder.writeRawTable(JSON.stringify(good.table));
    return `restored the table of revision ${good.version}`;
  },
});
