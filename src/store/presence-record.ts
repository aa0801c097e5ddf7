// Reading presence records back: what a store holds under a gateway's key is data from
// another process (or a hand edit), so it is validated before anything trusts it. A record
// that fails is reported as malformed, with the problem, under the gateway's name — it
// proves nothing about what that gateway applied (cellctl counts it as not converged).
import type { MalformedPresence, PresenceRecord, PresenceSnapshot } from './types';

type Check = (v: unknown) => boolean;

const isString: Check = (v) => typeof v === 'string';
const isCount: Check = (v) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const FIELDS: readonly (readonly [keyof PresenceRecord, Check, string])[] = [
  ['id', (v) => isString(v) && (v as string).length > 0 && (v as string).length <= 200, 'a string of 1-200 characters'],
  ['zone', (v) => v === null || isString(v), 'a zone name or null'],
  ['appliedVersion', isCount, 'an integer >= 0'],
  ['checksum', isString, 'a string'],
  ['inFlight', isCount, 'an integer >= 0'],
  ['startedAt', isString, 'a time'],
  ['updatedAt', isString, 'a time'],
  ['pid', isCount, 'an integer >= 0'],
  ['host', isString, 'a string'],
];

const MAX_ZONES = 1000;
const isTimeOrNull: Check = (v) => v === null || (isString(v) && !Number.isNaN(Date.parse(v as string)));

/** The optional zoneHealth field: zone name -> {healthy, failingSince, lastOk, endpointsUp, endpointsTotal}. */
function zoneHealthProblem(v: unknown): string | null {
  if (v === undefined) return null;
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return 'zoneHealth is not an object of zone reports';
  const entries = Object.entries(v as Record<string, unknown>);
  if (entries.length > MAX_ZONES) return `zoneHealth has more than ${MAX_ZONES} zones`;
  for (const [zone, r] of entries) {
    if (r === null || typeof r !== 'object' || Array.isArray(r)) return `zoneHealth.${zone} is not an object`;
    const h = r as Record<string, unknown>;
    if (typeof h.healthy !== 'boolean') return `zoneHealth.${zone}.healthy is not true or false`;
    if (!isTimeOrNull(h.failingSince)) return `zoneHealth.${zone}.failingSince is not a time or null`;
    if (!isTimeOrNull(h.lastOk)) return `zoneHealth.${zone}.lastOk is not a time or null`;
    if (!isCount(h.endpointsUp) || !isCount(h.endpointsTotal) || (h.endpointsUp as number) > (h.endpointsTotal as number)) {
      return `zoneHealth.${zone} endpointsUp/endpointsTotal are not counts with up <= total`;
    }
  }
  return null;
}

/** The optional registry digest: {count, version, checksum}. */
function registryProblem(v: unknown): string | null {
  if (v === undefined) return null;
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return 'registry is not an object';
  const r = v as Record<string, unknown>;
  if (!isCount(r.count) || !isCount(r.version)) return 'registry.count/version are not integers >= 0';
  if (!isString(r.checksum) || (r.checksum as string).length > 100) return 'registry.checksum is not a short string';
  return null;
}

export type DecodedPresence = { readonly ok: true; readonly record: PresenceRecord } | { readonly ok: false; readonly malformed: MalformedPresence };

/** Validates one stored record; `keyId` names it when its own id cannot be trusted. */
export function decodePresence(raw: unknown, keyId: string): DecodedPresence {
  const bad = (problem: string): DecodedPresence => ({ ok: false, malformed: { id: keyId, problem } });
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return bad('not a JSON object');
  const doc = raw as Record<string, unknown>;
  const problems = FIELDS.filter(([key, check]) => !check(doc[key])).map(([key, , want]) => `${key} ${key in doc ? 'is not' : 'missing, expected'} ${want}`);
  const zh = zoneHealthProblem(doc.zoneHealth);
  if (zh) problems.push(zh);
  const reg = registryProblem(doc.registry);
  if (reg) problems.push(reg);
  if (doc.relay !== undefined && !(isString(doc.relay) && (doc.relay as string).length > 0 && (doc.relay as string).length <= 200)) problems.push('relay is not a string of 1-200 characters');
  if (problems.length) return bad(problems.join('; '));
  if (doc.id !== keyId) return bad(`id ${JSON.stringify(doc.id)} does not match its key (${JSON.stringify(keyId)})`);
  return { ok: true, record: raw as PresenceRecord };
}

/** Parses and validates the JSON text stored for a gateway. */
export function decodePresenceText(text: string, keyId: string): DecodedPresence {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { ok: false, malformed: { id: keyId, problem: 'not JSON' } };
  }
  return decodePresence(raw, keyId);
}

/**
 * A gateway's record can exist twice for a while: its own and one a presence relay wrote (it
 * fell back to its own when the relay failed, or went back to the relay). The newer counts:
 * the higher applied version, then the later update.
 */
function newer(a: PresenceRecord, b: PresenceRecord): PresenceRecord {
  if (a.appliedVersion !== b.appliedVersion) return a.appliedVersion > b.appliedVersion ? a : b;
  return Date.parse(b.updatedAt) > Date.parse(a.updatedAt) ? b : a;
}

export function snapshotOf(decoded: readonly (DecodedPresence | null)[]): PresenceSnapshot {
  const byId = new Map<string, PresenceRecord>();
  const malformed: MalformedPresence[] = [];
  for (const d of decoded) {
    if (d === null) continue;
    if (!d.ok) malformed.push(d.malformed);
    else {
      const held = byId.get(d.record.id);
      byId.set(d.record.id, held ? newer(held, d.record) : d.record);
    }
  }
  const records = [...byId.values()];
  records.sort((a, b) => a.id.localeCompare(b.id));
  malformed.sort((a, b) => a.id.localeCompare(b.id));
  return { records, malformed };
}

/** A stable key for "did the set of live gateways change?" (snapshots are delivered only on change). */
export function snapshotKey(s: PresenceSnapshot): string {
  return JSON.stringify([s.records.map((r) => [r.id, r.appliedVersion, r.checksum, r.zone, r.zoneHealth ?? null]), s.malformed]);
}
