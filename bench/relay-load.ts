// The presence relay alone (issue 15): N simulated gateways each PUT one new record per round
// (a table version) to a real `cellgate presence-relay` process in front of a real 3-member
// etcd; then the same records again (heartbeats); then, for the ratio in the same run, the
// same N records written the direct way (one leased put per gateway). Measured: relay CPU per
// PUT, etcd CPU per 1,000 records (all members), etcd write requests per 1,000 records (the
// revision moves once per transaction), from /proc/<pid>/task/*/schedstat (ns of CPU).
// `node dist/bench/relay-load.js [--gateways 1000] [--rounds 5] [--direct-clients 100]`, on a machine running nothing else.
import { readdirSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { Agent, request } from 'node:http';
import { Etcd3 } from 'etcd3';
import type { PresenceRecord } from '../src/store/types';
import { startEtcdCluster } from '../test/helpers/etcd';
import { intFlag } from './args';
import { stopAll, type BenchChild } from './children';
import { percentile } from './load';
import { startRelays } from './relays';

const PREFIX = '/bench-relay';

/** CPU ns of every thread of `pid` alive now. */
function cpuNs(pid: number): number {
  let sum = 0;
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    try {
      sum += Number(readFileSync(`/proc/${pid}/task/${task}/schedstat`, 'utf8').split(' ')[0]);
    } catch { /* the thread ended */ }
  }
  return sum;
}

function record(id: string, version: number): PresenceRecord {
  const at = '2026-11-30T00:00:00.000Z';
  return { id, zone: 'sh-a', appliedVersion: version, checksum: `sha256:${version.toString(16).padStart(64, '0')}`, inFlight: 0, startedAt: at, updatedAt: at, pid: 4242, host: `gw-host-${id}` };
}

// Every simulated gateway keeps its connection between rounds, as a gateway does (its heartbeat comes every ttl/3).
const agent = new Agent({ keepAlive: true, maxSockets: 20_000, maxFreeSockets: 20_000 });

function put(base: URL, id: string, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(new URL(`/v1/gateways/${encodeURIComponent(id)}`, base), { method: 'PUT', agent, timeout: 30_000, headers: { 'content-type': 'application/json' } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body);
  });
}

interface Sample { readonly relayUsPerRecord: number; readonly etcdMsPer1000: number; readonly writesPer1000: number; readonly wallMs: number }

const median = (xs: readonly number[]) => percentile(xs, 50);

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const n = intFlag(argv, 'gateways', 1000, 1, 20_000);
  const rounds = intFlag(argv, 'rounds', 5, 1, 50);
  const directClients = intFlag(argv, 'direct-clients', 100, 1, 1000);
  const cluster = await startEtcdCluster(3);
  const client = new Etcd3({ hosts: cluster.endpoints.map((e) => `http://${e}`) });
  let relays: BenchChild[] = [];
  try {
    const etcdPids = cluster.members.map((m) => m.pid!);
    const started = await startRelays(1, cluster.endpoints, PREFIX);
    relays = started.procs;
    const relayPid = relays[0]!.pid!;
    const relayUrl = new URL(started.urls[0]!);
    const ids = Array.from({ length: n }, (_, i) => `gw-${String(i).padStart(5, '0')}`);
    const revision = async () => Number((await client.get(`${PREFIX}/none`).exec()).header.revision);
    const measure = async (what: () => Promise<void>): Promise<Sample> => {
      const r0 = await revision();
      const [c0, e0, t0] = [cpuNs(relayPid), etcdPids.reduce((s, p) => s + cpuNs(p), 0), performance.now()];
      await what();
      const [c1, e1, t1] = [cpuNs(relayPid), etcdPids.reduce((s, p) => s + cpuNs(p), 0), performance.now()];
      const r1 = await revision();
      return { relayUsPerRecord: (c1 - c0) / 1000 / n, etcdMsPer1000: ((e1 - e0) / 1e6) * (1000 / n), writesPer1000: (r1 - r0) * (1000 / n), wallMs: t1 - t0 };
    };
    const sendAll = async (version: number) => {
      const statuses = await Promise.all(ids.map((id) => put(relayUrl, id, JSON.stringify({ record: record(id, version), ttlSeconds: 30 }))));
      const bad = statuses.filter((s) => s !== 204);
      if (bad.length) throw new Error(`${bad.length} PUTs not 204: ${[...new Set(bad)].join(',')}`);
    };
    await sendAll(0); // warm-up: connections, entries, JIT
    // etcd's own background (raft heartbeats, lease checks) over an idle second, to read the rounds against.
    const idle = await measure(() => new Promise((r) => setTimeout(r, 1_000)));
    const versions: Sample[] = [];
    const heartbeats: Sample[] = [];
    for (let v = 1; v <= rounds; v++) {
      versions.push(await measure(() => sendAll(v)));
      heartbeats.push(await measure(() => sendAll(v)));
    }
    // The direct way, same cluster, same records: one leased put per gateway (leases granted
    // first), spread over --direct-clients etcd clients (gateways each have their own).
    const clients = Array.from({ length: directClients }, () => new Etcd3({ hosts: cluster.endpoints.map((e) => `http://${e}`) }));
    const leases = await Promise.all(ids.map(async (_, i) => {
      const lease = clients[i % directClients]!.lease(60, { autoKeepAlive: false });
      await lease.grant();
      return lease;
    }));
    const direct: Sample[] = [];
    for (let v = 1; v <= rounds; v++) {
      direct.push(await measure(async () => {
        await Promise.all(ids.map((id, i) => leases[i]!.put(`${PREFIX}/gateways/${encodeURIComponent(id)}`).value(JSON.stringify(record(id, v))).exec()));
      }));
    }
    await Promise.all(leases.map((l) => l.revoke().catch(() => undefined)));
    for (const c of clients) c.close();
    const idleEtcdMsPerS = (idle.etcdMsPer1000 * n / 1000) / (idle.wallMs / 1000);
    const summary = (xs: readonly Sample[]) => ({
      relayUsPerRecord: Math.round(median(xs.map((s) => s.relayUsPerRecord))),
      etcdMsPer1000: Math.round(median(xs.map((s) => s.etcdMsPer1000))),
      etcdMsPer1000NetOfIdle: Math.round(median(xs.map((s) => s.etcdMsPer1000 - idleEtcdMsPerS * (s.wallMs / 1000) * (1000 / n)))),
      writesPer1000: median(xs.map((s) => s.writesPer1000)),
      wallMs: Math.round(median(xs.map((s) => s.wallMs))),
    });
    const report = { gateways: n, rounds, directClients, idleEtcdMsPerS: Math.round(idleEtcdMsPerS), loadavg: loadavg().map((l) => Math.round(l * 100) / 100), newVersion: summary(versions), heartbeat: summary(heartbeats), directPuts: summary(direct), raw: { versions, heartbeats, direct } };
    process.stdout.write(`${JSON.stringify(report, null, 1)}\n`);
    process.stdout.write(`\n${n} gateways, median of ${rounds} rounds (load ${report.loadavg.join(' ')}; idle etcd ${report.idleEtcdMsPerS} ms CPU/s):\n`);
    process.stdout.write(`  new version via relay : relay ${report.newVersion.relayUsPerRecord} µs CPU/PUT, etcd ${report.newVersion.etcdMsPer1000} ms CPU (${report.newVersion.etcdMsPer1000NetOfIdle} net of idle) and ${report.newVersion.writesPer1000} txns per 1,000 records, ${report.newVersion.wallMs} ms wall\n`);
    process.stdout.write(`  heartbeat via relay   : relay ${report.heartbeat.relayUsPerRecord} µs CPU/PUT, etcd ${report.heartbeat.etcdMsPer1000} ms CPU and ${report.heartbeat.writesPer1000} writes per 1,000\n`);
    process.stdout.write(`  direct leased puts (${directClients} clients): etcd ${report.directPuts.etcdMsPer1000} ms CPU (${report.directPuts.etcdMsPer1000NetOfIdle} net of idle) and ${report.directPuts.writesPer1000} writes per 1,000 records, ${report.directPuts.wallMs} ms wall\n`);
  } finally {
    await stopAll(relays);
    agent.destroy();
    client.close();
    await cluster.stop();
  }
}

main().then(() => process.exit(0), (err: Error) => {
  process.stderr.write(`relay-load: ${err.stack ?? err.message}\n`);
  process.exit(1);
});
