// Pure edits of a table's zone list: adding a zone (validated like a topology zone) and
// removing one that nothing uses any more. Both return a new validated table or throw.
import { cgError } from '../errors';
import { Problems, join } from './check';
import { checkZone, validateTable } from './table';
import type { RoutingTable, Zone } from './types';

/**
 * `table` with `doc` appended as a new zone (status `up` unless the document says otherwise,
 * no cells). The zone is checked like a topology zone, errors naming `zones.NAME.KEY` (`zones["el-a"].capacity`);
 * a name already in the table is refused.
 */
export function addZone(table: RoutingTable, doc: Record<string, unknown>): RoutingTable {
  const name = typeof doc.name === 'string' ? doc.name : '';
  if (table.zones.some((z) => z.name === name)) {
    throw cgError('PLAN_REFUSED', `zone ${JSON.stringify(name)} already exists (zones: ${table.zones.map((z) => z.name).join(', ')})`);
  }
  const p = new Problems();
  const zone = { ...doc, status: doc.status ?? 'up' };
  checkZone(p, zone, join('zones', name || '(new)'), true, table.allowLinkLocal === true);
  if (!p.empty) throw cgError('INVALID_TOPOLOGY', `invalid zone: ${p.summary()}`, { detail: p.list });
  return validateTable({ ...table, zones: [...table.zones, zone as unknown as Zone] });
}

/**
 * Why `name` cannot leave `table` (one reason per line), or [] when it can: no cell has it as
 * home or current zone, no frozen cell is moving to it, it is not the global zone's, and it
 * is not the last zone.
 */
export function zoneRemovalProblems(table: RoutingTable, name: string): string[] {
  const problems: string[] = [];
  const cells = table.cells;
  const homed = cells.filter((c) => c.home === name).map((c) => c.name);
  const served = cells.filter((c) => c.zone === name).map((c) => c.name);
  const arriving = cells.filter((c) => c.state === 'frozen' && c.movingTo === name).map((c) => c.name);
  const some = (list: string[]) => `${list.slice(0, 8).join(', ')}${list.length > 8 ? `, … (${list.length})` : ''}`;
  if (table.global.home === name || table.global.zone === name || table.global.movingTo === name) problems.push(`it is the global zone's (global traffic: home ${table.global.home}, now ${table.global.zone})`);
  if (homed.length) problems.push(`${homed.length} cell(s) have it as home: ${some(homed)} (rebalance moves homes)`);
  if (served.length) problems.push(`${served.length} cell(s) are served by it: ${some(served)} (rebalance --off-elastic or zone drain moves them)`);
  if (arriving.length) problems.push(`${arriving.length} frozen cell(s) are moving to it: ${some(arriving)}`);
  if (table.zones.length === 1) problems.push('it is the only zone');
  return problems;
}

/** `table` without zone `name`; throws USAGE when there is none, PLAN_REFUSED when something still uses it. */
export function removeZone(table: RoutingTable, name: string): RoutingTable {
  if (!table.zones.some((z) => z.name === name)) {
    throw cgError('USAGE', `no zone named ${JSON.stringify(name)} (zones: ${table.zones.map((z) => z.name).join(', ')})`);
  }
  const problems = zoneRemovalProblems(table, name);
  if (problems.length) throw cgError('PLAN_REFUSED', `zone ${name} cannot be removed: ${problems.join('; ')}`, { detail: problems });
  return validateTable({ ...table, zones: table.zones.filter((z) => z.name !== name) });
}
