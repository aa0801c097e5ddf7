// The per-call retry policy of the etcd client. etcd3's default global policy re-sends any
// call that failed with a recoverable error — a transaction too, whose first attempt may
// have committed before its reply was lost. Ours knows what kind of call it runs (the store
// marks each call with runAs): a read is retried on another member, a write is sent once —
// unless its failure proves it was never applied (no connection to send it on, or a member
// without a leader, which refuses before proposing): then it goes to the next member too,
// as a read does. Retries back off so that an election (about a second) can finish. A write
// whose outcome is unknown is re-read and reconciled by the store, explicitly.
import { AsyncLocalStorage } from 'node:async_hooks';
import { GRPCUnavailableError, isRecoverableError, type IOptions } from 'etcd3';

export type CallKind = 'read' | 'write';

type GlobalPolicy = NonNullable<NonNullable<IOptions['faultHandling']>['global']>;

const currentKind = new AsyncLocalStorage<CallKind>();

/** Runs `fn` (which makes etcd calls) as reads or writes; unmarked calls count as writes. */
export function runAs<T>(kind: CallKind, fn: () => T): T {
  return currentKind.run(kind, fn);
}

export interface WritePolicyTestHooks {
  /** The next write commits, but its reply is "lost": it fails as if the connection dropped. */
  loseNextWriteReply?: boolean;
  /** The next write fails as if the connection dropped, before it reached etcd. */
  dropNextWrite?: boolean;
}

const RETRY_BASE_MS = 100;
const RETRY_MAX_MS = 800;

/** An error that proves the call was not applied by etcd (so sending it again cannot apply it twice). */
export function neverApplied(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    if (/no connection established|ECONNREFUSED|etcdserver: no leader/i.test(e.message)) return true;
  }
  return false;
}

export function perCallPolicy(opts: { readAttempts: number; hooks: WritePolicyTestHooks }): GlobalPolicy {
  const policy = {
    // etcd3 only ever calls execute(); each attempt of `fn` picks the next member.
    async execute<T>(fn: (context: { signal: AbortSignal }) => PromiseLike<T> | T, signal?: AbortSignal): Promise<T> {
      const kind = currentKind.getStore() ?? 'write';
      for (let attempt = 1; ; attempt++) {
        try {
          if (kind === 'write' && opts.hooks.dropNextWrite) {
            opts.hooks.dropNextWrite = false;
            throw new GRPCUnavailableError('the connection dropped before the write was sent (test hook)');
          }
          const result = await fn({ signal: signal ?? new AbortController().signal });
          if (kind === 'write' && opts.hooks.loseNextWriteReply) {
            opts.hooks.loseNextWriteReply = false;
            throw new GRPCUnavailableError('the reply was lost (test hook)');
          }
          return result;
        } catch (err) {
          const again = kind === 'read' ? err instanceof Error && isRecoverableError(err) : neverApplied(err);
          if (!again || attempt >= opts.readAttempts || signal?.aborted) throw err;
          await new Promise((resolve) => setTimeout(resolve, Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** (attempt - 1))));
        }
      }
    },
  };
  return policy as unknown as GlobalPolicy;
}
