// Topology (the YAML an operator writes) -> the first routing table.
import YAML from 'yaml';
import { cgError } from '../errors';
import { NAME, Problems, checkInteger, checkObject, checkString, checkUnique, isRecord, join } from './check';
import { balancedRingSpec } from './ring-layout';
import { MAX_USER_ID_LENGTH, checkZone, validateTable } from './table';
import { GLOBAL_CELL, type Cell, type RoutingTable, type Zone } from './types';

const TOPOLOGY_KEYS = ['name', 'cells', 'global', 'zones', 'overrides'] as const;
const MAX_CELLS = 60_000;

export interface Topology {
  readonly name: string;
  readonly cells: readonly string[];
  readonly global: string;
  readonly zones: readonly Zone[];
  readonly overrides: Readonly<Record<string, string>>;
}

function invalid(p: Problems): never {
  throw cgError('INVALID_TOPOLOGY', `invalid topology: ${p.summary()}`, { detail: p.list });
}

/** `cells: 64` -> c00…c63 (width grows with the count), or an explicit list of names. */
function cellNamesOf(p: Problems, cells: unknown): string[] {
  if (typeof cells === 'number') {
    if (!checkInteger(p, cells, 'cells', 1, MAX_CELLS)) return [];
    const width = Math.max(2, String(cells - 1).length);
    return Array.from({ length: cells }, (_, i) => `c${String(i).padStart(width, '0')}`);
  }
  if (!Array.isArray(cells) || cells.length === 0) {
    p.add('cells', 'must be a positive number of cells or a non-empty list of cell names');
    return [];
  }
  cells.forEach((c, i) => {
    if (checkString(p, c, `cells[${i}]`, NAME) && c === GLOBAL_CELL) p.add(`cells[${i}]`, `"${GLOBAL_CELL}" is reserved`);
  });
  checkUnique(p, cells.map((c) => (typeof c === 'string' ? c : undefined)), (i) => `cells[${i}]`, 'cell name');
  return cells.filter((c): c is string => typeof c === 'string');
}

/** Validates a parsed topology document. */
export function validateTopology(doc: unknown): Topology {
  const p = new Problems();
  if (!checkObject(p, doc, '', TOPOLOGY_KEYS)) invalid(p);
  checkString(p, doc.name, 'name', NAME);
  const cells = cellNamesOf(p, doc.cells);
  const zones = Array.isArray(doc.zones) ? doc.zones : [];
  if (zones.length === 0) p.add('zones', 'must be a non-empty list of zones');
  zones.forEach((z, i) => checkZone(p, z, `zones[${i}]`, false));
  const zoneNames = zones.map((z) => (isRecord(z) && typeof z.name === 'string' ? z.name : undefined));
  checkUnique(p, zoneNames, (i) => `zones[${i}].name`, 'zone name');
  const capacity = zones.reduce((sum, z) => sum + (isRecord(z) && typeof z.capacity === 'number' && z.capacity > 0 ? z.capacity : 0), 0);
  if (zones.length > 0 && capacity <= 0) p.add('zones', 'the zones have no capacity in all: no cell can have a home');
  else if (cells.length > capacity) p.add('zones', `the zones can carry ${capacity} cells in all, fewer than the ${cells.length} cells`);
  const global = doc.global ?? zoneNames[0];
  if (checkString(p, global, 'global') && !zoneNames.includes(global as string)) {
    p.add('global', `no zone named ${JSON.stringify(global)}`);
  }
  const overrides = doc.overrides ?? {};
  if (!isRecord(overrides)) p.add('overrides', 'must be a map of user id to cell name');
  else {
    for (const [user, cell] of Object.entries(overrides)) {
      if (user.length === 0 || user.length > MAX_USER_ID_LENGTH) p.add(join('overrides', user), 'user id must be 1-256 characters');
      if (typeof cell !== 'string' || !cells.includes(cell)) p.add(join('overrides', user), `no cell named ${JSON.stringify(cell)}`);
    }
  }
  if (!p.empty) invalid(p);
  const zoneList = (zones as Record<string, unknown>[]).map((z) => ({ ...z, status: z.status ?? 'up' }) as unknown as Zone);
  return { name: doc.name as string, cells, global: global as string, zones: zoneList, overrides: overrides as Record<string, string> };
}

/** Parses YAML (or JSON) topology text. Duplicate keys and syntax errors are refused with their line. */
export function parseTopology(text: string): Topology {
  let doc: unknown;
  try {
    doc = YAML.parse(text, { uniqueKeys: true, prettyErrors: true });
  } catch (err) {
    const p = new Problems();
    p.add('(document)', `broken YAML: ${(err as Error).message.split('\n')[0]}`);
    invalid(p);
  }
  return validateTopology(doc);
}

/**
 * Spreads cell homes over zones in proportion to capacity, interleaved (smooth weighted
 * round robin, as nginx does for upstream weights) so that a zone's cells are spread over
 * the ring's names rather than one block.
 */
export function assignHomes(cells: readonly string[], zones: readonly Zone[]): string[] {
  const weighted = zones.filter((z) => z.capacity > 0);
  const total = weighted.reduce((sum, z) => sum + z.capacity, 0);
  const current = weighted.map(() => 0);
  return cells.map(() => {
    let pick = 0;
    for (let i = 0; i < weighted.length; i++) {
      current[i] += weighted[i].capacity;
      if (current[i] > current[pick]) pick = i;
    }
    current[pick] -= total;
    return weighted[pick].name;
  });
}

export function buildTable(topo: Topology): RoutingTable {
  const homes = assignHomes(topo.cells, topo.zones);
  const cells: Cell[] = topo.cells.map((name, i) => ({ name, home: homes[i], zone: homes[i], epoch: 1, state: 'active' }));
  const table = {
    format: 1 as const,
    name: topo.name,
    ring: balancedRingSpec(topo.cells),
    zones: topo.zones,
    cells,
    global: { name: GLOBAL_CELL, home: topo.global, zone: topo.global, epoch: 1, state: 'active' as const },
    overrides: topo.overrides,
  };
  return validateTable(table);
}

/** Topology text -> routing table (throws INVALID_TOPOLOGY). */
export function tableFromTopologyText(text: string): RoutingTable {
  return buildTable(parseTopology(text));
}
