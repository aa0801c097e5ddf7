// Instance churn (issue 14): instances of a zone's service that register themselves with
// `cellgate register` and die. Each instance is a chaos zone server (the oracle: it follows
// the table, fences, logs every request it served) plus its sidecar. Every period one is
// started and an older one dies, alternating two deaths:
//   - `kill -9 both`: the server and its sidecar at once (the lease runs out; requests the
//     gateways still send it are refused and, being safe, retried on another endpoint);
//   - `kill -9 sidecar`: the server lives on but its registration is gone with the lease —
//     the case the invariant judges: no request may reach it once its lease has ended.
// The records live in this module (one run at a time in a process) for the invariants.
import { join } from 'node:path';
import { freePorts } from './etcd-cluster';
import { BIN, ZoneServer, type Cluster } from './launcher';
import { startProc, type Proc } from './procs';
import type { Invariant, RunData } from './scenario';
import type { Step } from './steps';

type Death = 'both' | 'sidecar';

interface Instance {
  readonly name: string;
  readonly server: ZoneServer;
  readonly sidecar: Proc;
  readonly startedAt: number;
  registeredAt: number | null;
  death: Death | null;
  /** When the sidecar was killed: the lease ends at most its TTL later. */
  sidecarKilledAt: number | null;
}

export interface ChurnOptions {
  readonly zone: string;
  readonly service?: string;
  /** Instances started (one per period). */
  readonly count: number;
  readonly periodMs: number;
  readonly ttlS: number;
  /** Live instances kept before the oldest dies. */
  readonly keep?: number;
}

let instances: Instance[] = [];
let churnTtlS = 0;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function startInstance(cluster: Cluster, o: ChurnOptions, index: number, port: number): Instance {
  const zone = cluster.topology.zones.find((z) => z.name === o.zone);
  if (!zone) throw new Error(`no zone ${o.zone}`);
  const name = `${o.zone}-i${index}`;
  const server = new ZoneServer(name, zone, port, { storeSpec: `etcd:${cluster.etcdEndpoints.join(',')}`, prefix: cluster.prefix, dir: cluster.dir, workMs: cluster.topology.workMs });
  void server.start(false);
  const sidecar = startProc({
    name: `register-${name}`, command: process.execPath, logFile: join(cluster.dir, `register-${name}.log`),
    args: [BIN.cellgate, 'register', '--store', `etcd:${cluster.etcdEndpoints.join(',')}`, '--prefix', cluster.prefix, '--zone', o.zone,
      '--service', o.service ?? 'default', '--url', server.url, '--id', name, '--ttl', String(o.ttlS), '--check-path', '/__chaos/state', '--check-interval', '0.2'],
    env: { CELLGATE_STORE: '' },
  });
  cluster.extraProcs.add(sidecar);
  const inst: Instance = { name, server, sidecar, startedAt: Date.now(), registeredAt: null, death: null, sidecarKilledAt: null };
  void (async () => {
    while (sidecar.running && inst.registeredAt === null) {
      if (sidecar.log().includes('"event":"register.registered"')) inst.registeredAt = Date.now();
      else await sleep(20);
    }
  })();
  return inst;
}

async function kill(inst: Instance, death: Death): Promise<void> {
  inst.death = death;
  inst.sidecarKilledAt = Date.now();
  await Promise.all([inst.sidecar.kill(), death === 'both' ? inst.server.kill() : Promise.resolve()]);
}

/** Starts `count` instances, one per period; each period the oldest beyond `keep` dies (both / sidecar only, in turn). */
export const churnInstances = (o: ChurnOptions): Omit<Step, 'at'> => ({
  label: `churn ${o.count} instances of ${o.zone}/${o.service ?? 'default'}`,
  kind: 'fault',
  run: async ({ cluster }) => {
    instances = [];
    churnTtlS = o.ttlS;
    const ports = await freePorts(o.count);
    const live: Instance[] = [];
    let deaths = 0;
    for (let i = 0; i < o.count; i++) {
      const tick = Date.now();
      const inst = startInstance(cluster, o, i + 1, ports[i]!);
      instances.push(inst);
      live.push(inst);
      if (live.length > (o.keep ?? 2)) await kill(live.shift()!, deaths++ % 2 === 0 ? 'both' : 'sidecar');
      await sleep(Math.max(0, o.periodMs - (Date.now() - tick)));
    }
    // The zombies (sidecar killed) serve on past their lease, for the invariant; then every instance goes.
    await sleep(o.ttlS * 1000 + 2_000);
    await Promise.all(instances.map((x) => Promise.all([x.sidecar.kill(), x.server.kill()])));
    const registered = instances.filter((x) => x.registeredAt !== null).length;
    return `${instances.length} instances started, ${registered} registered, ${deaths} killed in the churn (${instances.filter((x) => x.death === 'sidecar').length} sidecar-only)`;
  },
});

/** No request reached an instance whose sidecar was killed later than its lease TTL + `slackMs` after the kill. */
export const noRequestAfterLease = (slackMs = 1_000): Invariant => ({
  name: 'no request to an endpoint whose lease has ended',
  check(run: RunData) {
    const byServer = new Map<string, number[]>();
    for (const l of run.zoneLog) {
      const list = byServer.get(l.srv);
      if (list) list.push(l.t);
      else byServer.set(l.srv, [l.t]);
    }
    const problems: string[] = [];
    let servedByInstances = 0;
    let latestMs = 0;
    for (const inst of instances) {
      const times = byServer.get(inst.name) ?? [];
      servedByInstances += times.length;
      if (inst.sidecarKilledAt === null) continue;
      const after = times.filter((t) => t > inst.sidecarKilledAt!).map((t) => t - inst.sidecarKilledAt!);
      if (after.length) latestMs = Math.max(latestMs, ...after);
      const bound = churnTtlS * 1000 + slackMs;
      const late = after.filter((d) => d > bound);
      if (late.length) problems.push(`${inst.name} (${inst.death}) served ${late.length} request(s) up to ${Math.max(...late)} ms after its sidecar died (bound ${bound} ms)`);
    }
    const registered = instances.filter((x) => x.registeredAt !== null).length;
    return {
      passed: problems.length === 0 && servedByInstances > 0 && registered >= instances.length / 2,
      detail: `${registered}/${instances.length} instances registered, ${servedByInstances} requests served by them; the latest request at an instance after its sidecar's kill -9 came ${latestMs} ms after it (TTL ${churnTtlS} s)`
        + (problems.length ? `; ${problems.join('; ')}` : ''),
    };
  },
});
