// Brings a whole topology up on this machine and down again: a 3-member etcd cluster, the
// zone servers (own processes), the routing table written by `cellctl init`, and the
// gateways as separate `cellgate serve` processes, each reaching etcd through its own
// harness-controlled TCP proxies (one per member) so that one gateway can be cut off the
// control plane while the others stay connected. Everything on 127.0.0.1, ports picked
// free up front (a restarted process comes back on the same port), files in one temp dir.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startEtcdCluster, freePorts, type EtcdCluster } from './etcd-cluster';
import { getJson, waitUntil } from './http-json';
import { onInterrupt, startProc, type Proc } from './procs';
import { FaultProxy, type ProxyMode } from './tcp-proxy';
import { gatewayConfig, topologyYaml, type GatewaySpec, type TopologySpec, type ZoneSpec } from './topology';

/** Compiled entry points, relative to dist/chaos. */
export const BIN = {
  cellgate: join(__dirname, '..', 'src', 'cli', 'cellgate.js'),
  cellctl: join(__dirname, '..', 'src', 'cli', 'cellctl.js'),
  zoneServer: join(__dirname, 'zone-server.js'),
};

// Generous: on a loaded 2-core machine a dozen node processes starting at once take a while.
const READY_TIMEOUT_MS = 60_000;

export class ZoneServer {
  proc: Proc | null = null;
  proxy: FaultProxy | null = null;
  starts = 0;

  constructor(
    readonly name: string,
    readonly zone: ZoneSpec,
    readonly port: number,
    private readonly cluster: { storeSpec: string; prefix: string; dir: string; workMs: number },
  ) {}

  get logFile(): string {
    return join(this.cluster.dir, `zone-${this.name}.jsonl`);
  }

  /** The URL in the routing table: the proxy's when the zone is proxied. */
  get url(): string {
    return `http://127.0.0.1:${this.proxy ? this.proxy.port : this.port}`;
  }

  async start(waitReady = true): Promise<void> {
    if (this.proc?.running) return;
    this.starts++;
    this.proc = startProc({
      name: this.name,
      command: process.execPath,
      args: [
        BIN.zoneServer, '--zone', this.zone.name, '--server', this.name, '--port', String(this.port),
        '--store', this.cluster.storeSpec, '--prefix', this.cluster.prefix, '--log', this.logFile, '--work-ms', String(this.cluster.workMs),
      ],
      logFile: join(this.cluster.dir, `zone-${this.name}.stderr.log`),
    });
    if (waitReady) await this.waitReady();
  }

  async waitReady(): Promise<void> {
    const proc = this.proc;
    await waitUntil(`zone server ${this.name} ready`, READY_TIMEOUT_MS, async () => {
      const r = await getJson(this.port, '/__chaos/state');
      return r.status === 200 && typeof (r.json as { view?: unknown }).view === 'number';
    }, 50, () => (proc?.running ? null : `exited: ${proc?.log().slice(-1000)}`));
  }

  async kill(): Promise<void> {
    await this.proc?.kill();
  }

  pause(): void {
    this.proc?.signal('SIGSTOP');
  }

  resume(): void {
    this.proc?.signal('SIGCONT');
  }

  async stop(): Promise<void> {
    await this.proc?.stop();
  }
}

export class GatewayProc {
  proc: Proc | null = null;
  /** One proxy per etcd member: the gateway's only way to etcd. */
  readonly etcdProxies: FaultProxy[];
  starts = 0;

  constructor(
    readonly spec: GatewaySpec,
    readonly port: number,
    readonly adminPort: number,
    etcdPorts: readonly number[],
    private readonly cluster: { prefix: string; dir: string },
  ) {
    this.etcdProxies = etcdPorts.map((p, i) => new FaultProxy(`${spec.id}->etcd${i}`, p));
  }

  get id(): string {
    return this.spec.id;
  }

  get configFile(): string {
    return join(this.cluster.dir, `${this.id}.config.json`);
  }

  get logFile(): string {
    return join(this.cluster.dir, `${this.id}.log`);
  }

  get running(): boolean {
    return this.proc?.running === true;
  }

  async start(waitReady = true): Promise<void> {
    if (this.proc?.running) return;
    this.starts++;
    const store = `etcd:${this.etcdProxies.map((p) => `127.0.0.1:${p.port}`).join(',')}`;
    this.proc = startProc({
      name: this.id,
      command: process.execPath,
      args: [
        BIN.cellgate, 'serve', '--config', this.configFile, '--store', store, '--prefix', this.cluster.prefix,
        '--port', String(this.port), '--admin-port', String(this.adminPort), '--zone', this.spec.zone, '--id', this.id,
      ],
      logFile: this.logFile,
    });
    if (waitReady) await this.waitReady();
  }

  async waitReady(): Promise<void> {
    const proc = this.proc;
    await waitUntil(`gateway ${this.id} ready`, READY_TIMEOUT_MS, async () => (await getJson(this.adminPort, '/readyz')).status === 200,
      50, () => (proc?.running ? null : `exited: ${proc?.log().slice(-1000)}`));
  }

  /** Cuts the gateway off etcd (every member) with `mode`, or heals it with pass. */
  setControlPlane(mode: ProxyMode): void {
    for (const p of this.etcdProxies) p.setMode(mode);
  }

  async kill(): Promise<void> {
    await this.proc?.kill();
  }

  async stop(): Promise<void> {
    await this.proc?.stop(5_000);
  }

  /** The table the gateway routes with: {version, checksum} or null. */
  async applied(): Promise<{ version: number; checksum: string } | null> {
    if (!this.running) return null;
    const r = await getJson(this.adminPort, '/readyz');
    const j = r.json as { version?: number; checksum?: string };
    return r.status === 200 && typeof j.version === 'number' ? { version: j.version, checksum: j.checksum ?? '' } : null;
  }
}

export interface CellctlRun {
  readonly proc: Proc;
  readonly startedAt: number;
  readonly done: Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string; endedAt: number }>;
}

export class Cluster {
  /** Processes a scenario's steps started (e.g. autopilot replicas): stopped first by stop(). */
  readonly extraProcs = new Set<Proc>();
  private unregister: (() => void) | null = null;
  private stopped: Promise<void> | null = null;

  private constructor(
    readonly topology: TopologySpec,
    readonly dir: string,
    readonly prefix: string,
    readonly etcd: EtcdCluster,
    readonly zoneServers: readonly ZoneServer[],
    readonly gateways: readonly GatewayProc[],
    /** Presence relay id -> its port, picked before the gateways start (chaos/relay.ts starts them). */
    readonly relayPorts: ReadonlyMap<string, number>,
  ) {}

  get etcdEndpoints(): string[] {
    return this.etcd.endpoints;
  }

  servers(zone: string): ZoneServer[] {
    const list = this.zoneServers.filter((s) => s.zone.name === zone);
    if (list.length === 0) throw new Error(`no zone named ${zone}`);
    return list;
  }

  gateway(id: string): GatewayProc {
    const g = this.gateways.find((x) => x.id === id);
    if (!g) throw new Error(`no gateway named ${id}`);
    return g;
  }

  /** Starts cellctl with the store flags added; `--json` output is captured. */
  cellctl(args: readonly string[], name = 'cellctl'): CellctlRun {
    const stamp = `${Date.now()}-${Math.random().toString(36).slice(2, 6)}`;
    const logFile = join(this.dir, `${name.replace(/[^\w.-]+/g, '_')}-${stamp}.log`);
    const proc = startProc({
      name,
      command: process.execPath,
      args: [BIN.cellctl, ...args, '--etcd', this.etcdEndpoints.join(','), '--prefix', this.prefix],
      logFile,
      captureStdout: true,
      env: { CELLGATE_ETCD: '' },
    });
    const startedAt = Date.now();
    const done = proc.exited.then((e) => ({ code: e.code, signal: e.signal, stdout: proc.stdout(), stderr: proc.log(), endedAt: Date.now() }));
    return { proc, startedAt, done };
  }

  static async launch(topology: TopologySpec, dir: string, prefix: string): Promise<Cluster> {
    await mkdir(dir, { recursive: true });
    const etcd = await startEtcdCluster(topology.etcdMembers);
    const serverCount = topology.zones.reduce((n, z) => n + (z.servers ?? 2), 0);
    const ports = await freePorts(serverCount + topology.gateways.length * 2 + topology.presenceRelays.length);
    const storeSpec = `etcd:${etcd.endpoints.join(',')}`;
    const shared = { storeSpec, prefix, dir, workMs: topology.workMs };
    const zoneServers: ZoneServer[] = [];
    for (const z of topology.zones) {
      for (let i = 0; i < (z.servers ?? 2); i++) zoneServers.push(new ZoneServer(`${z.name}-${i + 1}`, z, ports.shift() as number, shared));
    }
    const etcdPorts = etcd.members.map((m) => m.clientPort);
    const gateways = topology.gateways.map((g) => new GatewayProc(g, ports.shift() as number, ports.shift() as number, etcdPorts, { prefix, dir }));
    const relayPorts = new Map(topology.presenceRelays.map((id) => [id, ports.shift() as number]));
    const cluster = new Cluster(topology, dir, prefix, etcd, zoneServers, gateways, relayPorts);
    cluster.unregister = onInterrupt(() => cluster.stop());
    try {
      await cluster.bringUp();
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    return cluster;
  }

  private async bringUp(): Promise<void> {
    const t = this.topology;
    for (const s of this.zoneServers) {
      if (s.zone.proxied) {
        s.proxy = new FaultProxy(`proxy-${s.name}`, s.port);
        await s.proxy.start();
      }
    }
    for (const g of this.gateways) for (const p of g.etcdProxies) await p.start();
    const upstreams = new Map(t.zones.map((z) => [z.name, this.servers(z.name).map((s) => s.url)]));
    const topoFile = join(this.dir, 'topology.yaml');
    await writeFile(topoFile, topologyYaml(t, upstreams));
    const init = await this.cellctl(['init', '--topology', topoFile, '--json', '--actor', 'chaos'], 'cellctl-init').done;
    if (init.code !== 0) throw new Error(`cellctl init failed (exit ${init.code}): ${init.stderr}`);
    const relayUrls = [...this.relayPorts.values()].map((p) => `http://127.0.0.1:${p}`);
    for (const g of this.gateways) {
      await writeFile(g.configFile, JSON.stringify(gatewayConfig(t, join(this.dir, `${g.id}.snapshot.json`), relayUrls), null, 2));
    }
    await Promise.all(this.zoneServers.map((s) => s.start(false)));
    await Promise.all(this.gateways.map((g) => g.start(false)));
    await Promise.all([...this.zoneServers.map((s) => s.waitReady()), ...this.gateways.map((g) => g.waitReady())]);
  }

  /** Stops everything (idempotent): gateways, zone servers, proxies, etcd (its data dirs removed). */
  stop(): Promise<void> {
    this.stopped ??= (async () => {
      await Promise.allSettled([...this.extraProcs].map((p) => p.stop()));
      await Promise.allSettled(this.gateways.map((g) => g.stop()));
      await Promise.allSettled(this.zoneServers.map((s) => s.stop()));
      await Promise.allSettled([
        ...this.gateways.flatMap((g) => g.etcdProxies.map((p) => p.close())),
        ...this.zoneServers.map((s) => s.proxy?.close()),
      ]);
      await this.etcd.stop().catch(() => undefined);
      this.unregister?.();
    })();
    return this.stopped;
  }
}
