// The autopilot's own keys in etcd, next to the table under the store's prefix:
//   PREFIX/autopilot/paused   — the pause flag (JSON {paused, actor, at, reason}); absent = running;
//   PREFIX/autopilot/leader/  — etcd3's Election: one replica leads, the others stand by.
// Only the etcd store has them: the autopilot runs replicas on several hosts, which the file
// store (one host, one directory) cannot serve, so both `cellgate autopilot` and
// `cellctl autopilot` refuse a file store with a clear message (decision: refuse rather than a
// lock-file leader that would only ever elect among processes of one machine).
import { Election, type Campaign, type Etcd3, type Watcher } from 'etcd3';
import { cgError } from '../errors';
import type { TableStore } from '../store/types';

export interface PauseState {
  readonly paused: boolean;
  readonly actor: string | null;
  readonly at: string | null;
  readonly reason: string | null;
}

const RUNNING: PauseState = { paused: false, actor: null, at: null, reason: null };

export interface EtcdHandle {
  readonly client: Etcd3;
  readonly prefix: string;
}

/** The etcd client of `store`, or a USAGE error for a store without one. */
export function etcdOf(store: TableStore): EtcdHandle {
  const handle = (store as { etcd?: EtcdHandle }).etcd;
  if (!handle) {
    throw cgError('USAGE', `the autopilot needs etcd (its leader election and pause flag live there); ${store.description} is a file store, which serves one host only`);
  }
  return handle;
}

export class AutopilotControl {
  private readonly pauseKey: string;

  constructor(private readonly etcd: EtcdHandle) {
    this.pauseKey = `${etcd.prefix}/autopilot/paused`;
  }

  async pauseState(): Promise<PauseState> {
    const text = await this.etcd.client.get(this.pauseKey).string();
    return parsePause(text);
  }

  async setPaused(paused: boolean, actor: string, reason: string): Promise<void> {
    if (!paused) {
      await this.etcd.client.delete().key(this.pauseKey);
      return;
    }
    const state: PauseState = { paused: true, actor, at: new Date().toISOString(), reason };
    await this.etcd.client.put(this.pauseKey).value(JSON.stringify(state));
  }

  /** Calls `onChange` with the flag now and on every change (an etcd watch). */
  async watchPause(onChange: (s: PauseState) => void): Promise<Watcher> {
    const watcher = await this.etcd.client.watch().key(this.pauseKey).create();
    watcher.on('put', (kv) => onChange(parsePause(kv.value.toString())));
    watcher.on('delete', () => onChange(RUNNING));
    onChange(await this.pauseState());
    return watcher;
  }

  /** Campaigns for leadership under a lease of `ttlSeconds` (the standby's take-over delay). */
  campaign(id: string, ttlSeconds: number): Campaign {
    const election = new Election(this.etcd.client.namespace(`${this.etcd.prefix}/autopilot/`), 'leader', ttlSeconds);
    return election.campaign(id);
  }

  /** The current leader's id (null when none). */
  async leader(): Promise<string | null> {
    const election = new Election(this.etcd.client.namespace(`${this.etcd.prefix}/autopilot/`), 'leader');
    return (await election.leader()) ?? null;
  }
}

function parsePause(text: string | null): PauseState {
  if (text === null) return RUNNING;
  try {
    const doc = JSON.parse(text) as Partial<PauseState>;
    return { paused: doc.paused !== false, actor: typeof doc.actor === 'string' ? doc.actor : null, at: typeof doc.at === 'string' ? doc.at : null, reason: typeof doc.reason === 'string' ? doc.reason : null };
  } catch {
    // An unreadable flag is taken as paused: when in doubt, do nothing.
    return { paused: true, actor: null, at: null, reason: 'unreadable pause flag' };
  }
}
