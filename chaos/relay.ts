// Presence relays in a chaos run (issue 15): `cellgate presence-relay` processes on the
// ports the launcher picked before the gateways started (so every gateway's config lists
// them from the start), started, killed -9 and restarted on the same port by steps, and
// stopped with the cluster. Whether a gateway's presence went through a relay is read
// from etcd — the relay's record `<prefix>/gateways-relayed/ID` and the gateway's own
// `<prefix>/gateways/ID` — and from the gateway's `presence.relay` log lines.
import { join } from 'node:path';
import { getJson, waitUntil } from './http-json';
import { BIN, type Cluster, type GatewayProc } from './launcher';
import { startProc, type Proc } from './procs';
import type { Recorder } from './recorder';
import { isFrozen, type Step, type StepContext, type StepKind } from './steps';

/** The relay's lease TTL (its default): records of a killed relay vanish this long after its last keep-alive. */
export const RELAY_TTL_S = 10;
const READY_TIMEOUT_MS = 30_000;
/** Gateways try a relay again every presence TTL / 3 (3.3 s): generous on a loaded machine. */
const RELAYED_TIMEOUT_MS = 20_000;

const procs = new WeakMap<Cluster, Map<string, Proc>>();

function portOf(cluster: Cluster, id: string): number {
  const port = cluster.relayPorts.get(id);
  if (port === undefined) throw new Error(`no presence relay ${id} in the topology (presenceRelays)`);
  return port;
}

function relayProc(cluster: Cluster, id: string): Proc | undefined {
  return procs.get(cluster)?.get(id);
}

/** Starts relay `id` on its port (again, after a kill) and waits until /healthz says it holds a lease. */
export const startRelay = (id: string, opts: { label?: string; kind?: StepKind } = {}): Omit<Step, 'at'> => ({
  label: opts.label ?? `start relay ${id}`,
  kind: opts.kind ?? 'op',
  run: async ({ cluster }: StepContext) => {
    const port = portOf(cluster, id);
    if (relayProc(cluster, id)?.running) throw new Error(`relay ${id} is already running`);
    const started = Date.now();
    const proc = startProc({
      name: id, command: process.execPath, logFile: join(cluster.dir, `${id}.log`), env: { CELLGATE_STORE: '' },
      args: [BIN.cellgate, 'presence-relay', '--store', `etcd:${cluster.etcdEndpoints.join(',')}`, '--prefix', cluster.prefix,
        '--listen', `127.0.0.1:${port}`, '--id', id, '--ttl', String(RELAY_TTL_S)],
    });
    cluster.extraProcs.add(proc);
    let map = procs.get(cluster);
    if (!map) procs.set(cluster, (map = new Map()));
    map.set(id, proc);
    await waitUntil(`relay ${id} healthy`, READY_TIMEOUT_MS, async () => (await getJson(port, '/healthz')).status === 200,
      50, () => (proc.running ? null : `exited: ${proc.log().slice(-1000)}`));
    return `${id} on 127.0.0.1:${port}: /healthz 200 ${Date.now() - started} ms after the start`;
  },
});

/** The lease of the relay's last `relay.lease.granted` log line (its current one). */
function currentLease(proc: Proc): string | null {
  const granted = proc.log().split('\n').filter((l) => l.includes('"event":"relay.lease.granted"')).pop();
  if (!granted) return null;
  try {
    return String((JSON.parse(granted) as { lease?: unknown }).lease ?? '') || null;
  } catch {
    return null;
  }
}

/** kill -9; remembers the relay's lease (for `waitLeaseExpired`). */
export const killRelay = (id: string): Omit<Step, 'at'> => ({
  label: `kill -9 relay ${id}`,
  kind: 'fault',
  run: async ({ cluster, memo }: StepContext) => {
    const proc = relayProc(cluster, id);
    if (!proc?.running) throw new Error(`relay ${id} is not running`);
    const lease = currentLease(proc);
    await proc.kill();
    memo.set(`relay-lease:${id}`, { lease, killedAt: Date.now() });
    return `killed ${id} (its lease ${lease ?? 'unknown'})`;
  },
});

/**
 * Ends once etcd has expired the lease of the relay killed last (at most its TTL after the
 * kill): what was still attached to it is gone with it. Notes the keys it still held at the
 * last check — none, once the gateways' records were put again on a live relay's lease.
 */
export const waitLeaseExpired = (id: string): Omit<Step, 'at'> => ({
  label: `lease of the killed ${id} expired`,
  kind: 'mark',
  run: async ({ recorder, memo }: StepContext) => {
    const killed = memo.get(`relay-lease:${id}`) as { lease: string | null; killedAt: number } | undefined;
    if (!killed?.lease) throw new Error(`no lease of a killed relay ${id} known`);
    let first: string[] | null = null;
    let last: string[] = [];
    await waitUntil(`lease ${killed.lease} expired`, RELAY_TTL_S * 1000 + 10_000, async () => {
      const r = await recorder.client.leaseClient.leaseTimeToLive({ ID: killed.lease!, keys: true });
      // -1: expired (or never granted); 0 still means "expires within a second".
      if (Number(r.TTL) < 0) return true;
      last = r.keys.map((k) => k.toString('utf8').slice(recorder.prefix.length + 1));
      first ??= last;
      return false;
    }, 200);
    const list = (keys: readonly string[] | null) => (keys?.length ? keys.join(', ') : 'none');
    return `lease ${killed.lease} expired ${Date.now() - killed.killedAt} ms after the kill; keys on it at the first check: ${list(first)}; at the last: ${list(last)}`;
  },
});

/**
 * Ends once the relay is carrying a planned move of `cell`: the harness saw the cell frozen
 * in a revision newer than the one at the step's start, then the first gateway's record
 * proving that revision written by the relay. The other gateways' acks are then on their
 * way, or about to be sent: the moment to kill the relay.
 */
export const waitFreezeAckRelayed = (cell: string): Omit<Step, 'at'> => ({
  label: `first ${cell} freeze ack through the relay`,
  kind: 'mark',
  run: async ({ recorder }: StepContext) => {
    const since = recorder.latest()?.version ?? 0;
    const frozen = await recorder.waitForTable((e) => e.version > since && isFrozen(e, cell), 20_000);
    const ack = await recorder.waitForPresence((p) => p.via === 'relayed' && !p.deleted && p.appliedVersion >= frozen.version, 10_000);
    return `${cell} frozen at revision ${frozen.version}; ${ack.id}'s record proving it written by the relay ${ack.t - frozen.t} ms later`;
  },
});

interface PresenceKeys {
  /** Gateway id -> {relay that wrote it, applied version} of its relayed record. */
  readonly relayed: Map<string, { relay: string | null; appliedVersion: number }>;
  /** Gateway id -> applied version of its own record. */
  readonly direct: Map<string, number>;
}

/** One read of both kinds of presence key, straight from etcd. */
async function presenceKeys(recorder: Recorder): Promise<PresenceKeys> {
  const all = await recorder.client.getAll().prefix(`${recorder.prefix}/gateways`).strings();
  const out: PresenceKeys = { relayed: new Map(), direct: new Map() };
  for (const [key, value] of Object.entries(all)) {
    let rec: { appliedVersion?: unknown; relay?: unknown };
    try { rec = JSON.parse(value) as typeof rec; } catch { continue; }
    const version = typeof rec.appliedVersion === 'number' ? rec.appliedVersion : -1;
    const relayedHead = `${recorder.prefix}/gateways-relayed/`;
    const directHead = `${recorder.prefix}/gateways/`;
    if (key.startsWith(relayedHead)) {
      out.relayed.set(decodeURIComponent(key.slice(relayedHead.length)), { relay: typeof rec.relay === 'string' ? rec.relay : null, appliedVersion: version });
    } else if (key.startsWith(directHead)) {
      out.direct.set(decodeURIComponent(key.slice(directHead.length)), version);
    }
  }
  return out;
}

/** The state of the gateway's last `presence.relay` log line, and when it was logged. */
export function lastRelayState(g: GatewayProc): { state: string; time: string } | null {
  const lines = (g.proc?.log() ?? '').split('\n').filter((l) => l.includes('"event":"presence.relay"'));
  for (let i = lines.length - 1; i >= 0; i--) {
    try {
      const j = JSON.parse(lines[i]!) as { state?: unknown; time?: unknown };
      if (typeof j.state === 'string') return { state: j.state, time: String(j.time) };
    } catch { /* a line cut short */ }
  }
  return null;
}

/**
 * Waits until every gateway's presence goes through `relay`: in etcd its relayed record,
 * written by that relay, is at the store's revision and it has no record of its own; and
 * its last `presence.relay` log line says "relayed".
 */
export const waitRelayed = (relay: string, label = `gateways relayed by ${relay}`): Omit<Step, 'at'> => ({
  label,
  kind: 'mark',
  run: async ({ cluster, recorder }: StepContext) => {
    const started = Date.now();
    let seen = '';
    const relayedNow = async (): Promise<boolean> => {
      const keys = await presenceKeys(recorder);
      const version = recorder.latest()?.version ?? -1;
      const states = cluster.gateways.map((g) => {
        const r = keys.relayed.get(g.id);
        const log = lastRelayState(g)?.state ?? 'none';
        const ok = r?.relay === relay && r.appliedVersion === version && !keys.direct.has(g.id) && log === 'relayed';
        return { ok, text: `${g.id}: relayed ${r ? `by ${r.relay} at r${r.appliedVersion}` : 'none'}, own ${keys.direct.has(g.id) ? `at r${keys.direct.get(g.id)}` : 'none'}, log ${log}` };
      });
      seen = `store at r${version}; ${states.map((s) => s.text).join('; ')}`;
      return states.every((s) => s.ok);
    };
    try {
      await waitUntil(label, RELAYED_TIMEOUT_MS, relayedNow, 100);
    } catch (err) {
      throw new Error(`${(err as Error).message}; last seen: ${seen}`);
    }
    const health = await getJson(portOf(cluster, relay), '/healthz').catch(() => null);
    return `after ${Date.now() - started} ms: ${seen}; ${relay} /healthz ${health ? `${health.status} ${JSON.stringify(health.json)}` : 'no answer'}`;
  },
});
