// Real etcd servers for tests: one member or a small cluster, on free loopback ports, with
// fresh temporary data directories, logs kept in a file (shown only when start-up fails).
// Tests fail loudly when etcd is missing: a failure test that does not run is one that rots.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, closeSync, constants as fsConstants, openSync, readFileSync, rmSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { request, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { freePorts } from './ports';
import { makeTestPki, type TestPki } from './pki';

const START_TIMEOUT_MS = 15_000;
const STOP_GRACE_MS = 5_000;
const CLUSTER_STOP_GRACE_MS = 1_000;
const START_ATTEMPTS = 3;

// Last resort for a test process that dies without running its teardowns.
const liveChildren = new Set<ChildProcess>();
const liveDirs = new Set<string>();
let exitHandlerInstalled = false;
function installExitHandler(): void {
  if (exitHandlerInstalled) return;
  exitHandlerInstalled = true;
  process.on('exit', () => {
    for (const child of liveChildren) {
      try { child.kill('SIGKILL'); } catch { /* already gone */ }
    }
    for (const dir of liveDirs) {
      try { rmSync(dir, { recursive: true, force: true }); } catch { /* best effort */ }
    }
  });
}

function etcdBinary(): string {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, 'etcd');
    try {
      accessSync(candidate, fsConstants.X_OK);
      return candidate;
    } catch { /* keep looking */ }
  }
  throw new Error('etcd not found: install it with `apt-get install -y etcd-server`');
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function httpJson(port: number, method: 'GET' | 'POST', path: string, body?: string, pki?: TestPki, timeoutMs = 1000): Promise<{ status: number; json: unknown }> {
  return new Promise((resolve, reject) => {
    const options = { host: '127.0.0.1', port, method, path, timeout: timeoutMs, headers: { 'content-type': 'application/json' } };
    // A TLS member with --client-cert-auth answers only a client that shows a certificate of the test CA.
    const send = (cb: (res: IncomingMessage) => void) => (pki
      ? httpsRequest({ ...options, ca: readFileSync(pki.caFile), cert: readFileSync(pki.clientCertFile), key: readFileSync(pki.clientKeyFile) }, cb)
      : request(options, cb));
    const req = send((res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => {
        try {
          resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) });
        } catch (err) {
          reject(err);
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body);
  });
}

interface ClusterSpec {
  readonly token: string;
  readonly initialCluster: string;
  /** Client port over TLS (server certificate of the test CA) with --client-cert-auth. */
  readonly pki?: TestPki;
}

/** One etcd process. Its ports, data dir and log file stay the same across restarts. */
export class EtcdMember {
  private child: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();

  constructor(
    readonly name: string,
    readonly clientPort: number,
    readonly peerPort: number,
    readonly dataDir: string,
    readonly logFile: string,
    private readonly cluster: ClusterSpec,
  ) {}

  /** "127.0.0.1:PORT" ("https://127.0.0.1:PORT" over TLS), as the stores take it. */
  get endpoint(): string {
    return this.cluster.pki ? this.clientUrl : `127.0.0.1:${this.clientPort}`;
  }

  get clientUrl(): string {
    return `${this.cluster.pki ? 'https' : 'http'}://127.0.0.1:${this.clientPort}`;
  }

  get peerUrl(): string {
    return `http://127.0.0.1:${this.peerPort}`;
  }

  get running(): boolean {
    return this.child !== null;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Spawns the process and waits until it reports healthy (all members must be up for a cluster to be healthy). */
  async start(): Promise<void> {
    if (this.child) return;
    installExitHandler();
    const clientUrl = this.clientUrl;
    const pki = this.cluster.pki;
    const tlsArgs = pki
      ? ['--cert-file', pki.serverCertFile, '--key-file', pki.serverKeyFile, '--trusted-ca-file', pki.caFile, '--client-cert-auth']
      : [];
    const args = [
      ...tlsArgs,
      '--name', this.name,
      '--data-dir', this.dataDir,
      '--listen-client-urls', clientUrl,
      '--advertise-client-urls', clientUrl,
      '--listen-peer-urls', this.peerUrl,
      '--initial-advertise-peer-urls', this.peerUrl,
      '--initial-cluster', this.cluster.initialCluster,
      '--initial-cluster-state', 'new',
      '--initial-cluster-token', this.cluster.token,
      // Fast elections: tests kill leaders and expect a new one quickly.
      '--heartbeat-interval', '50',
      '--election-timeout', '500',
      '--logger', 'zap',
      '--log-outputs', 'stderr',
    ];
    const logFd = openSync(this.logFile, 'a');
    let child: ChildProcess;
    try {
      child = spawn(etcdBinary(), args, { stdio: ['ignore', logFd, logFd] });
    } finally {
      closeSync(logFd);
    }
    this.child = child;
    liveChildren.add(child);
    this.exited = new Promise((resolve) => {
      child.once('exit', () => {
        liveChildren.delete(child);
        if (this.child === child) this.child = null;
        resolve();
      });
      child.once('error', () => {
        liveChildren.delete(child);
        if (this.child === child) this.child = null;
        resolve();
      });
    });
  }

  /** Polls the /health endpoint until it says true, the process exits, or the bound passes. */
  async waitHealthy(timeoutMs = START_TIMEOUT_MS): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!this.child) throw new Error(`etcd ${this.name} exited during start-up\n${this.logTail()}`);
      try {
        const { json } = await httpJson(this.clientPort, 'GET', '/health', undefined, this.cluster.pki);
        if ((json as { health?: unknown }).health === 'true') return;
      } catch { /* not listening yet */ }
      await sleep(100);
    }
    throw new Error(`etcd ${this.name} not healthy after ${timeoutMs} ms\n${this.logTail()}`);
  }

  /** SIGKILL, as a crash: the data dir stays. */
  async kill(): Promise<void> {
    await this.signalAndWait('SIGKILL', 0);
  }

  /** SIGTERM (SIGKILL after `graceMs`): the data dir stays. */
  async terminate(graceMs = STOP_GRACE_MS): Promise<void> {
    await this.signalAndWait('SIGTERM', graceMs);
  }

  /** Freezes the process (SIGSTOP): connections stay open but nothing answers. */
  pause(): void {
    this.child?.kill('SIGSTOP');
  }

  resume(): void {
    this.child?.kill('SIGCONT');
  }

  /** Starts again on the same ports and data dir (stopping first if still running). */
  async restart(): Promise<void> {
    if (this.child) await this.terminate();
    await this.start();
    await this.waitHealthy();
  }

  /** This member's id and the id of the leader it knows, as decimal strings. */
  async status(): Promise<{ memberId: string; leaderId: string }> {
    const { json } = await httpJson(this.clientPort, 'POST', '/v3/maintenance/status', '{}', this.cluster.pki);
    const body = json as { header?: { member_id?: string }; leader?: string };
    return { memberId: String(body.header?.member_id ?? ''), leaderId: String(body.leader ?? '') };
  }

  logTail(lines = 25): string {
    try {
      return readFileSync(this.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no etcd log)';
    }
  }

  private async signalAndWait(signal: NodeJS.Signals, graceMs: number): Promise<void> {
    const child = this.child;
    if (!child) return;
    child.kill('SIGCONT'); // a paused process cannot act on SIGTERM
    child.kill(signal);
    if (graceMs > 0) {
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await this.exited;
      clearTimeout(timer);
    } else {
      await this.exited;
    }
  }
}

async function makeBaseDir(): Promise<string> {
  const base = await mkdtemp(join(tmpdir(), 'cellgate-etcd-'));
  liveDirs.add(base);
  return base;
}

async function removeBaseDir(base: string): Promise<void> {
  await rm(base, { recursive: true, force: true });
  liveDirs.delete(base);
}

function addressInUse(member: EtcdMember): boolean {
  return /address already in use/i.test(member.logTail(200));
}

async function startMembers(count: number, tls = false): Promise<{ base: string; members: EtcdMember[]; pki?: TestPki }> {
  etcdBinary(); // fail loudly before creating anything
  for (let attempt = 1; ; attempt++) {
    const base = await makeBaseDir();
    const pki = tls ? await makeTestPki(join(base, 'pki')) : undefined;
    const ports = await freePorts(count * 2);
    const token = `cellgate-test-${process.pid}-${randomBytes(4).toString('hex')}`;
    const names = Array.from({ length: count }, (_, i) => `m${i}`);
    const initialCluster = names.map((name, i) => `${name}=http://127.0.0.1:${ports[2 * i + 1]}`).join(',');
    const members: EtcdMember[] = [];
    for (const [i, name] of names.entries()) {
      const dataDir = join(base, `${name}.data`);
      await mkdir(dataDir, { mode: 0o700 });
      members.push(new EtcdMember(name, ports[2 * i]!, ports[2 * i + 1]!, dataDir, join(base, `${name}.log`), { token, initialCluster, pki }));
    }
    try {
      for (const member of members) await member.start();
      await Promise.all(members.map((member) => member.waitHealthy()));
      return { base, members, pki };
    } catch (err) {
      const retry = attempt < START_ATTEMPTS && members.some(addressInUse);
      await Promise.all(members.map((member) => member.kill()));
      await removeBaseDir(base);
      if (!retry) throw err;
    }
  }
}

export interface EtcdHandle {
  /** ["127.0.0.1:PORT"] (["https://127.0.0.1:PORT"] over TLS) */
  readonly endpoints: string[];
  /** The test CA and certificates, when started with `tls`. */
  readonly pki?: TestPki;
  /** The users, when started with `auth`. */
  readonly auth?: EtcdAuth;
  readonly member: EtcdMember;
  /** SIGKILL, data dir kept (restart() brings it back). */
  kill(): Promise<void>;
  /** SIGTERM, data dir kept. */
  terminate(): Promise<void>;
  pause(): void;
  resume(): void;
  /** Same ports, same data dir. */
  restart(): Promise<void>;
  /** Final: SIGTERM (SIGKILL after a bound) and remove the data dir. Idempotent. */
  stop(): Promise<void>;
}

export interface EtcdAuth {
  readonly rootPassword: string;
  /** A user whose only role reads and writes the keys under `prefix`. */
  readonly user: string;
  readonly password: string;
  readonly prefix: string;
}

export interface StartEtcdOptions {
  /** TLS on the client port with a CA made for the test, and --client-cert-auth. */
  readonly tls?: boolean;
  /** Authentication on: a root user, and a user limited to this key prefix (e.g. "/secure"). */
  readonly auth?: { readonly prefix: string };
}

/** One etcd member on free loopback ports with a fresh data dir, healthy when this resolves. */
export async function startEtcd(opts: StartEtcdOptions = {}): Promise<EtcdHandle> {
  const { base, members, pki } = await startMembers(1, opts.tls === true);
  const member = members[0]!;
  let auth: EtcdAuth | undefined;
  try {
    if (opts.auth) auth = await enableAuth(member, pki, opts.auth.prefix);
  } catch (err) {
    await member.kill();
    await removeBaseDir(base);
    throw err;
  }
  return {
    endpoints: [member.endpoint],
    pki,
    auth,
    member,
    kill: () => member.kill(),
    terminate: () => member.terminate(),
    pause: () => member.pause(),
    resume: () => member.resume(),
    restart: () => member.restart(),
    stop: async () => {
      await member.terminate();
      await removeBaseDir(base);
    },
  };
}

export interface EtcdCluster {
  readonly endpoints: string[];
  readonly members: readonly EtcdMember[];
  /** The member the running members agree is leader (waits for an election, bounded). */
  leader(timeoutMs?: number): Promise<EtcdMember>;
  /** Final: stops every member and removes the data dirs. Idempotent. */
  stop(): Promise<void>;
}

export async function startEtcdCluster(size = 3): Promise<EtcdCluster> {
  const { base, members } = await startMembers(size);
  return {
    endpoints: members.map((m) => m.endpoint),
    members,
    async leader(timeoutMs = START_TIMEOUT_MS) {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        const statuses = await Promise.all(
          members.filter((m) => m.running).map(async (m) => ({ member: m, status: await m.status().catch(() => null) })),
        );
        const leaderIds = new Set(statuses.map((s) => s.status?.leaderId).filter((id) => id && id !== '0'));
        if (leaderIds.size === 1) {
          const [leaderId] = leaderIds;
          const leader = statuses.find((s) => s.status?.memberId === leaderId);
          if (leader) return leader.member;
        }
        await sleep(100);
      }
      throw new Error(`no etcd leader after ${timeoutMs} ms`);
    },
    async stop() {
      // Members stopping together wait on each other (leadership transfer): a short grace is enough.
      await Promise.all(members.map((m) => m.terminate(CLUSTER_STOP_GRACE_MS)));
      await removeBaseDir(base);
    },
  };
}

/** One call of etcd's JSON gateway (v3 API over HTTP), over the member's TLS when it has one; fails on any error. */
async function v3(member: EtcdMember, pki: TestPki | undefined, path: string, body: unknown): Promise<unknown> {
  const { status, json } = await httpJson(member.clientPort, 'POST', `/v3/${path}`, JSON.stringify(body), pki, 10_000);
  if (status !== 200) throw new Error(`etcd ${path} failed (${status}): ${JSON.stringify(json)}`);
  return json;
}

const b64 = (s: string) => Buffer.from(s).toString('base64');

/** The end of the key range of everything under `prefix` (its last byte plus one), as etcdctl --prefix makes it. */
function prefixEnd(prefix: string): string {
  const bytes = Buffer.from(prefix);
  bytes[bytes.length - 1]! += 1;
  return bytes.toString('latin1');
}

/** Turns authentication on: root (with the root role) and one user whose role covers only `prefix`. */
async function enableAuth(member: EtcdMember, pki: TestPki | undefined, prefix: string): Promise<EtcdAuth> {
  const auth: EtcdAuth = {
    rootPassword: randomBytes(9).toString('base64url'), user: 'cellgate', password: randomBytes(9).toString('base64url'), prefix,
  };
  // What `etcdctl user add / role add / role grant-permission --prefix / auth enable` send,
  // through etcd's JSON gateway: no etcdctl needed on the machine.
  const keys = `${prefix}/`;
  await v3(member, pki, 'auth/role/add', { name: 'root' });
  await v3(member, pki, 'auth/user/add', { name: 'root', password: auth.rootPassword });
  await v3(member, pki, 'auth/user/grant', { user: 'root', role: 'root' });
  await v3(member, pki, 'auth/role/add', { name: 'cellgate-prefix' });
  await v3(member, pki, 'auth/role/grant', { name: 'cellgate-prefix', perm: { permType: 'READWRITE', key: b64(keys), range_end: Buffer.from(prefixEnd(keys), 'latin1').toString('base64') } });
  await v3(member, pki, 'auth/user/add', { name: auth.user, password: auth.password });
  await v3(member, pki, 'auth/user/grant', { user: auth.user, role: 'cellgate-prefix' });
  await v3(member, pki, 'auth/enable', {});
  return auth;
}
