// registerEndpoint(): a Node service registers itself in cellgate's endpoint registry, the
// library form of `cellgate register`. Published as `cellgate/registry` (package.json
// "exports"). The store is a spec (`etcd:HOST:PORT[,…]`, `file:PATH`) or an open TableStore.
//
//   const handle = await registerEndpoint({ store: 'etcd:etcd-1:2379', zone: 'sh-a', service: 'orders', url: 'http://10.1.2.3:8080' });
//   process.on('SIGTERM', () => handle.close().then(() => server.close()));
//
// Without checkPath the endpoint stays registered while the process lives (its lease is
// kept alive; it goes within ttlMs of a crash); with checkPath, only while GET
// url + checkPath answers 2xx/3xx (checked every checkIntervalMs).
import { hostname } from 'node:os';
import { cgError } from '../errors';
import { checkRegistration } from '../store/endpoint-record';
import { openStore, type OpenStoreOptions } from '../store/open';
import type { EndpointRegistrationRequest, TableStore } from '../store/types';
import { Registrar, type RegistrarState } from './registrar';

export { DEFAULT_ENDPOINT_TTL_MS } from '../store/endpoint-record';
export type { RegisteredEndpoint } from '../store/types';

export interface RegisterEndpointOptions extends Omit<EndpointRegistrationRequest, 'id'> {
  /** `etcd:HOST:PORT[,…]` / `file:PATH`, or a store the caller opened (and closes). */
  readonly store: string | TableStore;
  /** etcd key prefix when `store` is a spec (default /cellgate). */
  readonly prefix?: string;
  /** How a spec is opened (etcd TLS files and user, timeouts; see OpenStoreOptions). */
  readonly storeOptions?: Omit<OpenStoreOptions, 'prefix'>;
  /** Default: hostname-pid. */
  readonly id?: string;
  readonly checkPath?: string;
  /** Default 1000 ms. */
  readonly checkIntervalMs?: number;
  readonly log?: (event: string, fields?: Record<string, unknown>) => void;
  /**
   * Another instance (another URL) took the id while this one did not hold its record (its
   * lease lost, or another registration of its URL held it) (ENDPOINT_TAKEN): this endpoint is
   * no longer registered and will not be again (state `taken`).
   */
  readonly onTaken?: (err: Error) => void;
}

export interface EndpointHandle {
  readonly id: string;
  /** registered, withdrawn while the check fails, or taken (the id went to another instance). */
  readonly state: RegistrarState;
  /** Withdraws the endpoint at once (and closes the store when it was given as a spec). */
  close(): Promise<void>;
}

export const DEFAULT_CHECK_INTERVAL_MS = 1_000;

/**
 * The check is GET url + checkPath on the instance itself: a path (starting with "/"), never a
 * reference that resolves to another host ("//host/x"; "/\host/x", as the URL parser reads "\"
 * as "/"; or with control characters, which it drops), whose 200 would keep a dead instance registered.
 */
function checkCheckPath(checkPath: string, url: string): void {
  const bad = (why: string) => cgError('USAGE', `checkPath must be a path on the instance (${why}), got ${JSON.stringify(checkPath)}`);
  if (!checkPath.startsWith('/')) throw cgError('USAGE', `checkPath must start with "/", got ${JSON.stringify(checkPath)}`);
  if (/[\u0000-\u0020\u007f\\]/.test(checkPath)) throw bad('no spaces, control characters or "\\"');
  if (checkPath.startsWith('//') || new URL(checkPath, url).origin !== new URL(url).origin) throw bad('the instance\'s own host and port');
}

export function defaultEndpointId(): string {
  return `${hostname()}-${process.pid}`;
}

/**
 * Registers the endpoint; resolves once the first check and registration are done. Throws
 * USAGE for bad options; ENDPOINT_TAKEN when another live instance (another URL) holds the
 * id; STORE_UNAVAILABLE when there is no check and the store cannot be reached (with a
 * check, a failed registration is retried at every check instead).
 */
export async function registerEndpoint(options: RegisterEndpointOptions): Promise<EndpointHandle> {
  const checkIntervalMs = options.checkIntervalMs ?? DEFAULT_CHECK_INTERVAL_MS;
  if (!Number.isInteger(checkIntervalMs) || checkIntervalMs < 100) throw cgError('USAGE', `checkIntervalMs must be an integer >= 100, got ${String(checkIntervalMs)}`);
  const { zone, service, url, weight, ttlMs } = options;
  const request = { zone, service, url, weight, ttlMs, id: options.id ?? defaultEndpointId() };
  checkRegistration(request, Date.now()); // bad input fails here, not at every check
  if (options.checkPath !== undefined) checkCheckPath(options.checkPath, url);
  const owned = typeof options.store === 'string';
  const store = typeof options.store === 'string' ? openStore(options.store, { ...options.storeOptions, etcd: { flagHint: 'the store option', ...options.storeOptions?.etcd }, prefix: options.prefix }) : options.store;
  const registrar = new Registrar({
    registry: store.registry, request, checkPath: options.checkPath, checkIntervalMs, log: options.log ?? (() => undefined), onTaken: options.onTaken,
  });
  const closeStore = () => (owned ? store.close() : Promise.resolve());
  try {
    const state = await registrar.start();
    // Another instance's id is the caller's to see, check or not.
    if (state === 'taken') throw registrar.lastError ?? cgError('ENDPOINT_TAKEN', `endpoint ${request.zone}/${request.service}/${request.id} is taken`);
    // No check: the first registration's failure is the caller's to see.
    if (options.checkPath === undefined && state !== 'registered') throw registrar.lastError ?? cgError('STORE_UNAVAILABLE', 'endpoint not registered');
  } catch (err) {
    await registrar.close().catch(() => undefined);
    await closeStore().catch(() => undefined);
    throw err;
  }
  return {
    id: request.id,
    get state() { return registrar.state; },
    close: () => registrar.close().then(closeStore),
  };
}

export type { RegistrarState };
