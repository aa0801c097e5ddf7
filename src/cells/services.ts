// Services per zone: a zone's plain `upstreams` (and `healthPath`) are the service named
// `default`; `services` names the others. Every zone carries every service the table names,
// the ones it does not list with no static endpoints (the endpoint registry may fill them).
import { DEFAULT_SERVICE, type RoutingTable, type ServiceEndpoints, type Zone } from './types';

/** One service of one zone as the gateway serves it: its static endpoints and its probe path. */
export interface ZoneService {
  readonly name: string;
  readonly upstreams: readonly string[];
  /** The service's healthPath, else the zone's, else `/`. */
  readonly healthPath: string;
}

const NO_UPSTREAMS: readonly string[] = Object.freeze([]);

/** The endpoints `zone` lists for `service` (none when it does not list the service). */
export function serviceEndpoints(zone: Zone, service: string): ServiceEndpoints | undefined {
  if (service === DEFAULT_SERVICE) return zone;
  return zone.services?.[service];
}

/** Every service name of the table: `default` first, then the others sorted. */
export function tableServices(table: RoutingTable): string[] {
  const names = new Set<string>();
  for (const z of table.zones) for (const name of Object.keys(z.services ?? {})) names.add(name);
  return [DEFAULT_SERVICE, ...[...names].sort()];
}

/** `zone`'s entry for each of `services` (a service the zone does not list: no static endpoints). */
export function zoneServices(zone: Zone, services: readonly string[]): ZoneService[] {
  return services.map((name) => {
    const listed = serviceEndpoints(zone, name);
    return {
      name,
      upstreams: listed?.upstreams ?? NO_UPSTREAMS,
      healthPath: listed?.healthPath ?? zone.healthPath ?? '/',
    };
  });
}
