// Registry records: what an instance asks to register is checked here (bad input is a
// USAGE error before anything is written), and what a store holds under
// `endpoints/<zone>/<service>/<id>` is validated when read back — it is data from another
// process, so a bad record is refused (named and counted), never used and never fatal.
// A gateway accepts at most MAX_REGISTERED_ENDPOINTS records of at most MAX_RECORD_BYTES
// each; the rest are refused too, so a runaway registrar cannot grow a gateway's memory.
import { createHash, randomBytes } from 'node:crypto';
import { checkHttpUrl, checkInteger, checkString, NAME, Problems } from '../cells/check';
import { DEFAULT_SERVICE, type RoutingTable } from '../cells/types';
import { cgError } from '../errors';
import type { EndpointRegistrationRequest, RefusedEndpoint, RegisteredEndpoint, RegistryPriority, RegistrySnapshot } from './types';

export const DEFAULT_ENDPOINT_TTL_MS = 5_000;
export const MIN_ENDPOINT_TTL_MS = 1_000;
export const MAX_ENDPOINT_TTL_MS = 3_600_000;
export const DEFAULT_ENDPOINT_WEIGHT = 1;
export const MAX_ENDPOINT_WEIGHT = 100;
/** Ids are free text up to this length (the key encodes them). */
export const MAX_ENDPOINT_ID_LENGTH = 200;
/** Records a gateway accepts in all; the rest are refused (counted). */
export const MAX_REGISTERED_ENDPOINTS = 10_000;
/** Bytes of one stored record (a URL, a weight, a time: well under this). */
export const MAX_RECORD_BYTES = 2_048;
/** Refused records listed by name in a snapshot (all are counted). */
export const MAX_REFUSED_LISTED = 20;

/** The stored document (zone, service and id are its key). */
export interface EndpointDocument {
  readonly url: string;
  readonly weight: number;
  readonly registeredAt: string;
  /** Random per registration: tells a registrar its own record from another's (absent from older records). */
  readonly instance?: string;
}

export interface CheckedRequest {
  readonly endpoint: RegisteredEndpoint;
  readonly ttlMs: number;
}

/** Validates a registration; throws USAGE naming every bad field. */
export function checkRegistration(req: EndpointRegistrationRequest, now: number): CheckedRequest {
  const p = new Problems();
  checkString(p, req.zone, 'zone', NAME);
  checkString(p, req.service, 'service', NAME);
  if (checkString(p, req.id, 'id') && req.id.length > MAX_ENDPOINT_ID_LENGTH) p.add('id', `must be at most ${MAX_ENDPOINT_ID_LENGTH} characters`);
  // Link-local addresses are syntax here; whether a table allows them is the gateway's call.
  checkHttpUrl(p, req.url, 'url', true);
  const weight = req.weight ?? DEFAULT_ENDPOINT_WEIGHT;
  checkInteger(p, weight, 'weight', 1, MAX_ENDPOINT_WEIGHT);
  const ttlMs = req.ttlMs ?? DEFAULT_ENDPOINT_TTL_MS;
  checkInteger(p, ttlMs, 'ttlMs', MIN_ENDPOINT_TTL_MS, MAX_ENDPOINT_TTL_MS);
  if (!p.empty) throw cgError('USAGE', `bad endpoint registration: ${p.summary()}`);
  const endpoint = { zone: req.zone, service: req.service, id: req.id, url: req.url, weight, registeredAt: new Date(now).toISOString() };
  return { endpoint, ttlMs };
}

export function documentOf(e: RegisteredEndpoint, instance?: string): EndpointDocument {
  return { url: e.url, weight: e.weight, registeredAt: e.registeredAt, ...(instance === undefined ? {} : { instance }) };
}

/** A registration's token (16 hex digits): its records carry it. */
export function newInstanceToken(): string {
  return randomBytes(8).toString('hex');
}

/** The endpoint a URL names (gateways pool by origin): "http://h:80/" and "http://h" are one. */
export function originOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return url;
  }
}

/**
 * `register`: a new registration, which may take over the record of the same instance
 * restarted (the same URL: Nacos's ip:port identity — whoever holds it, traffic for that URL
 * goes to that instance) but not another instance's. `reclaim`: the registration putting
 * its own record again after its lease was lost, which only its own record (its token) or
 * none may be in the way of: anything else is someone who took the id meanwhile.
 */
export type ClaimMode = 'register' | 'reclaim';

/** A registration: its endpoint and its token. */
export interface Claimant {
  readonly endpoint: RegisteredEndpoint;
  readonly instance: string;
}

/**
 * Who holds the stored record `existing` (its text), seen from `mine`: `mine` (its token),
 * `same-url` (another registration of the same endpoint: the same instance restarted, or a
 * second registrar of it; either routes to the same place), `other` (another instance),
 * `invalid` (fails validation: routes nowhere, may be replaced).
 */
export type Holder = { readonly kind: 'mine' | 'same-url' | 'invalid' } | { readonly kind: 'other'; readonly url: string };

export function holderOf(key: string, existing: string, mine: Claimant): Holder {
  const decoded = decodeEndpoint(key, existing);
  if (!decoded.ok) return { kind: 'invalid' };
  let instance: unknown;
  try {
    instance = (JSON.parse(existing) as { instance?: unknown }).instance;
  } catch { /* decoded, so JSON */ }
  if (instance === mine.instance) return { kind: 'mine' };
  const url = decoded.endpoint.url;
  return originOf(url) === originOf(mine.endpoint.url) ? { kind: 'same-url' } : { kind: 'other', url };
}

/** claimRefusal's answer when the record must be left alone but the id is not taken. */
export const YIELD = 'yield';

/**
 * May `mine` be written over the stored record `existing` (its text)? null if so; YIELD for a
 * re-put (`reclaim`) that finds another registration of the same URL holding it (it routes
 * to the same place: left alone, not fought over, and not "taken" either); else the
 * ENDPOINT_TAKEN error naming the holder. A record that fails validation routes nowhere
 * and may be replaced.
 */
export function claimRefusal(key: string, existing: string, mine: Claimant, mode: ClaimMode): Error | typeof YIELD | null {
  const holder = holderOf(key, existing, mine);
  switch (holder.kind) {
    case 'mine':
    case 'invalid':
      return null;
    case 'same-url':
      return mode === 'register' ? null : YIELD;
    case 'other':
      return endpointTaken(mine.endpoint, holder.url, mode);
    default: {
      const never: never = holder;
      throw new Error(`unknown holder ${JSON.stringify(never)}`);
    }
  }
}

export function endpointTaken(e: RegisteredEndpoint, holderUrl: string, mode: ClaimMode): Error {
  const name = `${e.zone}/${e.service}/${JSON.stringify(e.id)}`;
  const message = mode === 'register'
    ? `endpoint ${name} is registered by another live instance at ${holderUrl}; not registering ${e.url} (give this instance another --id, or stop that one)`
    : `endpoint ${name} was taken by another instance at ${holderUrl} while this one (${e.url}) did not hold its record (lease lost, or its record withdrawn by another registration of its URL); no longer registered`;
  return cgError('ENDPOINT_TAKEN', message, { detail: { zone: e.zone, service: e.service, id: e.id, url: e.url, holder: holderUrl } });
}

/** `<zone>/<service>/<id, URI-encoded>`: the key under the store's `endpoints/`. */
export function endpointKey(e: { zone: string; service: string; id: string }): string {
  return `${e.zone}/${e.service}/${encodeURIComponent(e.id)}`;
}

export type DecodedEndpoint = { readonly ok: true; readonly endpoint: RegisteredEndpoint } | { readonly ok: false; readonly refused: RefusedEndpoint };

/** Validates one stored record; `key` is its key below `endpoints/`. */
export function decodeEndpoint(key: string, text: string): DecodedEndpoint {
  const bad = (problem: string): DecodedEndpoint => ({ ok: false, refused: { key, problem } });
  // Bytes, not UTF-16 units (a unit is up to 3 UTF-8 bytes); more units than the bound are more bytes too.
  if (text.length > MAX_RECORD_BYTES || Buffer.byteLength(text) > MAX_RECORD_BYTES) return bad(`record is larger than ${MAX_RECORD_BYTES} bytes`);
  const parts = key.split('/');
  if (parts.length !== 3) return bad('key is not <zone>/<service>/<id>');
  let id: string;
  try {
    id = decodeURIComponent(parts[2]!);
  } catch {
    return bad('id is not URI-encoded');
  }
  // One spelling per id (registrations write encodeURIComponent's): another (`%61` for `a`)
  // would be a second record of the id, beside the key the registration guard reads.
  if (encodeURIComponent(id) !== parts[2]) return bad("not the id's own key (the id is spelled as encodeURIComponent spells it)");
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return bad('not JSON');
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) return bad('not a JSON object');
  const d = doc as Record<string, unknown>;
  const p = new Problems();
  checkString(p, parts[0], 'zone', NAME);
  checkString(p, parts[1], 'service', NAME);
  if (id.length === 0 || id.length > MAX_ENDPOINT_ID_LENGTH) p.add('id', `must be 1-${MAX_ENDPOINT_ID_LENGTH} characters`);
  checkHttpUrl(p, d.url, 'url', true);
  checkInteger(p, d.weight, 'weight', 1, MAX_ENDPOINT_WEIGHT);
  if (typeof d.registeredAt !== 'string' || Number.isNaN(Date.parse(d.registeredAt))) p.add('registeredAt', 'must be an ISO time');
  if (!p.empty) return bad(p.summary());
  return {
    ok: true,
    endpoint: { zone: parts[0]!, service: parts[1]!, id, url: d.url as string, weight: d.weight as number, registeredAt: d.registeredAt as string },
  };
}

/**
 * The snapshot of decoded records: sorted, bounded, refused ones counted. Over the bound,
 * the records kept are the first by `priority` (then by key, the same on every gateway): a
 * flood under zones or services the reader does not route to cannot push out those it does.
 */
export function registrySnapshotOf(decoded: Iterable<DecodedEndpoint>, version: number, priority?: RegistryPriority): RegistrySnapshot {
  let endpoints: RegisteredEndpoint[] = [];
  const refused: RefusedEndpoint[] = [];
  let refusedCount = 0;
  const refuse = (r: RefusedEndpoint) => {
    refusedCount += 1;
    if (refused.length < MAX_REFUSED_LISTED) refused.push(r);
  };
  for (const d of decoded) {
    if (!d.ok) refuse(d.refused);
    else endpoints.push(d.endpoint);
  }
  let overLimitCount = 0;
  if (endpoints.length > MAX_REGISTERED_ENDPOINTS) {
    const rank = priority ?? (() => 0);
    const ranked = endpoints.map((e) => ({ e, r: rank(e.zone, e.service) }));
    ranked.sort((a, b) => a.r - b.r || compareEndpoints(a.e, b.e));
    endpoints = ranked.slice(0, MAX_REGISTERED_ENDPOINTS).map((x) => x.e);
    for (const { e } of ranked.slice(MAX_REGISTERED_ENDPOINTS)) refuse({ key: endpointKey(e), problem: overLimitProblem() });
    overLimitCount = ranked.length - MAX_REGISTERED_ENDPOINTS;
  }
  endpoints.sort(compareEndpoints);
  refused.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return { endpoints, refused, refusedCount, overLimitCount, version };
}

/**
 * A reader's priority from the table it routes with: 0 for a zone and service of the table
 * (default included), 1 for another service of one of its zones, 2 for any other zone; and
 * a key that changes only when those names do.
 */
export function registryPriorityOf(table: RoutingTable): { key: string; priority: RegistryPriority } {
  const zones = new Map(table.zones.map((z) => [z.name, new Set([DEFAULT_SERVICE, ...Object.keys(z.services ?? {})])]));
  const key = JSON.stringify([...zones].map(([zone, services]) => [zone, [...services].sort()]).sort());
  const priority: RegistryPriority = (zone, service) => {
    const services = zones.get(zone);
    return services === undefined ? 2 : services.has(service) ? 0 : 1;
  };
  return { key, priority };
}

export function overLimitProblem(): string {
  return `over the limit of ${MAX_REGISTERED_ENDPOINTS} registered endpoints`;
}

const byCodeUnits = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** Code-unit order (not localeCompare, several times slower on a 500-record snapshot): the same on every gateway. */
function compareEndpoints(a: RegisteredEndpoint, b: RegisteredEndpoint): number {
  return byCodeUnits(a.zone, b.zone) || byCodeUnits(a.service, b.service) || byCodeUnits(a.id, b.id);
}

/** Snapshots are immutable: the watch's change key and the gateway's digest share one hash. */
const checksums = new WeakMap<RegistrySnapshot, string>();

/** What the gateway routes with of a snapshot: equal on two gateways = same registry (registeredAt and version aside). */
export function registryChecksum(s: RegistrySnapshot): string {
  let sum = checksums.get(s);
  if (sum === undefined) {
    const h = createHash('sha256');
    for (const e of s.endpoints) h.update(`${e.zone}\n${e.service}\n${e.id}\n${e.url}\n${e.weight}\n`);
    checksums.set(s, (sum = `sha256:${h.digest('hex').slice(0, 16)}`));
  }
  return sum;
}

/** A key for "did the registry change?" (a new version alone is no change). */
export function registrySnapshotKey(s: RegistrySnapshot): string {
  return `${registryChecksum(s)}|${s.refusedCount}|${s.endpoints.map((e) => e.registeredAt).join(',')}`;
}
