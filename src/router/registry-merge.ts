// The table the gateway routes with: the stored table plus the live endpoint registry. Pure:
// table + registry snapshot → effective table, with the same version and checksum as the
// stored one (instance churn is not a routing change: presence, acknowledgements and
// checksums keep naming the stored table).
//
// A registered endpoint of (zone, service) is appended to that zone's list for the service —
// `upstreams` for `default`, `services[service].upstreams` otherwise (a service the table
// does not list gets a list of its own) — after the static ones, de-duplicated by origin (the endpoint a URL names). It is
// ignored (and counted) when its zone is not in the table, when its URL fails the table's
// URL checks (link-local refused unless the table allows it), or when its zone already has
// MAX_SERVICES_PER_ZONE services (a bound on metric labels and pools).
//
// Zones whose registered endpoints did not change keep their effective Zone object from the
// last merge (RegistryMerger), so their pools and routes are reused, not rebuilt.
import { checkHttpUrl, Problems } from '../cells/check';
import { MAX_SERVICES_PER_ZONE } from '../cells/table';
import { DEFAULT_SERVICE, type ServiceEndpoints, type VersionedTable, type Zone } from '../cells/types';
import { MAX_REGISTERED_ENDPOINTS } from '../store/endpoint-record';
import type { RegisteredEndpoint, RegistrySnapshot } from '../store/types';

// One bound for static and registered services: the table's.
export { MAX_SERVICES_PER_ZONE } from '../cells/table';

/** Why a registered endpoint was not routed to, a fixed list. */
export const IGNORED_REASONS = ['unknown_zone', 'url_refused', 'too_many_services'] as const;
export type IgnoredReason = (typeof IGNORED_REASONS)[number];

export interface MergeResult {
  readonly effective: VersionedTable;
  /** Registered endpoints routed to, by zone then service (duplicates of a static URL included). */
  readonly applied: ReadonlyMap<string, ReadonlyMap<string, number>>;
  readonly ignored: Readonly<Record<IgnoredReason, number>>;
}

/** Registered URLs of one zone, by service, in registry order. */
type ZoneRegistrations = Map<string, string[]>;

export class RegistryMerger {
  /** Last merge: the stored zone, the registrations applied to it, and the effective zone made. */
  private last = new Map<string, { stored: Zone; key: string; effective: Zone }>();
  /** URL check results (`<allowLinkLocal>|<url>`): a change re-merges every record, but parses only new URLs. */
  private readonly urlChecks = new Map<string, boolean>();

  merge(vt: VersionedTable, snapshot: RegistrySnapshot | null): MergeResult {
    const ignored: Record<IgnoredReason, number> = { unknown_zone: 0, url_refused: 0, too_many_services: 0 };
    const applied = new Map<string, Map<string, number>>();
    // Bounded: at most twice the records a gateway accepts, then it starts afresh.
    if (this.urlChecks.size > 2 * MAX_REGISTERED_ENDPOINTS) this.urlChecks.clear();
    const byZone = groupByZone(vt, snapshot?.endpoints ?? [], ignored, applied, this.urlChecks);
    const next = new Map<string, { stored: Zone; key: string; effective: Zone }>();
    let changed = false;
    const zones = vt.table.zones.map((stored) => {
      const regs = byZone.get(stored.name);
      const key = regs ? JSON.stringify([...regs]) : '';
      const old = this.last.get(stored.name);
      const effective = old && old.stored === stored && old.key === key ? old.effective : regs ? withRegistrations(stored, regs) : stored;
      if (effective !== stored) changed = true;
      next.set(stored.name, { stored, key, effective });
      return effective;
    });
    this.last = next;
    const effective = changed ? { ...vt, table: { ...vt.table, zones } } : vt;
    return { effective, applied, ignored };
  }
}

function groupByZone(
  vt: VersionedTable, endpoints: readonly RegisteredEndpoint[], ignored: Record<IgnoredReason, number>, applied: Map<string, Map<string, number>>,
  urlChecks: Map<string, boolean>,
): Map<string, ZoneRegistrations> {
  const zoneNames = new Set(vt.table.zones.map((z) => z.name));
  const allowLinkLocal = vt.table.allowLinkLocal === true;
  const byZone = new Map<string, ZoneRegistrations>();
  for (const e of endpoints) {
    if (!zoneNames.has(e.zone)) {
      ignored.unknown_zone += 1;
      continue;
    }
    const checkKey = `${allowLinkLocal}|${e.url}`;
    let urlOk = urlChecks.get(checkKey);
    if (urlOk === undefined) urlChecks.set(checkKey, (urlOk = checkHttpUrl(new Problems(), e.url, 'url', allowLinkLocal)));
    if (!urlOk) {
      ignored.url_refused += 1;
      continue;
    }
    let services = byZone.get(e.zone);
    if (!services) byZone.set(e.zone, (services = new Map()));
    let urls = services.get(e.service);
    if (!urls) {
      if (services.size >= MAX_SERVICES_PER_ZONE) {
        ignored.too_many_services += 1;
        continue;
      }
      services.set(e.service, (urls = []));
    }
    urls.push(e.url);
    let counts = applied.get(e.zone);
    if (!counts) applied.set(e.zone, (counts = new Map()));
    counts.set(e.service, (counts.get(e.service) ?? 0) + 1);
  }
  return byZone;
}

/** The endpoint a URL names (gateways pool by origin): "http://h:80/" and "http://h" are one. */
function originOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return url;
  }
}

function union(statics: readonly string[], registered: readonly string[]): string[] {
  const seen = new Set(statics.map(originOf));
  const out = [...statics];
  for (const url of registered) {
    const origin = originOf(url);
    if (seen.has(origin)) continue;
    seen.add(origin);
    out.push(url);
  }
  return out;
}

function withRegistrations(zone: Zone, regs: ZoneRegistrations): Zone {
  const services: Record<string, ServiceEndpoints> = { ...(zone.services ?? {}) };
  let upstreams = zone.upstreams;
  for (const [service, urls] of regs) {
    if (service === DEFAULT_SERVICE) {
      upstreams = union(zone.upstreams, urls);
      continue;
    }
    const declared = zone.services?.[service];
    services[service] = { ...declared, upstreams: union(declared?.upstreams ?? [], urls) };
  }
  const hasServices = zone.services !== undefined || [...regs.keys()].some((s) => s !== DEFAULT_SERVICE);
  return { ...zone, upstreams, ...(hasServices ? { services } : {}) };
}
