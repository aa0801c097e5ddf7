// Topology (the YAML an operator writes) -> the first routing table.
import YAML, { LineCounter } from 'yaml';
import { cgError } from '../errors';
import { NAME, Problems, checkInteger, checkObject, checkString, checkUnique, isRecord, join } from './check';
import { balancedRingSpec } from './ring-layout';
import { checkAllowLinkLocal, checkZone, validateTable } from './table';
import { USER_ID_PROBLEM_TEXT, userIdProblem } from './user-id';
import { GLOBAL_CELL, type Cell, type RoutingTable, type Zone } from './types';

const TOPOLOGY_KEYS = ['name', 'cells', 'global', 'zones', 'overrides', 'allowLinkLocal'] as const;
const MAX_CELLS = 60_000;

export interface Topology {
  readonly name: string;
  readonly cells: readonly string[];
  readonly global: string;
  readonly zones: readonly Zone[];
  readonly overrides: Readonly<Record<string, string>>;
  /** Upstreams may be link-local or cloud-metadata addresses (an explicit opt-in). */
  readonly allowLinkLocal: boolean;
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
  const allowLinkLocal = checkAllowLinkLocal(p, doc.allowLinkLocal);
  zones.forEach((z, i) => checkZone(p, z, `zones[${i}]`, false, allowLinkLocal));
  const zoneNames = zones.map((z) => (isRecord(z) && typeof z.name === 'string' ? z.name : undefined));
  checkUnique(p, zoneNames, (i) => `zones[${i}].name`, 'zone name');
  // Elastic zones hold no homes: only the others' capacity counts.
  const capacity = zones.reduce((sum, z) => sum + (isRecord(z) && z.elastic !== true && typeof z.capacity === 'number' && z.capacity > 0 ? z.capacity : 0), 0);
  if (zones.length > 0 && capacity <= 0) p.add('zones', 'the zones have no capacity in all: no cell can have a home');
  else if (cells.length > capacity) p.add('zones', `the zones can carry ${capacity} cells in all, fewer than the ${cells.length} cells`);
  const global = doc.global ?? zoneNames[0];
  if (checkString(p, global, 'global') && !zoneNames.includes(global as string)) {
    p.add('global', `no zone named ${JSON.stringify(global)}`);
  } else if (zones.some((z) => isRecord(z) && z.name === global && z.elastic === true)) {
    p.add('global', `zone ${JSON.stringify(global)} is elastic: the global zone's home cannot be elastic`);
  }
  const overrides = doc.overrides ?? {};
  if (!isRecord(overrides)) p.add('overrides', 'must be a map of user id to cell name');
  else {
    const cellSet = new Set(cells);
    for (const [user, cell] of Object.entries(overrides)) {
      const problem = userIdProblem(user);
      if (problem) p.add(join('overrides', user), `the user id ${USER_ID_PROBLEM_TEXT[problem]}`);
      if (typeof cell !== 'string' || !cellSet.has(cell)) p.add(join('overrides', user), `no cell named ${JSON.stringify(cell)}`);
    }
  }
  if (!p.empty) invalid(p);
  const zoneList = (zones as Record<string, unknown>[]).map(zoneWithDefaults);
  return { name: doc.name as string, cells, global: global as string, zones: zoneList, overrides: overrides as Record<string, string>, allowLinkLocal };
}

/** A topology zone as the table holds it: status `up` and empty endpoint lists where they were left out. */
function zoneWithDefaults(z: Record<string, unknown>): Zone {
  const zone: Record<string, unknown> = { ...z, status: z.status ?? 'up', upstreams: z.upstreams ?? [] };
  if (isRecord(z.services)) {
    zone.services = Object.fromEntries(Object.entries(z.services).map(([name, s]) => [name, { ...(s as object), upstreams: (s as Record<string, unknown>).upstreams ?? [] }]));
  }
  return zone as unknown as Zone;
}

/** Largest topology or table document accepted (bytes of UTF-8): far above any real one. */
export const MAX_DOCUMENT_BYTES = 16 * 1024 * 1024;
/** Aliases one document may expand (yaml's guard against "billion laughs"). */
const MAX_YAML_ALIASES = 100;

/** Refuses a document text over MAX_DOCUMENT_BYTES (cheap: the byte count is taken only near the limit). */
export function checkDocumentSize(text: string, what: string): string | null {
  if (text.length * 3 <= MAX_DOCUMENT_BYTES) return null;
  const bytes = text.length > MAX_DOCUMENT_BYTES ? text.length : Buffer.byteLength(text, 'utf8');
  return bytes > MAX_DOCUMENT_BYTES ? `the ${what} is ${bytes} bytes, over the limit of ${MAX_DOCUMENT_BYTES} (16 MiB)` : null;
}

/**
 * Parses YAML (or JSON) topology text. Duplicate keys and syntax errors are refused with their
 * line. Cost is bounded: size capped, aliases capped, and duplicate keys found with one set
 * per mapping (yaml's own uniqueKeys compares each key with every other: quadratic).
 */
export function parseTopology(text: string): Topology {
  const tooLarge = checkDocumentSize(text, 'topology');
  if (tooLarge) invalidDocument(tooLarge);
  const lineCounter = new LineCounter();
  let doc: unknown;
  try {
    const parsed = YAML.parseDocument(text, { uniqueKeys: false, prettyErrors: true, lineCounter, merge: false });
    if (parsed.errors.length) throw parsed.errors[0];
    const duplicate = firstDuplicateKey(parsed);
    if (duplicate) {
      const { line, col } = lineCounter.linePos(duplicate.offset);
      throw new Error(`Map keys must be unique: ${JSON.stringify(duplicate.key)} again at line ${line}, column ${col}`);
    }
    doc = parsed.toJS({ maxAliasCount: MAX_YAML_ALIASES });
  } catch (err) {
    invalidDocument(`broken YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  return validateTopology(doc);
}

function invalidDocument(message: string): never {
  const p = new Problems();
  p.add('(document)', message);
  invalid(p);
}

/** The first key repeated within one mapping, compared as the string it becomes in JS. */
function firstDuplicateKey(doc: YAML.Document): { key: string; offset: number } | null {
  let found: { key: string; offset: number } | null = null;
  YAML.visit(doc, {
    Map(_, map) {
      const seen = new Set<string>();
      for (const pair of map.items) {
        if (!YAML.isScalar(pair.key)) continue;
        const key = String(pair.key.value);
        if (seen.has(key)) {
          found = { key, offset: pair.key.range?.[0] ?? 0 };
          return YAML.visit.BREAK;
        }
        seen.add(key);
      }
      return undefined;
    },
  });
  return found;
}

/**
 * Spreads cell homes over zones in proportion to capacity, interleaved (smooth weighted
 * round robin, as nginx does for upstream weights) so that a zone's cells are spread over
 * the ring's names rather than one block. Elastic zones get no homes.
 */
export function assignHomes(cells: readonly string[], zones: readonly Zone[]): string[] {
  const weighted = zones.filter((z) => z.capacity > 0 && z.elastic !== true);
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
    ...(topo.allowLinkLocal ? { allowLinkLocal: true } : {}),
  };
  return validateTable(table);
}

/** Topology text -> routing table (throws INVALID_TOPOLOGY). */
export function tableFromTopologyText(text: string): RoutingTable {
  return buildTable(parseTopology(text));
}
