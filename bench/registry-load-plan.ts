// What `npm run bench registry-load` (bench/registry-load.ts) sets up, as pure data: a table of
// 8 zones × 4 services with one static endpoint per (zone, service), the gateway's routes (one
// per service), the 500 registered endpoints spread over the 32 (zone, service) pairs, and
// the loopback addresses the upstream listens on so that every one of those URLs reaches it.
// Every URL is a distinct origin (the merge de-duplicates by origin) on 127.0.0.0/8: Linux
// delivers any 127.x address on loopback, and the upstream binds each address it serves.

import { usersScript } from './wrk';

export const ZONES = ['sh-a', 'sh-b', 'hz-a', 'hz-b', 'sz-a', 'sz-b', 'bj-a', 'bj-b'] as const;
export const SERVICES = ['default', 'orders', 'payments', 'users'] as const;

/** Path prefix → service; `stripPrefix` alternates so both ways of sending the path are loaded. */
export const ROUTES = [
  { prefix: '/', service: 'default', stripPrefix: false },
  { prefix: '/orders/', service: 'orders', stripPrefix: false },
  { prefix: '/payments/', service: 'payments', stripPrefix: true },
  { prefix: '/users/', service: 'users', stripPrefix: true },
] as const;

/** Registered endpoints listen on 127.0.1.1 … 127.0.1.<REGISTERED_HOSTS>, each on every port. */
export const REGISTERED_HOSTS = 125;
/** Ports every upstream address listens on (registered: one per endpoint; static: one per service). */
export const PORTS_PER_HOST = 4;
export const DEFAULT_REGISTERED = REGISTERED_HOSTS * PORTS_PER_HOST;

export interface PlannedEndpoint {
  readonly id: string;
  readonly zone: string;
  readonly service: string;
  readonly url: string;
}

/** Static endpoint of (zone i, service j): 127.0.2.(i+1), the service's port. */
export function staticUrl(zoneIndex: number, serviceIndex: number, ports: readonly number[]): string {
  return `http://127.0.2.${zoneIndex + 1}:${ports[serviceIndex]}`;
}

/**
 * `count` (≤ 500) registered endpoints: n's zone is n mod 8 and its service ⌊n/8⌋ mod 4, so
 * the 32 pairs get 15 or 16 each; its URL is 127.0.1.(⌊n/4⌋+1) on port n mod 4.
 */
export function registeredEndpoints(count: number, ports: readonly number[]): PlannedEndpoint[] {
  if (!Number.isInteger(count) || count < 0 || count > DEFAULT_REGISTERED) throw new Error(`endpoints must be an integer in [0, ${DEFAULT_REGISTERED}]`);
  if (ports.length !== PORTS_PER_HOST) throw new Error(`need ${PORTS_PER_HOST} ports`);
  return Array.from({ length: count }, (_, n) => ({
    id: `bench-load-${n}`,
    zone: ZONES[n % ZONES.length]!,
    service: SERVICES[Math.floor(n / ZONES.length) % SERVICES.length]!,
    url: `http://127.0.1.${Math.floor(n / PORTS_PER_HOST) + 1}:${ports[n % PORTS_PER_HOST]}`,
  }));
}

/** Addresses 127.0.3.x of the endpoints added and withdrawn in the change-latency runs. */
export const CHURN_HOSTS = 10;

/** An extra endpoint for the change-latency runs (127.0.3.x, not among the 500). */
export function churnEndpoint(k: number, ports: readonly number[]): PlannedEndpoint {
  return { id: `bench-churn-${k}`, zone: 'sh-a', service: 'orders', url: `http://127.0.3.${(k % CHURN_HOSTS) + 1}:${ports[0]}` };
}

/** Every address:port the upstream must listen on. */
export function upstreamListens(ports: readonly number[]): string[] {
  const hosts = [
    ...Array.from({ length: REGISTERED_HOSTS }, (_, i) => `127.0.1.${i + 1}`),
    ...ZONES.map((_, i) => `127.0.2.${i + 1}`),
    ...Array.from({ length: CHURN_HOSTS }, (_, i) => `127.0.3.${i + 1}`),
  ];
  return hosts.flatMap((h) => ports.map((p) => `${h}:${p}`));
}

/**
 * The table: 8 zones in 4 cities, 64 cells, each zone's 4 services with one static endpoint
 * each, plus `extra` endpoints listed statically (the bench's `--baseline static`: the same
 * endpoints as B's registered ones, written into the table instead).
 */
export function loadTopology(ports: readonly number[], extra: readonly PlannedEndpoint[] = []): string {
  const urls = (zone: string, serviceIndex: number, zoneIndex: number): string => [
    staticUrl(zoneIndex, serviceIndex, ports),
    ...extra.filter((e) => e.zone === zone && e.service === SERVICES[serviceIndex]).map((e) => e.url),
  ].map((u) => `"${u}"`).join(', ');
  const zones = ZONES.map((zone, i) => {
    const services = SERVICES.slice(1).map((s, j) => `${s}: { upstreams: [${urls(zone, j + 1, i)}] }`).join(', ');
    return `  - { name: ${zone}, region: r${Math.floor(i / 4)}, city: c${Math.floor(i / 2)}, capacity: 100, upstreams: [${urls(zone, 0, i)}], services: { ${services} } }`;
  });
  return `name: registry-load-bench\ncells: 64\nglobal: sh-a\nzones:\n${zones.join('\n')}\n`;
}

/** The gateway's config file (store, prefix, ports and id come as flags); probeIntervalMs null: the default (1 s). */
export function gatewayConfig(probeIntervalMs: number | null = null): string {
  const routes = ROUTES.map((r) => `  - { prefix: ${r.prefix}, class: unit, service: ${r.service}, stripPrefix: ${r.stripPrefix} }`);
  const probe = probeIntervalMs === null ? '' : `probe: { intervalMs: ${probeIntervalMs} }\n`;
  return `snapshotPath: false\nlogLevel: info\n${probe}routes:\n${routes.join('\n')}\n`;
}

/** wrk Lua: `users` distinct ids (those of userPool), request i to the route prefixes in turn. */
export function loadScript(users: number): string {
  return usersScript(users, ROUTES.map((r) => `${r.prefix}items`));
}
