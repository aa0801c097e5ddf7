// Validation of a routing-table document (what the stores hold). A document that fails is
// never applied: callers keep their last good table. Errors name the path of every bad key.
import { cgError } from '../errors';
import { tableChecksum } from './checksum';
import {
  NAME, Problems, checkHttpUrl, checkInteger, checkNumber, checkObject, checkOneOf, checkString, checkUnique,
  deepFreeze, describe, isRecord, join,
} from './check';
import { RING_RANGE } from './ring-layout';
import { DEFAULT_SERVICE, GLOBAL_CELL, type RoutingTable, type VersionedTable } from './types';

export const ZONE_STATUSES = ['up', 'draining', 'down'] as const;
export const CELL_STATES = ['active', 'frozen'] as const;
const ZONE_KEYS = ['name', 'region', 'city', 'capacity', 'upstreams', 'status', 'healthPath', 'services', 'elastic'] as const;
const SERVICE_KEYS = ['upstreams', 'healthPath'] as const;
const NAMED_ZONE_KEYS = ['name', 'region', 'city'] as const;
/** A zone's probe path: absolute, no query/fragment/whitespace, bounded. */
const HEALTH_PATH = /^\/[^\s?#]{0,1023}$/;
/** Most services one zone lists: service names are metric label values, which stay bounded. */
export const MAX_SERVICES_PER_ZONE = 256;
const CELL_KEYS = ['name', 'home', 'zone', 'epoch', 'state', 'frozenUntilMs', 'movingTo'] as const;
const TABLE_KEYS = ['format', 'name', 'ring', 'zones', 'cells', 'global', 'overrides', 'epochHighWater', 'allowLinkLocal'] as const;
/** Longest accepted user id (the gateway refuses longer ones too). */
export const MAX_USER_ID_LENGTH = 256;

/**
 * Checks one zone entry; shared with the topology validator, where `status` and the lists of
 * upstreams may be absent (`inTable` false). A list may be empty: a zone (or one of its
 * services) may have no static endpoints and get them from the endpoint registry.
 */
export function checkZone(p: Problems, z: unknown, path: string, inTable: boolean, allowLinkLocal = false): void {
  if (!checkObject(p, z, path, ZONE_KEYS)) return;
  // [path, key]: joined only for what fails (check.ts); a watch checks every zone of every version.
  for (const key of NAMED_ZONE_KEYS) checkString(p, z[key], [path, key], NAME);
  checkNumber(p, z.capacity, [path, 'capacity'], 0);
  if (inTable || z.status !== undefined) checkOneOf(p, z.status, [path, 'status'], ZONE_STATUSES);
  if (z.healthPath !== undefined) checkHealthPath(p, z.healthPath, join(path, 'healthPath'));
  checkUpstreams(p, z.upstreams, join(path, 'upstreams'), inTable, allowLinkLocal);
  if (z.services !== undefined) checkServices(p, z.services, join(path, 'services'), inTable, allowLinkLocal);
  if (z.elastic !== undefined && typeof z.elastic !== 'boolean') p.add(join(path, 'elastic'), `must be true or false, got ${describe(z.elastic)}`);
}

function checkHealthPath(p: Problems, v: unknown, path: string): void {
  if (v !== undefined && (typeof v !== 'string' || !HEALTH_PATH.test(v))) {
    p.add(path, `must be an absolute path such as /healthz (no query, at most 1024 characters), got ${describe(v)}`);
  }
}

/** A list (maybe empty) of unique upstream base URLs; absent only where `required` is false. */
function checkUpstreams(p: Problems, ups: unknown, path: string, required: boolean, allowLinkLocal: boolean): void {
  if (ups === undefined && !required) return;
  if (!Array.isArray(ups)) {
    p.add(path, `must be a list of http(s) URLs (maybe empty), got ${describe(ups)}`);
    return;
  }
  ups.forEach((u, i) => checkHttpUrl(p, u, [path, i], allowLinkLocal));
  checkUnique(p, ups.map((u) => (typeof u === 'string' ? u : undefined)), (i) => join(path, i), 'upstream');
}

/** `services: { NAME: { upstreams, healthPath? } }`; `default` is the zone's own `upstreams`, never listed here. */
function checkServices(p: Problems, services: unknown, path: string, inTable: boolean, allowLinkLocal: boolean): void {
  if (!isRecord(services)) {
    p.add(path, `must be a map of service name to {upstreams, healthPath}, got ${describe(services)}`);
    return;
  }
  const names = Object.keys(services);
  if (names.length > MAX_SERVICES_PER_ZONE) p.add(path, `at most ${MAX_SERVICES_PER_ZONE} services per zone, got ${names.length}`);
  for (const name of names) {
    const at = join(path, name);
    if (name === DEFAULT_SERVICE) {
      p.add(at, `the service "${DEFAULT_SERVICE}" is the zone's own upstreams (and healthPath): list them there`);
      continue;
    }
    if (!NAME.test(name)) p.add(at, `service name ${JSON.stringify(name)} must match ${NAME}`);
    const svc = services[name];
    if (!checkObject(p, svc, at, SERVICE_KEYS)) continue;
    checkUpstreams(p, svc.upstreams, join(at, 'upstreams'), inTable, allowLinkLocal);
    checkHealthPath(p, svc.healthPath, join(at, 'healthPath'));
  }
}

/** `allowLinkLocal: true` lets upstreams be link-local or cloud-metadata addresses (off when absent). */
export function checkAllowLinkLocal(p: Problems, v: unknown): boolean {
  if (v === undefined) return false;
  if (typeof v !== 'boolean') p.add('allowLinkLocal', `must be true or false, got ${describe(v)}`);
  return v === true;
}

// Runs for every cell of a full validation (10,000 of them) and for the changed cells of
// every version a watch decodes: paths are given as [path, key], joined only for what fails.
function checkCell(p: Problems, c: unknown, path: string, zones: ReadonlySet<string>, elastic: ReadonlySet<string>): void {
  if (!checkObject(p, c, path, CELL_KEYS)) return;
  checkString(p, c.name, [path, 'name'], NAME);
  checkZoneName(p, c, 'home', path, zones);
  checkZoneName(p, c, 'zone', path, zones);
  // An elastic zone is lent for a peak and given back: nothing may call it home.
  if (typeof c.home === 'string' && elastic.has(c.home)) p.add(join(path, 'home'), `zone ${JSON.stringify(c.home)} is elastic: it cannot be a cell's home`);
  checkInteger(p, c.epoch, [path, 'epoch'], 0);
  if (!checkOneOf(p, c.state, [path, 'state'], CELL_STATES)) return;
  if (c.state === 'frozen') checkInteger(p, c.frozenUntilMs, [path, 'frozenUntilMs'], 0);
  else if (c.frozenUntilMs !== undefined) p.add([path, 'frozenUntilMs'], 'only a frozen cell has a freeze deadline');
  if (c.movingTo !== undefined) checkZoneName(p, c, 'movingTo', path, zones);
}

/** `c[key]` names a zone of the table. */
function checkZoneName(p: Problems, c: Record<string, unknown>, key: 'home' | 'zone' | 'movingTo', path: string, zones: ReadonlySet<string>): void {
  const v = c[key];
  if (checkString(p, v, [path, key]) && !zones.has(v)) p.add([path, key], `no zone named ${JSON.stringify(v)}`);
}

function checkRing(p: Problems, ring: unknown, cellNames: readonly string[]): void {
  if (!checkObject(p, ring, 'ring', ['range', 'pointsPerCell', 'pointCounts'])) return;
  if (ring.range !== RING_RANGE) p.add('ring.range', `must be ${RING_RANGE}`);
  checkInteger(p, ring.pointsPerCell, 'ring.pointsPerCell', 1, 100_000);
  if (!checkObject(p, ring.pointCounts, 'ring.pointCounts', cellNames)) return;
  for (const cell of cellNames) {
    checkInteger(p, ring.pointCounts[cell], join('ring.pointCounts', cell), 1, 100_000);
  }
}

function checkOverrides(p: Problems, overrides: unknown, path: string, cells: ReadonlySet<string>): void {
  if (!isRecord(overrides)) {
    p.add(path, 'must be a map of user id to cell name');
    return;
  }
  for (const [user, cell] of Object.entries(overrides)) {
    if (user.length === 0 || user.length > MAX_USER_ID_LENGTH) p.add(join(path, user), 'user id must be 1-256 characters');
    if (typeof cell !== 'string' || !cells.has(cell)) p.add(join(path, user), `no cell named ${JSON.stringify(cell)}`);
  }
}

function checkHighWater(p: Problems, hw: unknown, cells: readonly unknown[], global: unknown): void {
  if (hw === undefined || !checkInteger(p, hw, 'epochHighWater', 0)) return;
  const epochOf = (c: unknown): number => (isRecord(c) && typeof c.epoch === 'number' ? c.epoch : 0);
  let highest = Math.max(0, epochOf(global));
  for (const c of cells) highest = Math.max(highest, epochOf(c));
  if ((hw as number) < highest) p.add('epochHighWater', `must be at least the highest cell epoch (${highest})`);
}

/** The highest epoch this table has issued: its high-water mark, or its highest cell epoch. */
export function epochHighWaterOf(table: RoutingTable): number {
  return Math.max(table.epochHighWater ?? 0, ...[...table.cells, table.global].map((c) => c.epoch));
}

/** `table` (not yet validated) with its high-water mark raised to cover every cell's epoch. */
export function withEpochHighWater<T extends RoutingTable>(table: T, atLeast = 0): T {
  const cellsMax = Math.max(...[...table.cells, table.global].map((c) => c.epoch));
  return { ...table, epochHighWater: Math.max(table.epochHighWater ?? 0, cellsMax, atLeast) };
}

/**
 * Who holds a document being validated. `copy`: the caller may keep using it, so the table is
 * a deep-frozen copy. `take`: nobody else holds it (fresh JSON.parse output that the caller
 * hands over), so it is frozen in place and becomes the table — copying a document only to
 * drop the original costs a watch more than validating it does.
 */
export type DocumentHandling = 'copy' | 'take';

/** Validates a routing-table document; returns it deep-frozen (a copy unless `handling` is `take`) or throws INVALID_TABLE. */
export function validateTable(doc: unknown, handling: DocumentHandling = 'copy'): RoutingTable {
  const p = new Problems();
  if (!checkObject(p, doc, '', TABLE_KEYS)) throw cgError('INVALID_TABLE', `invalid routing table: ${p.summary()}`, { detail: p.list });
  if (doc.format !== 1) p.add('format', 'must be 1');
  checkString(p, doc.name, 'name');
  const zones = Array.isArray(doc.zones) ? doc.zones : [];
  if (zones.length === 0) p.add('zones', 'must be a non-empty list');
  const allowLinkLocal = checkAllowLinkLocal(p, doc.allowLinkLocal);
  zones.forEach((z, i) => checkZone(p, z, `zones[${i}]`, true, allowLinkLocal));
  const zoneNames = zones.map((z) => (isRecord(z) && typeof z.name === 'string' ? z.name : undefined));
  checkUnique(p, zoneNames, (i) => `zones[${i}].name`, 'zone name');
  const zoneSet = new Set(zoneNames.filter((n): n is string => n !== undefined));
  const elastic = new Set(zones.filter((z) => isRecord(z) && z.elastic === true && typeof z.name === 'string').map((z) => (z as { name: string }).name));
  const cells = Array.isArray(doc.cells) ? doc.cells : [];
  if (cells.length === 0) p.add('cells', 'must be a non-empty list');
  cells.forEach((c, i) => checkCell(p, c, `cells[${i}]`, zoneSet, elastic));
  const cellNames = cells.map((c) => (isRecord(c) && typeof c.name === 'string' ? c.name : undefined));
  checkUnique(p, cellNames, (i) => `cells[${i}].name`, 'cell name');
  const cellList = cellNames.filter((n): n is string => n !== undefined);
  if (cellList.includes(GLOBAL_CELL)) p.add('cells', `"${GLOBAL_CELL}" is reserved for the global zone`);
  checkCell(p, doc.global, 'global', zoneSet, elastic);
  if (isRecord(doc.global) && doc.global.name !== GLOBAL_CELL) p.add('global.name', `must be "${GLOBAL_CELL}"`);
  checkRing(p, doc.ring, cellList);
  checkOverrides(p, doc.overrides, 'overrides', new Set(cellList));
  checkHighWater(p, doc.epochHighWater, cells, doc.global);
  if (!p.empty) throw cgError('INVALID_TABLE', `invalid routing table: ${p.summary()}`, { detail: p.list });
  return deepFreeze(handling === 'take' ? doc : structuredClone(doc)) as unknown as RoutingTable;
}

/** Parses and validates the JSON text of a table document. */
export function parseTableJson(text: string): RoutingTable {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw cgError('INVALID_TABLE', `invalid routing table: not JSON (${(err as Error).message})`);
  }
  return validateTable(doc);
}

/** `checksum`: what the caller already computed for `table` (a TableChecksummer's). */
export function versioned(table: RoutingTable, version: number, checksum = tableChecksum(table)): VersionedTable {
  return Object.freeze({ table, version, checksum });
}
