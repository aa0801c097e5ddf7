// What the live gateways say about one zone (pure). A gateway is a witness against zone Z
// when it reports Z unhealthy AND still sees some other zone healthy: a gateway that lost its
// own network sees every zone fail and proves nothing about Z. Gateways without a report of
// Z (older versions, just started) are still counted as live, so they weigh against acting:
// when in doubt, do nothing (no false alarms).
import type { PresenceRecord } from '../store/types';

export interface Witness {
  readonly id: string;
  readonly zone: string | null;
  /** When this gateway began to see the zone fail (its own clock, ISO). */
  readonly failingSince: string | null;
}

export interface ZoneEvidence {
  readonly zone: string;
  /** Live gateways with a valid presence record. */
  readonly live: number;
  /** Gateways reporting the zone unhealthy (witnesses or not). */
  readonly unhealthy: number;
  /** Gateways reporting it healthy. */
  readonly healthy: number;
  readonly witnesses: readonly Witness[];
  /** Distinct zones the witnesses stand in (null zones not counted). */
  readonly witnessZones: readonly string[];
  /** The down rule holds: strict majority of live gateways are witnesses, from 2+ zones or all of them. */
  readonly down: boolean;
  /** The up rule holds (failback): a strict majority of live gateways report it healthy. */
  readonly up: boolean;
}

function seesAnotherZoneHealthy(r: PresenceRecord, zone: string): boolean {
  return Object.entries(r.zoneHealth ?? {}).some(([z, h]) => z !== zone && h.healthy);
}

export function zoneEvidence(zone: string, records: readonly PresenceRecord[]): ZoneEvidence {
  const live = records.length;
  const reports = records.map((r) => ({ r, h: r.zoneHealth?.[zone] })).filter((x) => x.h !== undefined);
  const unhealthy = reports.filter((x) => !x.h!.healthy);
  const healthy = reports.length - unhealthy.length;
  const witnesses = unhealthy
    .filter((x) => seesAnotherZoneHealthy(x.r, zone))
    .map(({ r, h }) => ({ id: r.id, zone: r.zone, failingSince: h!.failingSince }));
  const witnessZones = [...new Set(witnesses.map((w) => w.zone).filter((z): z is string => z !== null))].sort();
  const majority = live > 0 && witnesses.length * 2 > live;
  const spread = witnessZones.length >= 2 || witnesses.length === live;
  return {
    zone, live, unhealthy: unhealthy.length, healthy, witnesses, witnessZones,
    down: majority && spread,
    up: live > 0 && healthy * 2 > live,
  };
}

/** The evidence as text for the change's reason: which gateways, since when. */
export function evidenceText(e: ZoneEvidence): string {
  const who = e.witnesses.map((w) => `${w.id}${w.zone ? `@${w.zone}` : ''} since ${w.failingSince ?? '?'}`).join(', ');
  return `${e.witnesses.length} of ${e.live} live gateways (zones ${e.witnessZones.join(', ') || '-'}) see ${e.zone} unhealthy: ${who}`;
}
