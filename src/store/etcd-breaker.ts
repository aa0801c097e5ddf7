// A per-member circuit breaker for the etcd3 client, replacing its default one, which
// stops calling a member for 5 s after 3 failures in a row: with a single member that is
// 5 s of blindness after etcd comes back (a gateway's presence record stays missing, a
// watch stays down). Ours opens for `cooldownMs`, so a dead member of a cluster is still
// skipped, but a restarted one is used again within about a second.
import { isRecoverableError, type IOptions } from 'etcd3';

type HostPolicy = ReturnType<NonNullable<NonNullable<IOptions['faultHandling']>['host']>>;

/** Thrown instead of calling a member whose breaker is open: etcd3 then tries the next member. */
export class MemberCoolingDownError extends Error {
  /** `cause`: the member's last failure, which says why (refused, certificate, ...). */
  constructor(host: string, untilMs: number, cause?: unknown) {
    super(`etcd member ${host} failed repeatedly; not called again for ${Math.max(0, untilMs - Date.now())} ms`, { cause });
    this.name = 'MemberCoolingDownError';
  }
}

export function hostBreaker(host: string, opts: { failuresToOpen: number; cooldownMs: number }): HostPolicy {
  let failures = 0;
  let openUntilMs = 0;
  let lastError: unknown;
  const policy = {
    // etcd3 only ever calls execute(); the rest of cockatiel's IPolicy is unused.
    async execute<T>(fn: (context: { signal: AbortSignal }) => PromiseLike<T> | T, signal?: AbortSignal): Promise<T> {
      if (Date.now() < openUntilMs) throw new MemberCoolingDownError(host, openUntilMs, lastError);
      try {
        const result = await fn({ signal: signal ?? new AbortController().signal });
        failures = 0;
        return result;
      } catch (err) {
        lastError = err;
        if (err instanceof Error && isRecoverableError(err) && ++failures >= opts.failuresToOpen) {
          failures = 0;
          openUntilMs = Date.now() + opts.cooldownMs;
        }
        throw err;
      }
    },
  };
  return policy as unknown as HostPolicy;
}
