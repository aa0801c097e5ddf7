// Keeps one endpoint registered while its instance is healthy: the loop behind
// `cellgate register` and registerEndpoint({checkPath}). Every checkIntervalMs it GETs the
// instance's URL + checkPath (2xx/3xx passes, like an nginx/HAProxy httpchk): a pass
// registers the endpoint if it is not (again after a failure), a failure withdraws it at
// once. Without a checkPath the instance is taken as healthy. A registration that fails
// (the store is unreachable) is tried again at the next tick; a lease lost while registered
// is re-granted by the store itself. close() withdraws at once and stops the loop.
//
// An id held by another live instance (ENDPOINT_TAKEN: at a registration, or reported by the
// store when the id was taken while the lease was lost) ends the loop in state `taken`: two
// instances under one id is a configuration error, not something to retry or fight over.
import { isCellgateError } from '../errors';
import type { EndpointRegistration, EndpointRegistrationRequest, EndpointRegistry } from '../store/types';

export type RegistrarState = 'starting' | 'registered' | 'withdrawn' | 'taken' | 'closed';

export interface RegistrarOptions {
  readonly registry: EndpointRegistry;
  readonly request: EndpointRegistrationRequest & { readonly id: string };
  /** Path GET on the instance (e.g. /healthz); none = always healthy. */
  readonly checkPath?: string;
  readonly checkIntervalMs: number;
  readonly log: (event: string, fields?: Record<string, unknown>) => void;
  /** The id went to another instance (state `taken`): nothing more is registered. */
  readonly onTaken?: (err: Error) => void;
}

/** One health check: GET url+path, bounded by `timeoutMs`; 2xx/3xx passes. Returns null or why it failed. */
export async function checkOnce(url: string, path: string, timeoutMs: number): Promise<string | null> {
  try {
    const res = await fetch(new URL(path, url), { method: 'GET', redirect: 'manual', signal: AbortSignal.timeout(timeoutMs) });
    await res.body?.cancel().catch(() => undefined);
    return res.status >= 200 && res.status < 400 ? null : `answered ${res.status}`;
  } catch (err) {
    const e = err as Error & { cause?: { code?: string } };
    return e.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : `${e.cause?.code ?? e.message}`;
  }
}

/** The check's bound: its interval, but at least 1 s (a loaded instance is not a dead one) and at most 2 s. */
export function checkTimeoutMs(checkIntervalMs: number): number {
  return Math.min(2_000, Math.max(1_000, checkIntervalMs));
}

export class Registrar {
  private registration: EndpointRegistration | null = null;
  private stateNow: RegistrarState = 'starting';
  private timer: NodeJS.Timeout | null = null;
  private ticking: Promise<void> = Promise.resolve();
  /** Why the last registration attempt failed (null once one succeeds). */
  lastError: Error | null = null;

  constructor(private readonly o: RegistrarOptions) {}

  get state(): RegistrarState {
    return this.stateNow;
  }

  /** Runs the first check (and registration); resolves when it is done, whatever its outcome. */
  async start(): Promise<RegistrarState> {
    await this.tick();
    return this.stateNow;
  }

  /** Withdraws the endpoint at once and stops checking. */
  async close(): Promise<void> {
    if (this.stateNow === 'closed') return;
    this.stateNow = 'closed';
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    // A check under way finishes first (it sees 'closed' and schedules nothing more).
    await this.ticking;
    await this.withdraw('closed');
  }

  private tick(): Promise<void> {
    this.ticking = this.runCheck().finally(() => {
      if (this.stateNow !== 'closed' && this.stateNow !== 'taken') this.timer = setTimeout(() => void this.tick(), this.o.checkIntervalMs);
    });
    return this.ticking;
  }

  /** Someone else holds the id: stop for good, say so once. */
  private giveUp(err: Error): void {
    if (this.stateNow === 'closed' || this.stateNow === 'taken') return;
    this.stateNow = 'taken';
    this.registration = null;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.lastError = err;
    this.o.log('register.taken', { zone: this.o.request.zone, service: this.o.request.service, id: this.o.request.id, error: err.message });
    this.o.onTaken?.(err);
  }

  private async runCheck(): Promise<void> {
    const { request, checkPath, checkIntervalMs } = this.o;
    const failed = checkPath ? await checkOnce(request.url, checkPath, checkTimeoutMs(checkIntervalMs)) : null;
    if (this.stateNow === 'closed' || this.stateNow === 'taken') return;
    if (failed !== null) {
      if (this.registration || this.stateNow === 'starting') this.o.log('register.check_failed', { url: request.url, checkPath, why: failed });
      await this.withdraw('check failed');
      // close() may have come while withdrawing: 'closed' stays, and no check is scheduled.
      if ((this.stateNow as RegistrarState) !== 'closed' && (this.stateNow as RegistrarState) !== 'taken') this.stateNow = 'withdrawn';
      return;
    }
    if (this.registration) return;
    try {
      const registration = await this.o.registry.register(request);
      this.registration = registration;
      // close() may have come while registering: withdraw what it could not see.
      if ((this.stateNow as RegistrarState) === 'closed') return void (await this.withdraw('closed'));
      void registration.taken.then((err) => {
        if (this.registration === registration) this.giveUp(err);
      });
      this.stateNow = 'registered';
      this.lastError = null;
      this.o.log('register.registered', { zone: request.zone, service: request.service, id: request.id, url: request.url });
    } catch (err) {
      if (isCellgateError(err, 'ENDPOINT_TAKEN')) return this.giveUp(err);
      this.lastError = err as Error;
      this.o.log('register.register_failed', { error: (err as Error).message });
    }
  }

  private async withdraw(why: string): Promise<void> {
    const reg = this.registration;
    this.registration = null;
    if (!reg) return;
    try {
      await reg.close();
      this.o.log('register.withdrawn', { id: this.o.request.id, why });
    } catch (err) {
      this.o.log('register.withdraw_failed', { id: this.o.request.id, why, error: (err as Error).message });
    }
  }
}
