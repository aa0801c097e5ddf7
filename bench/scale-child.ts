// One process of the scale benchmark's simulated gateways (bench/scale.ts forks a few).
// Each simulated gateway is the gateway's control plane without its HTTP listener: its own
// etcd store (its own etcd3 client: connection, table watch, presence lease), the table
// follower, the routing state (RoutingView + zone pools) and the presence publisher. The
// parts are loaded from the compiled code under test (`codeDir`), so the same simulator runs
// the code before a change as well. No snapshot file: a thousand fsyncs per change on the
// disk etcd writes its WAL to would measure this machine's disk, not the control plane.
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { systemClock } from '../src/clock';
import type { PresenceRecord, PresenceRegistration, PresenceStore, TableStore } from '../src/store/types';

export interface ChildStart {
  readonly codeDir: string;
  readonly endpoints: readonly string[];
  readonly prefix: string;
  readonly ids: readonly string[];
  /** One etcd client per simulated gateway, or one per process shared by its gateways. */
  readonly clients: 'per-gateway' | 'per-process';
  /** Presence relay URLs (empty: each gateway writes its own presence record). Gateway i starts at relay i mod R. */
  readonly relays: readonly string[];
}

export type ChildMessage =
  | { readonly type: 'ready'; readonly registered: number }
  | {
    readonly type: 'stats'; readonly cpuMs: number; readonly presenceWrites: number; readonly applies: number; readonly applyCpuMs: number;
    /** Per table version: wall-clock ms (Date.now) of the first and the last gateway of this process applying it. */
    readonly appliedAt: Record<string, { first: number; last: number; count: number }>;
  }
  | { readonly type: 'stopped' }
  | { readonly type: 'error'; readonly message: string };

type Loader = <T>(module: string) => T;

interface Sim {
  readonly store: TableStore;
  readonly relayed: { close(): Promise<void> } | null;
  readonly follower: { start(): Promise<void>; close(): Promise<void> };
  readonly presence: { start(): void; close(): Promise<void> };
}

const counters = { presenceWrites: 0, applies: 0, applyCpuMs: 0, registered: 0 };
const appliedAt = new Map<number, { first: number; last: number; count: number }>();

/** Counts presence writes (register and every update): what the issue bounds per change. */
function countingPresence(inner: PresenceStore): PresenceStore {
  return {
    async register(record: PresenceRecord, ttl?: number): Promise<PresenceRegistration> {
      counters.presenceWrites += 1;
      const reg = await inner.register(record, ttl);
      counters.registered += 1;
      return {
        update: (r) => {
          counters.presenceWrites += 1;
          return reg.update(r);
        },
        close: () => reg.close(),
      };
    },
    list: () => inner.list(),
    snapshot: () => inner.snapshot(),
    watch: (events) => inner.watch(events),
  };
}

function simulate(load: Loader, start: ChildStart, id: string, index: number, shared: unknown): Sim {
  const { openStore } = load<typeof import('../src/store/open')>('src/store/open');
  const { TableFollower } = load<typeof import('../src/router/table-follower')>('src/router/table-follower');
  const { RoutingStateHolder } = load<typeof import('../src/router/routing-state')>('src/router/routing-state');
  const { EndpointHealth } = load<typeof import('../src/router/endpoints')>('src/router/endpoints');
  const { PresencePublisher } = load<typeof import('../src/router/presence')>('src/router/presence');
  const store = shared
    ? load<typeof import('../src/store/etcd-store')>('src/store/etcd-store').createEtcdStore({ endpoints: start.endpoints, prefix: start.prefix, sharedClient: shared as never })
    : openStore(`etcd:${start.endpoints.join(',')}`, { prefix: start.prefix });
  const { DEFAULT_CONFIG } = load<typeof import('../src/router/config')>('src/router/config');
  const health = new EndpointHealth(DEFAULT_CONFIG.upstream, () => Date.now());
  const routing = new RoutingStateHolder(health, systemClock);
  const log = () => undefined;
  const relays = start.relays.map((_, i) => start.relays[(index + i) % start.relays.length]!);
  const relayed = relays.length ? new (load<typeof import('../src/store/relayed-presence')>('src/store/relayed-presence').RelayedPresence)(store.presence, { relays }) : null;
  const presence = new PresencePublisher({
    store: countingPresence(relayed ?? store.presence), facts: { id, zone: 'sh-a', startedAt: new Date().toISOString() }, inFlight: () => 0, log, clock: systemClock,
  });
  const follower = new TableFollower(store, null, {
    apply(vt, source, receivedAtMs) {
      const t0 = performance.now();
      routing.swap(vt, source, receivedAtMs);
      presence.tableApplied(vt.version, vt.checksum);
      counters.applyCpuMs += performance.now() - t0;
      counters.applies += 1;
      const now = Date.now();
      const at = appliedAt.get(vt.version);
      if (at) {
        at.last = now;
        at.count += 1;
      } else appliedAt.set(vt.version, { first: now, last: now, count: 1 });
    },
    rejected: () => undefined,
    connection: () => undefined,
    log,
  }, () => Date.now());
  return { store, relayed, follower, presence };
}

function send(m: ChildMessage): void {
  process.send?.(m);
}

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

async function main(): Promise<void> {
  const start = JSON.parse(process.env.CELLGATE_SCALE_CHILD ?? 'null') as ChildStart | null;
  if (!start) throw new Error('CELLGATE_SCALE_CHILD not set');
  const load: Loader = <T>(module: string) => require(join(start.codeDir, module)) as T;
  const sims: Sim[] = [];
  let shared: { close(): void } | null = null;
  if (start.clients === 'per-process') {
    const { createEtcdClient, resolveEtcdOptions } = load<typeof import('../src/store/etcd-client')>('src/store/etcd-client');
    shared = createEtcdClient(resolveEtcdOptions({ endpoints: start.endpoints, prefix: start.prefix }));
  }
  // Started in small batches: a thousand simultaneous lease grants would measure the start.
  for (let i = 0; i < start.ids.length; i += 25) {
    const batch = start.ids.slice(i, i + 25).map((id, j) => simulate(load, start, id, Number(id.slice(3)) || i + j, shared));
    sims.push(...batch);
    for (const s of batch) s.presence.start();
    await Promise.all(batch.map((s) => s.follower.start()));
  }
  const deadline = Date.now() + 150_000;
  // Ready once every gateway is registered and routes with the table: the first (full)
  // validation of a large table must not fall into the benchmark's idle window.
  while ((counters.registered < sims.length || appliedAt.size === 0 || [...appliedAt.values()].reduce((a, v) => a + v.count, 0) < sims.length) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  send({ type: 'ready', registered: counters.registered });
  // CELLGATE_SCALE_PROFILE_DIR: a CPU profile of this process from the first stats request
  // (the start of the idle window) to the stop: the benchmark, without the start-up.
  const profileDir = process.env.CELLGATE_SCALE_PROFILE_DIR;
  const session = profileDir ? new Session() : null;
  let profiling = false;
  const stopProfile = () => new Promise<void>((resolve) => {
    if (!session || !profiling) return resolve();
    session.post('Profiler.stop', (err, res) => {
      if (!err) writeFileSync(join(profileDir as string, `scale-child-${process.pid}.cpuprofile`), JSON.stringify(res.profile));
      resolve();
    });
  });
  process.on('message', (msg: { type: string }) => {
    if (msg.type === 'stats' && session && !profiling) {
      profiling = true;
      session.connect();
      session.post('Profiler.enable', () => session.post('Profiler.start'));
    }
    if (msg.type === 'stats') {
      send({ type: 'stats', cpuMs: cpuMs(), presenceWrites: counters.presenceWrites, applies: counters.applies, applyCpuMs: counters.applyCpuMs, appliedAt: Object.fromEntries(appliedAt) });
    } else if (msg.type === 'stop') {
      void stopProfile().then(() => Promise.all(sims.map(async (s) => {
        await s.follower.close();
        await s.presence.close();
        await s.relayed?.close();
        await s.store.close();
      }))).finally(() => {
        shared?.close();
        send({ type: 'stopped' });
        // exit on the next turn: a --cpu-prof profile is written at a normal exit.
        setImmediate(() => process.exit(0));
      });
    }
  });
  process.on('disconnect', () => process.exit(0));
}

main().catch((err: unknown) => {
  send({ type: 'error', message: (err as Error).stack ?? String(err) });
  process.exit(1);
});
