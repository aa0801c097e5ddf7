// Autopilot replicas in a chaos run (`cellgate autopilot` processes, stopped with the
// cluster), and the invariants that judge them from the recorded table revisions. No
// scenario that uses them has an operator change, so every zone status change is the
// autopilot's.
import { join } from 'node:path';
import type { RoutingTable } from '../src/cells/types';
import { BIN, type Cluster } from './launcher';
import { startProc, type Proc } from './procs';
import type { Invariant, RunData } from './scenario';
import type { Step, StepContext } from './steps';

const procs = new WeakMap<Cluster, Map<string, Proc>>();

async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function isLeader(admin: string): Promise<boolean> {
  try {
    const text = await (await fetch(`${admin}/metrics`, { signal: AbortSignal.timeout(2_000) })).text();
    return /^cellgate_autopilot_leader 1$/m.test(text);
  } catch {
    return false;
  }
}

/** Starts an autopilot replica; with `lead`, waits until it is the leader. */
export const startAutopilot = (id: string, args: readonly string[] = [], lead = false): Omit<Step, 'at'> => ({
  label: `start autopilot ${id}`,
  kind: 'op',
  run: async ({ cluster, memo }: StepContext) => {
    const proc = startProc({
      name: id, command: process.execPath, logFile: join(cluster.dir, `${id}.log`),
      args: [BIN.cellgate, 'autopilot', '--store', `etcd:${cluster.etcdEndpoints.join(',')}`, '--prefix', cluster.prefix, '--id', id, '--admin-port', '0', '--lease-ttl', '2', ...args],
    });
    cluster.extraProcs.add(proc);
    let map = procs.get(cluster);
    if (!map) procs.set(cluster, (map = new Map()));
    map.set(id, proc);
    let admin = '';
    await waitFor(`${id} listening`, () => {
      const line = proc.log().split('\n').find((l) => l.includes('"event":"listening"'));
      if (line) admin = (JSON.parse(line) as { admin: string }).admin;
      return line !== undefined || !proc.running;
    }, 20_000);
    if (!admin) throw new Error(`${id} exited: ${proc.log().slice(-2000)}`);
    memo.set(`autopilot:${id}`, admin);
    if (lead) await waitFor(`${id} leads`, () => isLeader(admin), 20_000);
    return `${id} on ${admin}${lead ? ' (leader)' : ''}`;
  },
});

export const killAutopilot = (id: string): Omit<Step, 'at'> => ({
  label: `kill -9 autopilot ${id}`,
  kind: 'fault',
  run: async ({ cluster }: StepContext) => {
    const proc = procs.get(cluster)?.get(id);
    if (!proc) throw new Error(`no autopilot ${id}`);
    await proc.kill();
    return `killed ${id}`;
  },
});

/** Every change of a zone's status in the recorded revisions: [time, zone, status]. */
function statusChanges(run: RunData): { t: number; zone: string; status: string }[] {
  const out: { t: number; zone: string; status: string }[] = [];
  let prev: RoutingTable | null = null;
  for (const e of run.tables) {
    if (!e.table) continue;
    for (const z of e.table.zones) {
      const before = prev?.zones.find((x) => x.name === z.name)?.status;
      if (prev && before !== z.status) out.push({ t: e.t, zone: z.name, status: z.status });
    }
    prev = e.table;
  }
  return out;
}

/** `zone` goes down within `boundMs` of the step labelled `after` (the fault). */
export const autopilotTookDown = (zone: string, after: string, boundMs: number): Invariant => ({
  name: `autopilot takes ${zone} down within ${boundMs} ms of "${after}"`,
  check(run) {
    const fault = run.steps.find((s) => s.label === after);
    if (!fault) return { passed: false, detail: `no step "${after}"` };
    const down = statusChanges(run).find((c) => c.zone === zone && c.status === 'down' && c.t >= fault.t0);
    if (!down) return { passed: false, detail: `${zone} never went down` };
    const ms = down.t - fault.t0;
    return { passed: ms <= boundMs, detail: `${zone} down ${ms} ms after "${after}"` };
  },
});

/** No zone but `failed` changes status; zone-down actions are at least `cooldownMs` apart. */
export const onlyFailedZonesActedOn = (failed: readonly string[], cooldownMs: number): Invariant => ({
  name: 'no failover of a zone that never failed; at most one action per cooldown',
  check(run) {
    const changes = statusChanges(run);
    const wrong = changes.filter((c) => !failed.includes(c.zone));
    if (wrong.length) return { passed: false, detail: `acted on ${wrong.map((c) => `${c.zone}->${c.status}`).join(', ')}` };
    const downs = changes.filter((c) => c.status === 'down');
    for (let i = 1; i < downs.length; i++) {
      if (downs[i]!.t - downs[i - 1]!.t < cooldownMs) return { passed: false, detail: `two actions ${downs[i]!.t - downs[i - 1]!.t} ms apart` };
    }
    return { passed: true, detail: `${changes.length} status change(s): ${changes.map((c) => `${c.zone}->${c.status}`).join(', ') || 'none'}` };
  },
});

/** Health probes from `gateways` find the servers of `zone` unreachable (an empty list heals). */
export const zoneUnreachableFrom = (zone: string, gateways: readonly string[]): Omit<Step, 'at'> => ({
  label: gateways.length ? `${zone} unreachable from ${gateways.join(',')}` : `${zone} reachable from all`,
  kind: gateways.length ? 'fault' : 'heal',
  run: async ({ cluster }: StepContext) => {
    for (const s of cluster.servers(zone)) {
      const res = await fetch(`${s.url}/__chaos/unreachable-from?gateways=${encodeURIComponent(gateways.join(','))}`, { signal: AbortSignal.timeout(5_000) });
      if (res.status !== 200) throw new Error(`${s.name}: ${res.status}`);
    }
    return `${zone} servers: probes from [${gateways.join(',')}] cut`;
  },
});

/** Fails (the step, hence the run) unless the autopilot's /status shows `zone` as `want` says. */
export const expectAutopilotView = (id: string, zone: string, label: string, want: (z: { result: string; unhealthy: number; live: number }) => boolean): Omit<Step, 'at'> => ({
  label,
  kind: 'mark',
  run: async ({ memo }: StepContext) => {
    const admin = memo.get(`autopilot:${id}`) as string;
    const status = await (await fetch(`${admin}/status`, { signal: AbortSignal.timeout(5_000) })).json() as { zones: { zone: string; result: string; unhealthy: number; live: number; why: string }[] };
    const z = status.zones.find((x) => x.zone === zone);
    if (!z || !want(z)) throw new Error(`${id} sees ${zone}: ${JSON.stringify(z)}`);
    return `${id}: ${zone} ${z.result} (${z.why})`;
  },
});
